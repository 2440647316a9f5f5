//go:build remediator_noseal

package audit

// SealingEnabled: see seal_default.go. This is the benchmark build.
const SealingEnabled = false
