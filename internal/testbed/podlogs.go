package testbed

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// LogRecord is one line of a container's log as the kubelet would store it.
type LogRecord struct {
	Time   time.Time // zero: now
	Stream string    // "stdout" (default) or "stderr"
	Line   string    // without newline
}

var kwokLogsGVR = schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "logs"}

// FormatCRILog renders records in the CRI log format kwok serves
// ("<RFC3339Nano> <stream> F <line>"); plain text is refused by kwok.
func FormatCRILog(records []LogRecord) []byte {
	var sb strings.Builder
	for _, r := range records {
		ts := r.Time
		if ts.IsZero() {
			ts = time.Now()
		}
		stream := r.Stream
		if stream == "" {
			stream = "stdout"
		}
		for l := range strings.SplitSeq(strings.TrimRight(r.Line, "\n"), "\n") {
			fmt.Fprintf(&sb, "%s %s F %s\n", ts.UTC().Format(time.RFC3339Nano), stream, l)
		}
	}
	return []byte(sb.String())
}

// SetPodLogs makes the pods/log API return records for every container of
// pod namespace/name: it writes a CRI log file into the bed's pod-logs dir and
// creates (or updates) kwok's Logs object for the pod. Calling it again
// replaces the log. The pod need not exist yet.
func (b *Bed) SetPodLogs(ctx context.Context, namespace, pod string, records []LogRecord) error {
	file := filepath.Join(b.state.PodLogsDir, namespace+"_"+pod+".log")
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, FormatCRILog(records), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, file); err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(b.AdminConfig())
	if err != nil {
		return err
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1",
		"kind":       "Logs",
		"metadata":   map[string]any{"name": pod, "namespace": namespace},
		"spec": map[string]any{
			"logs": []any{map[string]any{"logsFile": file, "follow": false}},
		},
	}}
	_, err = dyn.Resource(kwokLogsGVR).Namespace(namespace).Create(ctx, obj, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil // same file path; the content was replaced above
	}
	return err
}

// SetDefaultPodLogs replaces the log served for every pod without a Logs
// object of its own (the bed-wide ClusterLogs file).
func (b *Bed) SetDefaultPodLogs(records []LogRecord) error {
	tmp := b.state.DefaultPodLogFile + ".tmp"
	if err := os.WriteFile(tmp, FormatCRILog(records), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, b.state.DefaultPodLogFile)
}
