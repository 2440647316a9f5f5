// Package slack tells people in Slack what remediator does about an
// incident, and lets approvers decide its proposals with a button.
//
// Renderer turns a notify.Notification into Block Kit messages: a ROOT
// message per incident and channel (alert, target, priority, status, the
// change, links), updated in place when the status or priority changes, and
// a short THREAD reply per step (diagnosis, plan, proposal with
// Approve/Reject, guard blocks, outcome, verification, escalation with the
// on-call mention). testdata/*.json are the golden files of every step.
//
// Three Deliverers (notify.Deliverer) send them; the Feed, which follows
// the audit trail on the leader, calls Deliver and retries from its typed
// errors:
//   - Sender, with a bot token: chat.postMessage for the root (its ts kept
//     in a ThreadStore per incident and channel), chat.update to update it,
//     replies with thread_ts = the root's ts; channels chosen by Routes.
//   - WebhookSender, with an incoming-webhook URL: one message per step, no
//     threads, no buttons.
//   - LogSender writes the messages as text (make demo without Slack).
//
// Interactions serves POST /slack/interactions: it verifies Slack's
// signature, refuses stale and replayed requests, checks the clicking user
// is an approver (user ids, or members of user groups), acknowledges at
// once and then calls the executor's Decide (the guards run again before
// anything changes).
//
// Feed delivers: it reads the audit trail after its cursor (kept in the
// store), in seq order, and delivers each notable event of an incident,
// retrying a failing one before any later one.
package slack
