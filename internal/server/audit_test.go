package server

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/store"
	"github.com/remediator/remediator/internal/store/audit"
	"github.com/remediator/remediator/internal/store/open"
	"github.com/remediator/remediator/internal/store/storetest"
)

const auditToken = "audit-0nly-token"

type auditFixture struct {
	*fixture
	svc   *audit.Service
	clock *storetest.Clock
}

// newAuditFixture serves the webhook (token) and the audit endpoints
// (auditToken) on one SQLite store whose clock starts 40 days ago.
func newAuditFixture(t *testing.T, a Audit) *auditFixture {
	t.Helper()
	dir := t.TempDir()
	write := func(name, v string) *SecretFile {
		p := filepath.Join(dir, name)
		must(t, os.WriteFile(p, []byte(v), 0o600))
		s, err := NewSecretFile(p)
		must(t, err)
		return s
	}
	f := &auditFixture{fixture: &fixture{t: t, dsn: "sqlite://" + filepath.Join(dir, "r.db"),
		auth: &Authenticator{Bearer: write("token", token)}}, clock: storetest.NewClock(time.Now().Add(-40 * 24 * time.Hour))}
	st, err := open.Open(context.Background(), f.dsn, store.WithClock(f.clock.Now))
	must(t, err)
	f.store = st
	f.svc = audit.NewService(st, audit.Options{RetentionDays: 30})
	if a == nil {
		a = f.svc
	}
	f.reg = prometheus.NewRegistry()
	f.metrics = NewMetrics(f.reg)
	f.srv = New(Options{Store: st, Auth: f.auth, Log: zap.NewNop(), Metrics: f.metrics, Gatherer: f.reg,
		MaxBodyBytes: 1 << 20, Audit: a, AuditAuth: &Authenticator{Bearer: write("audit-token", auditToken)}})
	f.http = httptest.NewServer(f.srv)
	t.Cleanup(f.stop)
	return f
}

var auditHdr = map[string]string{"Authorization": "Bearer " + auditToken}

// ingest stores n alerts of alertname (one notification) at the store's
// clock and seals them.
func (f *auditFixture) ingest(n int, alertname string) {
	f.t.Helper()
	alerts := make([]incident.Alert, n)
	for i := range alerts {
		alerts[i] = storetest.Alert(fmt.Sprintf("%s%012x", alertname[:4], f.clock.Now().UnixNano()+int64(i)),
			incident.StatusFiring, f.clock.Now(), "alertname", alertname)
	}
	_, err := f.store.Ingest(context.Background(), storetest.Notification(alerts...))
	must(f.t, err)
	_, err = f.svc.SealAll(context.Background())
	must(f.t, err)
}

func TestAuditAuth(t *testing.T) {
	f := newAuditFixture(t, nil)
	for _, tc := range []struct {
		name, path, method string
		hdr                map[string]string
		want               int
	}{
		{"no credentials", "/audit/stats", http.MethodGet, nil, 401},
		{"the webhook's token", "/audit/stats", http.MethodGet, map[string]string{"Authorization": "Bearer " + token}, 401},
		{"wrong token", "/audit/retention", http.MethodGet, map[string]string{"Authorization": "Bearer nope"}, 401},
		{"audit token", "/audit/stats", http.MethodGet, auditHdr, 200},
		{"cleanup without credentials", "/audit/cleanup", http.MethodPost, nil, 401},
		{"export without credentials", "/audit/export?startDate=2024-01-01", http.MethodGet, nil, 401},
		{"the audit token on the incidents API", "/api/v1/incidents", http.MethodGet, auditHdr, 401},
		{"wrong method", "/audit/cleanup", http.MethodGet, auditHdr, 405},
	} {
		resp, body := f.do(tc.method, tc.path, nil, tc.hdr)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, resp.StatusCode, body, tc.want)
		}
		if tc.want == 401 && !json.Valid(body) {
			t.Errorf("%s: body %s", tc.name, body)
		}
	}
}

func TestAuditNotConfigured(t *testing.T) {
	f := newFixture(t)
	if resp, _ := f.do(http.MethodGet, "/audit/stats", nil, authJSON); resp.StatusCode != 404 {
		t.Errorf("without Options.Audit: %d, want 404", resp.StatusCode)
	}
}

