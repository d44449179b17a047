#!/usr/bin/env bash
# Issue 16's acceptance, by hand: `sepay-dev up --demo` with 30 s access tokens and a webhook
# health check every 10 s (which calls SePay, so refreshes the token); SePay's token endpoint then
# fails every call for 120 s. Prints the connection's states over time: it must never need a
# reconnect, and be active again soon after the outage.
#   cargo build -p sepay-dev && bash .ci/probes/token_outage_up.sh
set -euo pipefail
DB=sepay_probe_outage_$$
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB BUS_PREFIX=probe$$ RECONCILE_INTERVAL_SECS=0 \
  WEBHOOK_HEALTH_INTERVAL_SECS=10 SIM_ACCESS_TOKEN_TTL_SECS=30 RUST_LOG=warn
SEPAY_DEV=${SEPAY_DEV:-target/debug/sepay-dev}
OUTAGE=${OUTAGE:-120}
"$SEPAY_DEV" up --demo >/tmp/probe-up.out 2>/tmp/probe-up.err &
UP=$!
trap 'kill $UP 2>/dev/null; wait $UP 2>/dev/null; psql -h 127.0.0.1 -U postgres -qc "drop database if exists $DB" postgres' EXIT
for _ in $(seq 1 120); do grep -q "Striga" /tmp/probe-up.out 2>/dev/null && break; sleep 0.5; done
sleep 1
curl -sf -XPOST http://127.0.0.1:8090/sim/faults -H 'content-type: application/json' \
  -d "{\"token_failures\":{\"seconds\":$OUTAGE,\"kind\":\"5xx\"}}" >/dev/null
T0=$(date +%s)
last=""
while [ $(( $(date +%s) - T0 )) -lt $((OUTAGE + 90)) ]; do
  now=$(psql -h 127.0.0.1 -U postgres -d "$DB" -Atc "select string_agg(distinct status, ',') from sepay_connections")
  if [ "$now" != "$last" ]; then echo "t=$(( $(date +%s) - T0 ))s: $now"; last=$now; fi
  if [ $(( $(date +%s) - T0 )) -gt "$OUTAGE" ] && [ "$now" = "active" ]; then break; fi
  sleep 1
done
echo "outage ${OUTAGE}s; active again at t=$(( $(date +%s) - T0 ))s, $(( $(date +%s) - T0 - OUTAGE ))s after it ended"
