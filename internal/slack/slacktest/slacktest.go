// Package slacktest is a loopback stand-in for the Slack Web API (the
// methods remediator calls), an incoming webhook and interaction
// response_urls. It records every call, answers like Slack, and can be
// told to fail the next calls (429 with Retry-After, a Slack error).
package slacktest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// Call is one recorded request.
type Call struct {
	Method    string // "chat.postMessage", "chat.update", "usergroups.users.list", "webhook", "response"
	Token     string
	Channel   string
	TS        string // chat.update: the message updated; chat.postMessage: the ts answered
	ThreadTS  string
	Text      string
	Blocks    string // JSON
	Broadcast bool
	Form      url.Values
	Body      []byte // webhook and response: the JSON body
}

// Failure is what the next call of a method answers instead.
type Failure struct {
	Status     int    // HTTP status (default 200)
	RetryAfter string // Retry-After header
	Error      string // Slack error code in {"ok":false,"error":...}
}

// Server is the stand-in.
type Server struct {
	*httptest.Server

	mu       sync.Mutex
	calls    []Call
	seq      int
	fail     map[string][]Failure
	groups   map[string][]string
	channels map[string]string // name → id
	deleted  map[string]bool   // channel id + ts of root messages "deleted"
}

// New starts a stand-in on loopback; Close it when done.
func New() *Server {
	s := &Server{fail: map[string][]Failure{}, groups: map[string][]string{}, channels: map[string]string{}, deleted: map[string]bool{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// APIURL is the Web API base URL (slack.OptionAPIURL).
func (s *Server) APIURL() string { return s.URL + "/api/" }

// WebhookURL is an incoming-webhook URL.
func (s *Server) WebhookURL() string { return s.URL + "/services/T000/B000/secret" }

// ResponseURL is an interaction response_url.
func (s *Server) ResponseURL() string { return s.URL + "/actions/T000/1234/response" }

// FailNext makes the next calls of method (in order) answer f.
func (s *Server) FailNext(method string, f ...Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail[method] = append(s.fail[method], f...)
}

// SetGroup sets the members of a user group.
func (s *Server) SetGroup(group string, users ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups[group] = users
}

// Delete makes a posted message unknown to chat.update (someone deleted it).
func (s *Server) Delete(channelID, ts string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleted[channelID+"/"+ts] = true
}

// Calls returns the calls so far, optionally only those of the given methods.
func (s *Server) Calls(methods ...string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if len(methods) == 0 || contains(methods, c.Method) {
			out = append(out, c)
		}
	}
	return out
}

// Reset forgets the calls.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// channelID is the id of a channel name, made up on first use ("#x" → C…).
func (s *Server) channelID(name string) string {
	if strings.HasPrefix(name, "C") {
		return name
	}
	id, ok := s.channels[name]
	if !ok {
		id = fmt.Sprintf("C%07d", len(s.channels)+1)
		s.channels[name] = id
	}
	return id
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	method := strings.TrimPrefix(r.URL.Path, "/api/")
	switch {
	case strings.HasPrefix(r.URL.Path, "/services/"):
		method = "webhook"
	case strings.HasPrefix(r.URL.Path, "/actions/"):
		method = "response"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := Call{Method: method, Body: body}
	if method != "webhook" && method != "response" {
		form, _ := url.ParseQuery(string(body))
		c.Form, c.Token, c.Channel, c.ThreadTS, c.Text, c.Blocks = form, form.Get("token"), form.Get("channel"),
			form.Get("thread_ts"), form.Get("text"), form.Get("blocks")
		c.Broadcast = form.Get("reply_broadcast") == "true"
		if h := r.Header.Get("Authorization"); c.Token == "" && strings.HasPrefix(h, "Bearer ") {
			c.Token = strings.TrimPrefix(h, "Bearer ")
		}
		if method == "chat.update" {
			c.TS = form.Get("ts")
		}
	}
	if fs := s.fail[method]; len(fs) > 0 {
		f := fs[0]
		s.fail[method] = fs[1:]
		s.calls = append(s.calls, c)
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		status := f.Status
		if status == 0 {
			status = http.StatusOK
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if f.Error != "" {
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": f.Error})
		}
		return
	}
	reply := map[string]any{"ok": true}
	switch method {
	case "chat.postMessage":
		s.seq++
		ch := s.channelID(c.Channel)
		c.TS = "1764118800." + strconv.Itoa(100000+s.seq)
		reply["channel"], reply["ts"] = ch, c.TS
	case "chat.update":
		if s.deleted[c.Channel+"/"+c.TS] {
			reply = map[string]any{"ok": false, "error": "message_not_found"}
			break
		}
		reply["channel"], reply["ts"] = c.Channel, c.TS
	case "usergroups.users.list":
		users, ok := s.groups[c.Form.Get("usergroup")]
		if !ok {
			reply = map[string]any{"ok": false, "error": "no_such_subteam"}
			break
		}
		reply["users"] = users
	case "webhook", "response":
		s.calls = append(s.calls, c)
		_, _ = io.WriteString(w, "ok")
		return
	default:
		reply = map[string]any{"ok": false, "error": "unknown_method"}
	}
	s.calls = append(s.calls, c)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(reply)
}
