# scripts/lib/run.sh — what the check and bench scripts share: the dreamd binary, a Python venv,
# waiting for a started process to answer, and stopping what was started. Source it after pg.sh.
# The caller defines `log` and keeps the pids it starts in the array PIDS.

# Sets DREAMD_BIN to a built dreamd (builds it unless DREAMD_BIN already points at one).
ensure_dreamd_bin() {
    if [[ -z "${DREAMD_BIN:-}" ]]; then
        swift build --product dreamd >&2
        DREAMD_BIN="$(swift build --show-bin-path)/dreamd"
    fi
}

# Creates the virtualenv DIR if missing (installing python3-venv with apt-get when venv fails) and
# pip-installs the given packages into it. Sets PYTHON to the system python3.
ensure_venv() {
    local venv="${1:?usage: ensure_venv DIR [PACKAGE ...]}"
    shift
    PYTHON="${PYTHON:-$(command -v python3 || true)}"
    [[ -n "$PYTHON" ]] || { log "python3 is required"; return 1; }
    if [[ ! -x "$venv/bin/python" ]]; then
        log "creating $venv"
        mkdir -p "$(dirname "$venv")"
        if ! "$PYTHON" -m venv "$venv" >&2; then
            log "python3 -m venv failed; installing python3-venv with apt-get"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv </dev/null >&2
            "$PYTHON" -m venv "$venv" >&2
        fi
    fi
    if (($# > 0)); then "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" >&2; fi
}

# Waits until URL answers 2xx (so `/readyz` means ready), while process PID lives; NAME is for messages.
wait_up() {
    local url="$1" pid="$2" name="$3"
    for _ in $(seq 1 300); do
        if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$url" 2>/dev/null; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || { log "$name exited"; return 1; }
        sleep 0.2
    done
    log "$name did not answer at $url"
    return 1
}

# Stops every process in PIDS and waits for it.
stop_started() {
    local pid
    for pid in "${PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
    done
}

# Prints the last lines of each DIR/NAME.log that has any (on a failure).
show_logs() {
    local dir="$1" name
    shift
    for name in "$@"; do
        [[ -s "$dir/$name.log" ]] && { log "last lines of $name.log:"; tail -n 30 "$dir/$name.log" >&2; }
    done
    return 0
}
