#!/usr/bin/env bash
# bench/ui.sh — how fast the dashboard's pages render with 1,000,000 jobs in the table.
#
#   bash bench/ui.sh                 1,000,000 jobs, 30 timed requests per page
#   BENCH_JOBS=200000 bash bench/ui.sh
#
# Starts a private PostgreSQL cluster, migrates, loads BENCH_JOBS jobs in one INSERT ... SELECT
# generate_series (triggers off for the load: no audit rows or outbox events, which the overview does
# not read), VACUUM ANALYZEs (as autovacuum would), starts `dreamd serve` against `dreamd sim`, signs in as a browser would (the login
# form's CSRF cookie and token, then the session cookie), and times GET /ui (the overview), a live
# refresh of it, /ui/jobs, /ui/jobs?state=failed, a job's page and /ui/costs with curl, after two warm-up
# requests each. Prints min / median / p95 / max in milliseconds. The target: the overview under 200 ms.
#
# The table: 97 % finished (succeeded, failed, cancelled) spread over 30 days, with costs; 20,000
# scheduled for later; 5,000 queued and 1,000 running of the kind `bench` (no executor runs it, so
# the worker leaves them alone and the figures do not move while they are measured).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib/pg.sh
source "$ROOT/scripts/lib/pg.sh"
# shellcheck source=scripts/lib/run.sh
source "$ROOT/scripts/lib/run.sh"

JOBS="${BENCH_JOBS:-1000000}"
RUNS="${BENCH_RUNS:-30}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/dreamd-bench-ui.XXXXXX")"
PIDS=()
log() { echo "[bench-ui] $*" >&2; }
# shellcheck disable=SC2317
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    stop_started
    [[ $rc -ne 0 ]] && show_logs "$WORK" serve
    pg_destroy_private "$WORK/pg"
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ensure_dreamd_bin

pg_ensure_installed
pg_start_private "$WORK/pg"
pg_create_db dreamd_bench_ui
export DATABASE_URL
DATABASE_URL="$(pg_database_url dreamd_bench_ui)"
"$DREAMD_BIN" migrate >/dev/null 2>&1
PSQL=("$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$DATABASE_URL")

log "loading $JOBS jobs"
start=$(date +%s)
"${PSQL[@]}" <<SQL
SET session_replication_role = replica;  -- no triggers for the load
INSERT INTO api_keys (id, name, token_hash, token_prefix, scope)
SELECT gen_random_uuid(), 'team-' || k, md5(random()::text), 'dmd_bench' || k, 'submit' FROM generate_series(1, 5) k;
WITH keys AS (SELECT array_agg(id) AS ids FROM api_keys),
rows AS (
    SELECT n, (ARRAY['image_gen','predict','completion','dreambooth'])[1 + n % 4] AS kind,
           now() - (random() * interval '30 days') AS created
    FROM generate_series(1, $JOBS) n
)
INSERT INTO jobs (id, kind, state, params, error, attempt, max_attempts, run_at, created_at, updated_at, finished_at,
                  cost_usd, api_key_id, metadata)
SELECT gen_random_uuid(),
       CASE WHEN n % 1000 < 970 OR n % 1000 >= 990 THEN kind ELSE 'bench' END,
       s.state, '{"prompt": "bench"}'::jsonb,
       CASE WHEN s.state = 'failed' THEN jsonb_build_object('code', (ARRAY['upstream_job_failed','upstream_timeout','invalid_input'])[1 + n % 3], 'message', 'bench') END,
       1, 5,
       CASE WHEN s.state = 'scheduled' THEN now() + interval '1 day' ELSE created END,
       created, created,
       CASE WHEN s.state IN ('succeeded','failed','cancelled') THEN created + interval '40 seconds' END,
       CASE WHEN s.state = 'succeeded' THEN round((random() * 0.2)::numeric, 6) END,
       keys.ids[1 + n % 5],
       jsonb_build_object('team', 'team-' || (n % 50))
FROM rows, keys, LATERAL (SELECT CASE
        WHEN n % 1000 < 940 THEN 'succeeded' WHEN n % 1000 < 960 THEN 'failed' WHEN n % 1000 < 970 THEN 'cancelled'
        WHEN n % 1000 < 975 THEN 'queued' WHEN n % 1000 < 976 THEN 'running' WHEN n % 1000 < 990 THEN 'scheduled'
        ELSE 'succeeded' END AS state) s;
