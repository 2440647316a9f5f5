package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"go.uber.org/zap"

	"github.com/remediator/remediator/internal/incident"
	"github.com/remediator/remediator/internal/store"
)

// Control is what the operator API needs: the pause switch, maintenance
// windows and the approve/reject path.
type Control interface {
	Pause(ctx context.Context) (store.PauseState, error)
	SetPause(ctx context.Context, p store.PauseState, events ...incident.Event) error
	AddWindow(ctx context.Context, w store.Window) error
	Windows(ctx context.Context, at time.Time) ([]store.Window, error)
	DeleteWindow(ctx context.Context, id string) error
	// Decide approves or rejects the pending proposal of an incident.
	Decide(ctx context.Context, incidentID string, approve bool, by, reason string) (store.Proposal, error)
	// Acknowledge records that a person took the incident, with events
	// (store.Store's): its response deadlines stop escalating it.
	Acknowledge(ctx context.Context, incidentID, by, reason string, at time.Time, events ...incident.Event) (store.EscalationState, error)
}

func (s *Server) controlRoutes(r chi.Router) {
	r.Get("/api/v1/pause", s.getPause)
	r.Post("/api/v1/pause", s.setPause(true))
	r.Post("/api/v1/resume", s.setPause(false))
	r.Get("/api/v1/maintenance", s.listWindows)
	r.Post("/api/v1/maintenance", s.addWindow)
	r.Delete("/api/v1/maintenance/{id}", s.deleteWindow)
	r.Post("/api/v1/incidents/{id}/approve", s.decide(true))
	r.Post("/api/v1/incidents/{id}/reject", s.decide(false))
	r.Post("/api/v1/incidents/{id}/ack", s.ack)
}

// actorBody is the common part of operator requests: who, and why.
type actorBody struct {
	By     string `json:"by"`
	Reason string `json:"reason"`
}

const maxControlBody = 64 << 10

// readBody decodes a small JSON body strictly into v; an empty body is an
// empty object. It writes the 4xx itself and reports false on failure.
func readControlBody(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxControlBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", maxControlBody))
		return false
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		b = []byte("{}")
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return false
	}
	return true
}

func checkActor(w http.ResponseWriter, a actorBody) bool {
	switch {
	case strings.TrimSpace(a.By) == "":
		writeError(w, http.StatusBadRequest, `"by" is required: the person (or system) making this decision, for the record`)
	case len(a.By) > 200 || len(a.Reason) > 2000:
		writeError(w, http.StatusBadRequest, `"by" must be at most 200 bytes and "reason" at most 2000`)
	default:
		return true
	}
	return false
}

func (s *Server) storeFailure(w http.ResponseWriter, err error) {
	s.opt.Log.Error("control API store error", zap.Error(err))
	writeError(w, http.StatusServiceUnavailable, "store unavailable: "+err.Error())
}

func (s *Server) getPause(w http.ResponseWriter, r *http.Request) {
	p, err := s.opt.Control.Pause(r.Context())
	if err != nil {
		s.storeFailure(w, err)
		return
	}
	writeJSON(w, http.StatusOK, pauseJSON(p))
}

func pauseJSON(p store.PauseState) map[string]any {
	out := map[string]any{"paused": p.Paused, "by": p.By, "reason": p.Reason}
	if !p.At.IsZero() {
		out["at"] = p.At
	}
	return out
}

func (s *Server) setPause(paused bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var a actorBody
		if !readControlBody(w, r, &a) || !checkActor(w, a) {
			return
		}
		p := store.PauseState{Paused: paused, By: a.By, Reason: a.Reason, At: s.opt.Now().UTC()}
		if err := s.opt.Control.SetPause(r.Context(), p); err != nil {
			s.storeFailure(w, err)
			return
		}
		writeJSON(w, http.StatusOK, pauseJSON(p))
	}
}

type windowBody struct {
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	Namespaces []string  `json:"namespaces"`
	By         string    `json:"by"`
	Reason     string    `json:"reason"`
}

func (s *Server) listWindows(w http.ResponseWriter, r *http.Request) {
	ws, err := s.opt.Control.Windows(r.Context(), s.opt.Now().UTC())
	if err != nil {
		s.storeFailure(w, err)
		return
	}
	if ws == nil {
		ws = []store.Window{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"windows": ws})
}

