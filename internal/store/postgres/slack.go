package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/remediator/remediator/internal/store"
)

// RootTS implements store.SlackState.
func (s *Store) RootTS(ctx context.Context, incidentID, channel string) (store.SlackRoot, error) {
	var r store.SlackRoot
	err := s.pool.QueryRow(ctx, `SELECT channel_id, root_ts FROM slack_threads WHERE incident_id = $1 AND channel = $2`,
		incidentID, channel).Scan(&r.ChannelID, &r.TS)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return store.SlackRoot{}, nil
	case err != nil:
		return store.SlackRoot{}, fmt.Errorf("postgres: slack root: %w", mapErr(err))
	}
	return r, nil
}

// SetRootTS implements store.SlackState.
func (s *Store) SetRootTS(ctx context.Context, incidentID, channel string, root store.SlackRoot) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO slack_threads (incident_id, channel, channel_id, root_ts, updated_at)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (incident_id, channel) DO UPDATE SET
			channel_id = excluded.channel_id, root_ts = excluded.root_ts, updated_at = excluded.updated_at`,
		incidentID, channel, root.ChannelID, root.TS, s.opts.Now().UTC())
	if err != nil {
		return fmt.Errorf("postgres: set slack root: %w", mapErr(err))
	}
	return nil
}

// RememberSignature implements store.SlackState. Replicas share the table,
// so a request replayed to another replica is recognised too.
func (s *Store) RememberSignature(ctx context.Context, signature string, at time.Time, keep time.Duration) (bool, error) {
	fresh := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM slack_signatures WHERE expires_at <= $1`, at.UTC()); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO slack_signatures (signature, expires_at) VALUES ($1, $2)
			ON CONFLICT (signature) DO NOTHING`, signature, at.Add(keep).UTC())
		fresh = tag.RowsAffected() == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("postgres: remember slack signature: %w", mapErr(err))
	}
	return fresh, nil
}

// NotifyCursor implements store.SlackState.
func (s *Store) NotifyCursor(ctx context.Context, name string) (int64, bool, error) {
	var seq int64
	err := s.pool.QueryRow(ctx, `SELECT seq FROM notify_cursors WHERE name = $1`, name).Scan(&seq)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("postgres: notify cursor: %w", mapErr(err))
	}
	return seq, true, nil
}

// SetNotifyCursor implements store.SlackState.
func (s *Store) SetNotifyCursor(ctx context.Context, name string, seq int64) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO notify_cursors (name, seq, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at`,
		name, seq, s.opts.Now().UTC())
	if err != nil {
		return fmt.Errorf("postgres: set notify cursor: %w", mapErr(err))
	}
	return nil
}
