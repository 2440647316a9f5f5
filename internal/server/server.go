// Package server is the HTTP face of the service: the Alertmanager webhook
// (intake), the incidents API, health endpoints and metrics.
package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/intake"
	"github.com/remediator/remediator/internal/store"
)

// Store is what the HTTP layer needs from persistence.
type Store interface {
	Ingest(ctx context.Context, n *incident.Notification) (incident.IngestResult, error)
	Incident(ctx context.Context, id string) (incident.Incident, []incident.Event, error)
	Incidents(ctx context.Context, f store.IncidentFilter) ([]incident.Incident, error)
	Ping(ctx context.Context) error
}

// Kicker is told when new work was stored, so the worker starts at once
// instead of at its next poll.
type Kicker interface{ Kick() }

// HealthCheck is one named check of GET /health.
type HealthCheck struct {
	Name  string
	Check func(ctx context.Context) error
}

// Options are the server's dependencies.
type Options struct {
	Store        Store
	Kicker       Kicker
	Auth         *Authenticator
	Log          *zap.Logger
	Metrics      *Metrics
	Gatherer     prometheus.Gatherer
	MaxBodyBytes int64
	Mode         string
	Version      string
	// Checks are added to the store check in GET /health.
	Checks []HealthCheck
	// Now is the clock (tests set it).
	Now func() time.Time
	// Control serves the operator API (pause, maintenance windows,
	// approvals); nil leaves those endpoints out.
	Control Control
	// Leader reports whether this replica executes actions (nil: it does).
	Leader func() bool
	// Audit serves /audit/* (audit.go); nil leaves those endpoints out.
	// AuditAuth is their own credential, not the webhook's.
	Audit     Audit
	AuditAuth *Authenticator
	// Mount adds routes that authenticate requests themselves, outside the
	// API's credentials (e.g. Slack's signed POST /slack/interactions);
	// nil adds none.
	Mount func(r chi.Router)
}

// Server serves the service's HTTP API.
type Server struct {
	opt      Options
	handler  http.Handler
	draining chan struct{}
}

// New builds the router.
func New(opt Options) *Server {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.MaxBodyBytes <= 0 {
		opt.MaxBodyBytes = 16 << 20
	}
	s := &Server{opt: opt, draining: make(chan struct{})}
	r := chi.NewRouter()
	r.Use(correlate, observe(opt.Log, opt.Metrics), recoverer(opt.Log))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path)
	})
	r.Get("/health", s.health)
	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(opt.Gatherer, promhttp.HandlerOpts{}))
	r.Group(func(r chi.Router) {
		r.Use(s.requireAuth)
		r.Post("/webhook/alertmanager", s.webhook)
		r.Get("/api/v1/incidents", s.listIncidents)
		r.Get("/api/v1/incidents/{id}", s.getIncident)
		if opt.Control != nil {
			s.controlRoutes(r)
		}
	})
	if opt.Audit != nil {
		s.auditRoutes(r)
	}
	if opt.Mount != nil {
		opt.Mount(r)
	}
	s.handler = r
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Drain makes /readyz fail so load balancers stop sending before shutdown.
func (s *Server) Drain() {
	select {
	case <-s.draining:
	default:
		close(s.draining)
	}
}

func (s *Server) requireAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.opt.Auth.Check(r) {
			if r.URL.Path == "/webhook/alertmanager" {
				s.opt.Metrics.NotificationsRejected.WithLabelValues("unauthorized").Inc()
			}
			w.Header().Set("WWW-Authenticate", s.opt.Auth.challenge())
			writeError(w, http.StatusUnauthorized, "missing or invalid credentials")
			return
		}
		next.ServeHTTP(w, r)
	})
}

type webhookResponse struct {
	Notification string `json:"notification"`
	Alerts       int    `json:"alerts"`
	New          int    `json:"new"`
	Duplicates   int    `json:"duplicates"`
	Resolved     int    `json:"resolved"`
}

