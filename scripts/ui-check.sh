#!/usr/bin/env bash
# scripts/ui-check.sh — the dashboard (/ui) in a real browser: Debian's chromium driven by Playwright for Python.
#
# Builds dreamd (unless DREAMD_BIN points at a built one), starts a private PostgreSQL cluster, `dreamd sim`
# (its DreamGen streams fail, so a completion job fails), a webhook receiver and `dreamd serve`, creates an
# admin and a read-only key, installs chromium (apt-get, when missing) and Playwright into .dreamd/ui-venv,
# and runs Tests/python/test_ui_browser.py: sign in, a job submitted through the API appears and finishes
# (live refresh), its audit timeline, cancel a scheduled job, retry a failed one, redeliver a delivery, a
# read-only key sees no action buttons, a form posted without its CSRF token is refused, sign out.
# UI_SCREENSHOTS=DIR saves a screenshot of each page there (docs/ui.md's pictures: scripts/ui-check.sh with
# UI_SCREENSHOTS=docs/ui). Everything it started is stopped on exit, whatever happens.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib/pg.sh
source "$ROOT/scripts/lib/pg.sh"
# shellcheck source=scripts/lib/run.sh
source "$ROOT/scripts/lib/run.sh"

log() { echo "[ui-check] $*" >&2; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/dreamd-ui-check.XXXXXX")"
PIDS=()
# shellcheck disable=SC2317  # called from the trap
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    stop_started
    [[ $rc -ne 0 ]] && show_logs "$WORK" serve sim receiver
    pg_destroy_private "$WORK/pg"
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ensure_dreamd_bin

# ---- the browser: Debian's chromium and Playwright in a venv ------------------------------
CHROMIUM="${CHROMIUM:-$(command -v chromium || true)}"
if [[ -z "$CHROMIUM" ]]; then
    log "installing chromium with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium </dev/null >&2 \
        || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium </dev/null >&2; }
    CHROMIUM="$(command -v chromium)"
fi
VENV="$ROOT/.dreamd/ui-venv"
ensure_venv "$VENV" playwright pytest
log "playwright $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("playwright"))'), $("$CHROMIUM" --version 2>/dev/null)"

# ---- PostgreSQL, simulator, receiver, daemon ----------------------------------------------
pg_ensure_installed
pg_start_private "$WORK/pg"
pg_create_db dreamd_ui
export DATABASE_URL
DATABASE_URL="$(pg_database_url dreamd_ui)"

SIM_PORT="$(free_port)"
"$DREAMD_BIN" sim --host 127.0.0.1 --port "$SIM_PORT" --queue-time 300ms --run-time 700ms --dreamgen-error-after 2 \
    >"$WORK/sim.log" 2>&1 &
PIDS+=($!)
wait_up "http://127.0.0.1:$SIM_PORT/healthz" "${PIDS[-1]}" simulator

HOOK_PORT="$(free_port)"
"$PYTHON" - "$HOOK_PORT" >"$WORK/receiver.log" 2>&1 <<'EOF' &
import http.server, sys
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(204); self.end_headers()
    def do_GET(self):
        self.send_response(200); self.end_headers()
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Hook).serve_forever()
EOF
PIDS+=($!)
wait_up "http://127.0.0.1:$HOOK_PORT/" "${PIDS[-1]}" receiver

"$DREAMD_BIN" migrate >&2
API_PORT="$(free_port)"
SIM="http://127.0.0.1:$SIM_PORT"
DREAMD_LISTEN="127.0.0.1:$API_PORT" DREAMLOOK_BASE_URL="$SIM" DREAMLOOK_API_KEY=dl-sim DREAM_BASE_URL="$SIM" DREAM_API_KEY=dre_sim \
DREAMGEN_BASE_URL="$SIM" DREAMGEN_API_KEY=dg-sim DREAMD_POLL_INTERVAL=300ms DREAMD_POLL_INTERVAL_MAX=1s \
DREAMD_DATA_DIR="$WORK/data" DREAMD_WEBHOOK_ALLOW_PRIVATE=true DREAMD_INPUT_ALLOW_PRIVATE=true \
    "$DREAMD_BIN" serve >"$WORK/serve.log" 2>&1 </dev/null &
PIDS+=($!)
wait_up "http://127.0.0.1:$API_PORT/readyz" "${PIDS[-1]}" "dreamd serve"

ADMIN_TOKEN="$("$DREAMD_BIN" keys create --name ui-admin --scope admin 2>/dev/null | tail -n 1)"
READ_TOKEN="$("$DREAMD_BIN" keys create --name ui-reader --scope read 2>/dev/null | tail -n 1)"
log "dreamd on http://127.0.0.1:$API_PORT/ui"

[[ -n "${UI_SCREENSHOTS:-}" ]] && mkdir -p "$UI_SCREENSHOTS" && UI_SCREENSHOTS="$(cd "$UI_SCREENSHOTS" && pwd)"
DREAMD_URL="http://127.0.0.1:$API_PORT" DREAMD_ADMIN_TOKEN="$ADMIN_TOKEN" DREAMD_READ_TOKEN="$READ_TOKEN" \
DREAMD_HOOK_URL="http://127.0.0.1:$HOOK_PORT/hooks" CHROMIUM="$CHROMIUM" UI_SCREENSHOTS="${UI_SCREENSHOTS:-}" \
    "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$ROOT/Tests/python/test_ui_browser.py"
log "passed"
