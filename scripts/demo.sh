#!/usr/bin/env bash
# scripts/demo.sh — end-to-end demo of dreamd against the built-in upstream simulator.
#
#   bash scripts/demo.sh                 run it; everything is stopped at the end
#   DEMO_KEEP=1 bash scripts/demo.sh     leave daemon, simulator and PostgreSQL running
#   bash scripts/demo.sh stop            stop what a DEMO_KEEP=1 run left running
#
# It starts a private PostgreSQL cluster in .dreamd/demo/pg, builds dreamd, migrates,
# starts `dreamd sim` and `dreamd serve`, creates an API key, starts a small webhook
# receiver (python3, verifies signatures itself) and subscribes it to job.*, submits 5
# image jobs and one Dream Engines rollout, follows them to a final state, and shows the audit trail and the webhooks
# that arrived, and prints the dashboard's URL (/ui) with an admin and a read-only key to sign in with. Exit status is non-zero unless every job succeeded and a verified webhook
# arrived for each. Logs: .dreamd/demo/{serve,sim,receiver}.log, webhooks.jsonl.
# Set DREAMD_BIN=/path/to/dreamd to skip `swift build`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib/pg.sh
source "$ROOT/scripts/lib/pg.sh"

DEMO_DIR="$ROOT/.dreamd/demo"
PG_DIR="$DEMO_DIR/pg"
NJOBS=5
READY_TIMEOUT="${DEMO_READY_TIMEOUT:-60}"   # seconds for /readyz
JOBS_TIMEOUT="${DEMO_JOBS_TIMEOUT:-90}"     # seconds for all jobs to reach a final state
CURL=(curl -sS --noproxy '*' --max-time 10)

