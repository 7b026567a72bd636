#!/usr/bin/env bash
# The README's first command: installs what is missing, builds (release), loads a small demo
# data set into ./data when its log is empty, prints demo keys and example calls, and serves
# the tracking API on :8080 in the foreground (Ctrl-C stops it gracefully).
#   PORT=9000 Tools/run.sh      another port
#   DATA=/tmp/ts Tools/run.sh   another data directory
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${DATA:-./data}"
PORT="${PORT:-8080}"
CUSTOMERS="${CUSTOMERS:-300}"

Tools/setup.sh
# One product per call: swift build honours only the last --product.
for p in touchstone touchstone-datagen; do swift build -c release --product "$p"; done
BIN="$(swift build -c release --show-bin-path)"
TS="$BIN/touchstone"
mkdir -p "$DATA"

events=0
if [ -f "$DATA/log/data.mdb" ]; then
  events=$("$TS" stats --data "$DATA" --json | sed -n 's/.*"events" *: *\([0-9]*\).*/\1/p')
fi
if [ "${events:-0}" = "0" ]; then
  echo "run: the log is empty; generating a demo set of $CUSTOMERS customers"
  "$BIN/touchstone-datagen" --customers "$CUSTOMERS" --seed 42 --out "$DATA/demo.ndjson"
  "$TS" import --data "$DATA" --source demo --channel web "$DATA/demo.ndjson"
fi

# Demo keys: created once, kept in $DATA/demo-keys.env (mode 600) so later runs can print
# them again. Real keys are shown once by `touchstone keys create` and never stored.
KEYS="$DATA/demo-keys.env"
if [ ! -f "$KEYS" ]; then
  suffix=""
  if "$TS" keys list --data "$DATA" | grep -q '^demo-read '; then suffix="-$(date +%s)"; fi
  web=$("$TS" keys create --data "$DATA" --source web --channel web --name "web$suffix" | tail -n 1)
  read=$("$TS" keys create --data "$DATA" --scope read --name "demo-read$suffix" | tail -n 1)
  admin=$("$TS" keys create --data "$DATA" --scope admin --name "demo-admin$suffix" | tail -n 1)
  umask 077
  printf 'WRITE_KEY=%s\nREAD_KEY=%s\nADMIN_KEY=%s\n' "$web" "$read" "$admin" > "$KEYS"
fi
# shellcheck disable=SC1090
. "$KEYS"
URL="http://127.0.0.1:$PORT"

cat <<TXT

Touchstone demo — data in $DATA, serving on $URL
  write key (source web):  $WRITE_KEY
  read API key:            $READ_KEY
  admin API key:           $ADMIN_KEY

Try:
  # a single track call (Segment's HTTP API: the write key is the Basic username)
  curl -u "$WRITE_KEY:" $URL/v1/track -H 'Content-Type: application/json' \\
    -d '{"userId":"u1","event":"Product Viewed","properties":{"product_id":"p-1","price":19.99}}'

  # a batch, as Segment's and RudderStack's clients send it
  curl -u "$WRITE_KEY:" $URL/v1/batch -H 'Content-Type: application/json' \\
    -d '{"batch":[{"type":"identify","userId":"u1","traits":{"email":"jane@example.com"}},{"type":"page","userId":"u1","name":"Home"}]}'

  # log statistics (read key) and rejected inputs (admin key)
  curl -H "Authorization: Bearer $READ_KEY" $URL/v1/stats
  curl -H "Authorization: Bearer $ADMIN_KEY" "$URL/v1/admin/dead-letters?limit=5"

  # the unified profile (any identifier: user_id, email, phone, anonymous_id, …) and its timeline
  curl -H "Authorization: Bearer $READ_KEY" $URL/v1/profiles/user_id:u1
  curl -H "Authorization: Bearer $READ_KEY" "$URL/v1/profiles/email:jane@example.com/events?limit=5"

  # audiences and KPIs
  curl -H "Authorization: Bearer $READ_KEY" "$URL/v1/segments/vip/members?limit=5"
  curl -H "Authorization: Bearer $READ_KEY" "$URL/v1/kpis?from=2025-01-01&to=2025-12-31&granularity=month"

  # data rights (admin key): subject export, erasure, the audit log
  curl -H "Authorization: Bearer $ADMIN_KEY" $URL/v1/profiles/user_id:u2/export
  curl -X DELETE -H "Authorization: Bearer $ADMIN_KEY" $URL/v1/profiles/user_id:u2
  curl -H "Authorization: Bearer $ADMIN_KEY" $URL/v1/admin/audit

  curl $URL/metrics      curl $URL/healthz
TXT

exec "$TS" serve --data "$DATA" --port "$PORT"
