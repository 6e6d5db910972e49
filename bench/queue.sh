#!/usr/bin/env bash
# bench/queue.sh — the queue against its peers, side by side in one run, on one private PostgreSQL cluster:
#   1. pgbench -N (simple-update), 8 clients, the server's baseline;
#   2. pgqueuer (from PyPI, in a venv this script makes) draining N no-op jobs with batch 50;
#   3. dreamd draining N no-op jobs through its own claim -> execute -> record path (audit and outbox on);
#   4. dreamd again with one `job.*` webhook subscription, so the fan-out is in the path;
#   5. (BEFORE_DIR set) the same as 3 with the build in BEFORE_DIR, for before/after figures;
#   6. (INFLIGHT_JOBS > 0) INFLIGHT_JOBS jobs accepted upstream and left in flight: the daemon's peak RSS.
# Ends with:  ratio: dreamd/pgqueuer = X.XX (dreamd D jobs/s, pgqueuer P jobs/s, pgbench T TPS)
#
#   bash bench/queue.sh [jobs=200000] [workers=2] [concurrency=512] [batch=256]
#   BENCH_CONFIG=debug bash bench/queue.sh         # default: release
#   BENCH_PROFILE=1 bash bench/queue.sh            # also print the top statements (pg_stat_statements)
#   BEFORE_DIR=/path/to/old/checkout bash bench/queue.sh   # its .build-bench must hold a release QueueBench
#   BEFORE_DIR=<dir with the old migrations/> BEFORE_BIN=<dir with the old dreamd, QueueBench> bash bench/queue.sh
#   INFLIGHT_JOBS=100000 bash bench/queue.sh        # default 0 (skipped)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/pg.sh

JOBS=${1:-200000}; WORKERS=${2:-2}; CONCURRENCY=${3:-512}; BATCH=${4:-256}
CONFIG=${BENCH_CONFIG:-release}
PGBENCH_SECONDS=${PGBENCH_SECONDS:-15}
PGQUEUER_JOBS=${PGQUEUER_JOBS:-$JOBS}
INFLIGHT_JOBS=${INFLIGHT_JOBS:-0}
VENV=${BENCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/dreamd-bench/venv}

pg_ensure_installed
# BENCH_PROFILE=1: pg_stat_statements in the cluster; the statements that took the server's time are printed at the end.
[[ "${BENCH_PROFILE:-0}" == 1 ]] && pg_profile_enable
DIR=$(mktemp -d /tmp/dreamd-bench-pg.XXXXXX)
trap 'pg_destroy_private "$DIR" >/dev/null 2>&1 || true' EXIT
pg_start_private "$DIR"
for db in dreamd_bench pgbench pgqueuer dreamd_before; do pg_create_db "$db" >/dev/null; done
URL=$(pg_database_url dreamd_bench)

echo "==> building ($CONFIG)"
# A scratch folder of its own, so a benchmark build never blocks (or is blocked by) a dev build.
SCRATCH=(--scratch-path .build-bench)
swift build "${SCRATCH[@]}" -c "$CONFIG" --product dreamd >&2
swift build "${SCRATCH[@]}" -c "$CONFIG" --product QueueBench >&2
BIN=$(swift build "${SCRATCH[@]}" -c "$CONFIG" --show-bin-path)
DATABASE_URL="$URL" "$BIN/dreamd" migrate --migrations-dir migrations >/dev/null

if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import pgqueuer, asyncpg' 2>/dev/null; then
    echo "==> making a venv with pgqueuer (PyPI) in $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q pgqueuer asyncpg >&2
fi

echo "==> $(nproc) cores, $("$PG_BIN/postgres" --version), $CONFIG build, pgqueuer $("$VENV/bin/python" -c 'import pgqueuer; print(pgqueuer.__version__)')"

echo "==> pgbench -N (simple-update), 8 clients, ${PGBENCH_SECONDS}s"
"$PG_BIN/pgbench" -h 127.0.0.1 -p "$PGPORT" -U postgres -i -s 10 -q pgbench >/dev/null 2>&1
TPS=$("$PG_BIN/pgbench" -h 127.0.0.1 -p "$PGPORT" -U postgres -N -c 8 -j 2 -T "$PGBENCH_SECONDS" pgbench 2>/dev/null \
      | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)
echo "pgbench: $TPS TPS"

