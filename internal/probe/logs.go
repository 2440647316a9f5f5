package probe

import (
	"bufio"
	"context"
	"fmt"
	"regexp"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
)

// Limits of the log probes.
const (
	defaultSince    = 5 * time.Minute
	defaultMaxLines = 2000
	maxLineBytes    = 256 << 10 // longer lines are cut
	maxLogBytes     = 16 << 20  // per container
)

// logOptions are the common parameters of the log probes.
type logOptions struct {
	since    time.Duration
	maxLines int64
	top      int64
	pattern  *regexp.Regexp
}

// parseLogOptions reads since (duration) or sinceSeconds (int, default
// 300), maxLines (per container, default 2000), top (default 5) and, for
// errorDistribution, pattern.
func parseLogOptions(p Params, withPattern bool) (logOptions, error) {
	o := logOptions{}
	var err error
	if _, ok := p["sinceSeconds"]; ok {
		var s int64
		if s, err = p.Int("sinceSeconds", 300); err != nil {
			return o, err
		}
		o.since = time.Duration(s) * time.Second
	} else if o.since, err = p.Duration("since", defaultSince); err != nil {
		return o, err
	}
	if o.since < time.Second || o.since > 24*time.Hour {
		return o, fmt.Errorf("parameter since: %s out of range [1s, 24h]", o.since)
	}
	if o.maxLines, err = p.Int("maxLines", defaultMaxLines); err != nil {
		return o, err
	}
	if err := bounded("maxLines", o.maxLines, 1, 100000); err != nil {
		return o, err
	}
	if o.top, err = p.Int("top", 5); err != nil {
		return o, err
	}
	if err := bounded("top", o.top, 1, 100); err != nil {
		return o, err
	}
	if withPattern {
		s, err := p.String("pattern", "")
		if err != nil {
			return o, err
		}
		if s != "" {
			if o.pattern, err = regexp.Compile(s); err != nil {
				return o, fmt.Errorf("parameter pattern: %v", err)
			}
		}
	}
	return o, nil
}

// LogStats says how much was read.
type LogStats struct {
	Pods   int64    `cel:"pods" json:"pods"`     // pods whose logs were read
	Lines  int64    `cel:"lines" json:"lines"`   // lines read
	Failed []string `cel:"failed" json:"failed"` // "pod/container: error" for logs that could not be read
}

// readLogs streams the recent log lines of every container of the target's
// pods to fn. A container whose log cannot be read is recorded in Failed;
// if no log could be read at all (and there were pods), that is an error.
func readLogs(ctx context.Context, c kubernetes.Interface, t Target, o logOptions, fn func(line string)) (LogStats, error) {
	st := LogStats{Failed: []string{}}
	_, pods, err := targetPods(ctx, c, t)
	if err != nil {
		return st, err
	}
	var lastErr error
	attempts := 0
	for i := range pods {
		pod := &pods[i]
		okPod := false
		for _, ctr := range pod.Spec.Containers {
			attempts++
			n, err := readContainerLog(ctx, c, pod, ctr.Name, o, fn)
			st.Lines += n
			if err != nil {
				lastErr = err
				st.Failed = append(st.Failed, fmt.Sprintf("%s/%s: %v", pod.Name, ctr.Name, err))
				if ctx.Err() != nil {
					return st, err
				}
				continue
			}
			okPod = true
		}
		if okPod {
			st.Pods++
		}
	}
	if attempts > 0 && len(st.Failed) == attempts {
		return st, fmt.Errorf("no pod log could be read: %w", lastErr)
	}
	return st, nil
}

func readContainerLog(ctx context.Context, c kubernetes.Interface, pod *corev1.Pod, container string, o logOptions, fn func(string)) (int64, error) {
	since := int64(o.since / time.Second)
	limit := int64(maxLogBytes)
	tail := o.maxLines
	rc, err := c.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{
		Container: container, SinceSeconds: &since, TailLines: &tail, LimitBytes: &limit,
	}).Stream(ctx)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64<<10), maxLineBytes)
	var n int64
	for sc.Scan() && n < o.maxLines {
		n++
		fn(sc.Text())
	}
	if err := sc.Err(); err != nil && err != bufio.ErrTooLong {
		return n, err
	}
	return n, nil
}
