package probe

import (
	"fmt"
	"strconv"
	"time"
)

// Params are a step's parameters as the policy loader validated them:
// string, int64, time.Duration, bool or []string values. The getters also
// accept the other Go numeric types and duration strings, for callers
// building Params by hand.
type Params map[string]any

// String returns the string parameter key, or def when absent.
func (p Params) String(key, def string) (string, error) {
	v, ok := p[key]
	if !ok || v == nil {
		return def, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("parameter %s: want a string, got %T", key, v)
	}
	return s, nil
}

// Int returns the integer parameter key, or def when absent.
func (p Params) Int(key string, def int64) (int64, error) {
	v, ok := p[key]
	if !ok || v == nil {
		return def, nil
	}
	switch n := v.(type) {
	case int64:
		return n, nil
	case int:
		return int64(n), nil
	case int32:
		return int64(n), nil
	case float64:
		if n != float64(int64(n)) {
			return 0, fmt.Errorf("parameter %s: want an integer, got %v", key, n)
		}
		return int64(n), nil
	case string:
		i, err := strconv.ParseInt(n, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parameter %s: want an integer, got %q", key, n)
		}
		return i, nil
	}
	return 0, fmt.Errorf("parameter %s: want an integer, got %T", key, v)
}

// Duration returns the duration parameter key, or def when absent.
func (p Params) Duration(key string, def time.Duration) (time.Duration, error) {
	v, ok := p[key]
	if !ok || v == nil {
		return def, nil
	}
	switch d := v.(type) {
	case time.Duration:
		return d, nil
	case string:
		x, err := time.ParseDuration(d)
		if err != nil {
			return 0, fmt.Errorf("parameter %s: %v", key, err)
		}
		return x, nil
	}
	return 0, fmt.Errorf("parameter %s: want a duration, got %T", key, v)
}

// Strings returns the string-list parameter key, or nil when absent.
func (p Params) Strings(key string) ([]string, error) {
	v, ok := p[key]
	if !ok || v == nil {
		return nil, nil
	}
	switch l := v.(type) {
	case []string:
		return l, nil
	case []any:
		out := make([]string, 0, len(l))
		for i, e := range l {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("parameter %s[%d]: want a string, got %T", key, i, e)
			}
			out = append(out, s)
		}
		return out, nil
	case string:
		return []string{l}, nil
	}
	return nil, fmt.Errorf("parameter %s: want a list of strings, got %T", key, v)
}

// bounded checks that integer parameter key is within [lo, hi].
func bounded(key string, v, lo, hi int64) error {
	if v < lo || v > hi {
		return fmt.Errorf("parameter %s: %d out of range [%d, %d]", key, v, lo, hi)
	}
	return nil
}
