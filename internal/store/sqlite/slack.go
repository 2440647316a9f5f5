package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/remediator/remediator/internal/store"
)

// RootTS implements store.SlackState.
func (s *Store) RootTS(ctx context.Context, incidentID, channel string) (store.SlackRoot, error) {
	var r store.SlackRoot
	err := s.r.QueryRowContext(ctx, `SELECT channel_id, root_ts FROM slack_threads WHERE incident_id = ? AND channel = ?`,
		incidentID, channel).Scan(&r.ChannelID, &r.TS)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.SlackRoot{}, nil
	case err != nil:
		return store.SlackRoot{}, fmt.Errorf("sqlite: slack root: %w", mapErr(err))
	}
	return r, nil
}

// SetRootTS implements store.SlackState.
func (s *Store) SetRootTS(ctx context.Context, incidentID, channel string, root store.SlackRoot) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO slack_threads (incident_id, channel, channel_id, root_ts, updated_at)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (incident_id, channel) DO UPDATE SET
			channel_id = excluded.channel_id, root_ts = excluded.root_ts, updated_at = excluded.updated_at`,
		incidentID, channel, root.ChannelID, root.TS, micros(s.opts.Now()))
	if err != nil {
		return fmt.Errorf("sqlite: set slack root: %w", mapErr(err))
	}
	return nil
}

// RememberSignature implements store.SlackState.
func (s *Store) RememberSignature(ctx context.Context, signature string, at time.Time, keep time.Duration) (bool, error) {
	fresh := false
	err := s.write(ctx, "remember slack signature", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM slack_signatures WHERE expires_at <= ?`, micros(at)); err != nil {
			return fmt.Errorf("sqlite: remember slack signature: %w", mapErr(err))
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO slack_signatures (signature, expires_at) VALUES (?, ?)
			ON CONFLICT (signature) DO NOTHING`, signature, micros(at.Add(keep)))
		if err != nil {
			return fmt.Errorf("sqlite: remember slack signature: %w", mapErr(err))
		}
		n, err := res.RowsAffected()
		fresh = n == 1
		return err
	})
	return fresh, err
}

// NotifyCursor implements store.SlackState.
func (s *Store) NotifyCursor(ctx context.Context, name string) (int64, bool, error) {
	var seq int64
	err := s.r.QueryRowContext(ctx, `SELECT seq FROM notify_cursors WHERE name = ?`, name).Scan(&seq)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("sqlite: notify cursor: %w", mapErr(err))
	}
	return seq, true, nil
}

// SetNotifyCursor implements store.SlackState.
func (s *Store) SetNotifyCursor(ctx context.Context, name string, seq int64) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO notify_cursors (name, seq, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at`,
		name, seq, micros(s.opts.Now()))
	if err != nil {
		return fmt.Errorf("sqlite: set notify cursor: %w", mapErr(err))
	}
	return nil
}
