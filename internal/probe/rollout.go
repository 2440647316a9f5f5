package probe

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

const (
	annRevision    = "deployment.kubernetes.io/revision"
	annChangeCause = "kubernetes.io/change-cause"
)

// RolloutHistory reads a Deployment's revisions from its ReplicaSets
// (`kubectl rollout history`) and whether a rollout is in progress.
type RolloutHistory struct {
	Client kubernetes.Interface
	Now    func() time.Time // default time.Now
}

// Name is "rolloutHistory".
func (RolloutHistory) Name() string { return "rolloutHistory" }

// Needs: get deployments, list replicasets.
func (RolloutHistory) Needs() []Permission { return []Permission{permDeployGet, permRSList} }

// Revision is one Deployment revision (one ReplicaSet).
type Revision struct {
	Revision    int64     `cel:"revision" json:"revision"`
	Image       string    `cel:"image" json:"image"` // images of the pod template, comma-separated in container order
	ChangeCause string    `cel:"changeCause" json:"changeCause"`
	CreatedAt   time.Time `cel:"createdAt" json:"createdAt"`
	ReplicaSet  string    `cel:"replicaSet" json:"replicaSet"`
}

// RolloutHistoryEvidence is the rolloutHistory probe's evidence.
type RolloutHistoryEvidence struct {
	Revisions        []Revision    `cel:"revisions" json:"revisions"` // newest first
	CurrentRevision  int64         `cel:"currentRevision" json:"currentRevision"`
	NewestRolloutAge time.Duration `cel:"newestRolloutAge" json:"newestRolloutAge"` // nanoseconds in JSON
	InProgress       bool          `cel:"inProgress" json:"inProgress"`
	Status           string        `cel:"status" json:"status"` // kubectl-style rollout status message
}

// MarshalJSON keeps the typed fields and adds newestRolloutAgeSeconds for people.
func (e RolloutHistoryEvidence) MarshalJSON() ([]byte, error) {
	type plain RolloutHistoryEvidence
	return json.Marshal(struct {
		plain
		AgeSeconds float64 `json:"newestRolloutAgeSeconds"`
	}{plain(e), e.NewestRolloutAge.Seconds()})
}

// Run reads the Deployment and its ReplicaSets. It takes no parameters.
func (p RolloutHistory) Run(ctx context.Context, t Target, _ Params) (Evidence, error) {
	d, err := getDeployment(ctx, p.Client, t)
	if err != nil {
		return nil, err
	}
	sel, err := selectorOf(d)
	if err != nil {
		return nil, err
	}
	rsl, err := p.Client.AppsV1().ReplicaSets(t.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("list replicasets of %s/%s: %w", t.Namespace, t.Name, err)
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	ev := RolloutHistoryEvidence{Revisions: []Revision{}}
	for i := range rsl.Items {
		rs := &rsl.Items[i]
		if !metav1.IsControlledBy(rs, d) {
			continue
		}
		n, err := strconv.ParseInt(rs.Annotations[annRevision], 10, 64)
		if err != nil {
			continue // not (yet) a revision of this Deployment
		}
		ev.Revisions = append(ev.Revisions, Revision{
			Revision:    n,
			Image:       images(rs),
			ChangeCause: rs.Annotations[annChangeCause],
			CreatedAt:   rs.CreationTimestamp.UTC(),
			ReplicaSet:  rs.Name,
		})
	}
	sort.Slice(ev.Revisions, func(i, j int) bool { return ev.Revisions[i].Revision > ev.Revisions[j].Revision })
	if n, err := strconv.ParseInt(d.Annotations[annRevision], 10, 64); err == nil {
		ev.CurrentRevision = n
	} else if len(ev.Revisions) > 0 {
		ev.CurrentRevision = ev.Revisions[0].Revision
	}
	for _, r := range ev.Revisions {
		if r.Revision == ev.CurrentRevision {
			ev.NewestRolloutAge = max(0, now().Sub(r.CreatedAt))
			break
		}
	}
	ev.InProgress, ev.Status = rolloutInProgress(d)
	return ev, nil
}

func images(rs *appsv1.ReplicaSet) string {
	var imgs []string
	for _, c := range rs.Spec.Template.Spec.Containers {
		imgs = append(imgs, c.Image)
	}
	return strings.Join(imgs, ",")
}

// rolloutInProgress applies the rules of `kubectl rollout status`.
func rolloutInProgress(d *appsv1.Deployment) (bool, string) {
	s := d.Status
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	switch {
	case s.ObservedGeneration < d.Generation:
		return true, "waiting for the deployment spec update to be observed"
	case s.UpdatedReplicas < want:
		return true, fmt.Sprintf("%d out of %d new replicas have been updated", s.UpdatedReplicas, want)
	case s.Replicas > s.UpdatedReplicas:
		return true, fmt.Sprintf("%d old replicas are pending termination", s.Replicas-s.UpdatedReplicas)
	case s.AvailableReplicas < s.UpdatedReplicas:
		return true, fmt.Sprintf("%d of %d updated replicas are available", s.AvailableReplicas, s.UpdatedReplicas)
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
			return false, "progress deadline exceeded"
		}
	}
	return false, "successfully rolled out"
}
