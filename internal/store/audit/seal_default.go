//go:build !remediator_noseal

package audit

// SealingEnabled is false only in a binary built with the tag
// remediator_noseal, which exists for benchmarks: hack/bench-intake.sh
// builds one to measure intake with and without sealing, A/B. Such a
// binary neither seals in the background nor inside the stores' write
// transactions (the CLI's audit commands still seal before they read).
// Never ship it.
const SealingEnabled = true
