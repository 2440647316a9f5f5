package guard

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Defaults of Settings (see Defaults).
const (
	DefaultProtectedKey        = "remediator.io/protected"
	DefaultCooldown            = 10 * time.Minute
	DefaultMaxPerTargetPerHour = 3
	DefaultMaxGlobalPerHour    = 20
	DefaultMinHealthyPercent   = 50
	DefaultBreakerFailures     = 2
	DefaultBreakerWindow       = 24 * time.Hour
)

// rateWindow is the period of the rate limits.
const rateWindow = time.Hour

// Settings are the merged guard settings of one plan: the service
// configuration's global guard settings with the policy's overrides (see
// Merge). Evaluate uses them as given: apply the defaults first
// (WithDefaults, or Merge which does it); settings that fail Validate make
// the input guard block everything.
type Settings struct {
	// Namespaces is the allow-list of target namespaces. Empty allows no
	// namespace at all (fail closed); "*" and other wildcards are refused.
	Namespaces []string
	// ProtectedLabel and ProtectedAnnotation are the keys that, with the
	// value "true" (any case), protect a target from every action.
	// Default DefaultProtectedKey for both.
	ProtectedLabel      string
	ProtectedAnnotation string
	// Cooldown is the minimum time between two actions on one target
	// (abandoned executions do not count). Default 10m.
	Cooldown time.Duration
	// MaxPerTargetPerHour limits actions on one target in any sliding hour.
	// Default 3.
	MaxPerTargetPerHour int
	// MaxGlobalPerHour limits actions on all targets in any sliding hour.
	// Default 20.
	MaxGlobalPerHour int
	// MaxReplicas bounds scale. 0 means no guard bound: a scale change is
	// then allowed only if it carries its own bound (Change.ScaleMax).
	// No default.
	MaxReplicas int32
	// MinHealthyPercent is the percentage of Replicas (rounded up to whole
	// pods) that restarts and pod deletions must leave ready. Default 50;
	// 1..100.
	MinHealthyPercent int
	// BreakerFailures failed or ineffective executions on one target
	// within BreakerWindow trip the circuit breaker. Defaults 2 and 24h.
	BreakerFailures int
	BreakerWindow   time.Duration
	// Schedule holds the configured recurring maintenance windows, each
	// made by ParseRecurring.
	Schedule []Recurring
}

// Defaults returns the default settings. Their allow-list is empty: no
// namespace is allowed until one is configured.
func Defaults() Settings {
	return Settings{
		ProtectedLabel:      DefaultProtectedKey,
		ProtectedAnnotation: DefaultProtectedKey,
		Cooldown:            DefaultCooldown,
		MaxPerTargetPerHour: DefaultMaxPerTargetPerHour,
		MaxGlobalPerHour:    DefaultMaxGlobalPerHour,
		MinHealthyPercent:   DefaultMinHealthyPercent,
		BreakerFailures:     DefaultBreakerFailures,
		BreakerWindow:       DefaultBreakerWindow,
	}
}

// WithDefaults returns s with every zero-valued field that has a default
// set to it. Zero never disables a guard: a zero cooldown, limit or
// percentage means "the default". Namespaces, MaxReplicas and Schedule have
// no default.
func (s Settings) WithDefaults() Settings {
	d := Defaults()
	if s.ProtectedLabel == "" {
		s.ProtectedLabel = d.ProtectedLabel
	}
	if s.ProtectedAnnotation == "" {
		s.ProtectedAnnotation = d.ProtectedAnnotation
	}
	if s.Cooldown == 0 {
		s.Cooldown = d.Cooldown
	}
	if s.MaxPerTargetPerHour == 0 {
		s.MaxPerTargetPerHour = d.MaxPerTargetPerHour
	}
	if s.MaxGlobalPerHour == 0 {
		s.MaxGlobalPerHour = d.MaxGlobalPerHour
	}
	if s.MinHealthyPercent == 0 {
		s.MinHealthyPercent = d.MinHealthyPercent
	}
	if s.BreakerFailures == 0 {
		s.BreakerFailures = d.BreakerFailures
	}
	if s.BreakerWindow == 0 {
		s.BreakerWindow = d.BreakerWindow
	}
	return s
}

