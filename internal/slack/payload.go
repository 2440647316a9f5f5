package slack

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
)

// Interaction is what remediator reads of an interaction payload (a
// block_actions request: someone clicked a button).
type Interaction struct {
	Type string `json:"type"`
	User User   `json:"user"`
	Team struct {
		ID string `json:"id"`
	} `json:"team"`
	Channel struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"channel"`
	ResponseURL string        `json:"response_url"`
	Actions     []BlockAction `json:"actions"`
	Message     struct {
		TS     string          `json:"ts"`
		Blocks json.RawMessage `json:"blocks"`
	} `json:"message"`
}

// User is the person who clicked.
type User struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	Name     string `json:"name"`
	TeamID   string `json:"team_id"`
}

// BlockAction is one clicked element.
type BlockAction struct {
	ActionID string `json:"action_id"`
	BlockID  string `json:"block_id"`
	Value    string `json:"value"`
	Type     string `json:"type"`
}

// Limits of a payload remediator accepts.
const (
	maxPayload = 1 << 20
	maxActions = 25
)

var (
	userIDRE     = regexp.MustCompile(`^[UW][A-Z0-9]{2,30}$`)
	incidentIDRE = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z_-]{0,63}$`)
)

// DecodeInteraction reads an interaction request's body: a form whose
// "payload" field is JSON. It checks what remediator relies on: a user id
// of Slack's form, at most 25 actions. It never panics, whatever the bytes
// (FuzzDecodeInteraction).
func DecodeInteraction(body []byte) (Interaction, error) {
	var in Interaction
	if len(body) > maxPayload {
		return in, fmt.Errorf("payload larger than %d bytes", maxPayload)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return in, fmt.Errorf("not a form: %w", err)
	}
	payload := form.Get("payload")
	if payload == "" {
		return in, errors.New(`no "payload" field`)
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(payload)))
	if err := dec.Decode(&in); err != nil {
		return Interaction{}, fmt.Errorf("payload: %w", err)
	}
	if dec.More() {
		return Interaction{}, errors.New("payload: data after the JSON object")
	}
	switch {
	case in.Type == "":
		return Interaction{}, errors.New("payload: no type")
	case !userIDRE.MatchString(in.User.ID):
		return Interaction{}, fmt.Errorf("payload: user id %q is not a Slack user id", clip(in.User.ID, 40))
	case len(in.Actions) > maxActions:
		return Interaction{}, fmt.Errorf("payload: %d actions, at most %d", len(in.Actions), maxActions)
	}
	return in, nil
}

// Decision is the approve/reject an interaction asks for.
type Decision struct {
	IncidentID string
	Approve    bool
}

// Decision returns the Approve/Reject click of a block_actions payload;
// ok is false when it holds none (another app's button, a view, ...).
func (in Interaction) Decision() (d Decision, ok bool, err error) {
	if in.Type != "block_actions" {
		return Decision{}, false, nil
	}
	for _, a := range in.Actions {
		if a.ActionID != ActionApprove && a.ActionID != ActionReject {
			continue
		}
		if !incidentIDRE.MatchString(a.Value) {
			return Decision{}, false, fmt.Errorf("button value %q is not an incident id", clip(a.Value, 70))
		}
		return Decision{IncidentID: a.Value, Approve: a.ActionID == ActionApprove}, true, nil
	}
	return Decision{}, false, nil
}

// Actor is the clicking user as recorded on the timeline:
// "slack:U123 (alice)". The name is Slack's, cleaned of control characters
// and bounded.
func (u User) Actor() string {
	name := u.Username
	if name == "" {
		name = u.Name
	}
	clean := []rune{}
	for _, r := range name {
		if r >= 0x20 && r != 0x7f && r != '(' && r != ')' && (r < 0x80 || r > 0x9f) && r != 0x2028 && r != 0x2029 {
			clean = append(clean, r)
		}
	}
	name = clip(string(clean), 60)
	if name == "" {
		return "slack:" + u.ID
	}
	return "slack:" + u.ID + " (" + name + ")"
}
