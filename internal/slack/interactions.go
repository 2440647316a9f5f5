package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	slackgo "github.com/slack-go/slack"
	"go.uber.org/zap"

	"github.com/remediator/remediator/internal/store"
)

// InteractionsPath is where Slack sends button clicks (the app's
// Interactivity Request URL). It must not sit behind the service's bearer
// or basic auth: Slack signs its requests instead.
const InteractionsPath = "/slack/interactions"

// MaxAge is how old a request's timestamp may be (Slack's advice): older
// requests are refused as possible replays, and newer ones are remembered
// by signature for as long, so each is accepted once.
const MaxAge = 5 * time.Minute

// ActorUnverified is the actor recorded for requests that could not be
// attributed to a Slack user (bad signature, stale, malformed).
const ActorUnverified = "slack:unverified"

// Decider approves or rejects an incident's pending proposal; the
// executor's Decide (the guards run again before anything changes).
type Decider interface {
	Decide(ctx context.Context, incidentID string, approve bool, by, reason string) (store.Proposal, error)
}

// Recorder records a refused decision attempt. incidentID is "" when the
// request could not be attributed (a bad signature, a stale or malformed
// request: anyone can send those, so a recorder should log and count them
// rather than write them to a timeline); otherwise the request came from
// Slack and names a real incident and user (not an approver, or a replay
// of Slack's request).
type Recorder interface {
	Refused(ctx context.Context, incidentID, actor, why string)
}

// RecorderFunc adapts a function to Recorder.
type RecorderFunc func(ctx context.Context, incidentID, actor, why string)

// Refused calls f.
func (f RecorderFunc) Refused(ctx context.Context, incidentID, actor, why string) {
	f(ctx, incidentID, actor, why)
}

// Kicker is told when an approval scheduled work (the worker).
type Kicker interface{ Kick() }

// Interactions serves POST /slack/interactions. In order, it refuses
// requests: larger than 1 MiB; without a timestamp within MaxAge of now;
// whose signature (HMAC-SHA256 of "v0:timestamp:body" with the signing
// secret) does not match; seen before (Replay); whose payload it cannot
// read. It then answers Slack at once (Slack wants an answer within 3 s)
// and, in the background, checks the user is an approver and calls
// Decide; the user is told the outcome through the response_url (an
// ephemeral message, or the proposal's message with its buttons replaced
// by who decided). Every refusal is passed to Recorder. Without Replay, a
// MemoryReplay is used (one replica only).
type Interactions struct {
	SigningSecret Secret
	Replay        ReplayStore
	Approvers     *Approvers
	Decider       Decider
	Recorder      Recorder
	Kicker        Kicker
	// HTTP posts to response_urls (default: 10 s timeout).
	HTTP *http.Client
	// AllowResponseURL vets a response_url before it is posted to
	// (default: https on slack.com).
	AllowResponseURL func(string) bool
	Now              func() time.Time
	Log              *zap.Logger
	// MaxInFlight bounds the decisions being made at once (default 16);
	// beyond it a click is refused with "try again".
	MaxInFlight int
	// DecideTimeout bounds the background work of one click (default 30s).
	DecideTimeout time.Duration

	once sync.Once
	sem  chan struct{}
	wg   sync.WaitGroup
}

// Mount adds the route to r (outside the API's authentication).
func (h *Interactions) Mount(r chi.Router) { r.Post(InteractionsPath, h.ServeHTTP) }

// Wait waits for the decisions in the background to finish (shutdown).
func (h *Interactions) Wait() { h.wg.Wait() }

func (h *Interactions) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *Interactions) log() *zap.Logger {
	if h.Log != nil {
		return h.Log
	}
	return zap.NewNop()
}

func (h *Interactions) refuse(ctx context.Context, incidentID, actor, why string) {
	h.log().Warn("slack interaction refused", zap.String("incident", incidentID), zap.String("actor", actor), zap.String("why", why))
	if h.Recorder != nil {
		h.Recorder.Refused(ctx, incidentID, actor, why)
	}
}

