package slack

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	slackgo "github.com/slack-go/slack"

	"github.com/remediator/remediator/internal/notify"
)

// Ids of the Approve/Reject buttons and of the block that holds them. The
// buttons' value is the incident id.
const (
	ActionApprove = "remediator_approve"
	ActionReject  = "remediator_reject"
	BlockDecision = "remediator_decision"
)

// Message is one Slack message: Block Kit blocks and the plain-text
// fallback that notifications and screen readers show.
type Message struct {
	Text   string          `json:"text"`
	Blocks []slackgo.Block `json:"blocks"`
	// Broadcast also shows a thread reply in the channel (escalations).
	Broadcast bool `json:"reply_broadcast,omitempty"`
}

// Renderer turns notifications into Slack messages.
type Renderer struct {
	// Mentions open escalations, by priority ("<!subteam^S123>", "<@U123>").
	Mentions map[string]string
	// Buttons puts Approve/Reject on proposals (a bot token, a signing
	// secret and approvers are configured); without them a proposal says
	// how to approve through the API.
	Buttons bool
}

// Slack limits: header text 150 characters, section text 3000.
const (
	maxHeader  = 150
	maxSection = 2900
)

var priorityEmoji = map[string]string{
	"P0": ":red_circle:", "P1": ":large_orange_circle:", "P2": ":large_yellow_circle:", "P3": ":large_blue_circle:",
}

var statusEmoji = map[notify.Status]string{
	notify.StatusFiring: ":fire:", notify.StatusAwaiting: ":raised_hand:", notify.StatusRemediating: ":hammer_and_wrench:",
	notify.StatusVerified: ":white_check_mark:", notify.StatusFailed: ":x:", notify.StatusEscalated: ":rotating_light:",
	notify.StatusResolved: ":heavy_check_mark:",
}

var kindEmoji = map[notify.Kind]string{
	notify.KindFiring: ":fire:", notify.KindUnmatched: ":grey_question:", notify.KindDiagnosis: ":mag:",
	notify.KindPlan: ":clipboard:", notify.KindProposal: ":raised_hand:", notify.KindApproved: ":thumbsup:",
	notify.KindRejected: ":no_entry_sign:", notify.KindExpired: ":hourglass:", notify.KindBlocked: ":no_entry:",
	notify.KindApplied: ":hammer_and_wrench:", notify.KindRolledOut: ":arrows_counterclockwise:",
	notify.KindVerified: ":white_check_mark:", notify.KindIneffective: ":warning:", notify.KindFailed: ":x:",
	notify.KindReconciled: ":link:", notify.KindEscalated: ":rotating_light:", notify.KindResolved: ":heavy_check_mark:",
}

// showChange lists the kinds whose reply quotes the exact change.
var showChange = map[notify.Kind]bool{
	notify.KindPlan: true, notify.KindProposal: true, notify.KindBlocked: true, notify.KindApplied: true,
	notify.KindFailed: true, notify.KindIneffective: true, notify.KindVerified: true,
}

// Root is the incident's root message, as the incident stands after n:
// alert, target, priority, status, the change, links. A bot posts it once
// per incident and channel and updates it in place.
func (r Renderer) Root(n notify.Notification) Message {
	blocks := []slackgo.Block{
		slackgo.NewHeaderBlock(plain(clip(strings.TrimSpace(priorityEmoji[n.Priority]+" "+headline(n)), maxHeader))),
	}
	if n.Alert.Summary != "" {
		blocks = append(blocks, slackgo.NewSectionBlock(mrkdwn(clip(esc(n.Alert.Summary), maxSection)), nil, nil))
	}
	fields := []*slackgo.TextBlockObject{
		mrkdwn("*Status*\n" + statusEmoji[n.Status] + " " + n.Status.Label()),
		mrkdwn("*Priority*\n" + priorityBadge(n.Priority)),
	}
	if n.Target != "" {
		fields = append(fields, mrkdwn("*Target*\n"+esc(n.Target)))
	} else if n.Namespace != "" {
		fields = append(fields, mrkdwn("*Namespace*\n"+esc(n.Namespace)))
	}
	if !n.Alert.StartsAt.IsZero() {
		fields = append(fields, mrkdwn("*Started*\n"+date(n.Alert.StartsAt)))
	}
	blocks = append(blocks, slackgo.NewSectionBlock(nil, fields, nil))
	if n.Change != "" {
		blocks = append(blocks, slackgo.NewSectionBlock(mrkdwn(clip("*Change* `"+esc(n.Change)+"`", maxSection)), nil, nil))
	}
	if ctx := linkContext(n); ctx != nil {
		blocks = append(blocks, ctx)
	}
	text := fmt.Sprintf("%s %s: %s", priorityTag(n.Priority), headline(n), n.Status.Label())
	return Message{Text: strings.TrimSpace(text), Blocks: blocks}
}