say() { printf '\n==> %s\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

# ---- processes we started: pid files in DEMO_DIR -------------------------------------

_alive() { kill -0 "$1" 2>/dev/null && [[ "$(ps -o stat= -p "$1" 2>/dev/null)" != Z* ]]; }

# Stop the process recorded in DEMO_DIR/NAME.pid (only if it is still a dreamd process).
stop_pidfile() {
    local f="$DEMO_DIR/$1.pid" pid i
    [[ -f "$f" ]] || return 0
    pid="$(cat "$f")"
    if _alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q dreamd; then
        echo "stopping $1 (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 100); do _alive "$pid" || break; sleep 0.1; done
        _alive "$pid" && kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null || true   # reap it if it is our child
    fi
    rm -f "$f"
}

stop_all() {
    stop_pidfile serve
    stop_pidfile receiver
    stop_pidfile sim
    pg_stop_private "$PG_DIR"
}

if [[ "${1:-}" == "stop" ]]; then
    stop_all
    echo "demo stopped"
    exit 0
fi

# shellcheck disable=SC2317  # called from the trap
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if [[ "${DEMO_KEEP:-0}" == "1" ]]; then
        say "DEMO_KEEP=1: left running"
        [[ -n "${API_PORT:-}" ]] && echo "  API:        http://127.0.0.1:$API_PORT  (pid $(cat "$DEMO_DIR/serve.pid" 2>/dev/null))"
        [[ -n "${API_PORT:-}" ]] && echo "  dashboard:  http://127.0.0.1:$API_PORT/ui  (sign in with the key in .dreamd/demo/env: DREAMD_TOKEN)"
        [[ -n "${SIM_PORT:-}" ]] && echo "  simulator:  http://127.0.0.1:$SIM_PORT  (pid $(cat "$DEMO_DIR/sim.pid" 2>/dev/null))"
        [[ -n "${HOOK_PORT:-}" ]] && echo "  receiver:   http://127.0.0.1:$HOOK_PORT/hooks  (pid $(cat "$DEMO_DIR/receiver.pid" 2>/dev/null), log .dreamd/demo/receiver.log)"
        [[ -n "${DATABASE_URL:-}" ]] && echo "  database:   $DATABASE_URL"
        echo "  settings:   source .dreamd/demo/env"
        echo "  stop with:  bash scripts/demo.sh stop"
    else
        say "cleaning up"
        stop_all
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Print one field of a JSON object read on stdin (top level, or inside "job"/"data").
json_get() {
    python3 -c '
import json, sys
d = json.load(sys.stdin)
k = sys.argv[1]
for c in (d, d.get("job") if isinstance(d, dict) else None, d.get("data") if isinstance(d, dict) else None):
    if isinstance(c, dict) and k in c:
        v = c[k]
        print(v if not isinstance(v, (dict, list)) else json.dumps(v))
        sys.exit(0)
sys.exit(1)' "$1"
}

# Last 8 characters of a job id (the random end of a UUID or ULID).
short_id() { local s="$1"; ((${#s} > 8)) && s="${s: -8}"; echo "$s"; }

# Wait until URL answers (any HTTP status, or WANT if given) while process PID lives.
wait_http() {
    local url="$1" pid="$2" timeout="$3" want="${4:-}" name="$5" code i
    for ((i = 0; i < timeout * 2; i++)); do
        code="$("${CURL[@]}" --max-time 2 -o /dev/null -w '%{http_code}' "$url" 2>/dev/null || true)"
        if [[ -n "$want" && "$code" == "$want" ]] || [[ -z "$want" && "$code" != "000" && -n "$code" ]]; then
            return 0
        fi
        if ! _alive "$pid"; then
            echo "--- last lines of $DEMO_DIR/$name.log" >&2
            tail -n 30 "$DEMO_DIR/$name.log" >&2 || true
            die "$name exited before it was ready"
        fi
        sleep 0.5
    done
    echo "--- last lines of $DEMO_DIR/$name.log" >&2
    tail -n 30 "$DEMO_DIR/$name.log" >&2 || true
    die "$url not ready after ${timeout}s (last status: ${code:-none})"
}

# ---- 1. PostgreSQL -------------------------------------------------------------------

command -v python3 >/dev/null || die "python3 is required"
command -v curl >/dev/null || die "curl is required"
mkdir -p "$DEMO_DIR"
# A previous DEMO_KEEP=1 run may still have its daemon and simulator up: start afresh.
stop_pidfile serve
stop_pidfile receiver
stop_pidfile sim

say "PostgreSQL"
pg_ensure_installed
pg_start_private "$PG_DIR"
pg_drop_db dreamd          # a fresh database on every run
pg_create_db dreamd
export DATABASE_URL
DATABASE_URL="$(pg_database_url dreamd)"
echo "DATABASE_URL=$DATABASE_URL"

# ---- 2. build ------------------------------------------------------------------------

if [[ -n "${DREAMD_BIN:-}" ]]; then
    DREAMD="$DREAMD_BIN"
else
    say "swift build"
    swift build
    DREAMD="$(swift build --show-bin-path)/dreamd"
fi
[[ -x "$DREAMD" ]] || die "no dreamd binary at $DREAMD"
echo "dreamd: $DREAMD"

# ---- 3. migrate, simulator, daemon ---------------------------------------------------

say "dreamd migrate"
"$DREAMD" migrate

SIM_PORT="$(free_port)"
API_PORT="$(free_port)"
while [[ "$API_PORT" == "$SIM_PORT" ]]; do API_PORT="$(free_port)"; done
API="http://127.0.0.1:$API_PORT"
rm -rf "$DEMO_DIR/data"
mkdir -p "$DEMO_DIR/data"

say "starting simulator on 127.0.0.1:$SIM_PORT and daemon on 127.0.0.1:$API_PORT"
"$DREAMD" sim --port "$SIM_PORT" --queue-time 1s --run-time 2s \
    >"$DEMO_DIR/sim.log" 2>&1 </dev/null &
echo $! >"$DEMO_DIR/sim.pid"
SIM_PID=$!

DREAMD_LISTEN="127.0.0.1:$API_PORT" \
DREAMLOOK_BASE_URL="http://127.0.0.1:$SIM_PORT" \
DREAMLOOK_API_KEY=dl-demo \
DREAMD_POLL_INTERVAL=1s \
DREAMD_DATA_DIR="$DEMO_DIR/data" \
DREAMD_WEBHOOK_ALLOW_PRIVATE=true \
DREAM_BASE_URL="http://127.0.0.1:$SIM_PORT" \
DREAMD_INPUT_ALLOW_PRIVATE=true \
    "$DREAMD" serve >"$DEMO_DIR/serve.log" 2>&1 </dev/null &
echo $! >"$DEMO_DIR/serve.pid"
SERVE_PID=$!

wait_http "http://127.0.0.1:$SIM_PORT/" "$SIM_PID" 30 "" sim
wait_http "$API/readyz" "$SERVE_PID" "$READY_TIMEOUT" 200 serve
echo "ready: $API/readyz -> 200"

# Handy for poking at a DEMO_KEEP=1 run by hand.
cat >"$DEMO_DIR/env" <<EOF
export DATABASE_URL='$DATABASE_URL'
export DREAMD_API='$API'
EOF

# ---- 4. API key and jobs -------------------------------------------------------------

say "dreamd keys create --name demo"
TOKEN="$("$DREAMD" keys create --name demo | tail -n 1 | tr -d '[:space:]')"
[[ -n "$TOKEN" ]] || die "keys create printed no token"
echo "token: ${TOKEN:0:12}…"
echo "export DREAMD_TOKEN='$TOKEN'" >>"$DEMO_DIR/env"
AUTH=(-H "Authorization: Bearer $TOKEN")

# ---- 4b. a webhook receiver, subscribed to job.* -------------------------------------

HOOK_PORT="$(free_port)"
while [[ "$HOOK_PORT" == "$SIM_PORT" || "$HOOK_PORT" == "$API_PORT" ]]; do HOOK_PORT="$(free_port)"; done
HOOK_URL="http://127.0.0.1:$HOOK_PORT/hooks"
say "POST /v1/subscriptions: $HOOK_URL for job.*"
resp="$("${CURL[@]}" -X POST "${AUTH[@]}" -H 'Content-Type: application/json' -w $'\n%{http_code}' \
    -d "{\"url\":\"$HOOK_URL\",\"event_types\":[\"job.*\"],\"description\":\"demo receiver\"}" \
    "$API/v1/subscriptions")" || die "POST /v1/subscriptions failed"
code="${resp##*$'\n'}"
json="${resp%$'\n'*}"
[[ "$code" == 201 ]] || die "POST /v1/subscriptions -> HTTP $code: $json"
SUB_ID="$(json_get id <<<"$json")"
WEBHOOK_SECRET="$(json_get secret <<<"$json")"
echo "subscription $SUB_ID, secret ${WEBHOOK_SECRET:0:10}… (shown once; the receiver verifies with it)"
rm -f "$DEMO_DIR/webhooks.jsonl"
WEBHOOK_SECRET="$WEBHOOK_SECRET" python3 "$ROOT/scripts/lib/dreamd_webhook_receiver.py" "$HOOK_PORT" "$DEMO_DIR/webhooks.jsonl" \
    >"$DEMO_DIR/receiver.log" 2>&1 </dev/null &
echo $! >"$DEMO_DIR/receiver.pid"
HOOK_PID=$!
for _ in $(seq 1 50); do
    "${CURL[@]}" --max-time 1 -o /dev/null "http://127.0.0.1:$HOOK_PORT/" 2>/dev/null && break
    _alive "$HOOK_PID" || { cat "$DEMO_DIR/receiver.log" >&2; die "the webhook receiver exited"; }
    sleep 0.1
done

say "submitting $NJOBS image_gen jobs"
IDS=()
for n in $(seq 1 "$NJOBS"); do
    body="{\"kind\":\"image_gen\",\"params\":{\"prompt\":\"a watercolor fox #$n\",\"num_samples\":2,\"width\":512,\"height\":512,\"base_model\":\"stable-diffusion-v1-5\"}}"
    resp="$("${CURL[@]}" -X POST "${AUTH[@]}" -H 'Content-Type: application/json' \
        -d "$body" -w $'\n%{http_code}' "$API/v1/jobs")" || die "POST /v1/jobs failed"
    code="${resp##*$'\n'}"
    json="${resp%$'\n'*}"
    [[ "$code" == 2?? ]] || die "POST /v1/jobs -> HTTP $code: $json"
    id="$(json_get id <<<"$json")" || die "no id in response: $json"
    IDS+=("$id")
    echo "job $n: $id"
done

# A Dream Engines rollout too: the simulator serves a start frame of the model's size, and the
# actions are 12 steps (one chunk) of dreamdojo-2b-gr1's 384-dimensional action vector.
say "submitting a predict rollout (Dream Engines)"
body="$(python3 -c '
import json, sys
port = sys.argv[1]
print(json.dumps({"kind": "predict", "params": {"model": "dreamdojo-2b-gr1",
    "start_frame": {"url": "http://127.0.0.1:%s/fixtures/frame.png" % port},
    "actions": {"values": [[0.01 * ((i + j) % 7) for j in range(384)] for i in range(12)]}, "seed": 7}}))
' "$SIM_PORT")"
resp="$("${CURL[@]}" -X POST "${AUTH[@]}" -H 'Content-Type: application/json' \
    -d "$body" -w $'\n%{http_code}' "$API/v1/jobs")" || die "POST /v1/jobs (predict) failed"
code="${resp##*$'\n'}"
json="${resp%$'\n'*}"
[[ "$code" == 2?? ]] || die "POST /v1/jobs (predict) -> HTTP $code: $json"
id="$(json_get id <<<"$json")" || die "no id in response: $json"
IDS+=("$id")
NJOBS=$((NJOBS + 1))
PREDICT_ID="$id"
echo "predict job: $id"

# ---- 5. follow the jobs --------------------------------------------------------------

say "waiting for the jobs (timeout ${JOBS_TIMEOUT}s)"
declare -A STATE
printf '%6s' "t(s)"
for id in "${IDS[@]}"; do printf '  %-10s' "$(short_id "$id")"; done
echo
start=$SECONDS
while :; do
    pending=0
    for id in "${IDS[@]}"; do
        if json="$("${CURL[@]}" -f "${AUTH[@]}" "$API/v1/jobs/$id" 2>/dev/null)"; then
            STATE[$id]="$(json_get state <<<"$json" 2>/dev/null || echo '?')"
        else
            STATE[$id]="?"
        fi
        case "${STATE[$id]}" in succeeded | failed | cancelled) ;; *) pending=$((pending + 1)) ;; esac
    done
    printf '%6d' $((SECONDS - start))
    for id in "${IDS[@]}"; do printf '  %-10s' "${STATE[$id]}"; done
    echo
    ((pending == 0)) && break
    _alive "$SERVE_PID" || { tail -n 30 "$DEMO_DIR/serve.log" >&2; die "dreamd serve exited"; }
    if ((SECONDS - start >= JOBS_TIMEOUT)); then
        echo "demo: $pending job(s) not final after ${JOBS_TIMEOUT}s" >&2
        break
    fi
    sleep 3
done

# ---- 6. results and audit trail ------------------------------------------------------

ok=0
for id in "${IDS[@]}"; do [[ "${STATE[$id]}" == succeeded ]] && ok=$((ok + 1)); done

say "audit trail of job ${IDS[0]}: GET /v1/jobs/${IDS[0]}/events"
events="$("${CURL[@]}" "${AUTH[@]}" "$API/v1/jobs/${IDS[0]}/events" || true)"
python3 -m json.tool <<<"$events" 2>/dev/null || echo "$events"

SQL="select job_id, at, actor, from_state, to_state from job_events order by id limit 20"
say "the same trail in PostgreSQL"
echo "psql \"$DATABASE_URL\" -c \"$SQL\""
[[ "${DEMO_KEEP:-0}" == 1 ]] || echo "(the cluster is stopped when the demo ends: rerun with DEMO_KEEP=1 to keep it)"
"$PG_BIN/psql" -X "$DATABASE_URL" -c "$SQL"

say "the rollout's result: GET /v1/jobs/$PREDICT_ID"
"${CURL[@]}" "${AUTH[@]}" "$API/v1/jobs/$PREDICT_ID" | python3 -c '
import json, sys
job = json.load(sys.stdin)
print(json.dumps({"state": job["state"], "cost_usd": job.get("cost_usd"), "result": job.get("result")}, indent=2))
' || true

# ---- 7. webhooks ---------------------------------------------------------------------

say "webhooks received by $HOOK_URL"
hooks=0
for _ in $(seq 1 60); do
    hooks=0
    [[ -f "$DEMO_DIR/webhooks.jsonl" ]] && hooks="$(wc -l <"$DEMO_DIR/webhooks.jsonl")"
    ((hooks >= NJOBS)) && break
    sleep 0.5
done
cat "$DEMO_DIR/receiver.log"
verified="$(grep -c '"verified": true' "$DEMO_DIR/webhooks.jsonl" 2>/dev/null || true)"
verified="${verified:-0}"
echo "$hooks webhook(s) arrived for $NJOBS jobs; $verified signature(s) verified"
SQL_HOOKS="select event_type, state, attempts, last_status from deliveries order by created_at"
echo "psql: $SQL_HOOKS"
"$PG_BIN/psql" -X "$DATABASE_URL" -c "$SQL_HOOKS"

# ---- 8. the dashboard ----------------------------------------------------------------

say "the dashboard"
READ_TOKEN="$("$DREAMD" keys create --name demo-viewer --scope read 2>/dev/null | tail -n 1 | tr -d '[:space:]')"
echo "  open          $API/ui"
echo "  sign in with  $TOKEN   (admin: every button)"
echo "  or            $READ_TOKEN   (read: looks only)"
[[ "${DEMO_KEEP:-0}" == "1" ]] || echo "  (everything stops when the demo ends: DEMO_KEEP=1 bash scripts/demo.sh keeps it open)"

for id in "${IDS[@]}"; do
    if [[ "${STATE[$id]}" != succeeded ]]; then
        echo "job $id: ${STATE[$id]}"
        "${CURL[@]}" "${AUTH[@]}" "$API/v1/jobs/$id" 2>/dev/null | python3 -m json.tool 2>/dev/null || true
    fi
done
if ((ok == NJOBS && hooks >= NJOBS && verified == hooks)); then
    say "demo OK: $ok/$NJOBS jobs succeeded; $hooks signed webhooks arrived and verified"
    exit 0
fi
say "demo FAILED: $ok/$NJOBS jobs succeeded; $hooks/$NJOBS webhooks arrived, $verified verified"
exit 1
