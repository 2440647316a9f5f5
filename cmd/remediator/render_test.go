package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/remediator/remediator/internal/incident"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func sampleIncidents() []incident.Incident {
	start := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	resolved := start.Add(12 * time.Minute)
	return []incident.Incident{
		{ID: "0193a1b2-0000-7000-8000-000000000001", AlertName: "HighErrorRate", Fingerprint: "a1b2c3d4e5f60718", Status: "resolved",
			Labels: map[string]string{"namespace": "prod", "deployment": "platform-service"}, StartsAt: start,
			ResolvedAt: &resolved, Receipts: 3, Duplicates: 1},
		{ID: "0193a1b2-0000-7000-8000-000000000002", AlertName: "HighLatency", Fingerprint: "00000000000000ff", Status: "firing",
			Labels: map[string]string{"namespace": "staging"}, StartsAt: start.Add(5 * time.Minute), Receipts: 1},
		{ID: "0193a1b2-0000-7000-8000-000000000003", AlertName: "DiskSpaceLow", Fingerprint: "1234abcd1234abcd", Status: "firing",
			Labels: map[string]string{}, StartsAt: start.Add(7 * time.Minute), Receipts: 51, Duplicates: 50},
	}
}

func TestRenderIncidentListGolden(t *testing.T) {
	var b bytes.Buffer
	if err := renderIncidentList(&b, sampleIncidents()); err != nil {
		t.Fatal(err)
	}
	golden(t, "incidents.txt", b.Bytes())
	b.Reset()
	if err := renderIncidentList(&b, nil); err != nil {
		t.Fatal(err)
	}
	if b.String() != "no incidents\n" {
		t.Errorf("empty list: %q", b.String())
	}
}

func TestRenderIncidentGolden(t *testing.T) {
	inc := sampleIncidents()[0]
	at := inc.StartsAt.Add(2 * time.Second)
	timeline := []incident.Event{
		{Type: incident.EventReceived, Time: at, Actor: "remediator"},
		{Type: incident.EventUnmatched, Time: at.Add(3 * time.Millisecond), Actor: "remediator",
			Reason: `no policy matches alertname="HighErrorRate": no policies are loaded, so nothing will be done`},
		{Type: incident.EventDuplicate, Time: at.Add(5 * time.Minute), Actor: "remediator", Reason: "already firing"},
		{Type: incident.EventResolved, Time: at.Add(12 * time.Minute), Actor: "remediator"},
	}
	var b bytes.Buffer
	if err := renderIncident(&b, inc, timeline); err != nil {
		t.Fatal(err)
	}
	golden(t, "incident.txt", b.Bytes())
}
