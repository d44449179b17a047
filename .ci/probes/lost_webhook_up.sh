#!/usr/bin/env bash
# issue 17 acceptance, by hand: `up` with the scheduled reconciliation off; a webhook dropped;
# the next delivery on that account reveals the gap; time until the lost one is booked
set -euo pipefail
DB=sepay_accept_$$
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB BUS_PREFIX=acc$$ RECONCILE_INTERVAL_SECS=0 RUST_LOG=warn
./target/debug/sepay-dev up --demo > /tmp/up.out 2>/tmp/up.err &
UP=$!
trap 'kill $UP 2>/dev/null; wait $UP 2>/dev/null; psql -h 127.0.0.1 -U postgres -qc "drop database if exists $DB" postgres' EXIT
for i in $(seq 1 120); do grep -q "transfers booked\|Striga" /tmp/up.out 2>/dev/null && break; sleep 0.5; done
sleep 2
SIM=http://127.0.0.1:8090
ACC=$(curl -s $SIM/sim/state | python3 -c 'import json,sys; s=json.load(sys.stdin); print([a for a in s["bank_accounts"]][-1]["id"] if isinstance(s["bank_accounts"],list) else list(s["bank_accounts"].values())[-1]["id"])')
booked() { psql -h 127.0.0.1 -U postgres -d $DB -Atc "select count(*) from wallet_transactions where source='sepay'"; }
B0=$(booked)
curl -s -XPOST $SIM/sim/faults -H 'content-type: application/json' -d '{"drop_deliveries":1}' >/dev/null
curl -s -XPOST $SIM/sim/transactions -H 'content-type: application/json' -d "{\"bank_account_id\":$ACC,\"transfer_type\":\"in\",\"amount\":777000}" >/dev/null
sleep 3
T0=$(date +%s.%N)
curl -s -XPOST $SIM/sim/transactions -H 'content-type: application/json' -d "{\"bank_account_id\":$ACC,\"transfer_type\":\"in\",\"amount\":1000}" >/dev/null
for i in $(seq 1 600); do
  [ "$(booked)" -ge $((B0 + 2)) ] && break
  sleep 0.1
done
T1=$(date +%s.%N)
echo "booked before: $B0, after: $(booked); lost one booked $(python3 -c "print(round($T1-$T0,1))") s after the delivery that revealed it"
psql -h 127.0.0.1 -U postgres -d $DB -Atc "select status, attempts from sepay_balance_gaps"
psql -h 127.0.0.1 -U postgres -d $DB -Atc "select trigger, fetched, inserted from sepay_reconciliation_runs where trigger='gap'"
