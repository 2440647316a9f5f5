package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/store"
	"github.com/remediator/remediator/internal/store/open"
)

const token = "s3cret-token"

type fixture struct {
	t       *testing.T
	dsn     string
	store   store.Store
	srv     *Server
	http    *httptest.Server
	auth    *Authenticator
	metrics *Metrics
	reg     *prometheus.Registry

	decisions []string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	pwFile := filepath.Join(dir, "password")
	must(t, os.WriteFile(tokenFile, []byte(token+"\n"), 0o600))
	must(t, os.WriteFile(pwFile, []byte("pw"), 0o600))
	bearer, err := NewSecretFile(tokenFile)
	must(t, err)
	pw, err := NewSecretFile(pwFile)
	must(t, err)
	f := &fixture{t: t, dsn: "sqlite://" + filepath.Join(dir, "r.db"),
		auth: &Authenticator{Bearer: bearer, BasicUser: "am", BasicPassword: pw}}
	f.start()
	return f
}

// start opens the store and serves; restart simulates a process restart on
// the same store.
func (f *fixture) start() {
	t := f.t
	st, err := open.Open(context.Background(), f.dsn)
	must(t, err)
	f.store = st
	f.reg = prometheus.NewRegistry()
	f.metrics = NewMetrics(f.reg)
	f.srv = New(Options{Store: st, Auth: f.auth, Log: zap.NewNop(), Metrics: f.metrics, Gatherer: f.reg,
		MaxBodyBytes: 1 << 20, Mode: "dry-run", Version: "test", Control: &testControl{Store: st, decisions: &f.decisions}})
	f.http = httptest.NewServer(f.srv)
	t.Cleanup(f.stop)
}

func (f *fixture) stop() {
	if f.http != nil {
		f.http.Close()
		f.http = nil
	}
	if f.store != nil {
		_ = f.store.Close()
		f.store = nil
	}
}

func (f *fixture) restart() { f.stop(); f.start() }

func (f *fixture) do(method, path string, body []byte, hdr map[string]string) (*http.Response, []byte) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.http.URL+path, bytes.NewReader(body))
	must(f.t, err)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	must(f.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	must(f.t, err)
	return resp, b
}

var authJSON = map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/json"}

func (f *fixture) post(body []byte) (*http.Response, []byte) {
	return f.do(http.MethodPost, "/webhook/alertmanager", body, authJSON)
}

func (f *fixture) incidents() []incident.Incident {
	f.t.Helper()
	list, err := f.store.Incidents(context.Background(), store.IncidentFilter{})
	must(f.t, err)
	return list
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func testdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "intake", "testdata", name))
	must(t, err)
	return b
}

func decodeJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("response is not JSON: %v: %s", err, b)
	}
}

func TestWebhookAcceptsAndCounts(t *testing.T) {
	f := newFixture(t)
	resp, body := f.post(testdata(t, "firing.json"))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var got webhookResponse
	decodeJSON(t, body, &got)
	if got.Notification == "" || got.Alerts != 1 || got.New != 1 || got.Duplicates != 0 {
		t.Fatalf("response %+v", got)
	}
	resp, body = f.post(testdata(t, "firing.json"))
	decodeJSON(t, body, &got)
	if resp.StatusCode != http.StatusAccepted || got.New != 0 || got.Duplicates != 1 {
		t.Fatalf("re-send: %d %+v", resp.StatusCode, got)
	}
	resp, body = f.post(testdata(t, "resolved.json"))
	decodeJSON(t, body, &got)
	if resp.StatusCode != http.StatusAccepted || got.Resolved != 1 {
		t.Fatalf("resolve: %d %+v", resp.StatusCode, got)
	}
	list := f.incidents()
	if len(list) != 1 || list[0].Status != incident.StatusResolved || list[0].Duplicates != 1 || list[0].Receipts != 3 {
		t.Fatalf("incidents %+v", list)
	}
}