func (s *Server) addWindow(w http.ResponseWriter, r *http.Request) {
	var b windowBody
	if !readControlBody(w, r, &b) || !checkActor(w, actorBody{By: b.By, Reason: b.Reason}) {
		return
	}
	now := s.opt.Now().UTC()
	switch {
	case b.End.IsZero():
		writeError(w, http.StatusBadRequest, `"end" is required (RFC 3339 time)`)
		return
	case b.Start.IsZero():
		b.Start = now
	}
	switch {
	case !b.End.After(b.Start):
		writeError(w, http.StatusBadRequest, `"end" must be after "start"`)
		return
	case !b.End.After(now):
		writeError(w, http.StatusBadRequest, `"end" is in the past`)
		return
	case b.End.Sub(b.Start) > 7*24*time.Hour:
		writeError(w, http.StatusBadRequest, "an ad-hoc window may last at most 7 days; configure recurring windows in guards.maintenance")
		return
	}
	for _, ns := range b.Namespaces {
		if strings.TrimSpace(ns) == "" || strings.ContainsAny(ns, "*?") {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("namespace %q is not a namespace name (leave namespaces empty for all)", ns))
			return
		}
	}
	win := store.Window{ID: incident.NewID(), Start: b.Start.UTC(), End: b.End.UTC(), Namespaces: b.Namespaces,
		Reason: b.Reason, By: b.By, CreatedAt: now}
	if err := s.opt.Control.AddWindow(r.Context(), win); err != nil {
		s.storeFailure(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, win)
}

func (s *Server) deleteWindow(w http.ResponseWriter, r *http.Request) {
	err := s.opt.Control.DeleteWindow(r.Context(), chi.URLParam(r, "id"))
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "no such maintenance window")
	case err != nil:
		s.storeFailure(w, err)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *Server) decide(approve bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var a actorBody
		if !readControlBody(w, r, &a) || !checkActor(w, a) {
			return
		}
		p, err := s.opt.Control.Decide(r.Context(), chi.URLParam(r, "id"), approve, a.By, a.Reason)
		switch {
		case errors.Is(err, store.ErrNotFound):
			writeError(w, http.StatusNotFound, err.Error())
		case errors.Is(err, store.ErrExpired):
			writeJSON(w, http.StatusConflict, map[string]any{"error": "the proposal expired; nothing will be done", "proposal": p})
		case errors.Is(err, store.ErrConflict):
			writeJSON(w, http.StatusConflict, map[string]any{"error": err.Error(), "proposal": p})
		case err != nil:
			s.storeFailure(w, err)
		default:
			if approve && s.opt.Kicker != nil {
				s.opt.Kicker.Kick()
			}
			writeJSON(w, http.StatusOK, map[string]any{"proposal": p})
		}
	}
}

// ack acknowledges an incident: a person took it, so its response
// deadlines no longer escalate it (an outcome that fails still does).
func (s *Server) ack(w http.ResponseWriter, r *http.Request) {
	var a actorBody
	if !readControlBody(w, r, &a) || !checkActor(w, a) {
		return
	}
	id := chi.URLParam(r, "id")
	now := s.opt.Now().UTC()
	text := "acknowledged by " + a.By
	if a.Reason != "" {
		text += ": " + a.Reason
	}
	ev := incident.Event{IncidentID: id, Time: now, Type: store.EventAcknowledged, Actor: a.By, Reason: text,
		CorrelationID: CorrelationID(r.Context())}
	ev.Details, _ = json.Marshal(map[string]string{"by": a.By, "reason": a.Reason})
	st, err := s.opt.Control.Acknowledge(r.Context(), id, a.By, a.Reason, now, ev)
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "no incident with id "+strconv.Quote(id))
	case errors.Is(err, store.ErrAcknowledged):
		writeJSON(w, http.StatusConflict, map[string]any{"error": err.Error(), "escalation": st})
	case err != nil:
		s.storeFailure(w, err)
	default:
		writeJSON(w, http.StatusOK, map[string]any{"escalation": st})
	}
}
