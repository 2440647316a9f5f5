# syntax=docker/dockerfile:1
#
# remediator: static binaries (the service, and remediator-audit; CGO off; SQLite is the pure-Go
# modernc.org/sqlite, PostgreSQL is pgx) on distroless/static, as user 65532.
# Build it with `make image` (VERSION and COMMIT stamped like `make build`).
# `make lint` checks this file: BuildKit's own linter (`docker build --check`)
# and the project's rules (hack/tools/dockerlint): the Go version equals
# go.mod's, the -X version flags equal the Makefile's, every COPY source
# exists and is not in .dockerignore, the runtime stage is distroless,
# non-root and labelled.
#
# No HEALTHCHECK: distroless has no shell or curl to run one. Kubernetes
# probes GET /healthz (liveness) and GET /readyz (readiness), see
# deploy/base/deployment.yaml; elsewhere probe them over HTTP.

# The build runs on the builder's own platform and cross-compiles (pure Go).
FROM --platform=$BUILDPLATFORM golang:1.26.8 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
# The packages of the binary; the SQL migrations are go:embed'ed from
# internal/store/*/migrations, so they are inside internal/.
COPY cmd ./cmd
COPY internal ./internal
# Set by BuildKit from --platform (empty without it: the builder's own).
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
ARG COMMIT=""
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X github.com/remediator/remediator/internal/version.Version=${VERSION} -X github.com/remediator/remediator/internal/version.Commit=${COMMIT}" \
      -o /out/ ./cmd/remediator ./cmd/remediator-audit \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG COMMIT=""
LABEL org.opencontainers.image.title="remediator" \
      org.opencontainers.image.description="Alertmanager webhook auto-remediation: diagnose, plan by policy, guard, apply to Kubernetes, verify, audit" \
      org.opencontainers.image.source="https://github.com/remediator/remediator" \
      org.opencontainers.image.documentation="https://github.com/remediator/remediator/blob/main/docs/operations.md" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"
COPY --from=build /out/remediator /usr/local/bin/remediator
# The audit commands alone, in a small binary (peak RSS < 64 MB on a
# million-record export): `kubectl exec … -- remediator-audit verify`.
COPY --from=build /out/remediator-audit /usr/local/bin/remediator-audit
# The shipped runbook policies; in Kubernetes the ConfigMap
# remediator-policies is mounted over this directory.
COPY policies /etc/remediator/policies
# A writable home for the default SQLite store (single replica only; the
# deploy kit uses PostgreSQL and replaces this CMD).
COPY --from=build --chown=65532:65532 /out/data /var/lib/remediator
USER 65532:65532
EXPOSE 9095
ENTRYPOINT ["/usr/local/bin/remediator"]
# Listening on a non-loopback address needs credentials: give
# REMEDIATOR_WEBHOOK_TOKEN_FILE and REMEDIATOR_AUDIT_TOKEN_FILE (docs/operations.md).
CMD ["serve", "--listen", "0.0.0.0:9095", "--policies", "/etc/remediator/policies", "--store", "sqlite:///var/lib/remediator/remediator.db"]
