#!/usr/bin/env bash
# Issue 20's proof: the README's first command, run exactly as written, where nothing listens on
# Postgres's or NATS's ports. A new network namespace (`unshare -n`) has only a loopback with
# nothing on it, and no registry either, so this proves "installed but not running"; the test
# command before it proved the install path on a clean machine. The command serves until
# Ctrl-C: it passes once the demo's result table is printed, then gets SIGINT.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
unshare -n bash -c '
  ip link set lo up
  cargo run -p sepay-dev -- up --demo >"$1" 2>"$2" &
  up=$!
  for _ in $(seq 1 600); do
    if grep -q "every transaction exactly once" "$1"; then kill -INT $up; wait $up || true; exit 0; fi
    kill -0 $up 2>/dev/null || break
    sleep 0.5
  done
  kill -INT $up 2>/dev/null; wait $up || true
  exit 1
' _ "$out" "$err" || { echo "[ci] the README's first command did not reach the demo's table:"; tail -20 "$out" "$err"; exit 1; }
grep -E "starting|booked in all" "$err" "$out" | sed 's/^/[ci]   /'
