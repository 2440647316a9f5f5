package slack

import (
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

func form(payload string) []byte {
	return []byte(url.Values{"payload": {payload}}.Encode())
}

const samplePayload = `{"type":"block_actions","user":{"id":"U024BE7LH","username":"alice","name":"alice","team_id":"T0001"},
"team":{"id":"T0001"},"channel":{"id":"C0000001","name":"incidents"},"response_url":"https://hooks.slack.com/actions/T0001/1/x",
"message":{"ts":"1764118800.100003","blocks":[{"type":"section","text":{"type":"mrkdwn","text":"hi"}}]},
"actions":[{"action_id":"remediator_approve","block_id":"remediator_decision","value":"0193a1b2-0000-7000-8000-000000000001","type":"button"}]}`

func TestDecodeInteraction(t *testing.T) {
	in, err := DecodeInteraction(form(samplePayload))
	if err != nil {
		t.Fatal(err)
	}
	d, ok, err := in.Decision()
	if err != nil || !ok || !d.Approve || d.IncidentID != "0193a1b2-0000-7000-8000-000000000001" {
		t.Fatalf("decision %+v %v %v", d, ok, err)
	}
	if in.User.Actor() != "slack:U024BE7LH (alice)" || in.ResponseURL == "" || in.Message.TS == "" || len(in.Message.Blocks) == 0 {
		t.Errorf("interaction: %+v", in)
	}
	for name, body := range map[string]string{
		"no payload":   "x=1",
		"not json":     string(form("{")),
		"no type":      string(form(`{"user":{"id":"U1234"}}`)),
		"bad user":     string(form(`{"type":"block_actions","user":{"id":"alice"}}`)),
		"trailing":     string(form(`{"type":"block_actions","user":{"id":"U1234"}} {}`)),
		"bad form":     "payload=%zz",
		"many actions": string(form(`{"type":"block_actions","user":{"id":"U1234"},"actions":[` + strings.Repeat(`{},`, 25) + `{}]}`)),
	} {
		if _, err := DecodeInteraction([]byte(body)); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	in, _ = DecodeInteraction(form(strings.Replace(samplePayload, `"value":"0193a1b2-0000-7000-8000-000000000001"`, `"value":"../../x"`, 1)))
	if _, _, err := in.Decision(); err == nil {
		t.Error("a value that is no incident id was accepted")
	}
	in, _ = DecodeInteraction(form(strings.Replace(samplePayload, "remediator_approve", "other_app", 1)))
	if _, ok, err := in.Decision(); ok || err != nil {
		t.Errorf("another app's button: %v %v", ok, err)
	}
}

func TestActor(t *testing.T) {
	for u, want := range map[User]string{
		{ID: "U1", Username: "alice"}:                "slack:U1 (alice)",
		{ID: "U1", Name: "Bob"}:                      "slack:U1 (Bob)",
		{ID: "U1"}:                                   "slack:U1",
		{ID: "U1", Username: "eve\n) approved by ("}: "slack:U1 (eve approved by )",
	} {
		if got := u.Actor(); got != want {
			t.Errorf("%+v: %q, want %q", u, got, want)
		}
	}
}

func FuzzDecodeInteraction(f *testing.F) {
	f.Add(form(samplePayload))
	f.Add(form(`{"type":"block_actions","user":{"id":"U1234"},"actions":[{"action_id":"remediator_reject","value":"x"}]}`))
	f.Add([]byte("payload=%7B%7D"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := DecodeInteraction(body)
		if err != nil {
			return
		}
		if !userIDRE.MatchString(in.User.ID) || len(in.Actions) > maxActions {
			t.Fatalf("accepted %+v", in)
		}
		d, ok, err := in.Decision()
		if ok && (err != nil || !incidentIDRE.MatchString(d.IncidentID)) {
			t.Fatalf("decision %+v %v", d, err)
		}
		if a := in.User.Actor(); !strings.HasPrefix(a, "slack:"+in.User.ID) || strings.ContainsAny(a, "\n\r") || !utf8.ValidString(a) && utf8.ValidString(in.User.Username+in.User.Name) {
			t.Fatalf("actor %q", a)
		}
	})
}
