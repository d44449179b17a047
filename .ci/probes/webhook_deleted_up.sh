#!/usr/bin/env bash
# Issue 16's acceptance, by hand: `sepay-dev up --demo` with WEBHOOK_HEALTH_INTERVAL_SECS=10 and the
# scheduled reconciliation off; the demo account's webhook deleted at SePay (the simulator's
# dashboard delete), three transfers made while it is gone. Prints when the webhook was back, when
# the three were booked, and whether a transfer after that arrived by webhook.
#   cargo build -p sepay-dev && bash .ci/probes/webhook_deleted_up.sh
set -euo pipefail
DB=sepay_probe_health_$$
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB BUS_PREFIX=probe$$ RECONCILE_INTERVAL_SECS=0 \
  WEBHOOK_HEALTH_INTERVAL_SECS=10 RUST_LOG=warn
SEPAY_DEV=${SEPAY_DEV:-target/debug/sepay-dev}
"$SEPAY_DEV" up --demo >/tmp/probe-up.out 2>/tmp/probe-up.err &
UP=$!
trap 'kill $UP 2>/dev/null; wait $UP 2>/dev/null; psql -h 127.0.0.1 -U postgres -qc "drop database if exists $DB" postgres' EXIT
for _ in $(seq 1 120); do grep -q "Striga" /tmp/probe-up.out 2>/dev/null && break; sleep 0.5; done
sleep 2
SIM=http://127.0.0.1:8090
post() { curl -sf -XPOST "$SIM$1" -H 'content-type: application/json' -d "$2"; }
state() { curl -sf $SIM/sim/state; }
HOOK=$(state | python3 -c 'import json,sys; print(json.load(sys.stdin)["webhooks"][-1]["id"])')
ACC=$(state | python3 -c 'import json,sys; print(json.load(sys.stdin)["webhooks"][-1]["bank_account_id"])')
booked() { psql -h 127.0.0.1 -U postgres -d "$DB" -Atc "select count(*) from wallet_transactions where source = 'sepay'"; }
B0=$(booked)
T0=$(date +%s.%N)
post "/sim/webhooks/$HOOK/delete" '{}' >/dev/null
for amount in 11000 12000 13000; do
  post /sim/transactions "{\"bank_account_id\":$ACC,\"transfer_type\":\"in\",\"amount\":$amount}" >/dev/null
done
BACK=""; BOOKED=""
for _ in $(seq 1 1200); do
  now=$(date +%s.%N)
  if [ -z "$BACK" ] && state | python3 -c "import json,sys; h=[w for w in json.load(sys.stdin)['webhooks'] if w['bank_account_id']==$ACC and w['id']!=$HOOK]; sys.exit(0 if h else 1)"; then
    BACK=$(python3 -c "print(round($now-$T0,1))")
  fi
  if [ -z "$BOOKED" ] && [ "$(booked)" -ge $((B0 + 3)) ]; then BOOKED=$(python3 -c "print(round($now-$T0,1))"); fi
  [ -n "$BACK" ] && [ -n "$BOOKED" ] && break
  sleep 0.1
done
post /sim/transactions "{\"bank_account_id\":$ACC,\"transfer_type\":\"in\",\"amount\":14000}" >/dev/null
for _ in $(seq 1 100); do [ "$(booked)" -ge $((B0 + 4)) ] && break; sleep 0.1; done
SOURCE=$(psql -h 127.0.0.1 -U postgres -d "$DB" -Atc "select e.source from wallet_transactions t join sepay_webhook_events e on e.created_transaction_id = t.id where t.amount = 14000 limit 1")
echo "webhook back ${BACK:-never} s after the deletion; the three transfers booked ${BOOKED:-never} s after it; the next transfer arrived by: ${SOURCE:-nothing}"
psql -h 127.0.0.1 -U postgres -d "$DB" -Atc "select kind, detail from sepay_webhook_repairs"
