package slack

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	slackgo "github.com/slack-go/slack"
)

// Secret reads a secret (a bot token, a signing secret, a webhook URL),
// e.g. server.SecretFile.Value, which re-reads its file when it changes.
type Secret func() ([]byte, error)

// StaticSecret is a Secret that never changes (tests).
func StaticSecret(s string) Secret { return func() ([]byte, error) { return []byte(s), nil } }

// Client is the Slack Web API with a bot token that may be rotated: each
// call uses the token as it is now.
type Client struct {
	// Token is the bot token (xoxb-…).
	Token Secret
	// APIURL is the Web API's base URL, ending in "/" (default
	// https://slack.com/api/); tests point it at a loopback stand-in.
	APIURL string
	// HTTP is the HTTP client (default: 10 s timeout). No retries happen
	// here: a 429 is returned as *notify.RetryAfter for the outbox.
	HTTP *http.Client

	mu    sync.Mutex
	token string
	api   *slackgo.Client
}

func (c *Client) client() (*slackgo.Client, error) {
	if c.Token == nil {
		return nil, errors.New("slack: no bot token configured")
	}
	tok, err := c.Token()
	if err != nil && len(tok) == 0 {
		return nil, err
	}
	t := strings.TrimSpace(string(tok))
	if t == "" {
		return nil, errors.New("slack: the bot token is empty")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.api == nil || c.token != t {
		hc := c.HTTP
		if hc == nil {
			hc = &http.Client{Timeout: 10 * time.Second}
		}
		u := c.APIURL
		if u == "" {
			u = slackgo.APIURL
		}
		c.api, c.token = slackgo.New(t, slackgo.OptionAPIURL(u), slackgo.OptionHTTPClient(hc)), t
	}
	return c.api, nil
}

// UserGroupMembers lists the members of a user group
// (usergroups.users.list; scope usergroups:read).
func (c *Client) UserGroupMembers(ctx context.Context, group string) ([]string, error) {
	api, err := c.client()
	if err != nil {
		return nil, err
	}
	return api.GetUserGroupMembersContext(ctx, group)
}
