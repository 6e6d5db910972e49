#!/usr/bin/env bash
# bench/chaos.sh — never pay twice, under faults: N `image_gen` jobs on D `dreamd serve` processes sharing one
# private PostgreSQL, against `dreamd sim` with lost-answer 503s (the job is created, the answer is 503),
# plain 502/503/504s, 429s, dropped and duplicated callbacks; one daemon is SIGKILLed mid-run and restarted,
# PostgreSQL is restarted mid-run, and a subscriber (scripts/lib/dreamd_webhook_receiver.py, its own HMAC)
# verifies every webhook's signature.
#
#   bash bench/chaos.sh [jobs=600] [daemons=3]
#   DREAMD_BIN=.build/debug/dreamd bash bench/chaos.sh 200 3     # a given build (scripts/test.sh does this)
#   CHAOS_CONFIG=debug bash bench/chaos.sh                        # build debug instead of release
#
# It prints the jobs by final state, the most upstream submissions of any one job (from the simulator's
# count per dreamd_job_id tag), the jobs with other than one final audit event, webhooks received and
# verified, the time to drain and each daemon's peak RSS. It ends with
#   chaos: N jobs, 0 double submissions, N final, ...
# and exits non-zero when a job was submitted twice, a job is not final, a job has other than one final
# audit event, or a webhook failed verification.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
source scripts/lib/pg.sh

JOBS=${1:-600}; DAEMONS=${2:-3}
CONFIG=${CHAOS_CONFIG:-release}
DRAIN_TIMEOUT=${CHAOS_DRAIN_TIMEOUT:-300}
CURL=(curl -sS --noproxy '*' --max-time 10)

pg_ensure_installed
WORK=$(mktemp -d /tmp/dreamd-chaos.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    sleep 0.5
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    pg_destroy_private "$WORK/pg" >/dev/null 2>&1 || true
    [[ -n "${CHAOS_KEEP:-}" ]] || rm -rf "$WORK"
}
trap cleanup EXIT
pg_start_private "$WORK/pg"
pg_create_db chaos >/dev/null
export DATABASE_URL=$(pg_database_url chaos)

if [[ -n "${DREAMD_BIN:-}" ]]; then
    BIN=$DREAMD_BIN
else
    echo "==> building ($CONFIG)"
    swift build --scratch-path .build-bench -c "$CONFIG" --product dreamd >&2
    BIN="$(swift build --scratch-path .build-bench -c "$CONFIG" --show-bin-path)/dreamd"
fi
"$BIN" migrate --migrations-dir migrations >/dev/null 2>&1

free() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {  # url timeout
    for _ in $(seq 1 $(( $2 * 10 ))); do "${CURL[@]}" -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "chaos: $1 did not answer" >&2; return 1
}

SIM_PORT=$(free)
"$BIN" sim --port "$SIM_PORT" --queue-time 300ms --run-time 700ms \
    --create-then-fail-rate 0.05 --server-error-rate 0.05 --rate-limit-rate 0.02 --retry-after 1 \
    --callback-drop-rate 0.3 --callback-duplicate-rate 0.2 >"$WORK/sim.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$SIM_PORT/sim/dreamlook/stats" 30

HOOK_PORT=$(free)
TOKEN=$("$BIN" keys create --name chaos 2>/dev/null | tail -n 1 | tr -d '[:space:]')

declare -a DPID DPORT
PEAKS="$WORK/peaks"; : >"$PEAKS"
start_daemon() {  # index
    local i=$1
    DREAMD_LISTEN="127.0.0.1:${DPORT[$i]}" DREAMD_PUBLIC_URL="http://127.0.0.1:${DPORT[$i]}" DREAMD_CALLBACKS=on \
    DREAMLOOK_BASE_URL="http://127.0.0.1:$SIM_PORT" DREAMLOOK_API_KEY=dl-chaos \
    DREAM_BASE_URL="http://127.0.0.1:$SIM_PORT" DREAMGEN_BASE_URL="http://127.0.0.1:$SIM_PORT" \
    DREAMD_POLL_INTERVAL=500ms DREAMD_POLL_INTERVAL_MAX=2s DREAMD_CALLBACK_POLL_INTERVAL_MAX=3s \
    DREAMD_RETRY_BACKOFF=200ms DREAMD_RETRY_BACKOFF_MAX=2s DREAMD_LEASE_DURATION=5s DREAMD_IDLE_POLL=200ms \
    DREAMD_RECONCILE_DEADLINE=${CHAOS_RECONCILE_DEADLINE:-60s} DREAMD_API_RATE_LIMIT=0 \
    DREAMD_WEBHOOK_ALLOW_PRIVATE=true DREAMD_DATA_DIR="$WORK/data$i" \
        "$BIN" serve >>"$WORK/serve$i.log" 2>&1 </dev/null &
    DPID[$i]=$!
    PIDS+=($!)
}
for i in $(seq 1 "$DAEMONS"); do DPORT[$i]=$(free); start_daemon "$i"; done
for i in $(seq 1 "$DAEMONS"); do wait_http "http://127.0.0.1:${DPORT[$i]}/readyz" 60; done
API="http://127.0.0.1:${DPORT[1]}"
AUTH=(-H "authorization: Bearer $TOKEN")

