package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/mod/modfile"
)

// Finding is one problem, at a line of the Dockerfile (0: the file as a whole).
type Finding struct {
	Line int
	Rule string
	Msg  string
}

func (f Finding) String() string {
	return fmt.Sprintf("Dockerfile:%d: %s: %s", f.Line, f.Rule, f.Msg)
}

// Check lints root/Dockerfile: BuildKit's rules, then the project's.
func Check(ctx context.Context, root string) ([]Finding, error) {
	dt, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		return nil, err
	}
	fs, err := BuildKitLint(ctx, dt)
	if err != nil {
		return nil, err
	}
	ps, err := ProjectChecks(root, dt)
	if err != nil {
		return nil, err
	}
	return append(fs, ps...), nil
}

// BuildKitLint runs BuildKit's Dockerfile frontend in lint mode (what
// `docker build --check` runs) with every rule, experimental ones included.
// Base images are not fetched: their metadata is a stub for the requested
// platform, so the rules that need the image's own config
// (InvalidBaseImagePlatform) see a matching image.
func BuildKitLint(ctx context.Context, dt []byte) ([]Finding, error) {
	src := llb.Local("dockerfile")
	def, err := src.Marshal(ctx)
	if err != nil {
		return nil, err
	}
	smap := llb.NewSourceMap(&src, "Dockerfile", "Dockerfile", dt)
	smap.Definition = def
	res, err := dockerfile2llb.DockerfileLint(ctx, dt, dockerfile2llb.ConvertOpt{
		Config: dockerui.Config{
			LinterConfig: &linter.Config{ExperimentalAll: true},
		},
		SourceMap:    smap,
		MetaResolver: offlineResolver{},
	})
	if err != nil {
		return nil, err
	}
	var out []Finding
	for _, w := range res.Warnings {
		line := 0
		if w.Location != nil && len(w.Location.Ranges) > 0 {
			line = int(w.Location.Ranges[0].Start.Line)
		}
		msg := w.Detail
		if w.URL != "" {
			msg += " (" + w.URL + ")"
		}
		out = append(out, Finding{Line: line, Rule: w.RuleName, Msg: msg})
	}
	if res.Error != nil {
		line := 0
		if len(res.Error.Location.Ranges) > 0 {
			line = int(res.Error.Location.Ranges[0].Start.Line)
		}
		out = append(out, Finding{Line: line, Rule: "BuildError", Msg: res.Error.Message})
	}
	return out, nil
}

// offlineResolver answers base-image metadata requests without a registry:
// an image of the requested platform with one layer.
type offlineResolver struct{}

func (offlineResolver) ResolveImageConfig(_ context.Context, ref string, opt sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	img := map[string]any{
		"os": "linux", "architecture": "amd64",
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{digest.FromString(ref).String()}},
		"config": map[string]any{},
	}
	if opt.ImageOpt != nil && opt.ImageOpt.Platform != nil {
		img["os"], img["architecture"] = opt.ImageOpt.Platform.OS, opt.ImageOpt.Platform.Architecture
	}
	b, err := json.Marshal(img)
	return ref, "", b, err
}

// The variables both builds must stamp (internal/version).
const versionPkg = "github.com/remediator/remediator/internal/version"