func TestAuditExport(t *testing.T) {
	f := newAuditFixture(t, nil)
	f.clock.Advance(39 * 24 * time.Hour) // yesterday
	yesterday := f.clock.Now().UTC().Format(audit.DateLayout)
	f.ingest(3, "HighErrorRate")
	f.clock.Advance(24 * time.Hour) // today
	today := f.clock.Now().UTC().Format(audit.DateLayout)
	f.ingest(2, "DiskSpaceLow")

	resp, body := f.do(http.MethodGet, "/audit/export?format=csv&startDate="+yesterday, nil, auditHdr)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), "audit-") {
		t.Fatalf("csv: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	rows, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
	if err != nil || len(rows) != 6 || rows[0][0] != "seq" || rows[1][5] != "HighErrorRate" || rows[5][5] != "DiskSpaceLow" {
		t.Fatalf("csv rows %v, %v", rows, err)
	}
	cases := []struct {
		query string
		n     int
	}{
		{"format=json&startDate=" + yesterday + "&endDate=" + yesterday, 3},
		{"format=json&startDate=" + today, 2},
		{"format=json&startDate=" + yesterday + "&alertname=DiskSpaceLow", 2},
		{"format=json&startDate=2000-01-01&endDate=2000-01-02", 0},
	}
	for _, tc := range cases {
		resp, body := f.do(http.MethodGet, "/audit/export?"+tc.query, nil, auditHdr)
		var recs []audit.Record
		if err := json.Unmarshal(body, &recs); resp.StatusCode != 200 || err != nil || len(recs) != tc.n {
			t.Errorf("%s: %d %d records %v\n%s", tc.query, resp.StatusCode, len(recs), err, body)
		}
	}
	resp, body = f.do(http.MethodGet, "/audit/export?format=ndjson&startDate="+yesterday, nil, auditHdr)
	if lines := strings.Split(strings.TrimSpace(string(body)), "\n"); resp.StatusCode != 200 || len(lines) != 5 ||
		resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Errorf("ndjson: %d %q", resp.StatusCode, lines)
	}
	for _, q := range []string{"", "format=xml&startDate=2024-01-01", "startDate=yesterday", "startDate=2024-01-02&endDate=2024-01-01",
		"startDate=2024-01-01&limit=5"} {
		resp, body := f.do(http.MethodGet, "/audit/export?"+q, nil, auditHdr)
		var e struct{ Error string }
		if resp.StatusCode != 400 || json.Unmarshal(body, &e) != nil || e.Error == "" {
			t.Errorf("%q: %d %s, want 400 with an error", q, resp.StatusCode, body)
		}
	}
}

func TestAuditStatsRetentionCleanup(t *testing.T) {
	f := newAuditFixture(t, nil)
	f.ingest(4, "OldAlert") // 40 days ago
	f.clock.Advance(39 * 24 * time.Hour)
	f.ingest(2, "NewAlert")

	var ret audit.Retention
	resp, body := f.do(http.MethodGet, "/audit/retention", nil, auditHdr)
	if resp.StatusCode != 200 || json.Unmarshal(body, &ret) != nil || ret.Days != 30 || ret.NextCleanup == nil {
		t.Fatalf("retention: %d %s", resp.StatusCode, body)
	}
	var st audit.Stats
	resp, body = f.do(http.MethodGet, "/audit/stats", nil, auditHdr)
	if resp.StatusCode != 200 || json.Unmarshal(body, &st) != nil || st.Records != 6 || st.ByAlertName["OldAlert"] != 4 ||
		st.ByOutcome["recorded"] != 6 || st.Oldest == nil {
		t.Fatalf("stats: %d %s", resp.StatusCode, body)
	}
	var res audit.CleanupResult
	resp, body = f.do(http.MethodPost, "/audit/cleanup", nil, map[string]string{"Authorization": "Bearer " + auditToken, "X-Request-ID": "cleanup-1"})
	if resp.StatusCode != 200 || json.Unmarshal(body, &res) != nil || res.Deleted != 4 || res.Checkpoint == nil || res.Checkpoint.Seq != 4 {
		t.Fatalf("cleanup: %d %s", resp.StatusCode, body)
	}
	resp, body = f.do(http.MethodGet, "/audit/stats", nil, auditHdr)
	st = audit.Stats{}
	if json.Unmarshal(body, &st) != nil || st.Records != 3 || st.ByAlertName["OldAlert"] != 0 || st.ByType[audit.TypeCleanup] != 1 ||
		st.Checkpoint == nil || st.Checkpoint.Actor != "audit-api" {
		t.Fatalf("stats after cleanup: %s", body)
	}
	rep, err := audit.Verify(context.Background(), f.store)
	if err != nil || !rep.Valid {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	recs := storetest.Records(t, f.store)
	if last := recs[len(recs)-1]; last.Type != audit.TypeCleanup || last.CorrelationID != "cleanup-1" || last.Actor != "audit-api" {
		t.Errorf("cleanup record %+v", last)
	}
}

// fakeAudit streams n records, then fails with err (nil: succeeds), or
// blocks until release is closed.
type fakeAudit struct {
	n       int
	err     error
	started chan struct{}
	release chan struct{}
}

func (a *fakeAudit) Export(ctx context.Context, _ audit.Filter, fn func(*audit.Record) error) error {
	if a.started != nil {
		a.started <- struct{}{}
		<-a.release
	}
	r := audit.Record{Type: "x", Time: time.Now(), Hash: strings.Repeat("a", 64)}
	for i := range a.n {
		r.Seq = int64(i + 1)
		if err := fn(&r); err != nil {
			return err
		}
	}
	return a.err
}
func (a *fakeAudit) Stats(context.Context) (audit.Stats, error) { return audit.Stats{}, a.err }
func (a *fakeAudit) Retention() audit.Retention                 { return audit.Retention{} }
func (a *fakeAudit) Cleanup(context.Context, string, string) (audit.CleanupResult, error) {
	return audit.CleanupResult{}, audit.ErrKeepForever
}

func TestAuditExportErrors(t *testing.T) {
	// The store fails before anything was sent: a 503 with an error body.
	f := newAuditFixture(t, &fakeAudit{err: errors.New("database is locked")})
	resp, body := f.do(http.MethodGet, "/audit/export?startDate=2024-01-01", nil, auditHdr)
	if resp.StatusCode != 503 || !strings.Contains(string(body), "database is locked") {
		t.Errorf("early failure: %d %s", resp.StatusCode, body)
	}
	if resp, _ := f.do(http.MethodPost, "/audit/cleanup", nil, auditHdr); resp.StatusCode != 409 {
		t.Errorf("cleanup with retention 0: %d, want 409", resp.StatusCode)
	}
	// It fails after 200 KB were sent: the transfer is cut, never complete.
	f = newAuditFixture(t, &fakeAudit{n: 5000, err: errors.New("connection reset")})
	req, _ := http.NewRequest(http.MethodGet, f.http.URL+"/audit/export?format=json&startDate=2024-01-01", nil)
	req.Header.Set("Authorization", "Bearer "+auditToken)
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || json.Valid(b) {
		t.Errorf("mid-stream failure: read %d bytes, err %v; want a broken transfer", len(b), err)
	}
	// Two exports at once at most.
	fa := &fakeAudit{n: 1, started: make(chan struct{}, 2), release: make(chan struct{})}
	f = newAuditFixture(t, fa)
	done := make(chan int, 2)
	for range 2 {
		go func() {
			resp, _ := f.do(http.MethodGet, "/audit/export?startDate=2024-01-01", nil, auditHdr)
			done <- resp.StatusCode
		}()
	}
	<-fa.started
	<-fa.started
	if resp, _ := f.do(http.MethodGet, "/audit/export?startDate=2024-01-01", nil, auditHdr); resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("third export: %d, want 429", resp.StatusCode)
	}
	close(fa.release)
	if a, b := <-done, <-done; a != 200 || b != 200 {
		t.Errorf("exports: %d %d", a, b)
	}
}

