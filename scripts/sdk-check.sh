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

if [[ -z "${DREAMD_BIN:-}" ]]; then
    swift build --product dreamd >&2
    DREAMD_BIN="$(swift build --show-bin-path)/dreamd"
fi

PYTHON="${PYTHON:-$(command -v python3 || true)}"
[[ -n "$PYTHON" ]] || { log "python3 is required"; exit 1; }
VENV="$ROOT/.dreamd/sdk-venv"
if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating $VENV"
    mkdir -p "$ROOT/.dreamd"
    if ! "$PYTHON" -m venv "$VENV" >&2; then
        log "python3 -m venv failed; installing python3-venv with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv </dev/null >&2
        "$PYTHON" -m venv "$VENV" >&2
    fi
fi
SPEC="dream-engine${DREAM_ENGINE_VERSION:+==$DREAM_ENGINE_VERSION}"
log "installing $SPEC, pytest and numpy into the venv"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "$SPEC" pytest numpy >&2
log "dream-engine $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("dream-engine"))')"

PORT="$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
"$DREAMD_BIN" sim --host 127.0.0.1 --port "$PORT" --dream-rollout-time 100ms >"$SIM_LOG" 2>&1 &
SIM_PID=$!
for _ in $(seq 1 100); do
    if "$PYTHON" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$PORT/healthz', timeout=1)" 2>/dev/null; then break; fi
    kill -0 "$SIM_PID" 2>/dev/null || { log "the simulator exited"; exit 1; }
    sleep 0.1
done
log "simulator on http://127.0.0.1:$PORT"

DREAM_SIM_URL="http://127.0.0.1:$PORT" DREAM_BASE_URL="http://127.0.0.1:$PORT" DREAM_API_KEY="dre_sim_test" \
    "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$ROOT/Tests/python/test_sdk_against_sim.py"