func (h *Interactions) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.once.Do(func() {
		n := h.MaxInFlight
		if n <= 0 {
			n = 16
		}
		h.sem = make(chan struct{}, n)
		if h.Replay == nil {
			h.Replay = &MemoryReplay{}
		}
	})
	if h.Decider == nil {
		http.Error(w, "approvals from Slack are not configured", http.StatusServiceUnavailable)
		return
	}
	ctx := r.Context()
	deny := func(status int, incidentID, actor, why string) {
		h.refuse(ctx, incidentID, actor, why)
		http.Error(w, why, status)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPayload))
	if err != nil {
		deny(http.StatusRequestEntityTooLarge, "", ActorUnverified, "request body unreadable or larger than 1 MiB")
		return
	}

	// 1. Fresh: a timestamp within MaxAge (also in the future: clocks skew).
	sent, err := strconv.ParseInt(r.Header.Get("X-Slack-Request-Timestamp"), 10, 64)
	if err != nil {
		deny(http.StatusUnauthorized, "", ActorUnverified, "no valid X-Slack-Request-Timestamp header")
		return
	}
	now := h.now()
	if age := now.Sub(time.Unix(sent, 0)); age > MaxAge || age < -MaxAge {
		deny(http.StatusUnauthorized, "", ActorUnverified, fmt.Sprintf("stale request: timestamp %s is %s from now (at most %s): refused as a possible replay",
			time.Unix(sent, 0).UTC().Format(time.RFC3339), age.Round(time.Second), MaxAge))
		return
	}

	// 2. Signed by Slack with our signing secret.
	secret, serr := h.secret()
	if serr != nil {
		h.log().Error("slack signing secret unavailable: refusing interactions", zap.Error(serr))
		http.Error(w, "signing secret unavailable", http.StatusServiceUnavailable)
		return
	}
	sv, err := slackgo.NewSecretsVerifier(r.Header, secret)
	if err == nil {
		_, _ = sv.Write(body)
		err = sv.Ensure()
	}
	if err != nil {
		deny(http.StatusUnauthorized, "", ActorUnverified, "bad signature: "+err.Error())
		return
	}

	// Authentic from here on: the payload is Slack's.
	in, perr := DecodeInteraction(body)
	var d Decision
	var mine bool
	if perr == nil {
		d, mine, perr = in.Decision()
	}

	// 3. Once: a signature seen within the window is a replay.
	// Canonical form: the verifier reads the hex case-insensitively, so
	// "v0=AB…" would otherwise replay "v0=ab…".
	sig := strings.ToLower(strings.TrimSpace(r.Header.Get("X-Slack-Signature")))
	fresh, err := h.Replay.RememberSignature(ctx, sig, now, 2*MaxAge)
	switch {
	case err != nil:
		h.log().Error("cannot check slack interaction for replay: refusing it", zap.Error(err))
		deny(http.StatusServiceUnavailable, d.IncidentID, actorOf(in, perr), "cannot check for a replay: "+err.Error())
		return
	case !fresh:
		deny(http.StatusUnauthorized, d.IncidentID, actorOf(in, perr), "replayed request: this signed request was already received")
		return
	}

	if perr != nil {
		deny(http.StatusBadRequest, "", ActorUnverified, "malformed interaction payload: "+perr.Error())
		return
	}
	if !mine {
		w.WriteHeader(http.StatusOK) // not an Approve/Reject click: nothing to do
		return
	}
	select {
	case h.sem <- struct{}{}:
	default:
		// Slack marks the button as failed: the user sees to try again.
		h.refuse(ctx, d.IncidentID, in.User.Actor(), "too many decisions in flight")
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	// 4. Ack now; decide in the background.
	w.WriteHeader(http.StatusOK)
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer func() { <-h.sem }()
		timeout := h.DecideTimeout
		if timeout <= 0 {
			timeout = 30 * time.Second
		}
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		h.decide(bctx, in, d)
	}()
}

func actorOf(in Interaction, perr error) string {
	if perr != nil || in.User.ID == "" {
		return ActorUnverified
	}
	return in.User.Actor()
}

func (h *Interactions) secret() (string, error) {
	if h.SigningSecret == nil {
		return "", errors.New("no signing secret configured")
	}
	b, err := h.SigningSecret()
	s := strings.TrimSpace(string(b))
	if s == "" {
		if err == nil {
			err = errors.New("the signing secret is empty")
		}
		return "", err
	}
	return s, nil
}

