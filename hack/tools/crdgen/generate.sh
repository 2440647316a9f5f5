#!/usr/bin/env bash
# Generates the prometheus-operator CustomResourceDefinitions
# (monitoring.coreos.com: ServiceMonitor, PrometheusRule, AlertmanagerConfig,
# ...) from the published API types, the way upstream does: controller-gen
# (sigs.k8s.io/controller-tools) over
# github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/...,
# with crd:crdVersions=v1,maxDescLen=0 (upstream's "stripped-down" CRDs:
# the same schemas without descriptions, so the largest stays far below the
# API server's request size limit). Versions are pinned in this directory's
# go.mod; the prometheus-operator root module is not needed.
#
# Output: $OUT_DIR (default <repo>/bin/monitoring-crds, git-ignored), one file
# per CRD. Rebuilds only when go.mod/go.sum or the Go version change (stamp
# $OUT_DIR/.stamp). Cold: about a minute (module downloads + compile); warm: a
# no-op. Used by internal/deploytest; FORCE=1 regenerates regardless.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="${OUT_DIR:-$root/bin/monitoring-crds}"
export GOWORK=off GOFLAGS=-mod=readonly

log() { printf '[crdgen] %s\n' "$*" >&2; }
command -v go >/dev/null || { log "go not found in PATH"; exit 1; }

layout=1
flags="crd:crdVersions=v1,maxDescLen=0"
stamp_want="$(
  echo "layout=$layout flags=$flags go=$(go env GOVERSION)"
  sha256sum "$here/go.mod" "$here/go.sum" | awk '{print $1}'
)"
if [ "${FORCE:-0}" != 1 ] && [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp_want" ] \
  && [ -s "$out/monitoring.coreos.com_servicemonitors.yaml" ]; then
  exit 0
fi

mkdir -p "$(dirname "$out")"
tmp="$(mktemp -d "$(dirname "$out")/.crdgen.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
log "building controller-gen ($(sed -nE 's/^[[:space:]]*sigs\.k8s\.io\/controller-tools (v[^ ]+).*/\1/p' "$here/go.mod"))"
(cd "$here" && go build -o "$tmp/controller-gen" sigs.k8s.io/controller-tools/cmd/controller-gen)
log "generating CRDs into $out"
mkdir -p "$tmp/crds"
# controller-gen resolves the package pattern in this module (its go.mod
# pins github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring).
(cd "$here" && "$tmp/controller-gen" "$flags" \
  paths=github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/... \
  output:crd:dir="$tmp/crds")
for k in servicemonitors prometheusrules alertmanagerconfigs; do
  [ -s "$tmp/crds/monitoring.coreos.com_$k.yaml" ] || { log "monitoring.coreos.com_$k.yaml not generated"; exit 1; }
done
printf '%s\n' "$stamp_want" > "$tmp/crds/.stamp"
rm -rf "$out"
mv "$tmp/crds" "$out"
log "done: $(ls "$out" | wc -l) CRDs"