# Each measured phase starts on a settled server: the previous phase's dead rows vacuumed and its dirty pages
# written, so no phase pays for another's autovacuum or checkpoint (the first dreamd drain after pgqueuer's
# used to come out slower than the second, with a subscription).
settle() {
    "$PG_BIN/vacuumdb" -h 127.0.0.1 -p "$PGPORT" -U postgres --all -q >/dev/null 2>&1 || true
    "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -c CHECKPOINT >/dev/null 2>&1 || true
}

settle
echo "==> pgqueuer: $PGQUEUER_JOBS no-op jobs, batch 50, 2 workers"
OUT=$("$VENV/bin/python" bench/pgqueuer_drain.py "$(pg_database_url pgqueuer)" "$PGQUEUER_JOBS" 50 2)
echo "$OUT" | grep -v '^PGQUEUER_JOBS_PER_SECOND='
PQ=$(echo "$OUT" | sed -n 's/^PGQUEUER_JOBS_PER_SECOND=//p')

settle
echo "==> dreamd: $JOBS no-op jobs, $WORKERS workers x $CONCURRENCY, batch $BATCH"
OUT=$("$BIN/QueueBench" "$URL" "$JOBS" "$WORKERS" "$CONCURRENCY" "$BATCH" 0)
echo "$OUT" | grep -v '^[A-Z_]*='
JPS=$(echo "$OUT" | sed -n 's/^JOBS_PER_SECOND=//p')

settle
echo "==> dreamd with one job.* webhook subscription: $JOBS no-op jobs"
OUT=$("$BIN/QueueBench" "$URL" "$JOBS" "$WORKERS" "$CONCURRENCY" "$BATCH" 1)
echo "$OUT" | grep -v '^[A-Z_]*='
JPS_HOOK=$(echo "$OUT" | sed -n 's/^JOBS_PER_SECOND=//p')

BEFORE=""
if [[ -n "${BEFORE_DIR:-}" ]]; then
    # BEFORE_BIN: a folder holding the older release dreamd and QueueBench (else BEFORE_DIR's .build-bench).
    BEFORE_BIN=${BEFORE_BIN:-$(cd "$BEFORE_DIR" && swift build --scratch-path .build-bench -c release --show-bin-path)}
    BEFORE_URL=$(pg_database_url dreamd_before)
    settle
    echo "==> before ($(git -C "$BEFORE_DIR" log -1 --format='%h %s' 2>/dev/null | cut -c1-60 || echo "$BEFORE_BIN")): $JOBS no-op jobs"
    DATABASE_URL="$BEFORE_URL" "$BEFORE_BIN/dreamd" migrate --migrations-dir "$BEFORE_DIR/migrations" >/dev/null
    OUT=$("$BEFORE_BIN/QueueBench" "$BEFORE_URL" "$JOBS" "$WORKERS" "$CONCURRENCY" "$BATCH" 0)
    echo "$OUT" | grep -v '^[A-Z_]*='
    BEFORE=$(echo "$OUT" | sed -n 's/^JOBS_PER_SECOND=//p')
fi

if [[ "$INFLIGHT_JOBS" -gt 0 ]]; then
    echo "==> dreamd: $INFLIGHT_JOBS jobs accepted upstream and left in flight"
    OUT=$("$BIN/QueueBench" "$URL" "$INFLIGHT_JOBS" "$WORKERS" "$CONCURRENCY" "$BATCH" 0 inflight)
    echo "$OUT" | grep -v '^[A-Z_]*='
fi

python3 - "$JPS" "$PQ" "$TPS" "$JPS_HOOK" "$BEFORE" <<'PY'
import sys
jobs, pq, tps, hook = (float(x) for x in sys.argv[1:5])
before = sys.argv[5]
print(f"with one job.* subscription: {hook:.0f} jobs/s ({hook / pq:.2f} x pgqueuer)")
if before:
    print(f"before/after: {float(before):.0f} -> {jobs:.0f} jobs/s ({jobs / float(before):.1f} x)")
print(f"ratio: dreamd/pgqueuer = {jobs / pq:.2f} (dreamd {jobs:.0f} jobs/s, pgqueuer {pq:.0f} jobs/s, pgbench {tps:.0f} TPS)")
PY
if [[ "${BENCH_PROFILE:-0}" == 1 ]]; then
    echo "==> where PostgreSQL's time went (pg_stat_statements, database dreamd_bench, whole run)"
    pg_profile_report dreamd_bench 12
fi