// ProjectChecks are the rules this project relies on; see the package doc.
func ProjectChecks(root string, dt []byte) ([]Finding, error) {
	ast, err := parser.Parse(bytes.NewReader(dt))
	if err != nil {
		return nil, err
	}
	stages, metaArgs, err := instructions.Parse(ast.AST, nil)
	if err != nil {
		return nil, err
	}
	if len(stages) < 2 {
		return []Finding{{0, "MultiStage", fmt.Sprintf("want a build stage and a runtime stage, got %d stage(s)", len(stages))}}, nil
	}
	var out []Finding
	add := func(line int, rule, format string, args ...any) {
		out = append(out, Finding{line, rule, fmt.Sprintf(format, args...)})
	}
	args := map[string]string{}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Value != nil {
				args[kv.Key] = *kv.Value
			}
		}
	}
	expand := func(s string) string {
		return os.Expand(s, func(k string) string { return args[k] })
	}

	// The build stage: golang of go.mod's version, static, stamped like the Makefile.
	build, final := stages[0], stages[len(stages)-1]
	goVersion, err := goModVersion(filepath.Join(root, "go.mod"))
	if err != nil {
		return nil, err
	}
	base := expand(build.BaseName)
	if tag, ok := strings.CutPrefix(base, "golang:"); !ok {
		add(line(build.Location), "GoVersion", "build stage must start FROM golang:<version>, got %q", base)
	} else if t, _, _ := strings.Cut(tag, "-"); t != goVersion {
		add(line(build.Location), "GoVersion", "build stage uses Go %q, go.mod says go %s", t, goVersion)
	}
	makeVars, err := makefileLDFlagVars(filepath.Join(root, "Makefile"))
	if err != nil {
		return nil, err
	}
	imageRecipe, err := makefileRecipe(filepath.Join(root, "Makefile"), "image")
	if err != nil {
		return nil, err
	}
	stageArgs := map[string]bool{}
	var buildRun *instructions.RunCommand
	for _, c := range build.Commands {
		switch c := c.(type) {
		case *instructions.ArgCommand:
			for _, kv := range c.Args {
				stageArgs[kv.Key] = true
			}
		case *instructions.RunCommand:
			if strings.Contains(strings.Join(c.CmdLine, " "), "go build") {
				buildRun = c
			}
		}
	}
	if buildRun == nil {
		add(line(build.Location), "GoBuild", "no RUN with `go build` in the build stage")
	} else {
		cmd := strings.Join(buildRun.CmdLine, " ")
		l := line(buildRun.Location())
		if !strings.Contains(cmd, "CGO_ENABLED=0") {
			add(l, "StaticBuild", "go build must run with CGO_ENABLED=0 (a static binary for distroless/static)")
		}
		if !strings.Contains(cmd, "./cmd/remediator") {
			add(l, "GoBuild", "go build must build ./cmd/remediator, like `make build`")
		}
		dockerVars := ldflagVars(cmd)
		if !equal(keys(dockerVars), keys(makeVars)) {
			add(l, "VersionStamp", "go build stamps %v, the Makefile's LDFLAGS stamp %v: they must be the same variables", keys(dockerVars), keys(makeVars))
		}
		for v, val := range dockerVars {
			m := regexp.MustCompile(`^\$\{?([A-Z_]+)\}?$`).FindStringSubmatch(val)
			if m == nil {
				add(l, "VersionStamp", "%s is stamped with %q: want a build argument such as ${VERSION}", v, val)
			} else if !stageArgs[m[1]] {
				add(l, "VersionStamp", "%s is stamped from ${%s}, which the build stage does not declare with ARG", v, m[1])
			} else if !strings.Contains(imageRecipe, "--build-arg "+m[1]+"=") {
				add(l, "VersionStamp", "%s is stamped from ${%s}, but `make image` does not pass --build-arg %s=...", v, m[1], m[1])
			}
		}
	}

	// The runtime stage: distroless static, non-root, no shell needed, labelled.
	l := line(final.Location)
	fbase := expand(final.BaseName)
	if !strings.HasPrefix(fbase, "gcr.io/distroless/static") {
		add(l, "Distroless", "runtime stage must be gcr.io/distroless/static*, got %q", fbase)
	}
	user, labels := "", map[string]string{}
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.LabelCommand:
			for _, kv := range c.Labels {
				labels[kv.Key] = kv.Value
			}
		case *instructions.RunCommand:
			add(line(c.Location()), "NoShell", "the distroless runtime stage has no shell: RUN cannot work there")
		case *instructions.EntrypointCommand:
			if c.PrependShell {
				add(line(c.Location()), "NoShell", "ENTRYPOINT must be in exec (JSON) form: distroless has no shell")
			}
		case *instructions.CmdCommand:
			if c.PrependShell {
				add(line(c.Location()), "NoShell", "CMD must be in exec (JSON) form: distroless has no shell")
			}
		}
	}
	if uid, _, _ := strings.Cut(user, ":"); uid == "" || uid == "0" || uid == "root" {
		add(l, "NonRoot", "runtime stage must set a non-root USER (65532 is distroless' nonroot), got %q", user)
	}
	for _, k := range []string{"title", "description", "source", "version", "revision"} {
		if labels["org.opencontainers.image."+k] == "" {
			add(l, "OCILabels", "runtime stage lacks LABEL org.opencontainers.image.%s", k)
		}
	}

	// COPY sources from the build context exist and are not ignored.
	ignore, err := dockerignore(filepath.Join(root, ".dockerignore"))
	if err != nil {
		return nil, err
	}
	for _, st := range stages {
		for _, c := range st.Commands {
			cp, ok := c.(*instructions.CopyCommand)
			if !ok || cp.From != "" {
				continue
			}
			for _, src := range cp.SourcePaths {
				src = filepath.Clean(strings.TrimPrefix(src, "/"))
				matches, _ := filepath.Glob(filepath.Join(root, src))
				if len(matches) == 0 {
					add(line(cp.Location()), "CopySource", "COPY source %q does not exist", src)
					continue
				}
				if ignore == nil {
					continue
				}
				// The source itself, and every file below it: a pattern
				// that silently drops one .go or embedded file breaks the
				// image only at build time.
				for _, m := range matches {
					base, err := filepath.Rel(root, m)
					if err != nil {
						return nil, err
					}
					resolved, err := filepath.EvalSymlinks(m)
					if err != nil {
						return nil, err
					}
					_ = filepath.WalkDir(resolved, func(p string, d os.DirEntry, err error) error {
						if err != nil {
							return err
						}
						rel, err := filepath.Rel(resolved, p)
						if err != nil {
							return err
						}
						rel = filepath.Join(base, rel)
						if hit, _ := ignore.MatchesOrParentMatches(filepath.ToSlash(rel)); hit {
							add(line(cp.Location()), "CopyIgnoredFile", "%q (COPY %s) is excluded by .dockerignore", filepath.ToSlash(rel), src)
							if d.IsDir() {
								return filepath.SkipDir
							}
						}
						return nil
					})
				}
			}
		}
	}
	return out, nil
}

