package server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"go.uber.org/zap"

	"github.com/remediator/remediator/internal/store/audit"
)

// Audit serves the audit endpoints (docs/audit.md). audit.Service
// implements it.
type Audit interface {
	// Export streams the records f selects to fn (valid until it returns).
	Export(ctx context.Context, f audit.Filter, fn func(*audit.Record) error) error
	Stats(ctx context.Context) (audit.Stats, error)
	Retention() audit.Retention
	// Cleanup deletes the records older than the configured retention.
	Cleanup(ctx context.Context, actor, correlationID string) (audit.CleanupResult, error)
}

// Audit export tuning.
const (
	// maxExports is how many exports may run at once: each holds a store
	// connection for its whole length.
	maxExports = 2
	// exportFlushEvery records, the response is flushed to the client.
	exportFlushEvery = 1000
	// exportWriteTimeout is the write deadline, renewed at every flush, so
	// a long export is not cut by the server's WriteTimeout while a
	// stalled client still is.
	exportWriteTimeout = 60 * time.Second
)

type auditHandlers struct {
	s       *Server
	a       Audit
	auth    *Authenticator
	exports chan struct{}
}

// auditRoutes adds the audit endpoints, behind their own credential.
func (s *Server) auditRoutes(r chi.Router) {
	h := &auditHandlers{s: s, a: s.opt.Audit, auth: s.opt.AuditAuth, exports: make(chan struct{}, maxExports)}
	r.Group(func(r chi.Router) {
		r.Use(h.requireAuth)
		r.Get("/audit/export", h.export)
		r.Get("/audit/stats", h.stats)
		r.Get("/audit/retention", h.retention)
		r.Post("/audit/cleanup", h.cleanup)
	})
}

// requireAuth checks the audit credential. Without one configured the
// endpoints are open; config.Validate allows that only on loopback.
func (h *auditHandlers) requireAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.auth.Check(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="remediator-audit"`)
			writeError(w, http.StatusUnauthorized, "missing or invalid audit credentials")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// countingWriter counts what reached the client side, to know whether
// an error can still be answered with a status.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (h *auditHandlers) export(w http.ResponseWriter, r *http.Request) {
	q, err := audit.ParseExportQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	select {
	case h.exports <- struct{}{}:
		defer func() { <-h.exports }()
	default:
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusTooManyRequests, "too many audit exports running; try again shortly")
		return
	}
	ext := map[string]string{audit.FormatCSV: "csv", audit.FormatJSON: "json", audit.FormatNDJSON: "ndjson"}[q.Format]
	w.Header().Set("Content-Type", audit.ContentType(q.Format))
	w.Header().Set("Content-Disposition", `attachment; filename="audit-`+q.Filter.Since.Format("20060102")+"."+ext+`"`)
	w.Header().Set("Cache-Control", "no-store")
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(exportWriteTimeout))
	cw := &countingWriter{w: w}
	bw := bufio.NewWriterSize(cw, 64<<10)
	enc, err := audit.NewEncoder(bw, q.Format)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	n := 0
	flush := func() error {
		if err := bw.Flush(); err != nil {
			return err
		}
		_ = rc.SetWriteDeadline(time.Now().Add(exportWriteTimeout))
		if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		return nil
	}
	err = h.a.Export(r.Context(), q.Filter, func(rec *audit.Record) error {
		if err := enc.Encode(rec); err != nil {
			return err
		}
		n++
		if n%exportFlushEvery == 0 {
			return flush()
		}
		return nil
	})
	if err == nil {
		if err = enc.Close(); err == nil {
			err = flush()
		}
	}
	if err == nil {
		return
	}
	log := h.s.opt.Log.With(zap.String("correlationId", CorrelationID(r.Context())), zap.Int("records", n))
	if r.Context().Err() != nil {
		log.Info("audit export stopped: the client went away", zap.Error(err))
		return
	}
	if cw.n == 0 {
		// Nothing sent yet: a proper error answer is still possible.
		h.s.storeError(w, r, err)
		return
	}
	// Part of the export is out: abort the response, so the client sees a
	// broken transfer rather than a complete-looking file.
	log.Error("audit export failed mid-stream; response aborted", zap.Error(err))
	panic(http.ErrAbortHandler)
}

func (h *auditHandlers) stats(w http.ResponseWriter, r *http.Request) {
	st, err := h.a.Stats(r.Context())
	if err != nil {
		h.s.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (h *auditHandlers) retention(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, h.a.Retention())
}

func (h *auditHandlers) cleanup(w http.ResponseWriter, r *http.Request) {
	res, err := h.a.Cleanup(r.Context(), "audit-api", CorrelationID(r.Context()))
	if errors.Is(err, audit.ErrKeepForever) {
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	if err != nil {
		h.s.storeError(w, r, err)
		return
	}
	h.s.opt.Log.Info("audit cleanup", zap.String("correlationId", CorrelationID(r.Context())),
		zap.Int64("deleted", res.Deleted), zap.Time("before", res.Before))
	writeJSON(w, http.StatusOK, res)
}
