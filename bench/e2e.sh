#!/usr/bin/env bash
# bench/e2e.sh — end-to-end orchestrated jobs per second: a job is submitted over REST, dreamd submits it
# to `dreamd sim`'s dreamlook, dreamlook's callback arrives, a poll confirms it, the job succeeds and its
# signed `job.succeeded` webhook reaches a local subscriber. Runs with 1 and with 3 `dreamd serve`
# processes sharing one private PostgreSQL (a fresh database and simulator for each), and prints, for each:
#   throughput: N jobs submitted in bulk at once → jobs/s from the first submission to the last webhook;
#   latency:    jobs submitted one by one at a steady rate → p50/p99 from the upstream finishing
#               (the simulator's finish time of the job) to its webhook arriving;
#   each daemon's peak RSS.
# It ends with
#   e2e: 1 daemon J1 jobs/s, 3 daemons J3 jobs/s; p99 upstream-finish→webhook at R jobs/s: L1 ms (1), L3 ms (3)
#
#   bash bench/e2e.sh [jobs=5000] [paced-rate=100] [paced-seconds=10] [daemon-counts="1 3"]
#   DREAMD_BIN=... bash bench/e2e.sh        # a given build (else: release, in .build-bench)
#   BENCH_PROFILE=1 bash bench/e2e.sh       # also print each run's top statements (pg_stat_statements)
#   E2E_BEFORE_BIN=DIR E2E_BEFORE_MIGRATIONS=DIR bash bench/e2e.sh 5000 100 10 "before:1 1 3"
#                                           # "before:N": N daemons of an older build (its dreamd and E2EBench
#                                           # in DIR, its migrations), for before/after figures in one run
#
# Settings an operator of this volume would set, and only those: dreamlook's per-process request rate
# (DREAMD_DREAMLOOK_RATE, default 10/s), the steps a process runs at once (DREAMD_WORKER_CONCURRENCY, default
# 16: submissions and polls wait on the network, not the CPU) with its claim batch (DREAMD_CLAIM_BATCH, 10),
# and the per-subscription webhook cap (DREAMD_WEBHOOK_PER_SUBSCRIPTION, default 4) are raised; everything
# else is the default, callbacks on. E2E_ENV adds settings (E2E_ENV="DREAMD_WORKER_CONCURRENCY=64").
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/pg.sh

JOBS=${1:-5000}; RATE=${2:-100}; PACED_SECONDS=${3:-10}; COUNTS=${4:-"1 3"}
CONFIG=${BENCH_CONFIG:-release}
CURL=(curl -sS --noproxy '*' --max-time 10)

pg_ensure_installed
# BENCH_PROFILE=1: pg_stat_statements in the cluster; each run's top statements are printed after it.
[[ "${BENCH_PROFILE:-0}" == 1 ]] && pg_profile_enable
WORK=$(mktemp -d /tmp/dreamd-e2e.XXXXXX)
PIDS=()
stop_all() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    PIDS=()
}
cleanup() {
    stop_all
    pg_destroy_private "$WORK/pg" >/dev/null 2>&1 || true
    [[ -n "${E2E_KEEP:-}" ]] || rm -rf "$WORK"
}
trap cleanup EXIT
pg_start_private "$WORK/pg"

SCRATCH=(--scratch-path .build-bench)
if [[ -n "${DREAMD_BIN:-}" ]]; then
    BIN=$DREAMD_BIN
    BENCH=${E2E_BENCH_BIN:-$(dirname "$DREAMD_BIN")/E2EBench}
else
    echo "==> building ($CONFIG)"
    swift build "${SCRATCH[@]}" -c "$CONFIG" --product dreamd >&2
    swift build "${SCRATCH[@]}" -c "$CONFIG" --product E2EBench >&2
    BIN="$(swift build "${SCRATCH[@]}" -c "$CONFIG" --show-bin-path)/dreamd"
    BENCH="$(dirname "$BIN")/E2EBench"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {  # url timeout
    for _ in $(seq 1 $(( $2 * 10 ))); do "${CURL[@]}" -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "e2e: $1 did not answer" >&2; return 1
}