func (s *Server) webhook(w http.ResponseWriter, r *http.Request) {
	reject := func(status int, reason, msg string) {
		s.opt.Metrics.NotificationsRejected.WithLabelValues(reason).Inc()
		writeError(w, status, msg)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		reject(http.StatusUnsupportedMediaType, "content_type",
			"Content-Type must be application/json, got "+strconv.Quote(r.Header.Get("Content-Type")))
		return
	}
	body, err := readBody(w, r, s.opt.MaxBodyBytes)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			reject(http.StatusRequestEntityTooLarge, "too_large",
				"body larger than the limit of "+strconv.FormatInt(tooBig.Limit, 10)+" bytes (max_body_bytes)")
			return
		}
		reject(http.StatusBadRequest, "malformed", "could not read body: "+err.Error())
		return
	}
	n, err := intake.Decode(body)
	if err != nil {
		reject(http.StatusBadRequest, "malformed", err.Error())
		return
	}
	n.ID = incident.NewID()
	n.ReceivedAt = s.opt.Now().UTC()
	n.CorrelationID = CorrelationID(r.Context())

	res, err := s.opt.Store.Ingest(r.Context(), n)
	if err != nil {
		// Not stored: ask Alertmanager to send again. This is the only 5xx
		// the webhook gives, and only because nothing was kept.
		s.opt.Log.Error("notification not stored", zap.Error(err),
			zap.String("correlationId", n.CorrelationID), zap.Int("alerts", len(n.Alerts)))
		reject(http.StatusServiceUnavailable, "store_unavailable", "notification not stored, send again: "+err.Error())
		return
	}
	resp := webhookResponse{
		Notification: res.NotificationID,
		Alerts:       len(n.Alerts),
		New:          res.Count(incident.OutcomeNew),
		Duplicates:   res.Count(incident.OutcomeDuplicate),
		Resolved:     res.Count(incident.OutcomeResolved),
	}
	for _, a := range n.Alerts {
		s.opt.Metrics.AlertsReceived.WithLabelValues(a.AlertName(), a.Status).Inc()
	}
	s.opt.Metrics.AlertsDuplicate.Add(float64(resp.Duplicates))
	if resp.Alerts > 0 && resp.Duplicates == resp.Alerts {
		s.opt.Metrics.NotificationsDuplicate.Inc()
	}
	if resp.New+resp.Resolved > 0 && s.opt.Kicker != nil {
		s.opt.Kicker.Kick()
	}
	writeJSON(w, http.StatusAccepted, resp)
}

// readBody reads at most limit bytes. When the client announces the length
// (Alertmanager does), the buffer is allocated once at that size instead of
// growing by doubling, which matters for a 10,000-alert storm.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	rd := http.MaxBytesReader(w, r.Body, limit)
	if r.ContentLength <= 0 || r.ContentLength > limit {
		return io.ReadAll(rd)
	}
	buf := bytes.NewBuffer(make([]byte, 0, r.ContentLength+1))
	_, err := buf.ReadFrom(rd)
	return buf.Bytes(), err
}

func (s *Server) listIncidents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.IncidentFilter{Status: q.Get("status"), AlertName: q.Get("alertname")}
	if f.Status != "" && f.Status != incident.StatusFiring && f.Status != incident.StatusResolved {
		writeError(w, http.StatusBadRequest, "status: must be firing or resolved, got "+strconv.Quote(f.Status))
		return
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "limit: must be a whole number from 1 to 1000, got "+strconv.Quote(l))
			return
		}
		f.Limit = n
	}
	list, err := s.opt.Store.Incidents(r.Context(), f)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	if list == nil {
		list = []incident.Incident{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"incidents": list})
}

func (s *Server) getIncident(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	inc, events, err := s.opt.Store.Incident(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no incident with id "+strconv.Quote(id))
		return
	}
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	if events == nil {
		events = []incident.Event{}
	}
	resp := map[string]any{"incident": inc, "timeline": events}
	// The priority and acknowledgement, when the store keeps them.
	if es, ok := s.opt.Store.(interface {
		EscalationState(ctx context.Context, incidentID string) (store.EscalationState, error)
	}); ok {
		if st, err := es.EscalationState(r.Context(), id); err == nil {
			resp["escalation"] = st
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) storeError(w http.ResponseWriter, r *http.Request, err error) {
	s.opt.Log.Error("store error", zap.Error(err), zap.String("correlationId", CorrelationID(r.Context())))
	writeError(w, http.StatusServiceUnavailable, "store unavailable: "+err.Error())
}

type healthResponse struct {
	Status  string            `json:"status"`
	Mode    string            `json:"mode,omitempty"`
	Version string            `json:"version,omitempty"`
	Checks  map[string]string `json:"checks"`
}

// health is the runbook's morning check: every dependency, by name.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	resp := healthResponse{Status: "healthy", Mode: s.opt.Mode, Version: s.opt.Version, Checks: map[string]string{}}
	checks := append([]HealthCheck{{Name: "store", Check: s.opt.Store.Ping}}, s.opt.Checks...)
	for _, c := range checks {
		if err := c.Check(ctx); err != nil {
			resp.Status = "unhealthy"
			resp.Checks[c.Name] = err.Error()
			continue
		}
		resp.Checks[c.Name] = "ok"
	}
	code := http.StatusOK
	if resp.Status != "healthy" {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, resp)
}

// healthz is liveness: the process serves HTTP. It does not depend on the
// store, so a database outage does not get the pod killed.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz is readiness: the store answers and the server is not draining.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	select {
	case <-s.draining:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
		return
	default:
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.opt.Store.Ping(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "store": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "leader": s.leader()})
}

func (s *Server) leader() bool {
	if s.opt.Leader == nil {
		return true
	}
	return s.opt.Leader()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
