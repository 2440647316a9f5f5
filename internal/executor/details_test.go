package executor

import (
	"encoding/json"
	"testing"

	"github.com/remediator/remediator/internal/store"
	"github.com/remediator/remediator/internal/store/audit"
)

// The events that settle an execution (applied, failed, reconciled,
// verified, ineffective) carry what was done, how and to what, so their
// audit records have the action, mode and target columns like the intent's.
func TestExecDetailsFillTheAuditColumns(t *testing.T) {
	x := store.Execution{ID: "x1", Remedy: "rollback-recent-rollout", Action: "rollback", Mode: "enforce",
		Kind: "Deployment", Namespace: "prod", Name: "platform-service"}
	for _, typ := range []string{EventApplied, EventFailed, EventReconciled, EventVerified, EventIneffective} {
		raw, err := json.Marshal(execDetails(x, map[string]any{"tookMs": 12}))
		if err != nil {
			t.Fatal(err)
		}
		d := audit.Derive(typ, raw)
		want := audit.Target{Kind: "Deployment", Namespace: "prod", Name: "platform-service"}
		if d.Action != "rollback" || d.Mode != "enforce" || d.Target != want {
			t.Errorf("%s: derived action %q mode %q target %+v, want rollback enforce %+v", typ, d.Action, d.Mode, d.Target, want)
		}
	}
	// the extra keys are added to the execution's own
	d := execDetails(x, map[string]any{"tookMs": 12})
	if d["tookMs"] != 12 || d["execution"] != "x1" {
		t.Errorf("details %v", d)
	}
}
