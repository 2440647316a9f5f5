package slack

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Approvers says who may approve or reject from Slack: the users listed,
// and the members of the user groups listed (read with
// usergroups.users.list, kept for TTL). Nobody when both are empty. When a
// group's members cannot be read, its members are not allowed (fail
// closed) and the error says why.
type Approvers struct {
	Users      []string
	Usergroups []string
	// Members lists a user group's members (Client.UserGroupMembers).
	Members func(ctx context.Context, group string) ([]string, error)
	// TTL is how long a group's members are kept (default 5m): a person
	// removed from a group may still approve for that long.
	TTL time.Duration
	Now func() time.Time

	mu    sync.Mutex
	cache map[string]members
}

type members struct {
	ids map[string]bool
	at  time.Time
}

// Allowed reports whether user may decide, and why (for the record).
func (a *Approvers) Allowed(ctx context.Context, user string) (bool, string, error) {
	if slices.Contains(a.Users, user) {
		return true, "listed in slack.approvers.users", nil
	}
	var errs []error
	for _, g := range a.Usergroups {
		ids, err := a.members(ctx, g)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ids[user] {
			return true, "member of user group " + g, nil
		}
	}
	if len(errs) > 0 {
		return false, "", fmt.Errorf("could not check user group membership: %w", errs[0])
	}
	if len(a.Users)+len(a.Usergroups) == 0 {
		return false, "no approvers are configured (slack.approvers)", nil
	}
	return false, "not in slack.approvers (users or user groups)", nil
}

func (a *Approvers) members(ctx context.Context, group string) (map[string]bool, error) {
	now := time.Now()
	if a.Now != nil {
		now = a.Now()
	}
	ttl := a.TTL
	if ttl <= 0 {
		ttl = 5 * time.Minute
	}
	a.mu.Lock()
	c, ok := a.cache[group]
	a.mu.Unlock()
	if ok && now.Sub(c.at) < ttl {
		return c.ids, nil
	}
	if a.Members == nil {
		return nil, fmt.Errorf("user group %s: no Slack API to read its members", group)
	}
	list, err := a.Members(ctx, group)
	if err != nil {
		return nil, fmt.Errorf("user group %s: %w", group, err)
	}
	ids := make(map[string]bool, len(list))
	for _, u := range list {
		ids[u] = true
	}
	a.mu.Lock()
	if a.cache == nil {
		a.cache = map[string]members{}
	}
	a.cache[group] = members{ids: ids, at: now}
	a.mu.Unlock()
	return ids, nil
}

// Mentions lists the approvers as Slack mentions ("<@U1>, <!subteam^S2>").
func (a *Approvers) Mentions() []string {
	var out []string
	for _, u := range a.Users {
		out = append(out, "<@"+u+">")
	}
	for _, g := range a.Usergroups {
		out = append(out, "<!subteam^"+g+">")
	}
	return out
}
