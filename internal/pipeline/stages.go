package pipeline

import (
	"context"
	"fmt"

	"github.com/remediator/remediator/internal/incident"
)

// IncidentGetter reads an incident's current state.
type IncidentGetter interface {
	Incident(ctx context.Context, id string) (incident.Incident, []incident.Event, error)
}

// Load reads the incident the job is about, so every later stage sees its
// state as of now, not as of intake.
func Load(s IncidentGetter) Stage {
	return StageFunc(func(ctx context.Context, w *Work) error {
		inc, _, err := s.Incident(ctx, w.Job.IncidentID)
		if err != nil {
			return fmt.Errorf("load incident %s: %w", w.Job.IncidentID, err)
		}
		w.Incident = inc
		return nil
	})
}

// ByKind routes a job to the stage for its kind; a kind with no stage is
// recorded and dropped (nothing is done for work the service does not know).
type ByKind map[string]Stage

// Exec runs the stage for the job's kind.
func (b ByKind) Exec(ctx context.Context, w *Work) error {
	st, ok := b[w.Job.Kind]
	if !ok {
		w.Record(incident.EventCancelled, fmt.Sprintf("unknown job kind %q; nothing will be done", w.Job.Kind), nil)
		w.Stop()
		return nil
	}
	return st.Exec(ctx, w)
}

// Triage decides whether the job still calls for remediation. A firing job
// whose episode resolved while it waited ends here, recorded: the service
// never acts on a resolved alert. A resolved job has nothing pending to
// cancel until proposals exist (the remediation stages add them), so it ends.
func Triage() Stage {
	return StageFunc(func(_ context.Context, w *Work) error {
		switch w.Job.Kind {
		case incident.JobFiring:
			if w.Incident.Status == incident.StatusResolved {
				w.Record(incident.EventCancelled, "alert resolved before remediation started; nothing will be done", nil)
				w.Stop()
			}
		case incident.JobResolved:
			w.Stop()
		default:
			w.Record(incident.EventCancelled, fmt.Sprintf("unknown job kind %q; nothing will be done", w.Job.Kind), nil)
			w.Stop()
		}
		return nil
	})
}