// decide checks the user may decide and records the decision.
func (h *Interactions) decide(ctx context.Context, in Interaction, d Decision) {
	actor := in.User.Actor()
	approvers := h.Approvers
	if approvers == nil {
		approvers = &Approvers{}
	}
	ok, why, err := approvers.Allowed(ctx, in.User.ID)
	if err != nil {
		h.refuse(ctx, d.IncidentID, actor, "approver check failed: "+err.Error())
		h.ephemeral(ctx, in, "Could not check that you are an approver (Slack's user groups could not be read). Nothing was decided; try again, or use the API.")
		return
	}
	if !ok {
		h.refuse(ctx, d.IncidentID, actor, "not allowed to approve or reject from Slack: "+why)
		msg := "You are not allowed to approve or reject remediations; nothing was decided."
		if m := approvers.Mentions(); len(m) > 0 {
			msg += " Approvers: " + strings.Join(m, ", ") + "."
		}
		h.ephemeral(ctx, in, msg)
		return
	}
	p, err := h.Decider.Decide(ctx, d.IncidentID, d.Approve, actor, "in Slack ("+why+")")
	who := "<@" + in.User.ID + ">"
	switch {
	case err == nil:
		if d.Approve {
			if h.Kicker != nil {
				h.Kicker.Kick()
			}
			h.replace(ctx, in, ":thumbsup: Approved by "+who+": the guards run again before anything changes.")
		} else {
			h.replace(ctx, in, ":no_entry_sign: Rejected by "+who+": nothing will be done.")
		}
	case errors.Is(err, store.ErrNotFound):
		h.ephemeral(ctx, in, "This incident has no proposal to decide; nothing was done.")
	case errors.Is(err, store.ErrExpired):
		h.replace(ctx, in, ":hourglass: The proposal expired; nothing will be done.")
	case errors.Is(err, store.ErrConflict):
		msg := "This proposal is already " + p.State
		if p.DecidedBy != "" {
			msg += " (by " + esc(p.DecidedBy) + ")"
		}
		h.replace(ctx, in, ":information_source: "+msg+".")
	default:
		h.log().Error("slack decision not recorded", zap.String("incident", d.IncidentID), zap.String("actor", actor), zap.Error(err))
		h.ephemeral(ctx, in, "Your decision could not be recorded ("+esc(err.Error())+"). Nothing was decided; try again.")
	}
}

// ephemeral tells only the clicking user.
func (h *Interactions) ephemeral(ctx context.Context, in Interaction, text string) {
	h.respond(ctx, in, &slackgo.WebhookMessage{ResponseType: slackgo.ResponseTypeEphemeral, Text: text})
}

// replace rewrites the proposal's message: its buttons give way to who
// decided, so nobody clicks them again.
func (h *Interactions) replace(ctx context.Context, in Interaction, text string) {
	var blocks slackgo.Blocks
	if len(in.Message.Blocks) > 0 {
		if err := json.Unmarshal(in.Message.Blocks, &blocks); err != nil {
			blocks = slackgo.Blocks{}
		}
	}
	kept := []slackgo.Block{}
	for _, b := range blocks.BlockSet {
		if a, ok := b.(*slackgo.ActionBlock); ok && a.BlockID == BlockDecision {
			continue
		}
		kept = append(kept, b)
	}
	kept = append(kept, slackgo.NewContextBlock("", mrkdwn(text)))
	h.respond(ctx, in, &slackgo.WebhookMessage{ReplaceOriginal: true, Text: text, Blocks: &slackgo.Blocks{BlockSet: kept}})
}

func (h *Interactions) respond(ctx context.Context, in Interaction, msg *slackgo.WebhookMessage) {
	allow := h.AllowResponseURL
	if allow == nil {
		allow = slackResponseURL
	}
	if !allow(in.ResponseURL) {
		h.log().Warn("slack interaction: response_url refused; the user is not told", zap.String("responseURL", in.ResponseURL))
		return
	}
	hc := h.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	if err := slackgo.PostWebhookCustomHTTPContext(ctx, in.ResponseURL, hc, msg); err != nil {
		h.log().Warn("slack interaction: could not answer through response_url", zap.Error(err))
	}
}

// slackResponseURL accepts https URLs on slack.com.
func slackResponseURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" {
		return false
	}
	host := strings.ToLower(u.Hostname())
	return host == "slack.com" || strings.HasSuffix(host, ".slack.com")
}
