package storetest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/store"
)

// Slack runs the tests of store.SlackState as subtests of t.
func Slack(t *testing.T, b Backend) {
	t.Run("SlackRoots", func(t *testing.T) {
		ctx := context.Background()
		s := b.Open(t, b.NewDSN(t))
		defer s.Close()
		r, err := s.RootTS(ctx, "inc-1", "#incidents")
		if err != nil || r != (store.SlackRoot{}) {
			t.Fatalf("no root yet: %+v, %v", r, err)
		}
		want := store.SlackRoot{ChannelID: "C0123", TS: "1764118802.000100"}
		if err := s.SetRootTS(ctx, "inc-1", "#incidents", want); err != nil {
			t.Fatal(err)
		}
		if err := s.SetRootTS(ctx, "inc-1", "#incidents-p0", store.SlackRoot{ChannelID: "C0999", TS: "1.2"}); err != nil {
			t.Fatal(err)
		}
		if r, err := s.RootTS(ctx, "inc-1", "#incidents"); err != nil || r != want {
			t.Fatalf("root: %+v, %v; want %+v", r, err, want)
		}
		if r, err := s.RootTS(ctx, "inc-2", "#incidents"); err != nil || r != (store.SlackRoot{}) {
			t.Fatalf("other incident: %+v, %v", r, err)
		}
		// Replaced, e.g. after the root message was deleted in Slack.
		want.TS = "1764118900.000200"
		if err := s.SetRootTS(ctx, "inc-1", "#incidents", want); err != nil {
			t.Fatal(err)
		}
		if r, err := s.RootTS(ctx, "inc-1", "#incidents"); err != nil || r != want {
			t.Fatalf("replaced root: %+v, %v; want %+v", r, err, want)
		}
	})
	t.Run("NotifyCursor", func(t *testing.T) {
		ctx := context.Background()
		dsn := b.NewDSN(t)
		s := b.Open(t, dsn)
		if seq, ok, err := s.NotifyCursor(ctx, "slack"); err != nil || ok || seq != 0 {
			t.Fatalf("no cursor yet: %d %v %v", seq, ok, err)
		}
		// Zero is a cursor too (an empty trail), not "none".
		if err := s.SetNotifyCursor(ctx, "slack", 0); err != nil {
			t.Fatal(err)
		}
		if seq, ok, err := s.NotifyCursor(ctx, "slack"); err != nil || !ok || seq != 0 {
			t.Fatalf("cursor 0: %d %v %v", seq, ok, err)
		}
		for _, seq := range []int64{41, 1 << 40} {
			if err := s.SetNotifyCursor(ctx, "slack", seq); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.SetNotifyCursor(ctx, "teams", 7); err != nil {
			t.Fatal(err)
		}
		s.Close()
		// Kept across a restart.
		s = b.Open(t, dsn)
		defer s.Close()
		if seq, ok, err := s.NotifyCursor(ctx, "slack"); err != nil || !ok || seq != 1<<40 {
			t.Fatalf("slack cursor after reopen: %d %v %v", seq, ok, err)
		}
		if seq, ok, err := s.NotifyCursor(ctx, "teams"); err != nil || !ok || seq != 7 {
			t.Fatalf("teams cursor: %d %v %v", seq, ok, err)
		}
	})
	t.Run("SlackSignatures", func(t *testing.T) {
		ctx := context.Background()
		s := b.Open(t, b.NewDSN(t))
		defer s.Close()
		at := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
		keep := 5 * time.Minute
		remember := func(sig string, at time.Time) bool {
			t.Helper()
			fresh, err := s.RememberSignature(ctx, sig, at, keep)
			if err != nil {
				t.Fatal(err)
			}
			return fresh
		}
		if !remember("v0=aa", at) {
			t.Fatal("first sight is not fresh")
		}
		if remember("v0=aa", at.Add(time.Minute)) {
			t.Fatal("a replay within the window is fresh")
		}
		if !remember("v0=bb", at.Add(time.Minute)) {
			t.Fatal("another signature is not fresh")
		}
		if !remember("v0=aa", at.Add(keep+time.Second)) {
			t.Fatal("an expired signature is still remembered")
		}
		// Concurrent copies of one request: exactly one is fresh.
		var fresh atomic.Int32
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				ok, err := s.RememberSignature(ctx, "v0=cc", at.Add(2*time.Minute), keep)
				if err != nil {
					t.Error(err)
				}
				if ok {
					fresh.Add(1)
				}
			})
		}
		wg.Wait()
		if fresh.Load() != 1 {
			t.Fatalf("%d of 10 concurrent copies were fresh, want 1", fresh.Load())
		}
	})
}
