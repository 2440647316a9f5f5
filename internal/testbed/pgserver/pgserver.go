// Package pgserver starts a throw-away PostgreSQL server for tests and the
// test bed: initdb into a directory, trust authentication, a free loopback
// port, the Unix socket inside the directory.
//
// As root it runs initdb and pg_ctl as the "postgres" user (initdb refuses to
// run as root); otherwise it runs them directly.
package pgserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a running PostgreSQL.
type Server struct {
	bin     string // directory of initdb, pg_ctl, postgres
	dir     string // root: data/, sock/, postgres.log
	port    int
	runAs   string // "" or the user to run commands as
	cleanup string // a directory Start created outside dir, removed by Stop
}

// Start creates a cluster in dir (which must be empty or not exist) and
// starts it, returning when it accepts connections.
func Start(ctx context.Context, dir string) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	s := &Server{bin: bin, dir: dir}
	if os.Geteuid() == 0 {
		s.runAs = "postgres"
		u, err := user.Lookup(s.runAs)
		if err != nil {
			return nil, fmt.Errorf("pgserver: running as root needs a %q user: %w", s.runAs, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if !reachable(dir) {
			// The postgres user cannot reach dir (a parent is private, as
			// t.TempDir's are): put the cluster in a directory it can reach.
			alt, err := os.MkdirTemp("", "pgserver-")
			if err != nil {
				return nil, fmt.Errorf("pgserver: %w", err)
			}
			s.dir, s.cleanup = alt, alt
		}
		if err := os.Chown(s.dir, uid, gid); err != nil {
			return nil, fmt.Errorf("pgserver: chown %s: %w", s.dir, err)
		}
	}
	if err := os.MkdirAll(s.sockDir(), 0o700); err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	if s.runAs != "" {
		if err := s.run(ctx, "chown", "-R", s.runAs, s.dir); err != nil {
			return nil, err
		}
	}
	if err := s.run(ctx, filepath.Join(bin, "initdb"), "-D", s.dataDir(), "-A", "trust", "-U", "postgres",
		"-E", "UTF8", "--no-instructions", "--no-sync"); err != nil {
		s.removeCleanup()
		return nil, err
	}
	var lastErr error
	for range 3 { // a free port can be taken between choosing and binding it
		if s.port, err = freePort(); err != nil {
			return nil, err
		}
		if lastErr = s.start(ctx); lastErr == nil {
			return s, nil
		}
	}
	s.removeCleanup()
	return nil, lastErr
}

func (s *Server) start(ctx context.Context) error {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=200", s.port, s.sockDir())
	if err := s.run(ctx, filepath.Join(s.bin, "pg_ctl"), "-D", s.dataDir(), "-l", s.logFile(),
		"-o", opts, "-w", "-t", "60", "start"); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := pgx.Connect(ctx, s.DSN())
		if err == nil {
			c.Close(ctx)
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.Stop()
			return fmt.Errorf("pgserver: server did not accept connections: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// DSN is the address of the server's "postgres" database as superuser.
func (s *Server) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

// Port is the TCP port the server listens on (127.0.0.1).
func (s *Server) Port() int { return s.port }

// Dir is the directory holding the cluster (data/, sock/, postgres.log).
func (s *Server) Dir() string { return s.dir }

// CreateDatabase creates database name and returns its DSN.
func (s *Server) CreateDatabase(ctx context.Context, name string) (string, error) {
	return CreateDatabase(ctx, s.DSN(), name)
}

// Stop shuts the server down (fast mode) and waits until it exited.
func (s *Server) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := s.run(ctx, filepath.Join(s.bin, "pg_ctl"), "-D", s.dataDir(), "-m", "fast", "-w", "-t", "60", "stop")
	s.removeCleanup()
	return err
}

func (s *Server) removeCleanup() {
	if s.cleanup != "" {
		os.RemoveAll(s.cleanup)
	}
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }
func (s *Server) sockDir() string { return filepath.Join(s.dir, "sock") }
func (s *Server) logFile() string { return filepath.Join(s.dir, "postgres.log") }

func (s *Server) run(ctx context.Context, name string, args ...string) error {
	if s.runAs != "" && name != "chown" {
		args = append([]string{"-u", s.runAs, "--", name}, args...)
		name = "runuser"
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = "/"
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if log, rerr := os.ReadFile(s.logFile()); rerr == nil && len(log) > 0 {
			msg += "\n--- postgres.log ---\n" + tail(string(log), 2000)
		}
		return fmt.Errorf("pgserver: %s %s: %w\n%s", name, strings.Join(args, " "), err, msg)
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// reachable reports whether every directory above dir lets others pass.
func reachable(dir string) bool {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgserver: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// BinDir finds the PostgreSQL server binaries: `pg_config --bindir` when it
// holds initdb, else the newest /usr/lib/postgresql/*/bin.
func BinDir() (string, error) {
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		d := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("pgserver: no PostgreSQL server binaries (initdb) found via pg_config or /usr/lib/postgresql/*/bin")
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// CreateDatabase creates database name on the server at adminDSN (a role
// allowed to create databases) and returns the DSN of the new database.
func CreateDatabase(ctx context.Context, adminDSN, name string) (string, error) {
	c, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		return "", fmt.Errorf("pgserver: connect: %w", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("pgserver: create database %s: %w", name, err)
	}
	u, err := url.Parse(adminDSN)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("pgserver: DSN %q is not a postgres:// URL", adminDSN)
	}
	u.Path = "/" + name
	return u.String(), nil
}
