package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// deploy/base/rbac.yaml is generated from the declarations in code;
// this keeps the two equal.
func TestRBACCommitted(t *testing.T) {
	var b bytes.Buffer
	if err := writeRBAC(&b); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "deploy", "base", "rbac.yaml")
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, b.Bytes()) {
		t.Fatalf("%s is stale: run `go run ./cmd/remediator rbac > deploy/base/rbac.yaml`", path)
	}
	for _, want := range []string{"pods/eviction", "deployments/scale", "horizontalpodautoscalers", "leases", "replicasets"} {
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("generated RBAC lacks %s", want)
		}
	}
	for _, never := range []string{"delete", "secrets", "'*'", "\"*\""} {
		if bytes.Contains(got, []byte(never)) {
			t.Errorf("generated RBAC grants %s", never)
		}
	}
}
