package testbed

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
)

func TestFormatCRILog(t *testing.T) {
	ts := time.Date(2026, 11, 26, 0, 50, 0, 0, time.UTC)
	got := string(FormatCRILog([]LogRecord{{Time: ts, Line: `{"level":"ERROR"}`}, {Time: ts, Stream: "stderr", Line: "a\nb"}}))
	want := "2026-11-26T00:50:00Z stdout F {\"level\":\"ERROR\"}\n2026-11-26T00:50:00Z stderr F a\n2026-11-26T00:50:00Z stderr F b\n"
	if got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestRolloutStatus(t *testing.T) {
	three := int32(3)
	d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: &three}}
	d.Name = "x"
	d.Generation = 2
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: 1}
	if done, msg, _ := RolloutStatus(d); done || !strings.Contains(msg, "observed") {
		t.Errorf("unobserved generation: %v %q", done, msg)
	}
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 4, UpdatedReplicas: 3, AvailableReplicas: 3}
	if done, msg, _ := RolloutStatus(d); done || !strings.Contains(msg, "old replicas") {
		t.Errorf("old replicas: %v %q", done, msg)
	}
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 3, AvailableReplicas: 3}
	if done, _, err := RolloutStatus(d); !done || err != nil {
		t.Errorf("complete rollout: %v %v", done, err)
	}
	d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Reason: "ProgressDeadlineExceeded"}}
	if _, _, err := RolloutStatus(d); err == nil {
		t.Error("progress deadline not reported")
	}
}
