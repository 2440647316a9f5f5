package server

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// SecretFile is a secret read from a file and re-read when the file changes,
// so operators can rotate it without a restart (as Alertmanager re-reads its
// credentials_file). The file is stat'ed at most once per interval.
type SecretFile struct {
	path     string
	interval time.Duration
	now      func() time.Time

	mu      sync.Mutex
	value   []byte
	modTime time.Time
	size    int64
	checked time.Time
}

// NewSecretFile reads the secret once, so a missing or empty file fails start-up.
func NewSecretFile(path string) (*SecretFile, error) {
	s := &SecretFile{path: path, interval: time.Second, now: time.Now}
	if _, err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

// Value returns the current secret. On a read error after start-up it keeps
// the last good value and returns the error so the caller can log it.
func (s *SecretFile) Value() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.now().Sub(s.checked) < s.interval {
		return s.value, nil
	}
	return s.load()
}

func (s *SecretFile) load() ([]byte, error) {
	s.checked = s.now()
	fi, err := os.Stat(s.path)
	if err != nil {
		return s.value, fmt.Errorf("secret file: %w", err)
	}
	if s.value != nil && fi.ModTime().Equal(s.modTime) && fi.Size() == s.size {
		return s.value, nil
	}
	b, err := os.ReadFile(s.path)
	if err != nil {
		return s.value, fmt.Errorf("secret file: %w", err)
	}
	v := bytes.TrimSpace(b)
	if len(v) == 0 {
		return s.value, fmt.Errorf("secret file %s is empty", s.path)
	}
	s.value, s.modTime, s.size = v, fi.ModTime(), fi.Size()
	return s.value, nil
}

// Authenticator checks the credentials Alertmanager's http_config sends:
// a bearer token and/or basic auth. A request passes when it matches any
// configured method. With no method configured every request passes (the
// service then refuses to listen beyond loopback, see config.Validate).
type Authenticator struct {
	Bearer        *SecretFile
	BasicUser     string
	BasicPassword *SecretFile
	// OnSecretError is told when a secret file cannot be re-read (the last
	// good value stays in use).
	OnSecretError func(error)
}

// Enabled reports whether any credential is required.
func (a *Authenticator) Enabled() bool {
	return a != nil && (a.Bearer != nil || a.BasicPassword != nil)
}

// Check reports whether r carries valid credentials.
func (a *Authenticator) Check(r *http.Request) bool {
	if !a.Enabled() {
		return true
	}
	h := r.Header.Get("Authorization")
	if a.Bearer != nil {
		if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
			if a.equal(a.Bearer, []byte(strings.TrimSpace(tok))) {
				return true
			}
		}
	}
	if a.BasicPassword != nil {
		if user, pass, ok := r.BasicAuth(); ok {
			userOK := subtle.ConstantTimeCompare([]byte(user), []byte(a.BasicUser)) == 1
			passOK := a.equal(a.BasicPassword, []byte(pass))
			if userOK && passOK {
				return true
			}
		}
	}
	return false
}

func (a *Authenticator) equal(s *SecretFile, got []byte) bool {
	want, err := s.Value()
	if err != nil && a.OnSecretError != nil {
		a.OnSecretError(err)
	}
	return len(want) > 0 && subtle.ConstantTimeCompare(want, got) == 1
}

// challenge is the WWW-Authenticate header for a 401.
func (a *Authenticator) challenge() string {
	if a.Bearer != nil {
		return `Bearer realm="remediator"`
	}
	return `Basic realm="remediator"`
}