func line(r []parser.Range) int {
	if len(r) == 0 {
		return 0
	}
	return r[0].Start.Line
}

func goModVersion(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	f, err := modfile.ParseLax(path, b, nil)
	if err != nil {
		return "", err
	}
	if f.Go == nil {
		return "", fmt.Errorf("%s has no go directive", path)
	}
	return f.Go.Version, nil
}

var xFlag = regexp.MustCompile(`-X\s+` + regexp.QuoteMeta(versionPkg) + `\.([A-Za-z_]+)=(\S*)`)

// ldflagVars are the internal/version variables a command line stamps with
// -X, and their values.
func ldflagVars(s string) map[string]string {
	m := map[string]string{}
	for _, x := range xFlag.FindAllStringSubmatch(s, -1) {
		m[x[1]] = strings.Trim(x[2], `"'`)
	}
	return m
}

// makefileLDFlagVars are the variables the Makefile's LDFLAGS (every
// `LDFLAGS :=`, `=` or `+=` line) stamp.
func makefileLDFlagVars(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var sb strings.Builder
	for _, l := range strings.Split(string(b), "\n") {
		if regexp.MustCompile(`^LDFLAGS\s*(:=|\+=|=|\?=)`).MatchString(l) {
			sb.WriteString(l + "\n")
		}
	}
	m := ldflagVars(sb.String())
	if len(m) == 0 {
		return nil, fmt.Errorf("%s: no LDFLAGS line stamps %s", path, versionPkg)
	}
	return m, nil
}

// makefileRecipe is the recipe of target, its lines joined.
func makefileRecipe(path, target string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var sb strings.Builder
	in := false
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(l, target+":"):
			in = true
		case in && strings.HasPrefix(l, "\t"):
			sb.WriteString(l + "\n")
		case in:
			in = false
		}
	}
	if sb.Len() == 0 {
		return "", fmt.Errorf("%s: no target %q", path, target)
	}
	return sb.String(), nil
}

func dockerignore(path string) (*patternmatcher.PatternMatcher, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pats, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, err
	}
	return patternmatcher.New(pats)
}

func keys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func equal(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}
