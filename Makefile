# remediator — see README.md. `make demo` and `make test` work on a fresh
# machine: they install what is missing first.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/remediator/remediator/internal/version.Version=$(VERSION)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null)
LDFLAGS += -X github.com/remediator/remediator/internal/version.Commit=$(COMMIT)
# `make image`: the container image (Dockerfile), tagged $(IMAGE).
IMAGE ?= remediator:$(VERSION)
DOCKER ?= docker
FUZZTIME ?= 20s

.PHONY: image docs lint-dockerfile
.PHONY: all build deps testbed-build testbed-up testbed-down test test-short lint fuzz run demo bench bench-audit backup-db clean deploy-sync deploy-crds

all: build

# bin/remediator (the service and every command) and bin/remediator-audit
# (audit export/verify/stats/cleanup only: a small binary for when the
# service is down, peak RSS < 64 MB on a 1M-record export).
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/remediator ./cmd/remediator
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/remediator-audit ./cmd/remediator-audit

# Debian packages the tests and demo use (PostgreSQL, Alertmanager, Prometheus).
deps:
	@hack/install-deps.sh
	@$(GO) mod download

# etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok from
# the Go module proxy into bin/ (cached; rebuilt only when versions change).
testbed-build:
	@hack/testbed/build.sh

# Copies policies/ into deploy/base/policies (kustomize loads files only from
# inside a kustomization) and regenerates deploy/base/rbac.yaml; tests fail
# while either is stale.
deploy-sync:
	@hack/deploy-sync.sh

# prometheus-operator CRDs for internal/deploytest, generated with
# controller-gen from the published API types into bin/monitoring-crds
# (cached by version stamp).
deploy-crds:
	@hack/tools/crdgen/generate.sh

testbed-up: deps testbed-build
	$(GO) build -o bin/testbed ./cmd/testbed
	bin/testbed up --dir .testbed --detach

testbed-down:
	@if [ -x bin/testbed ]; then bin/testbed down --dir .testbed; fi

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@$(MAKE) --no-print-directory lint-dockerfile

# The Dockerfile, offline, with BuildKit's own linter (what `docker build
# --check` runs) and the project's rules: Go version = go.mod's, the same -X
# version flags as LDFLAGS above, COPY sources present and not in
# .dockerignore, distroless, non-root, OCI labels. A module of its own
# (hack/tools/dockerlint) so BuildKit stays out of go.mod.
lint-dockerfile:
	@cd hack/tools/dockerlint && GOWORK=off $(GO) run . -root ../../.. && GOWORK=off $(GO) test -count=1 .

# The container image: static, distroless, non-root, stamped with VERSION
# and COMMIT like `make build` (docs/operations.md, "The image"). Push it
# yourself: $(DOCKER) push $(IMAGE).
image:
	@if ! command -v $(DOCKER) >/dev/null 2>&1; then \
	  echo "make image: '$(DOCKER)' not found. Build on a machine with Docker (BuildKit) or Podman:"; \
	  echo "  $(DOCKER) build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) -t $(IMAGE) ."; \
	  exit 1; \
	fi
	$(DOCKER) build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) -t $(IMAGE) .

# Generated documentation: the policy JSON Schema and the reference part of
# docs/policies.md (between its BEGIN/END markers), from the policy types,
# the probe/action catalog and the RBAC they declare. Tests fail while either
# is stale.
docs:
	$(GO) run ./cmd/remediator policy schema > docs/policy.schema.json.tmp && mv docs/policy.schema.json.tmp docs/policy.schema.json
	$(GO) run ./cmd/remediator policy docs --write docs/policies.md

# Every test, with the race detector, against the real components, then a
# short fuzz run of the webhook decoder.
test: deps testbed-build deploy-crds lint
	@hack/test.sh
	$(GO) test ./internal/intake -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME)
	$(GO) test ./internal/store/audit -run '^$$' -fuzz FuzzParseExportQuery -fuzztime $(FUZZTIME)
	$(GO) test ./internal/slack -run '^$$' -fuzz FuzzDecodeInteraction -fuzztime $(FUZZTIME)

# Unit tests only (no real components).
test-short:
	$(GO) test -short -race ./...

fuzz:
	$(GO) test ./internal/intake -run '^$$' -fuzz FuzzDecode -fuzztime 5m
	$(GO) test ./internal/store/audit -run '^$$' -fuzz FuzzParseExportQuery -fuzztime 1m

run: build
	bin/remediator serve --listen 127.0.0.1:9095 --store sqlite://./data/remediator.db --mode dry-run --policies ./policies

# The main job: the bad-rollout scenario on a real control plane, driven by
# Prometheus and Alertmanager; remediator in dry-run proposes, the demo
# approves through the API, the rollback is verified. Ends by itself and
# cleans up.
demo: deps testbed-build build
	$(GO) run ./hack/demo

bench:
	hack/bench-intake.sh 10s

# Audit export (100k and 1M records, SQLite and PostgreSQL) and stats.
bench-audit:
	hack/bench-audit.sh

# Online backup of STORE (default ./data/remediator.db) into ./backups
# (docs/operations.md, "Backups").
backup-db:
	@hack/backup-db.sh

clean:
	rm -rf bin/remediator bin/remediator-audit bin/testbed data .testbed
