package runbookloop

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"slices"
	"time"

	"github.com/remediator/remediator/internal/store/audit"
)

// AuditRecords exports the audit trail of alertname from the loop's start
// (GET /audit/export?format=ndjson, with the audit token) and returns the
// records of incident id, in seq order.
func (l *Loop) AuditRecords(alertname, id string) ([]audit.Record, error) {
	q := url.Values{"format": {"ndjson"}, "startDate": {l.Started.UTC().Format("2006-01-02")}, "alertname": {alertname}}
	resp, err := get(l.t.Context(), l.Remediator+"/audit/export?"+q.Encode(), l.auditToken)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /audit/export: %s", resp.Status)
	}
	var out []audit.Record
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var r audit.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("audit export line %q: %w", sc.Text(), err)
		}
		if r.IncidentID == id {
			out = append(out, r)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	// Exported in time order; the chain's order is seq.
	slices.SortFunc(out, func(a, b audit.Record) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, nil
}

// CheckAudit waits until every event of v's timeline is sealed into the
// audit trail, then checks the incident's records: exactly one per event
// (same event, type, actor and reason), chained in the timeline's order,
// with the types want among them in that order; and that `remediator audit
// verify` finds the whole chain valid. It returns the records and the
// verification's report.
func (l *Loop) CheckAudit(v View, want ...string) ([]audit.Record, audit.Report) {
	l.t.Helper()
	var recs []audit.Record
	err := poll(l.t.Context(), 15*time.Second, func() (bool, error) {
		var err error
		if recs, err = l.AuditRecords(v.Incident.AlertName, v.Incident.ID); err != nil {
			return false, err
		}
		return len(recs) >= len(v.Timeline), fmt.Errorf("%d of the timeline's %d events sealed", len(recs), len(v.Timeline))
	})
	if err != nil {
		l.t.Fatalf("audit: incident %s: %v", v.Incident.ID, err)
	}
	if err := CheckRecords(v.Timeline, recs, want...); err != nil {
		l.t.Fatalf("audit: incident %s: %v", v.Incident.ID, err)
	}
	rep, err := l.VerifyAudit()
	if err != nil {
		l.t.Fatalf("audit: %v", err)
	}
	if last := recs[len(recs)-1].Seq; rep.LastSeq < last {
		l.t.Fatalf("audit verify checked up to seq %d, the incident's records go to %d", rep.LastSeq, last)
	}
	return recs, rep
}

// CheckRecords compares an incident's audit records (seq order) with its
// timeline: records of events after the timeline was read are allowed at
// the end.
func CheckRecords(tl Timeline, recs []audit.Record, want ...string) error {
	if len(recs) < len(tl) {
		return fmt.Errorf("%d records for %d timeline events", len(recs), len(tl))
	}
	types := make([]string, len(recs))
	for i, r := range recs {
		types[i] = r.Type
		if i >= len(tl) {
			continue
		}
		e := tl[i]
		if r.EventID != e.ID || r.Type != e.Type || r.Actor != e.Actor || r.Reason != e.Reason {
			return fmt.Errorf("record seq %d (event %d %s[%s] %q) is not timeline event %d (event %d %s[%s] %q)",
				r.Seq, r.EventID, r.Type, r.Actor, r.Reason, i, e.ID, e.Type, e.Actor, e.Reason)
		}
		if i > 0 && r.Seq <= recs[i-1].Seq {
			return fmt.Errorf("records out of chain order: seq %d after %d", r.Seq, recs[i-1].Seq)
		}
	}
	return InOrder(types, want...)
}

// VerifyAudit runs `remediator audit verify` on the loop's store and
// returns its report; a broken chain is an error.
func (l *Loop) VerifyAudit() (audit.Report, error) {
	var stdout, stderr bytes.Buffer
	bin, args, err := withoutConfigEnv(l.bins.Remediator, []string{"audit", "verify", "--store", l.StoreDSN, "-o", "json"})
	if err != nil {
		return audit.Report{}, err
	}
	cmd := exec.CommandContext(l.t.Context(), bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var rep audit.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		return rep, fmt.Errorf("remediator audit verify: %v: %v: %s%s", runErr, err, stdout.Bytes(), stderr.Bytes())
	}
	switch {
	case runErr != nil || !rep.Valid:
		return rep, fmt.Errorf("remediator audit verify: %v: %s", errors.Join(runErr, errors.New(rep.String())), stderr.Bytes())
	case rep.Records == 0:
		return rep, errors.New("remediator audit verify: no records")
	}
	return rep, nil
}