echo "    ($(nproc) cores, $("$PG_BIN/postgres" --version), $CONFIG build; PostgreSQL, daemons, simulator and subscriber on this machine)"
SUMMARY="$WORK/summary"; : >"$SUMMARY"
NOW_BIN=$BIN; NOW_BENCH=$BENCH
for ENTRY in $COUNTS; do
    DAEMONS=${ENTRY#before:}
    if [[ "$ENTRY" == before:* ]]; then
        BIN=${E2E_BEFORE_BIN:?E2E_BEFORE_BIN names the older build}/dreamd; BENCH=$E2E_BEFORE_BIN/E2EBench
        MIGRATIONS=${E2E_BEFORE_MIGRATIONS:?E2E_BEFORE_MIGRATIONS names the older migrations}; LABEL="before, $DAEMONS"
    else
        BIN=$NOW_BIN; BENCH=$NOW_BENCH; MIGRATIONS=migrations; LABEL=$DAEMONS
    fi
    DB="e2e_${ENTRY/:/_}"
    pg_create_db "$DB" >/dev/null
    export DATABASE_URL; DATABASE_URL=$(pg_database_url "$DB")
    "$BIN" migrate --migrations-dir "$MIGRATIONS" >/dev/null 2>&1
    TOKEN=$("$BIN" keys create --name e2e 2>/dev/null | tail -n 1 | tr -d '[:space:]')

    SIM_PORT=$(free_port)
    "$BIN" sim --port "$SIM_PORT" --queue-time 0ms --run-time 500ms >"$WORK/sim$DAEMONS.log" 2>&1 &
    PIDS+=($!)
    wait_http "http://127.0.0.1:$SIM_PORT/sim/dreamlook/stats" 30

    declare -a DPID=() URLS=()
    for i in $(seq 1 "$DAEMONS"); do
        port=$(free_port)
        DREAMD_LISTEN="127.0.0.1:$port" DREAMD_PUBLIC_URL="http://127.0.0.1:$port" DREAMD_CALLBACKS=on \
        DREAMLOOK_BASE_URL="http://127.0.0.1:$SIM_PORT" DREAMLOOK_API_KEY=dl-e2e \
        DREAM_BASE_URL="http://127.0.0.1:$SIM_PORT" DREAMGEN_BASE_URL="http://127.0.0.1:$SIM_PORT" \
        DREAMD_DREAMLOOK_RATE=10000 DREAMD_WEBHOOK_PER_SUBSCRIPTION=64 DREAMD_API_RATE_LIMIT=0 \
        DREAMD_WORKER_CONCURRENCY=128 DREAMD_CLAIM_BATCH=64 DREAMD_MIGRATIONS_DIR="$MIGRATIONS" \
        DREAMD_WEBHOOK_ALLOW_PRIVATE=true DREAMD_DATA_DIR="$WORK/data$DAEMONS-$i" DREAMD_LOG_LEVEL=warning \
            env ${E2E_ENV:-} "$BIN" serve >>"$WORK/serve$DAEMONS-$i.log" 2>&1 </dev/null &
        DPID[$i]=$!; PIDS+=($!)
        URLS+=("http://127.0.0.1:$port")
    done
    for url in "${URLS[@]}"; do wait_http "$url/readyz" 60; done

    echo "==> $LABEL daemon(s): $JOBS image_gen jobs in bulk, then $RATE jobs/s for ${PACED_SECONDS} s (simulator: 500 ms run time, callbacks on)"
    PEAKS="$WORK/peaks$DAEMONS"; : >"$PEAKS"
    ( while :; do
        for i in $(seq 1 "$DAEMONS"); do
            kb=$(awk '/VmHWM/ {print $2}' "/proc/${DPID[$i]}/status" 2>/dev/null || true)
            [[ -n "$kb" ]] && echo "$i $kb" >>"$PEAKS"
        done
        sleep 0.5
      done ) &
    SAMPLER=$!
    OUT=$("$BENCH" --token "$TOKEN" --simulator "http://127.0.0.1:$SIM_PORT" --jobs "$JOBS" --rate "$RATE" \
            --seconds "$PACED_SECONDS" "${URLS[@]}")
    kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true
    echo "$OUT" | grep -v '^[A-Z_0-9]*='
    for i in $(seq 1 "$DAEMONS"); do
        echo "daemon $i peak RSS: $(awk -v i="$i" '$1 == i && $2 > m {m = $2} END {printf "%.1f MB", m / 1024}' "$PEAKS")"
    done
    echo "$ENTRY $(echo "$OUT" | sed -n 's/^JOBS_PER_SECOND=//p') $(echo "$OUT" | sed -n 's/^P99_MS=//p')" >>"$SUMMARY"
    # Where a paced job's time went, from the audit trail, the callback inbox and the delivery log.
    "$PG_BIN/psql" -X -q -At "$DATABASE_URL" -c "
        WITH paced AS (SELECT id FROM jobs ORDER BY created_at DESC LIMIT $(( RATE * PACED_SECONDS ))),
        t AS (SELECT
                (SELECT min(at) FROM job_events e WHERE e.job_id = p.id AND e.to_state = 'queued') AS queued,
                (SELECT min(at) FROM job_events e WHERE e.job_id = p.id AND e.to_state = 'running') AS running,
                (SELECT min(received_at) FROM callback_inbox i WHERE i.job_id = p.id) AS callback,
                (SELECT min(at) FROM job_events e WHERE e.job_id = p.id AND e.to_state = 'succeeded') AS done,
                (SELECT min(d.delivered_at) FROM events ev JOIN deliveries d ON d.event_id = ev.id
                  WHERE ev.type = 'job.succeeded' AND ev.payload->'data'->>'id' = p.id::text) AS delivered
              FROM paced p),
        d AS (SELECT 1000 * extract(epoch FROM running - queued) AS submit, 1000 * extract(epoch FROM done - callback) AS confirm,
                     1000 * extract(epoch FROM delivered - done) AS deliver FROM t)
        SELECT format('stages of the paced jobs, p50/p99 ms: queued -> running %s/%s; callback received -> succeeded %s/%s; succeeded -> webhook delivered %s/%s',
            round(percentile_cont(0.5) WITHIN GROUP (ORDER BY submit)::numeric, 1), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY submit)::numeric, 1),
            round(percentile_cont(0.5) WITHIN GROUP (ORDER BY confirm)::numeric, 1), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY confirm)::numeric, 1),
            round(percentile_cont(0.5) WITHIN GROUP (ORDER BY deliver)::numeric, 1), round(percentile_cont(0.99) WITHIN GROUP (ORDER BY deliver)::numeric, 1))
        FROM d" || true
    # The slowest 1 % of the paced jobs: each one's timeline, in ms after the simulator finished it.
    SLOWEST=$(echo "$OUT" | sed -n 's/^SLOWEST=//p')
    if [[ -n "$SLOWEST" ]]; then
        echo "slowest paced jobs, ms after the upstream finished (callback received, callback processed, succeeded, webhook delivered):"
        "$PG_BIN/psql" -X -q -At "$DATABASE_URL" -c "
            WITH s AS (SELECT split_part(x, '@', 1)::uuid AS id, to_timestamp(split_part(x, '@', 2)::float8) AS finished
                       FROM unnest(string_to_array('$SLOWEST', ',')) AS x)
            SELECT format('  %s: callback %s / %s, succeeded %s, delivered %s', s.id,
                round(1000 * extract(epoch FROM (SELECT min(received_at) FROM callback_inbox i WHERE i.job_id = s.id) - s.finished)),
                round(1000 * extract(epoch FROM (SELECT min(processed_at) FROM callback_inbox i WHERE i.job_id = s.id) - s.finished)),
                round(1000 * extract(epoch FROM (SELECT min(at) FROM job_events e WHERE e.job_id = s.id AND e.to_state = 'succeeded') - s.finished)),
                round(1000 * extract(epoch FROM (SELECT min(d.delivered_at) FROM events ev JOIN deliveries d ON d.event_id = ev.id
                    WHERE ev.type = 'job.succeeded' AND ev.payload->'data'->>'id' = s.id::text) - s.finished)))
            FROM s" || true
    fi
    if [[ "${BENCH_PROFILE:-0}" == 1 ]]; then
        echo "==> where PostgreSQL's time went ($LABEL daemon(s), pg_stat_statements)"
        pg_profile_report "$DB" 15
    fi
    stop_all
