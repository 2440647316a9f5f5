package runbookloop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/remediator/remediator/internal/testbed"
)

// pollInterval is how often the loop looks again while it waits.
const pollInterval = 200 * time.Millisecond

// poll calls check every pollInterval until it reports done, returns a
// final error (stop), the deadline d passes (the last error, or "not within
// d") or ctx ends.
func poll(ctx context.Context, d time.Duration, check func() (bool, error)) error {
	deadline := time.Now().Add(d)
	for {
		done, err := check()
		var s *stopError
		switch {
		case done:
			return nil
		case errors.As(err, &s):
			return s.err
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("not within %s", d)
			} else {
				err = fmt.Errorf("not within %s: %w", d, err)
			}
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped waiting: %w", context.Cause(ctx))
		case <-time.After(pollInterval):
		}
	}
}

// stopError ends a poll at once with err.
type stopError struct{ err error }

func (e *stopError) Error() string { return e.err.Error() }

// waitHTTP polls url until it answers 200; p exiting first is an error.
func waitHTTP(ctx context.Context, p *testbed.Process, url string, d time.Duration) error {
	return poll(ctx, d, func() (bool, error) {
		if p.Exited() {
			return false, &stopError{fmt.Errorf("exited before %s answered", url)}
		}
		resp, err := get(ctx, url, "")
		if err != nil {
			return false, err
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Errorf("GET %s: %s", url, resp.Status)
	})
}

func get(ctx context.Context, url, bearer string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	return http.DefaultClient.Do(req)
}

// getJSON decodes a 200 answer of GET url into v.
func getJSON(ctx context.Context, url, bearer string, v any) error {
	resp, err := get(ctx, url, bearer)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return json.Unmarshal(b, v)
}

// postJSON posts body and decodes a 200 answer into v (if not nil).
func postJSON(ctx context.Context, url, bearer string, body, v any) error {
	in, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(in))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s: %s", url, resp.Status, b)
	}
	if v == nil {
		return nil
	}
	return json.Unmarshal(b, v)
}

// tail is the last n lines of a log file, without the access log of the
// loop's own polling.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read: %v)", err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if strings.Contains(l, `"msg":"request"`) && strings.Contains(l, `"method":"GET"`) {
			continue
		}
		lines = append(lines, l)
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
