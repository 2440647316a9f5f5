package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Dependencies checks that the endpoints a policy lists answer: a TCP dial
// for host:port, an HTTP GET (2xx/3xx is ok, redirects not followed) for
// http(s) URLs. It dials nothing else.
type Dependencies struct {
	// Dialer dials TCP (default: a net.Dialer).
	Dialer interface {
		DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	}
	// HTTP is the client for URLs (default: one that follows no redirects
	// and uses no proxy).
	HTTP *http.Client
}

// Name is "dependencies".
func (Dependencies) Name() string { return "dependencies" }

// Check is one endpoint's result.
type Check struct {
	Endpoint  string  `cel:"endpoint" json:"endpoint"`
	OK        bool    `cel:"ok" json:"ok"`
	LatencyMs float64 `cel:"latencyMs" json:"latencyMs"`
	Error     string  `cel:"error" json:"error,omitempty"`
}

// DependenciesEvidence is the dependencies probe's evidence.
type DependenciesEvidence struct {
	AllReachable bool     `cel:"allReachable" json:"allReachable"`
	Unreachable  []string `cel:"unreachable" json:"unreachable"`
	Checks       []Check  `cel:"checks" json:"checks"` // in the order of the endpoints parameter
}

const maxDependencyEndpoints = 32

// Run checks every endpoint concurrently. Parameters: endpoints (required,
// list of host:port or http(s) URLs, at most 32), timeout per endpoint
// (default 2s).
func (p Dependencies) Run(ctx context.Context, _ Target, params Params) (Evidence, error) {
	eps, err := params.Strings("endpoints")
	if err != nil {
		return nil, err
	}
	if len(eps) == 0 {
		return nil, errors.New("parameter endpoints: required, at least one")
	}
	if len(eps) > maxDependencyEndpoints {
		return nil, fmt.Errorf("parameter endpoints: %d endpoints, at most %d", len(eps), maxDependencyEndpoints)
	}
	timeout, err := params.Duration("timeout", 2*time.Second)
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		return nil, errors.New("parameter timeout: must be positive")
	}
	for _, ep := range eps {
		if err := validateEndpoint(ep); err != nil {
			return nil, err
		}
	}
	ev := DependenciesEvidence{AllReachable: true, Unreachable: []string{}, Checks: make([]Check, len(eps))}
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			ev.Checks[i] = p.check(cctx, ep)
		}()
	}
	wg.Wait()
	for _, c := range ev.Checks {
		if !c.OK {
			ev.AllReachable = false
			ev.Unreachable = append(ev.Unreachable, c.Endpoint)
		}
	}
	return ev, nil
}

func isURL(ep string) bool {
	return strings.HasPrefix(ep, "http://") || strings.HasPrefix(ep, "https://")
}

func validateEndpoint(ep string) error {
	if isURL(ep) {
		u, err := url.Parse(ep)
		if err != nil || u.Host == "" {
			return fmt.Errorf("parameter endpoints: %q is not a valid URL", ep)
		}
		return nil
	}
	host, port, err := net.SplitHostPort(ep)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("parameter endpoints: %q is neither host:port nor an http(s) URL", ep)
	}
	return nil
}

func (p Dependencies) check(ctx context.Context, ep string) Check {
	c := Check{Endpoint: ep}
	start := time.Now()
	var err error
	if isURL(ep) {
		err = p.get(ctx, ep)
	} else {
		err = p.dial(ctx, ep)
	}
	c.LatencyMs = float64(time.Since(start).Microseconds()) / 1000
	if err != nil {
		c.Error = err.Error()
	} else {
		c.OK = true
	}
	return c
}

func (p Dependencies) dial(ctx context.Context, addr string) error {
	d := p.Dialer
	if d == nil {
		d = &net.Dialer{}
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

// noRedirects dials only the URL's own host: no redirects followed and no
// proxy from the environment.
var noRedirects = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{}).DialContext,
		TLSHandshakeTimeout: 5 * time.Second,
		DisableKeepAlives:   true,
	},
}

func (p Dependencies) get(ctx context.Context, u string) error {
	hc := p.HTTP
	if hc == nil {
		hc = noRedirects
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	return nil
}