// Overrides are a policy's guard settings (policy.Guards). A zero field
// inherits the global value.
type Overrides struct {
	Cooldown            time.Duration // guards.cooldown
	MaxPerTargetPerHour int           // guards.maxActionsPerHour
	MaxReplicas         int32         // guards.maxReplicas
	MinHealthyPercent   int           // guards.minHealthyPercent
}

// Merge returns the settings of one plan: global with its defaults applied,
// then each non-zero field of policy replacing the global value. A policy
// may loosen as well as tighten the global values; the result still has to
// pass Validate.
func Merge(global Settings, policy Overrides) Settings {
	s := global.WithDefaults()
	if policy.Cooldown != 0 {
		s.Cooldown = policy.Cooldown
	}
	if policy.MaxPerTargetPerHour != 0 {
		s.MaxPerTargetPerHour = policy.MaxPerTargetPerHour
	}
	if policy.MaxReplicas != 0 {
		s.MaxReplicas = policy.MaxReplicas
	}
	if policy.MinHealthyPercent != 0 {
		s.MinHealthyPercent = policy.MinHealthyPercent
	}
	return s
}

// Lookback is the oldest CreatedAt the guards look at: State.TargetRecent
// must hold every execution on the target created after it.
func (s Settings) Lookback(now time.Time) time.Time {
	d := rateWindow
	if s.Cooldown > d {
		d = s.Cooldown
	}
	if s.BreakerWindow > d {
		d = s.BreakerWindow
	}
	return now.Add(-d)
}

// Validate reports every problem of s, field by field. Settings straight
// from Defaults or WithDefaults are valid except for what the operator set.
func (s Settings) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for i, ns := range s.Namespaces {
		if err := checkNamespaceName(ns); err != nil {
			bad("namespaces[%d]: %v", i, err)
		}
	}
	if s.ProtectedLabel == "" {
		bad("protected label: must be set (default %s)", DefaultProtectedKey)
	}
	if s.ProtectedAnnotation == "" {
		bad("protected annotation: must be set (default %s)", DefaultProtectedKey)
	}
	if s.Cooldown <= 0 {
		bad("cooldown: must be positive, got %s", s.Cooldown)
	}
	if s.MaxPerTargetPerHour < 1 {
		bad("max per target per hour: must be at least 1, got %d", s.MaxPerTargetPerHour)
	}
	if s.MaxGlobalPerHour < 1 {
		bad("max global per hour: must be at least 1, got %d", s.MaxGlobalPerHour)
	}
	if s.MaxReplicas < 0 {
		bad("max replicas: must not be negative, got %d", s.MaxReplicas)
	}
	if s.MinHealthyPercent < 1 || s.MinHealthyPercent > 100 {
		bad("min healthy percent: must be 1..100, got %d", s.MinHealthyPercent)
	}
	if s.BreakerFailures < 1 {
		bad("breaker failures: must be at least 1, got %d", s.BreakerFailures)
	}
	if s.BreakerWindow <= 0 {
		bad("breaker window: must be positive, got %s", s.BreakerWindow)
	}
	for i, r := range s.Schedule {
		if r.loc == nil {
			bad("schedule[%d]: not made by ParseRecurring", i)
		}
	}
	return errors.Join(errs...)
}

// checkNamespaceName refuses an empty name and wildcards.
func checkNamespaceName(ns string) error {
	switch {
	case ns == "":
		return errors.New("empty namespace")
	case strings.ContainsAny(ns, "*?[]"):
		return fmt.Errorf("%q: wildcards are not accepted, list each namespace", ns)
	}
	return nil
}