SUB=$("${CURL[@]}" "${AUTH[@]}" -H 'content-type: application/json' \
      -d "{\"url\":\"http://127.0.0.1:$HOOK_PORT/hooks\",\"event_types\":[\"job.*\"],\"description\":\"chaos\"}" "$API/v1/subscriptions")
SECRET=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["secret"])' "$SUB")
WEBHOOK_SECRET="$SECRET" python3 scripts/lib/dreamd_webhook_receiver.py "$HOOK_PORT" "$WORK/webhooks.jsonl" >"$WORK/receiver.log" 2>&1 &
PIDS+=($!)

sample_rss() {  # records each live daemon's VmHWM (peak RSS, kB) as "index kB"
    for i in $(seq 1 "$DAEMONS"); do
        local kb; kb=$(awk '/VmHWM/ {print $2}' "/proc/${DPID[$i]}/status" 2>/dev/null || true)
        [[ -n "$kb" ]] && echo "$i $kb" >>"$PEAKS"
    done
    return 0
}

echo "==> $JOBS image_gen jobs on $DAEMONS daemons; faults: 5 % created-then-503, 5 % 502/503/504, 2 % 429, 30 % callbacks dropped, 20 % duplicated"
START=$(date +%s.%N)
# Submitted over the daemons in turn, by 8 threads; one third in, daemon 1 is SIGKILLed and restarted,
# two thirds in, PostgreSQL restarts.
python3 - "$JOBS" "$TOKEN" "$WORK/ids" "$WORK/marks" "${DPORT[@]:1}" <<'PY' &
import json, sys, threading, urllib.request, time
jobs, token, ids_path, marks = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ports = sys.argv[5:]
ids, lock, counter = [], threading.Lock(), iter(range(jobs))
def submit():
    while True:
        with lock:
            n = next(counter, None)
        if n is None: return
        body = json.dumps({"kind": "image_gen", "params": {"prompt": f"chaos {n}", "num_samples": 1, "width": 512, "height": 512, "base_model": "sd-1.5"}}).encode()
        for attempt in range(60):
            port = ports[(n + attempt) % len(ports)]
            req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/jobs", data=body, method="POST",
                                         headers={"authorization": f"Bearer {token}", "content-type": "application/json",
                                                  "idempotency-key": f"chaos-{n}"})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    job = json.loads(r.read())
                with lock:
                    ids.append(job["id"])
                    if len(ids) in (jobs // 3, 2 * jobs // 3):
                        open(marks, "a").write(f"{len(ids)}\n")
                break
            except Exception:
                time.sleep(0.5)   # a killed daemon or a restarting database: try another, same key
threads = [threading.Thread(target=submit) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
open(ids_path, "w").write("\n".join(ids))
PY
SUBMITTER=$!
PIDS+=($SUBMITTER)
marks() { [[ -f "$WORK/marks" ]] && wc -l <"$WORK/marks" || echo 0; }
until [[ $(marks) -ge 1 ]] || ! kill -0 $SUBMITTER 2>/dev/null; do sample_rss; sleep 0.1; done
sample_rss
echo "==> SIGKILL daemon 1 (pid ${DPID[1]}) with work in flight; restarting it in 1 s"
kill -KILL "${DPID[1]}"; wait "${DPID[1]}" 2>/dev/null || true
sleep 1; start_daemon 1
until [[ $(marks) -ge 2 ]] || ! kill -0 $SUBMITTER 2>/dev/null; do sample_rss; sleep 0.1; done
echo "==> restarting PostgreSQL"
pg_stop_private "$WORK/pg" >/dev/null 2>&1
sleep 1
pg_start_private "$WORK/pg" >/dev/null 2>&1
wait $SUBMITTER || true
SUBMITTED=$(grep -c . "$WORK/ids" || true)

psql_q() { "$PG_BIN/psql" "$DATABASE_URL" -At -c "$1" 2>/dev/null; }
DEADLINE=$(( $(date +%s) + DRAIN_TIMEOUT ))
while :; do
    sample_rss
    open=$(psql_q "SELECT count(*) FROM jobs WHERE state NOT IN ('succeeded', 'failed', 'cancelled')" || echo "?")
    [[ "$open" == 0 ]] && break
    if [[ $(date +%s) -ge $DEADLINE ]]; then echo "chaos: $open jobs still not final after ${DRAIN_TIMEOUT}s" >&2; break; fi
    sleep 0.5
done
END=$(date +%s.%N)
sleep 3   # the last webhooks
sample_rss

echo "==> results"
echo "jobs submitted: $SUBMITTED of $JOBS"
echo "jobs by final state:"; psql_q "SELECT '  ' || state || ': ' || count(*) FROM jobs GROUP BY state ORDER BY state" || true
echo "errors of failed jobs:"; psql_q "SELECT '  ' || (error->>'code') || ': ' || count(*) || '  e.g. ' || left(min(error->>'message'), 300) FROM jobs WHERE state = 'failed' GROUP BY error->>'code' ORDER BY 1" || true
STATS=$("${CURL[@]}" "http://127.0.0.1:$SIM_PORT/sim/dreamlook/stats")
MAX_SUBMISSIONS=$(python3 -c 'import json,sys; print(int(json.loads(sys.argv[1])["max_submissions_per_tag"]))' "$STATS")
DOUBLES=$(python3 -c 'import json,sys; print(int(json.loads(sys.argv[1])["tags_submitted_more_than_once"]))' "$STATS")
echo "upstream jobs: $(python3 -c 'import json,sys; print(int(json.loads(sys.argv[1])["tagged_jobs"]))' "$STATS") for $SUBMITTED dreamd jobs; most submissions of any one job: $MAX_SUBMISSIONS; jobs submitted more than once: $DOUBLES"
echo "reconciliations: $(psql_q "SELECT count(*) FROM job_events WHERE detail ? 'reconciling'") waits, $(psql_q "SELECT count(*) FROM job_events WHERE detail->'detail'->>'submission' LIKE 'adopted%'") adoptions"
BAD_FINAL=$(psql_q "SELECT count(*) FROM jobs j WHERE (SELECT count(*) FROM job_events e WHERE e.job_id = j.id AND e.to_state IN ('succeeded', 'failed', 'cancelled')) <> 1")
echo "jobs with other than one final audit event: $BAD_FINAL"
RECEIVED=$(grep -c . "$WORK/webhooks.jsonl" 2>/dev/null || true)
VERIFIED=$(grep -c '"verified": true' "$WORK/webhooks.jsonl" 2>/dev/null || true)
FINAL_HOOKS=$(python3 - "$WORK/webhooks.jsonl" <<'PY'
import json, sys
seen = set()
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["verified"] and r["type"] in ("job.succeeded", "job.failed"): seen.add(r["job_id"])
print(len(seen))
PY
)
echo "webhooks received: ${RECEIVED:-0}, verified: ${VERIFIED:-0}; jobs with a verified final webhook: $FINAL_HOOKS"
DRAIN=$(python3 -c "print(f'{$END - $START:.1f}')")
echo "time to drain: ${DRAIN} s (first submission to every job final)"
for i in $(seq 1 "$DAEMONS"); do
    echo "daemon $i peak RSS: $(awk -v i="$i" '$1 == i && $2 > m {m = $2} END {printf "%.1f MB", m / 1024}' "$PEAKS")"
done
FINAL=$(psql_q "SELECT count(*) FROM jobs WHERE state IN ('succeeded', 'failed', 'cancelled')")
echo "chaos: $SUBMITTED jobs, $DOUBLES double submissions, $FINAL final, $BAD_FINAL with other than one final audit event, ${VERIFIED:-0}/${RECEIVED:-0} webhooks verified, drained in ${DRAIN} s"
[[ "$DOUBLES" == 0 && "$FINAL" == "$SUBMITTED" && "$SUBMITTED" == "$JOBS" && "$BAD_FINAL" == 0 && "${VERIFIED:-0}" == "${RECEIVED:-0}" ]]