// Reply is the short thread reply of one step. ok is false for the first
// notification (firing): its root message says it all.
func (r Renderer) Reply(n notify.Notification) (Message, bool) {
	if n.Kind == notify.KindFiring {
		return Message{}, false
	}
	return r.step(n, r.Buttons), true
}

// Webhook is the one message an incoming webhook posts for n: no thread
// to reply in and no buttons, so each message names its incident.
func (r Renderer) Webhook(n notify.Notification) Message {
	if n.Kind == notify.KindFiring {
		return r.Root(n)
	}
	m := r.step(n, false)
	head := slackgo.NewContextBlock("", mrkdwn(fmt.Sprintf("%s *%s* · %s %s",
		priorityBadge(n.Priority), esc(headline(n)), statusEmoji[n.Status], n.Status.Label())))
	m.Blocks = append([]slackgo.Block{head}, m.Blocks...)
	m.Broadcast = false
	if ctx := linkContext(n); ctx != nil {
		m.Blocks = append(m.Blocks, ctx)
	}
	return m
}

// step is the body of a reply: what happened, the change, why, a few
// supporting lines; the buttons of a proposal.
func (r Renderer) step(n notify.Notification, buttons bool) Message {
	var b strings.Builder
	mention := ""
	if n.Kind == notify.KindEscalated {
		mention = r.Mentions[n.Priority]
	}
	if mention != "" {
		b.WriteString(mention + " ")
	}
	b.WriteString(kindEmoji[n.Kind] + " *" + esc(n.Title) + "*")
	if n.Change != "" && showChange[n.Kind] {
		b.WriteString("\n`" + esc(n.Change) + "`")
	}
	if n.Summary != "" {
		b.WriteString("\n" + esc(n.Summary))
	}
	if n.Reason != "" {
		b.WriteString("\n_" + esc(n.Reason) + "_")
	}
	for _, l := range n.Bullets {
		b.WriteString("\n• " + esc(l))
	}
	blocks := []slackgo.Block{slackgo.NewSectionBlock(mrkdwn(clip(b.String(), maxSection)), nil, nil)}

	var notes []slackgo.MixedElement
	if n.Actor != "" && n.Actor != "remediator" && n.Kind != notify.KindApproved && n.Kind != notify.KindRejected {
		notes = append(notes, mrkdwn("by "+esc(n.Actor)))
	}
	if n.Kind == notify.KindProposal {
		if !n.ExpiresAt.IsZero() {
			notes = append(notes, mrkdwn("expires "+date(n.ExpiresAt)))
		}
		if !buttons || len(n.Actions) == 0 {
			notes = append(notes, mrkdwn("approve with `POST /api/v1/incidents/"+esc(n.IncidentID)+"/approve`"))
		}
	}
	if len(notes) > 0 {
		blocks = append(blocks, slackgo.NewContextBlock("", notes...))
	}
	if buttons && n.Kind == notify.KindProposal && len(n.Actions) > 0 {
		blocks = append(blocks, decisionButtons(n))
	}
	text := fmt.Sprintf("%s %s: %s", priorityTag(n.Priority), n.Alert.Name, n.Title)
	if n.Change != "" && showChange[n.Kind] {
		text += ": " + n.Change
	}
	if mention != "" {
		text = mention + " " + text
	}
	return Message{Text: strings.TrimSpace(text), Blocks: blocks, Broadcast: n.Kind == notify.KindEscalated}
}

