#!/usr/bin/env bash
# bench/webhooks.sh — webhook delivery through dreamd's own path (outbox trigger → fan-out → claim →
# sign → HTTP POST → record) to a local receiver, on a private PostgreSQL. Prints:
#   burst:  N events committed at once → deliveries/s;
#   paced:  events committed one per transaction at a steady rate → p50/p99 from commit to receipt.
#
# The burst runs twice: with the default per-subscription cap (DREAMD_WEBHOOK_PER_SUBSCRIPTION, 4) and with a
# raised one (the 4th argument). Deliveries/s counts deliveries recorded as succeeded, not receipts. The
# bench process hosts the delivery worker, so its peak RSS is the worker's. Ends with `deliveries/s: X`
# (the raised cap's figure).
#
#   bash bench/webhooks.sh [events=20000] [subscriptions=1] [concurrency=128] [per-subscription=128] [paced-rate=200] [paced-seconds=10]
#   BENCH_CONFIG=debug bash bench/webhooks.sh     # default: release
#   BENCH_PROFILE=1 bash bench/webhooks.sh        # also print the top statements (pg_stat_statements)
#   BEFORE_BIN=<dir with an older release WebhookBench> bash bench/webhooks.sh   # before/after in one run
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/pg.sh

EVENTS=${1:-20000}; SUBSCRIPTIONS=${2:-1}; CONCURRENCY=${3:-128}; PER_SUBSCRIPTION=${4:-128}
RATE=${5:-200}; SECONDS_PACED=${6:-10}
CONFIG=${BENCH_CONFIG:-release}

pg_ensure_installed
# BENCH_PROFILE=1: pg_stat_statements in the cluster; the statements that took the server's time are printed at the end.
[[ "${BENCH_PROFILE:-0}" == 1 ]] && pg_profile_enable
DIR=$(mktemp -d /tmp/dreamd-bench-pg.XXXXXX)
trap 'pg_destroy_private "$DIR" >/dev/null 2>&1 || true' EXIT
pg_start_private "$DIR"
pg_create_db dreamd_bench >/dev/null
URL=$(pg_database_url dreamd_bench)

echo "==> building ($CONFIG)"
# A scratch folder of its own, so a benchmark build never blocks (or is blocked by) a dev build.
SCRATCH=(--scratch-path .build-bench)
swift build "${SCRATCH[@]}" -c "$CONFIG" --product dreamd >&2
swift build "${SCRATCH[@]}" -c "$CONFIG" --product WebhookBench >&2
BIN=$(swift build "${SCRATCH[@]}" -c "$CONFIG" --show-bin-path)
DATABASE_URL="$URL" "$BIN/dreamd" migrate --migrations-dir migrations >/dev/null

echo "    ($(nproc) cores, $("$PG_BIN/postgres" --version), $CONFIG build; receiver, daemon path and PostgreSQL on this machine)"
echo "==> webhooks, default per-subscription cap 4: $EVENTS events x $SUBSCRIPTIONS subscription(s), concurrency $CONCURRENCY; then $RATE events/s for ${SECONDS_PACED}s"
OUT=$("$BIN/WebhookBench" "$URL" "$EVENTS" "$SUBSCRIPTIONS" "$CONCURRENCY" 4 "$RATE" "$SECONDS_PACED")
echo "$OUT" | grep -v '^[A-Z_0-9]*='
DPS_DEFAULT=$(echo "$OUT" | sed -n 's/^DELIVERIES_PER_SECOND=//p')
echo "peak RSS: $(echo "$OUT" | sed -n 's/^PEAK_RSS_MB=//p') MB"

echo "==> webhooks, per-subscription cap raised to $PER_SUBSCRIPTION: same load"
OUT=$("$BIN/WebhookBench" "$URL" "$EVENTS" "$SUBSCRIPTIONS" "$CONCURRENCY" "$PER_SUBSCRIPTION" "$RATE" "$SECONDS_PACED")
echo "$OUT" | grep -v '^[A-Z_0-9]*='
DPS=$(echo "$OUT" | sed -n 's/^DELIVERIES_PER_SECOND=//p')
echo "peak RSS: $(echo "$OUT" | sed -n 's/^PEAK_RSS_MB=//p') MB"

DPS_BEFORE=""
if [[ -n "${BEFORE_BIN:-}" ]]; then
    # An older build's WebhookBench (BEFORE_BIN names its folder) on the same server, raised cap: before/after.
    echo "==> before ($BEFORE_BIN), per-subscription cap $PER_SUBSCRIPTION: same load"
    OUT=$("$BEFORE_BIN/WebhookBench" "$URL" "$EVENTS" "$SUBSCRIPTIONS" "$CONCURRENCY" "$PER_SUBSCRIPTION" "$RATE" "$SECONDS_PACED")
    echo "$OUT" | grep -v '^[A-Z_0-9]*='
    DPS_BEFORE=$(echo "$OUT" | sed -n 's/^DELIVERIES_PER_SECOND=//p')
fi

# The baseline, in the same run on the same server: pgbench's simple-update transactions.
pg_create_db pgbench >/dev/null
echo "==> pgbench -N (simple-update), 8 clients, 15s, same server"
"$PG_BIN/pgbench" -h 127.0.0.1 -p "$PGPORT" -U postgres -i -s 10 -q pgbench >/dev/null 2>&1
TPS=$("$PG_BIN/pgbench" -h 127.0.0.1 -p "$PGPORT" -U postgres -N -c 8 -j 2 -T 15 pgbench 2>/dev/null \
      | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)
echo "pgbench: $TPS TPS"
python3 - "$DPS" "$TPS" "$DPS_DEFAULT" "$DPS_BEFORE" <<'PY'
import sys
dps, tps, default = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
if sys.argv[4]:
    print(f"before/after (raised cap): {float(sys.argv[4]):.0f} -> {dps:.0f} deliveries/s ({dps / float(sys.argv[4]):.2f}x)")
print(f"default cap (4 per subscription): {default:.0f} deliveries/s; raised cap: {dps:.0f} deliveries/s")
print(f"ratio: {dps:.0f} deliveries/s = {dps / tps:.2f} x pgbench simple-update TPS ({tps:.0f})")
print("(each delivery is a claim share, a signed HTTP POST to the local receiver and a record statement with its attempt row)")
print(f"deliveries/s: {dps:.0f}")
PY
if [[ "${BENCH_PROFILE:-0}" == 1 ]]; then
    echo "==> where PostgreSQL's time went (pg_stat_statements, database dreamd_bench, whole run)"
    pg_profile_report dreamd_bench 12
fi
