package notify

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"
	"time"
)

// evidence is one probe.Result as the diagnosed event records it.
type evidence struct {
	ID       string          `json:"id"`
	Probe    string          `json:"probe"`
	Evidence json.RawMessage `json:"evidence"`
	Error    string          `json:"error"`
}

// evidenceLines is the top of the diagnosis, one short line per probe:
// what each found, failures last, at most max lines (then "+N more").
func evidenceLines(evs []evidence, max int) []string {
	var ok, failed []string
	for _, e := range evs {
		name := e.ID
		if name == "" {
			name = e.Probe
		}
		if e.Error != "" {
			failed = append(failed, clip(name+": failed: "+firstLine(e.Error), 140))
			continue
		}
		if s := evidenceLine(e.Probe, e.Evidence); s != "" {
			ok = append(ok, clip(name+": "+s, 160))
		}
	}
	lines := append(ok, failed...)
	if len(lines) > max {
		more := len(lines) - (max - 1)
		lines = append(lines[:max-1], fmt.Sprintf("+%d more on the incident's timeline", more))
	}
	return lines
}

// evidenceLine says what one probe found, in a few words.
func evidenceLine(probe string, raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	switch probe {
	case "rolloutHistory":
		var e struct {
			Revisions []struct {
				Revision int64  `json:"revision"`
				Image    string `json:"image"`
			} `json:"revisions"`
			CurrentRevision int64   `json:"currentRevision"`
			AgeSeconds      float64 `json:"newestRolloutAgeSeconds"`
			InProgress      bool    `json:"inProgress"`
		}
		if json.Unmarshal(raw, &e) != nil {
			break
		}
		s := fmt.Sprintf("revision %d", e.CurrentRevision)
		for _, r := range e.Revisions {
			if r.Revision == e.CurrentRevision && r.Image != "" {
				s += " (" + shortImages(r.Image) + ")"
			}
		}
		if e.AgeSeconds > 0 {
			s += " rolled out " + humanDuration(time.Duration(e.AgeSeconds*float64(time.Second))) + " ago"
		}
		if e.InProgress {
			s += ", rollout in progress"
		}
		return s
	case "errorDistribution":
		var e struct {
			Total int64 `json:"total"`
			Top   []struct {
				Message string `json:"message"`
				Count   int64  `json:"count"`
			} `json:"top"`
		}
		if json.Unmarshal(raw, &e) != nil {
			break
		}
		if e.Total == 0 {
			return "no error lines in the logs"
		}
		s := fmt.Sprintf("%d error lines", e.Total)
		if len(e.Top) > 0 {
			s += fmt.Sprintf(`, top "%s" ×%d`, clip(e.Top[0].Message, 80), e.Top[0].Count)
		}
		return s
	case "podStatus":
		var e struct {
			Ready        int64 `json:"ready"`
			Total        int64 `json:"total"`
			Restarts     int64 `json:"restarts"`
			OOMKilled    int64 `json:"oomKilled"`
			CrashLooping int64 `json:"crashLooping"`
		}
		if json.Unmarshal(raw, &e) != nil {
			break
		}
		s := fmt.Sprintf("%d/%d pods ready, %d restarts", e.Ready, e.Total, e.Restarts)
		if e.OOMKilled > 0 {
			s += fmt.Sprintf(", %d OOMKilled", e.OOMKilled)
		}
		if e.CrashLooping > 0 {
			s += fmt.Sprintf(", %d crash-looping", e.CrashLooping)
		}
		return s
	case "resources":
		var e struct {
			Available bool   `json:"available"`
			Reason    string `json:"reason"`
			CPU       int64  `json:"cpuNearLimitPercent"`
			Memory    int64  `json:"memoryNearLimitPercent"`
		}
		if json.Unmarshal(raw, &e) != nil {
			break
		}
		if !e.Available {
			return "usage unavailable: " + e.Reason
		}
		return fmt.Sprintf("%d%% of pods near the memory limit, %d%% near the CPU limit", e.Memory, e.CPU)
	case "slowEndpoints":
		var e struct {
			Top []struct {
				Endpoint string  `json:"endpoint"`
				P95Ms    float64 `json:"p95Ms"`
				Count    int64   `json:"count"`
			} `json:"top"`
		}
		if json.Unmarshal(raw, &e) != nil {
			break
		}
		if len(e.Top) == 0 {
			return "no timed requests in the logs"
		}
		t := e.Top[0]
		return fmt.Sprintf("slowest %s: p95 %.0f ms (%d requests)", clip(t.Endpoint, 60), t.P95Ms, t.Count)
	case "prometheus":
		var e struct {
			Value     float64 `json:"value"`
			Available bool    `json:"available"`
			Reason    string  `json:"reason"`
		}
		if json.Unmarshal(raw, &e) != nil {
			break
		}
		if !e.Available {
			return "no data: " + e.Reason
		}
		return fmt.Sprintf("value %.4g", e.Value)
	case "dependencies":
		var e struct {
			AllReachable bool     `json:"allReachable"`
			Unreachable  []string `json:"unreachable"`
		}
		if json.Unmarshal(raw, &e) != nil {
			break
		}
		if e.AllReachable {
			return "all reachable"
		}
		return "unreachable: " + strings.Join(e.Unreachable, ", ")
	}
	return clip(string(raw), 100)
}

// shortImages drops registries and paths: "platform-service:v1.1.0".
func shortImages(images string) string {
	parts := strings.Split(images, ",")
	for i, p := range parts {
		parts[i] = path.Base(strings.TrimSpace(p))
	}
	return strings.Join(parts, ", ")
}