// TestAuditExportClientGone: a client that disconnects mid-export stops
// the query: the handler returns, its goroutines end and the store's
// connections are free for the next exports.
func TestAuditExportClientGone(t *testing.T) {
	f := newAuditFixture(t, nil)
	f.ingest(1, "StormAlert")
	inc := f.incidents()[0].ID
	big, _ := json.Marshal(map[string]string{"evidence": strings.Repeat("log line ", 250)})
	evs := make([]incident.Event, 3000)
	for i := range evs {
		evs[i] = incident.Event{IncidentID: inc, Type: "diagnosed", Details: big}
	}
	must(t, f.store.AppendEvents(context.Background(), evs...))
	_, err := f.svc.SealAll(context.Background())
	must(t, err)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	get := func() (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodGet, f.http.URL+"/audit/export?format=csv&startDate=2000-01-01", nil)
		req.Header.Set("Authorization", "Bearer "+auditToken)
		return client.Do(req)
	}
	// A full export first, so pools and caches are warm.
	resp, err := get()
	must(t, err)
	full, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || len(full) < 4<<20 {
		t.Fatalf("full export: %d bytes, %v; want more than the socket buffers hold", len(full), err)
	}
	client.Transport.(*http.Transport).CloseIdleConnections()
	time.Sleep(100 * time.Millisecond)
	base := runtime.NumGoroutine()
	for range 5 { // more than the export limit and the store's reader pool
		resp, err := get()
		must(t, err)
		for resp.StatusCode == http.StatusTooManyRequests { // the last one is still stopping
			resp.Body.Close()
			time.Sleep(20 * time.Millisecond)
			resp, err = get()
			must(t, err)
		}
		buf := make([]byte, 4096)
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close() // mid-export: closes the connection
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base+1 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines %d, were %d:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Nothing is held: full exports still run, more than the limit in turn.
	for range 3 {
		resp, err := get()
		must(t, err)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || len(b) != len(full) {
			t.Fatalf("export after disconnects: %d, %d bytes (want %d), %v", resp.StatusCode, len(b), len(full), err)
		}
	}
}
