#!/usr/bin/env bash
# bench/queue.sh — drains N no-op jobs through dreamd's own claim/execute/record path and, in the
# same run and on the same PostgreSQL server, measures pgbench's simple-update TPS; prints both
# and their ratio.
#
#   bash bench/queue.sh [jobs=20000] [workers=2] [concurrency=32] [batch=32]
#   BENCH_CONFIG=release bash bench/queue.sh     # optimised build (default: release)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/pg.sh

JOBS=${1:-20000}; WORKERS=${2:-2}; CONCURRENCY=${3:-32}; BATCH=${4:-32}
CONFIG=${BENCH_CONFIG:-release}
PGBENCH_SECONDS=${PGBENCH_SECONDS:-15}

pg_ensure_installed
DIR=$(mktemp -d /tmp/dreamd-bench-pg.XXXXXX)
trap 'pg_destroy_private "$DIR" >/dev/null 2>&1 || true' EXIT
pg_start_private "$DIR"
pg_create_db dreamd_bench >/dev/null
pg_create_db pgbench >/dev/null
URL=$(pg_database_url dreamd_bench)

echo "==> building ($CONFIG)"
# A scratch folder of its own, so a benchmark build never blocks (or is blocked by) a dev build.
SCRATCH=(--scratch-path .build-bench)
swift build "${SCRATCH[@]}" -c "$CONFIG" --product dreamd >&2
swift build "${SCRATCH[@]}" -c "$CONFIG" --product QueueBench >&2
BIN=$(swift build "${SCRATCH[@]}" -c "$CONFIG" --show-bin-path)
DATABASE_URL="$URL" "$BIN/dreamd" migrate --migrations-dir migrations >/dev/null

echo "==> dreamd queue: $JOBS no-op jobs"
OUT=$("$BIN/QueueBench" "$URL" "$JOBS" "$WORKERS" "$CONCURRENCY" "$BATCH")
echo "$OUT" | grep -v '^JOBS_PER_SECOND='
JPS=$(echo "$OUT" | sed -n 's/^JOBS_PER_SECOND=//p')

echo "==> pgbench -N (simple-update), 8 clients, ${PGBENCH_SECONDS}s, same server"
"$PG_BIN/pgbench" -h 127.0.0.1 -p "$PGPORT" -U postgres -i -s 10 -q pgbench >/dev/null 2>&1
TPS=$("$PG_BIN/pgbench" -h 127.0.0.1 -p "$PGPORT" -U postgres -N -c 8 -j 2 -T "$PGBENCH_SECONDS" pgbench 2>/dev/null \
      | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)
echo "pgbench: $TPS TPS"
python3 - "$JPS" "$TPS" <<'PY'
import sys
jobs, tps = float(sys.argv[1]), float(sys.argv[2])
print(f"ratio: dreamd drains {jobs:.0f} jobs/s = {jobs / tps:.2f} x pgbench simple-update TPS ({tps:.0f})")
print("(each job is a claim share + one record transaction with its audit row; pgbench's TPS is one 3-statement transaction)")
PY