done

python3 - "$SUMMARY" "$RATE" <<'PY'
import sys
rows = [line.split() for line in open(sys.argv[1]) if line.strip()]
rate = sys.argv[2]
now = [r for r in rows if not r[0].startswith("before:")]
before = [r for r in rows if r[0].startswith("before:")]
def name(entry):
    d = entry.removeprefix("before:")
    return ("before, " if entry.startswith("before:") else "") + f"{d} daemon{'s' if d != '1' else ''}"
for b in before:
    match = [r for r in now if r[0] == b[0].removeprefix("before:")]
    if match and float(b[1]) > 0:
        print(f"before/after ({name(match[0][0])}): {float(b[1]):.0f} -> {float(match[0][1]):.0f} jobs/s ({float(match[0][1]) / float(b[1]):.2f}x); "
              f"p99 {float(b[2]):.1f} -> {float(match[0][2]):.1f} ms")
if len(now) >= 2 and float(now[0][1]) > 0:
    print(f"scaling: {now[-1][0]} daemons drain {float(now[-1][1]) / float(now[0][1]):.2f}x what {now[0][0]} daemon does")
throughput = ", ".join(f"{name(d)} {float(j):.0f} jobs/s" for d, j, _ in now)
latency = ", ".join(f"{float(p):.1f} ms ({name(d)})" for d, _, p in now)
print(f"e2e: {throughput}; p99 upstream-finish→webhook at {rate} jobs/s: {latency}")
PY
