package probe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// DefaultTimeout is a step's time limit when it sets none.
const DefaultTimeout = 10 * time.Second

// Target is the workload a probe looks at.
type Target struct {
	Namespace string `json:"namespace"`
	Kind      string `json:"kind"` // "Deployment"
	Name      string `json:"name"`
}

func (t Target) String() string { return t.Kind + " " + t.Namespace + "/" + t.Name }

// Validate refuses empty, wildcard or malformed targets. Names are checked
// as Kubernetes object names, so they are also safe to template into PromQL.
func (t Target) Validate() error {
	if t.Kind != "Deployment" {
		return fmt.Errorf("probe: target kind %q not supported (only Deployment)", t.Kind)
	}
	if errs := validation.IsDNS1123Label(t.Namespace); len(errs) > 0 {
		return fmt.Errorf("probe: target namespace %q: %v", t.Namespace, errs)
	}
	if errs := validation.IsDNS1123Subdomain(t.Name); len(errs) > 0 {
		return fmt.Errorf("probe: target name %q: %v", t.Name, errs)
	}
	return nil
}

// Evidence is what a probe found: a value of the probe's own evidence struct
// (RolloutHistoryEvidence, PodStatusEvidence, ...). The structs are the
// contract with the policy engine: their `cel` tags, equal to their JSON
// names, are the field names CEL conditions use (cel-go native types; an
// embedded struct such as LogStats is flattened, as in JSON).
type Evidence = any

// Probe is one diagnosis step.
type Probe interface {
	Name() string
	Run(ctx context.Context, t Target, params Params) (Evidence, error)
}

// Step is one probe to run with its parameters and time limit.
type Step struct {
	ID      string // name of the evidence (default: the probe's name)
	Probe   Probe
	Target  Target
	Params  Params
	Timeout time.Duration // default DefaultTimeout
}

// Result is the outcome of one step: evidence or an error.
type Result struct {
	ID       string        `json:"id"`
	Probe    string        `json:"probe"`
	Evidence Evidence      `json:"evidence,omitempty"`
	Err      error         `json:"-"`
	Duration time.Duration `json:"-"`
}

// MarshalJSON adds the error text and the duration in milliseconds.
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result
	out := struct {
		plain
		Error      string  `json:"error,omitempty"`
		DurationMs float64 `json:"durationMs"`
	}{plain: plain(r), DurationMs: float64(r.Duration) / float64(time.Millisecond)}
	if r.Err != nil {
		out.Error = r.Err.Error()
	}
	return json.Marshal(out)
}

// ErrPanic marks a probe that panicked; the panic is turned into its error.
var ErrPanic = errors.New("probe panicked")

// RunAll runs steps concurrently, each under its own timeout, and returns one
// Result per step in the order of steps. It never fails as a whole.
func RunAll(ctx context.Context, steps []Step) []Result {
	results := make([]Result, len(steps))
	var wg sync.WaitGroup
	for i, s := range steps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = Run(ctx, s)
		}()
	}
	wg.Wait()
	return results
}

// Run runs one step under its timeout, turning a panic into an error.
func Run(ctx context.Context, s Step) (res Result) {
	res.ID = s.ID
	if s.Probe == nil {
		res.Err = errors.New("probe: step has no probe")
		return res
	}
	res.Probe = s.Probe.Name()
	if res.ID == "" {
		res.ID = res.Probe
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	start := time.Now()
	defer func() {
		res.Duration = time.Since(start)
		if p := recover(); p != nil {
			res.Evidence = nil
			res.Err = fmt.Errorf("%s: %w: %v\n%s", res.Probe, ErrPanic, p, debug.Stack())
		}
	}()
	if err := s.Target.Validate(); err != nil {
		res.Err = err
		return res
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ev, err := s.Probe.Run(ctx, s.Target, s.Params)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("%s: timed out after %s: %w", res.Probe, timeout, err)
		} else {
			err = fmt.Errorf("%s: %w", res.Probe, err)
		}
		res.Err = err
		return res
	}
	res.Evidence = ev
	return res
}
