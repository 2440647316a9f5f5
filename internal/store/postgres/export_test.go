package postgres

// UnsealedCount is readAuditState's count of unsealed events, for
// TestAuditStatsUnanalyzed's EXPLAIN.
const UnsealedCount = unsealedCount
