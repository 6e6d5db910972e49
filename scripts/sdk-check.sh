#!/usr/bin/env bash
# scripts/sdk-check.sh — the official Dream Engines Python client against `dreamd sim`.
#
# Builds dreamd (unless DREAMD_BIN points at a built one), starts `dreamd sim` on a free loopback
# port, installs `dream-engine` (and pytest, numpy) into a virtualenv under .dreamd/sdk-venv, and runs
# Tests/python/test_sdk_against_sim.py with DREAM_SIM_URL set: it lists the models, gets
# dreamdojo-2b-gr1 and runs a rollout. The simulator is stopped on exit, whatever happens.
# DREAM_ENGINE_VERSION pins the client (default: the newest on PyPI).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib/pg.sh
source "$ROOT/scripts/lib/pg.sh"
# shellcheck source=scripts/lib/run.sh
source "$ROOT/scripts/lib/run.sh"

log() { echo "[sdk-check] $*" >&2; }

SIM_PID=""
SIM_LOG="$(mktemp "${TMPDIR:-/tmp}/dreamd-sdk-sim.XXXXXX.log")"
# shellcheck disable=SC2317  # called from the trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$SIM_PID" ]] && kill -0 "$SIM_PID" 2>/dev/null; then
        kill "$SIM_PID" 2>/dev/null || true
        wait "$SIM_PID" 2>/dev/null || true
    fi
    if [[ $rc -ne 0 && -s "$SIM_LOG" ]]; then log "simulator log:"; tail -n 40 "$SIM_LOG" >&2; fi
    rm -f "$SIM_LOG"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ensure_dreamd_bin

VENV="$ROOT/.dreamd/sdk-venv"
ensure_venv "$VENV"
SPEC="dream-engine${DREAM_ENGINE_VERSION:+==$DREAM_ENGINE_VERSION}"
log "installing $SPEC, pytest and numpy into the venv"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "$SPEC" pytest numpy >&2
log "dream-engine $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("dream-engine"))')"

PORT="$(free_port)"
"$DREAMD_BIN" sim --host 127.0.0.1 --port "$PORT" --dream-rollout-time 100ms >"$SIM_LOG" 2>&1 &
SIM_PID=$!
wait_up "http://127.0.0.1:$PORT/healthz" "$SIM_PID" "the simulator"
log "simulator on http://127.0.0.1:$PORT"

DREAM_SIM_URL="http://127.0.0.1:$PORT" DREAM_BASE_URL="http://127.0.0.1:$PORT" DREAM_API_KEY="dre_sim_test" \
    "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$ROOT/Tests/python/test_sdk_against_sim.py"
