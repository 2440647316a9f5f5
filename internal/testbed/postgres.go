package testbed

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/remediator/remediator/internal/testbed/pgserver"
)

// postgresServer is what the bed needs from internal/testbed/pgserver.
type postgresServer interface {
	DSN() string
	Stop() error
	CreateDatabase(ctx context.Context, name string) (string, error)
}

func startPostgres(ctx context.Context, dir string) (postgresServer, error) {
	srv, err := pgserver.Start(ctx, dir)
	if err != nil {
		return nil, err
	}
	return srv, nil
}

var dbNameRe = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// CreateDatabase creates a fresh database on the bed's PostgreSQL and returns
// its DSN (also on an attached bed, through the recorded superuser DSN).
func (b *Bed) CreateDatabase(ctx context.Context, name string) (string, error) {
	if !dbNameRe.MatchString(name) {
		return "", fmt.Errorf("testbed: database name %q: want [a-z_][a-z0-9_]*, at most 63 characters", name)
	}
	if b.pg != nil {
		return b.pg.CreateDatabase(ctx, name)
	}
	if b.state.PostgresDSN == "" {
		return "", errors.New("testbed: this bed runs no PostgreSQL (start it with Options.Postgres)")
	}
	return pgserver.CreateDatabase(ctx, b.state.PostgresDSN, name)
}

// stopPostgresDir stops a postmaster whose data directory is below dir (fast
// shutdown, then SIGKILL), for beds whose owner died without stopping it.
func stopPostgresDir(dir string, grace time.Duration) error {
	var pidFiles []string
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && strings.Count(strings.TrimPrefix(path, dir), string(filepath.Separator)) > 3 {
			return filepath.SkipDir
		}
		if d.Name() == "postmaster.pid" {
			pidFiles = append(pidFiles, path)
		}
		return nil
	})
	var errs []error
	for _, f := range pidFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		first, _, _ := strings.Cut(string(b), "\n")
		pid, err := strconv.Atoi(strings.TrimSpace(first))
		if err != nil || !pidAlive(pid) {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGINT)
		if waitPIDGone(pid, grace) {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
		if !waitPIDGone(pid, 10*time.Second) {
			errs = append(errs, fmt.Errorf("postgres pid %d does not exit", pid))
		}
	}
	return errors.Join(errs...)
}