func TestWebhookRejectsBadInput(t *testing.T) {
	f := newFixture(t)
	big := append([]byte(`{"version":"4","alerts":[],"pad":"`), bytes.Repeat([]byte("x"), 1<<20)...)
	big = append(big, `"}`...)
	tests := []struct {
		name   string
		hdr    map[string]string
		body   []byte
		status int
		want   string
	}{
		{"no credentials", map[string]string{"Content-Type": "application/json"}, testdata(t, "firing.json"), 401, "credentials"},
		{"wrong token", map[string]string{"Authorization": "Bearer nope", "Content-Type": "application/json"}, testdata(t, "firing.json"), 401, "credentials"},
		{"token prefix", map[string]string{"Authorization": "Bearer " + token[:4], "Content-Type": "application/json"}, testdata(t, "firing.json"), 401, "credentials"},
		{"wrong basic password", map[string]string{"Authorization": basic("am", "wrong"), "Content-Type": "application/json"}, testdata(t, "firing.json"), 401, "credentials"},
		{"wrong basic user", map[string]string{"Authorization": basic("root", "pw"), "Content-Type": "application/json"}, testdata(t, "firing.json"), 401, "credentials"},
		{"no content type", map[string]string{"Authorization": "Bearer " + token}, testdata(t, "firing.json"), 415, "Content-Type"},
		{"form content type", map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/x-www-form-urlencoded"}, testdata(t, "firing.json"), 415, "Content-Type"},
		{"malformed", authJSON, []byte(`{"version":"4",`), 400, "malformed JSON"},
		{"wrong version", authJSON, []byte(`{"version":"3","alerts":[]}`), 400, "version"},
		{"bad alert", authJSON, []byte(`{"version":"4","alerts":[{"status":"firing","labels":{"a":"b"}}]}`), 400, "alerts[0]: startsAt"},
		{"too large", authJSON, big, 413, "larger than the limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := f.do(http.MethodPost, "/webhook/alertmanager", tt.body, tt.hdr)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type %q", ct)
			}
			var e struct{ Error string }
			decodeJSON(t, body, &e)
			if !strings.Contains(e.Error, tt.want) {
				t.Errorf("error %q does not contain %q", e.Error, tt.want)
			}
		})
	}
	if n := len(f.incidents()); n != 0 {
		t.Fatalf("%d incidents stored from rejected requests", n)
	}
}

func basic(u, p string) string {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(u, p)
	return r.Header.Get("Authorization")
}

func TestWebhookBasicAuthAndTokenRotation(t *testing.T) {
	f := newFixture(t)
	resp, body := f.do(http.MethodPost, "/webhook/alertmanager", testdata(t, "firing.json"),
		map[string]string{"Authorization": basic("am", "pw"), "Content-Type": "application/json"})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("basic auth: %d %s", resp.StatusCode, body)
	}
	// Rotate the token file: the new token works, the old one stops working.
	now := time.Now()
	f.auth.Bearer.now = func() time.Time { return now }
	must(t, os.WriteFile(f.auth.Bearer.path, []byte("rotated-token-value"), 0o600))
	must(t, os.Chtimes(f.auth.Bearer.path, now.Add(time.Minute), now.Add(time.Minute)))
	now = now.Add(2 * time.Second)
	resp, _ = f.post(testdata(t, "firing.json"))
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("old token after rotation: %d", resp.StatusCode)
	}
	resp, _ = f.do(http.MethodPost, "/webhook/alertmanager", testdata(t, "firing.json"),
		map[string]string{"Authorization": "Bearer rotated-token-value", "Content-Type": "application/json"})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("new token after rotation: %d", resp.StatusCode)
	}
	// A secret file that disappears keeps the last good value.
	must(t, os.Remove(f.auth.Bearer.path))
	now = now.Add(2 * time.Second)
	resp, _ = f.do(http.MethodPost, "/webhook/alertmanager", testdata(t, "firing.json"),
		map[string]string{"Authorization": "Bearer rotated-token-value", "Content-Type": "application/json"})
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("after secret file removal: %d", resp.StatusCode)
	}
}

