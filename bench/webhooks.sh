#!/usr/bin/env bash
# bench/webhooks.sh — webhook delivery through dreamd's own path (outbox trigger → fan-out → claim →
# sign → HTTP POST → record) to a local receiver, on a private PostgreSQL. Prints:
#   burst:  N events committed at once → deliveries/s;
#   paced:  events committed one per transaction at a steady rate → p50/p99 from commit to receipt.
#
#   bash bench/webhooks.sh [events=5000] [subscriptions=1] [concurrency=32] [per-subscription=32] [paced-rate=200] [paced-seconds=10]
#   BENCH_CONFIG=debug bash bench/webhooks.sh     # default: release
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/pg.sh

EVENTS=${1:-5000}; SUBSCRIPTIONS=${2:-1}; CONCURRENCY=${3:-32}; PER_SUBSCRIPTION=${4:-32}
RATE=${5:-200}; SECONDS_PACED=${6:-10}
CONFIG=${BENCH_CONFIG:-release}

pg_ensure_installed
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

echo "==> webhooks: $EVENTS events x $SUBSCRIPTIONS subscription(s), concurrency $CONCURRENCY, $PER_SUBSCRIPTION per subscription; then $RATE events/s for ${SECONDS_PACED}s"
echo "    ($(nproc) cores, $("$PG_BIN/postgres" --version), $CONFIG build; receiver, daemon path and PostgreSQL on this machine)"
"$BIN/WebhookBench" "$URL" "$EVENTS" "$SUBSCRIPTIONS" "$CONCURRENCY" "$PER_SUBSCRIPTION" "$RATE" "$SECONDS_PACED" | grep -v '^[A-Z_0-9]*='
