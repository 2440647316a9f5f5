package slack

import (
	"context"
	"errors"
	"net/http"

	slackgo "github.com/slack-go/slack"

	"github.com/remediator/remediator/internal/notify"
)

// transient are Slack Web API errors worth retrying.
var transient = map[string]bool{
	"internal_error": true, "fatal_error": true, "service_unavailable": true, "request_timeout": true,
	"ratelimited": true, "team_added_to_org": true,
}

// classify wraps a Slack error in the outbox's terms: *notify.RetryAfter
// for a 429 with Retry-After, *notify.Retryable for what may pass later
// (network, 5xx, Slack's internal errors, a 429 without Retry-After),
// *notify.Permanent for what will not (bad token, unknown or archived
// channel, missing scope, blocks Slack refuses).
func classify(err error) error {
	if err == nil {
		return nil
	}
	var (
		rl *slackgo.RateLimitedError
		sc slackgo.StatusCodeError
		se slackgo.SlackErrorResponse
	)
	switch {
	case errors.As(err, &rl):
		return &notify.RetryAfter{After: rl.RetryAfter, Err: err}
	case errors.As(err, &sc):
		if sc.Code == http.StatusTooManyRequests || sc.Code >= 500 || sc.Code == http.StatusRequestTimeout {
			return &notify.Retryable{Err: err}
		}
		return &notify.Permanent{Err: err}
	case errors.As(err, &se):
		if transient[se.Err] {
			return &notify.Retryable{Err: err}
		}
		return &notify.Permanent{Err: err}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &notify.Retryable{Err: err}
	}
	// Network errors, a response that could not be read, the store.
	return &notify.Retryable{Err: err}
}

// rootGone reports errors of chat.update meaning the root message is no
// longer there to update (someone deleted it): post a new one.
func rootGone(err error) bool {
	var se slackgo.SlackErrorResponse
	return errors.As(err, &se) && (se.Err == "message_not_found" || se.Err == "cant_update_message" || se.Err == "channel_not_found")
}