func decisionButtons(n notify.Notification) slackgo.Block {
	var elems []slackgo.BlockElement
	for _, a := range n.Actions {
		id := map[string]string{notify.ActionApprove: ActionApprove, notify.ActionReject: ActionReject}[a.ID]
		if id == "" {
			continue
		}
		btn := slackgo.NewButtonBlockElement(id, a.Value, plain(a.Label))
		switch a.Style {
		case "primary":
			btn = btn.WithStyle(slackgo.StylePrimary)
		case "danger":
			btn = btn.WithStyle(slackgo.StyleDanger)
		}
		if a.ID == notify.ActionApprove {
			btn = btn.WithConfirm(slackgo.NewConfirmationBlockObject(plain("Approve this change?"),
				mrkdwn(clip("`"+esc(n.Change)+"`\nThe guards run again before anything changes.", 300)),
				plain("Approve"), plain("Cancel")))
		}
		elems = append(elems, btn)
	}
	return slackgo.NewActionBlock(BlockDecision, elems...)
}

func linkContext(n notify.Notification) slackgo.Block {
	var parts []string
	for _, l := range n.Links {
		label := l.Label
		if l.Label == notify.LinkIncident && len(n.IncidentID) >= 8 {
			label = "Incident " + n.IncidentID[:8]
		}
		parts = append(parts, "<"+escURL(l.URL)+"|"+esc(label)+">")
	}
	if n.Policy != "" {
		parts = append(parts, "policy "+esc(n.Policy))
	}
	if len(parts) == 0 {
		return nil
	}
	return slackgo.NewContextBlock("", mrkdwn(strings.Join(parts, " · ")))
}

// headline names the incident: "HighErrorRate · prod/platform-service".
func headline(n notify.Notification) string {
	where := n.Namespace
	if n.Target != "" {
		where = n.Target
		if _, obj, ok := strings.Cut(n.Target, " "); ok {
			where = obj
		}
	}
	if where == "" {
		return n.Alert.Name
	}
	return n.Alert.Name + " · " + where
}

func priorityBadge(p string) string {
	if e, ok := priorityEmoji[p]; ok {
		return e + " " + p
	}
	return "—"
}

func priorityTag(p string) string {
	if p == "" {
		return ""
	}
	return "[" + p + "]"
}

// date is a Slack date token: shown in the reader's time zone, with a UTC
// fallback.
func date(t time.Time) string {
	return fmt.Sprintf("<!date^%d^{date_short_pretty} {time}|%s>", t.Unix(), t.UTC().Format("2006-01-02 15:04 UTC"))
}

func plain(s string) *slackgo.TextBlockObject {
	return slackgo.NewTextBlockObject(slackgo.PlainTextType, s, true, false)
}

func mrkdwn(s string) *slackgo.TextBlockObject {
	return slackgo.NewTextBlockObject(slackgo.MarkdownType, s, false, false)
}

// esc escapes the three characters Slack's mrkdwn reserves, so text from
// alerts and the cluster cannot form links or mentions.
func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// escURL keeps a URL from closing its <url|label> link.
func escURL(u string) string {
	return strings.NewReplacer("<", "%3C", ">", "%3E", "|", "%7C", " ", "%20").Replace(u)
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// PlainText is the message as text, block by block, for logs and the
// demo's LogSender.
func (m Message) PlainText() string {
	var lines []string
	add := func(t *slackgo.TextBlockObject) {
		if t != nil && t.Text != "" {
			lines = append(lines, t.Text)
		}
	}
	for _, b := range m.Blocks {
		switch b := b.(type) {
		case *slackgo.HeaderBlock:
			add(b.Text)
		case *slackgo.SectionBlock:
			add(b.Text)
			var fs []string
			for _, f := range b.Fields {
				fs = append(fs, strings.ReplaceAll(f.Text, "\n", " "))
			}
			if len(fs) > 0 {
				lines = append(lines, strings.Join(fs, " | "))
			}
		case *slackgo.ContextBlock:
			var es []string
			for _, e := range b.ContextElements.Elements {
				if t, ok := e.(*slackgo.TextBlockObject); ok {
					es = append(es, t.Text)
				}
			}
			lines = append(lines, strings.Join(es, " · "))
		case *slackgo.ActionBlock:
			var bs []string
			if b.Elements != nil {
				for _, e := range b.Elements.ElementSet {
					if btn, ok := e.(*slackgo.ButtonBlockElement); ok && btn.Text != nil {
						bs = append(bs, "["+btn.Text.Text+"]")
					}
				}
			}
			lines = append(lines, strings.Join(bs, " "))
		default:
			j, _ := json.Marshal(b)
			lines = append(lines, string(j))
		}
	}
	return strings.Join(lines, "\n")
}
