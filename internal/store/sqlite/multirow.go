package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// maxRows is how many rows one multi-row statement carries at most. Rows
// are split into chunks of maxRows and then of falling powers of two, so
// only log2(maxRows)+1 variants of each statement exist; all are prepared
// at Open (preparing inside a write transaction would wait for the one
// writer connection the transaction holds).
const maxRows = 64

// multiStmt is an INSERT with a VALUES list of n rows, prepared once per
// chunk size on the writer connection.
type multiStmt struct {
	head, row, tail string
	cols            int
	cache           [maxRows + 1]*sql.Stmt
}

func (m *multiStmt) prepareAll(ctx context.Context, db *sql.DB) error {
	for n := maxRows; n >= 1; n /= 2 {
		if _, err := m.stmt(ctx, db, n); err != nil {
			return err
		}
	}
	return nil
}

func newMultiStmt(head, row, tail string) *multiStmt {
	return &multiStmt{head: head, row: row, tail: tail, cols: strings.Count(row, "?")}
}

func (m *multiStmt) stmt(ctx context.Context, db *sql.DB, rows int) (*sql.Stmt, error) {
	if st := m.cache[rows]; st != nil {
		return st, nil
	}
	if db == nil {
		return nil, fmt.Errorf("no prepared %d-row statement", rows)
	}
	var b strings.Builder
	b.WriteString(m.head)
	b.WriteString(" VALUES ")
	for i := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(m.row)
	}
	b.WriteByte(' ')
	b.WriteString(m.tail)
	st, err := db.PrepareContext(ctx, b.String())
	if err != nil {
		return nil, fmt.Errorf("prepare %d-row statement: %w", rows, err)
	}
	m.cache[rows] = st
	return st, nil
}

func (m *multiStmt) close() {
	for i, st := range m.cache {
		if st != nil {
			st.Close()
			m.cache[i] = nil
		}
	}
}

// chunks calls f for consecutive [lo, hi) ranges covering n rows, each of
// maxRows rows or a smaller power of two.
func chunks(n int, f func(lo, hi int) error) error {
	for lo := 0; lo < n; {
		size := maxRows
		for size > n-lo {
			size /= 2
		}
		if err := f(lo, lo+size); err != nil {
			return err
		}
		lo += size
	}
	return nil
}
