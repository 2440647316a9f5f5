// Package open opens the store a DSN names. It is the one place that knows
// every backend, so the backends and the store package stay free of import
// cycles and of global registries.
package open

import (
	"context"
	"fmt"
	"strings"

	"github.com/remediator/remediator/internal/store"
	"github.com/remediator/remediator/internal/store/postgres"
	"github.com/remediator/remediator/internal/store/sqlite"
)

// DefaultDSN is the store the service uses when none is configured.
const DefaultDSN = "sqlite://./data/remediator.db"

// Open opens the store named by dsn and applies pending migrations:
//
//	sqlite://PATH                  SQLite file at PATH, relative (sqlite://./data/x.db)
//	                               or absolute (sqlite:///var/lib/x.db); the parent
//	                               directory is created
//	postgres://… or postgresql://… PostgreSQL (any DSN pgx accepts in URL form)
func Open(ctx context.Context, dsn string, opts ...store.Option) (store.Store, error) {
	scheme, rest, ok := strings.Cut(dsn, "://")
	if !ok {
		return nil, fmt.Errorf("store: DSN %q has no scheme: want sqlite://PATH or postgres://…", redact(dsn))
	}
	switch strings.ToLower(scheme) {
	case "sqlite", "sqlite3":
		if rest == "" {
			return nil, fmt.Errorf("store: DSN %q has no path", dsn)
		}
		return sqlite.Open(ctx, rest, opts...)
	case "postgres", "postgresql":
		return postgres.Open(ctx, dsn, opts...)
	}
	return nil, fmt.Errorf("store: unknown DSN scheme %q in %q: want sqlite:// or postgres://", scheme, redact(dsn))
}

// redact hides a password in a URL-shaped DSN for error messages.
func redact(dsn string) string {
	scheme, rest, ok := strings.Cut(dsn, "://")
	if !ok {
		return dsn
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return dsn
	}
	user, _, hasPass := strings.Cut(rest[:at], ":")
	if !hasPass {
		return dsn
	}
	return scheme + "://" + user + ":xxxxx" + rest[at:]
}
