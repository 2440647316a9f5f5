package main

import (
	"bytes"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/remediator/remediator/internal/config"
	"github.com/remediator/remediator/internal/server"
	"github.com/remediator/remediator/internal/store/audit"
)

// auditService builds the audit trail's background work (the sealer,
// every second, and the daily cleanup; serve runs it) and the audit
// endpoints' own credential (docs/audit.md).
func auditService(cfg config.Config, st audit.Store, log *zap.Logger) (*audit.Service, *server.Authenticator, error) {
	a := &server.Authenticator{OnSecretError: func(err error) {
		log.Warn("audit token file unreadable; keeping the last good value", zap.Error(err))
	}}
	if f := cfg.Audit.BearerTokenFile; f != "" {
		s, err := server.NewSecretFile(f)
		if err != nil {
			return nil, nil, fmt.Errorf("audit.bearer_token_file: %w", err)
		}
		if w := cfg.Auth.BearerTokenFile; w != "" {
			ws, err := server.NewSecretFile(w)
			if err != nil {
				return nil, nil, fmt.Errorf("auth.bearer_token_file: %w", err)
			}
			av, _ := s.Value()
			wv, _ := ws.Value()
			if bytes.Equal(av, wv) {
				return nil, nil, errors.New("audit.bearer_token_file holds the webhook's token: the audit endpoints need their own")
			}
		}
		a.Bearer = s
	}
	svc := audit.NewService(st, audit.Options{RetentionDays: cfg.Audit.RetentionDays, Log: log})
	return svc, a, nil
}
