package server

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"go.uber.org/zap"

	"github.com/remediator/remediator/internal/incident"
)

// RequestIDHeader carries the correlation ID in and out.
const RequestIDHeader = "X-Request-ID"

type ctxKey int

const correlationKey ctxKey = iota

// CorrelationID returns the request's correlation ID.
func CorrelationID(ctx context.Context) string {
	s, _ := ctx.Value(correlationKey).(string)
	return s
}

// validRequestID accepts what a proxy or a person could reasonably send and
// refuses anything that could break a log line.
func validRequestID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// correlate honours X-Request-ID (else makes one), stores it in the context
// and echoes it in the response.
func correlate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if !validRequestID(id) {
			id = incident.NewID()
		}
		w.Header().Set(RequestIDHeader, id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), correlationKey, id)))
	})
}

// observe writes the access log line and the HTTP metrics for every request.
func observe(log *zap.Logger, m *Metrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			defer func() {
				elapsed := time.Since(start)
				status := ww.Status()
				if status == 0 {
					status = http.StatusOK
				}
				route := "unmatched"
				if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
					route = rc.RoutePattern()
				}
				code := strconv.Itoa(status)
				m.Requests.WithLabelValues(r.Method, route, code).Inc()
				if status >= 500 {
					m.Errors.WithLabelValues(r.Method, route, code).Inc()
				}
				m.Duration.WithLabelValues(r.Method, route).Observe(elapsed.Seconds())
				if route == "/metrics" || route == "/healthz" || route == "/readyz" {
					return // probes and scrapes would drown the log
				}
				log.Info("request",
					zap.String("correlationId", CorrelationID(r.Context())),
					zap.String("method", r.Method),
					zap.String("path", r.URL.Path),
					zap.String("route", route),
					zap.Int("status", status),
					zap.Int("bytes", ww.BytesWritten()),
					zap.Float64("responseTimeMs", float64(elapsed.Microseconds())/1000),
					zap.String("remote", r.RemoteAddr),
					zap.String("userAgent", r.UserAgent()),
				)
			}()
			next.ServeHTTP(ww, r)
		})
	}
}

// recoverer turns a panic in a handler into a logged 500 instead of a dead
// connection; the service must never crash on input.
func recoverer(log *zap.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					log.Error("handler panic", zap.Any("panic", v), zap.Stack("stack"),
						zap.String("correlationId", CorrelationID(r.Context())))
					writeError(w, http.StatusInternalServerError, "internal error; see the service log for correlation ID "+CorrelationID(r.Context()))
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}