func TestWebhookStoreUnavailableIs503(t *testing.T) {
	f := newFixture(t)
	must(t, f.store.Close())
	resp, body := f.post(testdata(t, "firing.json"))
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var e struct{ Error string }
	decodeJSON(t, body, &e)
	if !strings.Contains(e.Error, "send again") {
		t.Errorf("error %q", e.Error)
	}
	resp, body = f.do(http.MethodGet, "/health", nil, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"unhealthy"`) {
		t.Errorf("health with closed store: %d %s", resp.StatusCode, body)
	}
	resp, _ = f.do(http.MethodGet, "/readyz", nil, nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readyz with closed store: %d", resp.StatusCode)
	}
	resp, _ = f.do(http.MethodGet, "/healthz", nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("healthz must not depend on the store: %d", resp.StatusCode)
	}
}

// The same notification posted 50 times at once, then once more after a
// restart on the same store: one incident, every other receipt a duplicate.
func TestWebhookConcurrentDuplicatesAcrossRestart(t *testing.T) {
	f := newFixture(t)
	body := testdata(t, "firing.json")
	const n = 50
	var wg sync.WaitGroup
	results := make([]webhookResponse, n)
	codes := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, f.http.URL+"/webhook/alertmanager", bytes.NewReader(body))
			for k, v := range authJSON {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			codes[i] = resp.StatusCode
			_ = json.NewDecoder(resp.Body).Decode(&results[i])
		}()
	}
	wg.Wait()
	newCount, dupCount := 0, 0
	for i := range n {
		if codes[i] != http.StatusAccepted {
			t.Fatalf("request %d: status %d", i, codes[i])
		}
		newCount += results[i].New
		dupCount += results[i].Duplicates
	}
	if newCount != 1 || dupCount != n-1 {
		t.Fatalf("new=%d duplicates=%d, want 1 and %d", newCount, dupCount, n-1)
	}
	f.restart()
	resp, b := f.post(body)
	var got webhookResponse
	decodeJSON(t, b, &got)
	if resp.StatusCode != http.StatusAccepted || got.New != 0 || got.Duplicates != 1 {
		t.Fatalf("after restart: %d %+v", resp.StatusCode, got)
	}
	list := f.incidents()
	if len(list) != 1 || list[0].Duplicates != n || list[0].Receipts != n+1 {
		t.Fatalf("incidents: %+v", list)
	}
	_, events, err := f.store.Incident(context.Background(), list[0].ID)
	must(t, err)
	dups := 0
	for _, e := range events {
		if e.Type == incident.EventDuplicate {
			dups++
		}
	}
	if dups != n {
		t.Fatalf("%d duplicate events on the timeline, want %d", dups, n)
	}
}

func TestCorrelationID(t *testing.T) {
	f := newFixture(t)
	hdr := map[string]string{"X-Request-ID": "abc-123", "Authorization": "Bearer " + token, "Content-Type": "application/json"}
	resp, _ := f.do(http.MethodPost, "/webhook/alertmanager", testdata(t, "firing.json"), hdr)
	if got := resp.Header.Get("X-Request-ID"); got != "abc-123" {
		t.Errorf("echoed %q", got)
	}
	list := f.incidents()
	_, events, err := f.store.Incident(context.Background(), list[0].ID)
	must(t, err)
	if len(events) == 0 || events[0].CorrelationID != "abc-123" {
		t.Errorf("events %+v", events)
	}
	resp, _ = f.do(http.MethodGet, "/healthz", nil, map[string]string{"X-Request-ID": "bad id with spaces"})
	if got := resp.Header.Get("X-Request-ID"); got == "" || strings.Contains(got, " ") {
		t.Errorf("generated %q", got)
	}
}

func TestIncidentsAPI(t *testing.T) {
	f := newFixture(t)
	f.post(testdata(t, "firing.json"))
	f.post(testdata(t, "mixed.json"))
	auth := map[string]string{"Authorization": "Bearer " + token}

	var list struct{ Incidents []incident.Incident }
	resp, body := f.do(http.MethodGet, "/api/v1/incidents", nil, auth)
	decodeJSON(t, body, &list)
	if resp.StatusCode != 200 || len(list.Incidents) != 3 {
		t.Fatalf("list: %d %s", resp.StatusCode, body)
	}
	tests := []struct {
		query string
		want  int
	}{
		{"?status=firing", 2},
		{"?status=resolved", 1},
		{"?alertname=HighLatency", 2},
		{"?alertname=HighLatency&status=firing", 1},
		{"?limit=1", 1},
		{"?alertname=Nope", 0},
	}
	for _, tt := range tests {
		_, body := f.do(http.MethodGet, "/api/v1/incidents"+tt.query, nil, auth)
		list.Incidents = nil
		decodeJSON(t, body, &list)
		if len(list.Incidents) != tt.want {
			t.Errorf("%s: %d incidents, want %d", tt.query, len(list.Incidents), tt.want)
		}
	}
	for _, q := range []string{"?status=open", "?limit=0", "?limit=abc", "?limit=5000"} {
		resp, body := f.do(http.MethodGet, "/api/v1/incidents"+q, nil, auth)
		if resp.StatusCode != 400 || !strings.Contains(string(body), `"error"`) {
			t.Errorf("%s: %d %s", q, resp.StatusCode, body)
		}
	}
	var one struct {
		Incident incident.Incident
		Timeline []incident.Event
	}
	_, body = f.do(http.MethodGet, "/api/v1/incidents?alertname=HighErrorRate", nil, auth)
	decodeJSON(t, body, &list)
	resp, body = f.do(http.MethodGet, "/api/v1/incidents/"+list.Incidents[0].ID, nil, auth)
	decodeJSON(t, body, &one)
	if resp.StatusCode != 200 || one.Incident.AlertName != "HighErrorRate" || len(one.Timeline) != 1 || one.Timeline[0].Type != incident.EventReceived {
		t.Fatalf("get: %d %s", resp.StatusCode, body)
	}
	resp, body = f.do(http.MethodGet, "/api/v1/incidents/does-not-exist", nil, auth)
	if resp.StatusCode != 404 || !strings.Contains(string(body), "no incident") {
		t.Errorf("missing: %d %s", resp.StatusCode, body)
	}
	resp, _ = f.do(http.MethodGet, "/api/v1/incidents", nil, nil)
	if resp.StatusCode != 401 {
		t.Errorf("API without credentials: %d", resp.StatusCode)
	}
}

func TestHealthAndMetrics(t *testing.T) {
	f := newFixture(t)
	resp, body := f.do(http.MethodGet, "/health", nil, nil)
	var h healthResponse
	decodeJSON(t, body, &h)
	if resp.StatusCode != 200 || h.Status != "healthy" || h.Checks["store"] != "ok" {
		t.Fatalf("health: %d %s", resp.StatusCode, body)
	}
	f.post(testdata(t, "firing.json"))
	f.post(testdata(t, "firing.json"))
	f.do(http.MethodPost, "/webhook/alertmanager", []byte("x"), map[string]string{"Content-Type": "application/json"})
	_, body = f.do(http.MethodGet, "/metrics", nil, nil)
	for _, want := range []string{
		`http_requests_total{code="202",method="POST",route="/webhook/alertmanager"} 2`,
		`http_requests_total{code="401",method="POST",route="/webhook/alertmanager"} 1`,
		`http_request_duration_seconds_bucket{method="POST",route="/webhook/alertmanager"`,
		`active_connections`,
		`remediator_alerts_received_total{alertname="HighErrorRate",status="firing"} 2`,
		`remediator_notifications_duplicate_total 1`,
		`remediator_alerts_duplicate_total 1`,
		`remediator_notifications_rejected_total{reason="unauthorized"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	resp, body = f.do(http.MethodGet, "/nope", nil, nil)
	if resp.StatusCode != 404 || !strings.Contains(string(body), `"error"`) {
		t.Errorf("404: %d %s", resp.StatusCode, body)
	}
	resp, _ = f.do(http.MethodGet, "/webhook/alertmanager", nil, authJSON)
	if resp.StatusCode != 405 {
		t.Errorf("GET webhook: %d", resp.StatusCode)
	}
}

func TestReadyzDraining(t *testing.T) {
	f := newFixture(t)
	resp, _ := f.do(http.MethodGet, "/readyz", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("readyz %d", resp.StatusCode)
	}
	f.srv.Drain()
	f.srv.Drain() // idempotent
	resp, _ = f.do(http.MethodGet, "/readyz", nil, nil)
	if resp.StatusCode != 503 {
		t.Fatalf("readyz while draining %d", resp.StatusCode)
	}
}

// Options.Mount adds routes outside the API's credentials (Slack's signed
// POST /slack/interactions), while the API keeps requiring them.
func TestMountInteractionsOutsideAuth(t *testing.T) {
	st, err := open.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "r.db"))
	must(t, err)
	defer st.Close()
	tokenFile := filepath.Join(t.TempDir(), "token")
	must(t, os.WriteFile(tokenFile, []byte(token), 0o600))
	bearer, err := NewSecretFile(tokenFile)
	must(t, err)
	reg := prometheus.NewRegistry()
	srv := New(Options{Store: st, Auth: &Authenticator{Bearer: bearer}, Log: zap.NewNop(), Metrics: NewMetrics(reg), Gatherer: reg,
		Mount: func(r chi.Router) {
			r.Post("/slack/interactions", func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, "bad signature", http.StatusUnauthorized)
			})
		}})
	for _, tc := range []struct {
		method, path string
		status       int
		body         string
	}{
		{http.MethodPost, "/slack/interactions", http.StatusUnauthorized, "bad signature\n"},
		{http.MethodGet, "/slack/interactions", http.StatusMethodNotAllowed, ""},
		{http.MethodGet, "/api/v1/incidents", http.StatusUnauthorized, `{"error":"missing or invalid credentials"}` + "\n"},
	} {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if rec.Code != tc.status || tc.body != "" && rec.Body.String() != tc.body {
			t.Errorf("%s %s: %d %q, want %d %q", tc.method, tc.path, rec.Code, rec.Body, tc.status, tc.body)
		}
	}
}