SET session_replication_role = origin;
VACUUM ANALYZE jobs;  -- a table autovacuum has seen: index-only scans
SQL
log "loaded in $(( $(date +%s) - start )) s: $("${PSQL[@]}" -tAc "SELECT count(*) FROM jobs") jobs, $("${PSQL[@]}" -tAc "SELECT pg_size_pretty(pg_total_relation_size('jobs'))")"
"${PSQL[@]}" -tAc "SELECT state, count(*) FROM jobs GROUP BY 1 ORDER BY 1" | sed 's/^/    /' >&2

SIM_PORT="$(free_port)"
"$DREAMD_BIN" sim --host 127.0.0.1 --port "$SIM_PORT" >"$WORK/sim.log" 2>&1 &
PIDS+=($!)
API_PORT="$(free_port)"
SIM="http://127.0.0.1:$SIM_PORT"
DREAMD_LISTEN="127.0.0.1:$API_PORT" DREAMLOOK_BASE_URL="$SIM" DREAMLOOK_API_KEY=dl DREAM_BASE_URL="$SIM" DREAM_API_KEY=dre \
DREAMGEN_BASE_URL="$SIM" DREAMGEN_API_KEY=dg DREAMD_DATA_DIR="$WORK/data" DREAMD_LOG_LEVEL=warning \
    "$DREAMD_BIN" serve >"$WORK/serve.log" 2>&1 </dev/null &
PIDS+=($!)
API="http://127.0.0.1:$API_PORT"
wait_up "$API/readyz" "${PIDS[-1]}" "dreamd serve"
TOKEN="$("$DREAMD_BIN" keys create --name bench-admin --scope admin 2>/dev/null | tail -n 1)"

# Sign in as a browser does.
JAR="$WORK/cookies"
CSRF="$(curl -s -c "$JAR" "$API/ui/login" | sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' | head -n 1)"
curl -s -b "$JAR" -c "$JAR" -o /dev/null --data-urlencode "csrf=$CSRF" --data-urlencode "key=$TOKEN" "$API/ui/login"
grep -q dreamd_session "$JAR" || { log "sign-in failed"; exit 1; }
JOB_ID="$("${PSQL[@]}" -tAc "SELECT id FROM jobs WHERE state = 'succeeded' ORDER BY created_at DESC LIMIT 1")"

measure() {  # NAME PATH [HEADER]
    local name="$1" path="$2" header="${3:-X-Bench: 1}" i times=() code
    code="$(curl -s -b "$JAR" -o /dev/null -w '%{http_code}' -H "$header" "$API$path")"
    [[ "$code" == 200 ]] || { log "$path answered $code"; exit 1; }
    curl -s -b "$JAR" -o /dev/null -H "$header" "$API$path"
    for ((i = 0; i < RUNS; i++)); do
        times+=("$(curl -s -b "$JAR" -o /dev/null -w '%{time_total}' -H "$header" "$API$path")")
    done
    printf '%s\n' "${times[@]}" | python3 -c '
import sys, statistics
t = sorted(float(x) * 1000 for x in sys.stdin)
p95 = t[min(len(t) - 1, int(round(0.95 * (len(t) - 1))))]
print(f"  {sys.argv[1]:<28} min {t[0]:7.1f}  median {statistics.median(t):7.1f}  p95 {p95:7.1f}  max {t[-1]:7.1f}  ms")' "$name"
}

echo "dashboard with $JOBS jobs ($RUNS requests each, debug or release as built: $DREAMD_BIN)"
measure "overview /ui" "/ui"
measure "overview (live refresh)" "/ui" "X-Dreamd-Live: 1"
measure "jobs /ui/jobs" "/ui/jobs"
measure "jobs, state=failed" "/ui/jobs?state=failed"
measure "jobs, search key=value" "/ui/jobs?q=team%3Dteam-7"
measure "one job" "/ui/jobs/$JOB_ID"
measure "costs, last 7 days" "/ui/costs"
