package deploytest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/remediator/remediator/internal/testbed"
)

// The kustomizations under test, relative to the repository root.
const (
	baseDir       = "deploy/base"
	overlayDir    = "deploy/overlays/example"
	monitoringDir = "deploy/monitoring"
)

func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func repoPath(t testing.TB, rel string) string {
	return filepath.Join(repoRoot(t), filepath.FromSlash(rel))
}

var (
	buildMu    sync.Mutex
	buildCache = map[string][]*unstructured.Unstructured{}
)

// build runs kustomize (krusty, with kubectl's defaults: load files only
// from inside each kustomization's root) on dir and returns the objects in
// kustomize's output order. Each caller gets its own deep copies.
func build(t testing.TB, dir string) []*unstructured.Unstructured {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	objs, ok := buildCache[dir]
	if !ok {
		k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
		rm, err := k.Run(filesys.MakeFsOnDisk(), repoPath(t, dir))
		if err != nil {
			t.Fatalf("kustomize build %s: %v", dir, err)
		}
		out, err := rm.AsYaml()
		if err != nil {
			t.Fatalf("kustomize build %s: %v", dir, err)
		}
		objs, err = decodeAll(out)
		if err != nil {
			t.Fatalf("kustomize build %s: %v", dir, err)
		}
		buildCache[dir] = objs
	}
	cp := make([]*unstructured.Unstructured, len(objs))
	for i, o := range objs {
		cp[i] = o.DeepCopy()
	}
	return cp
}

// decodeAll decodes a multi-document YAML stream.
func decodeAll(b []byte) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if len(obj.Object) > 0 {
			out = append(out, obj)
		}
	}
}

func readObjects(t testing.TB, rel string) []*unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(repoPath(t, rel))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeAll(b)
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return objs
}

// find returns the one object of kind and name (any namespace, name "" for
// any name) and fails the test unless there is exactly one.
func find(t testing.TB, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	all := findAll(objs, kind, name)
	if len(all) != 1 {
		t.Fatalf("want exactly one %s %q, found %d", kind, name, len(all))
	}
	return all[0]
}

func findAll(objs []*unstructured.Unstructured, kind, name string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind && (name == "" || o.GetName() == name) {
			out = append(out, o)
		}
	}
	return out
}

// as converts an object to its typed form.
func as[T any](t testing.TB, o *unstructured.Unstructured) *T {
	t.Helper()
	var v T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, &v, true); err != nil {
		t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
	}
	return &v
}

func describe(o *unstructured.Unstructured) string {
	if ns := o.GetNamespace(); ns != "" {
		return fmt.Sprintf("%s %s/%s", o.GetKind(), ns, o.GetName())
	}
	return fmt.Sprintf("%s %s", o.GetKind(), o.GetName())
}
