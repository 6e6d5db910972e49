#!/usr/bin/env bash
# scripts/lib/pg.sh — throwaway private PostgreSQL clusters for tests and the demo.
#
# Source it:   source scripts/lib/pg.sh
#   pg_ensure_installed          install PostgreSQL if no initdb is found; exports PG_BIN
#   pg_start_private DIR         initdb (once) + start on 127.0.0.1:<free port>; exports
#                                PGHOST PGPORT PGUSER DREAMD_PG_ADMIN_URL (reuses a running one)
#   pg_stop_private DIR          stop it (pg_ctl -m fast); idempotent
#   pg_destroy_private DIR       stop it and delete DIR (and any /tmp fallback it used)
#   pg_create_db NAME            createdb NAME (no-op if it exists)
#   pg_drop_db NAME              dropdb --if-exists NAME
#   pg_database_url NAME         print postgres://postgres@127.0.0.1:<port>/NAME
#   pg_print_database_url NAME   print DATABASE_URL=postgres://postgres@127.0.0.1:<port>/NAME
#   free_port                    print a free TCP port on 127.0.0.1
#   pg_profile_enable            (before pg_start_private) load pg_stat_statements in the new cluster
#   pg_profile_report DB [N]     print the N (10) statements of DB that took the most time
#
# Layout of a cluster folder ROOT (normally ROOT = DIR, owned by the postgres user):
#   ROOT/data  PGDATA      ROOT/sock  unix socket dir      ROOT/postgres.log  server log
#   ROOT/port  TCP port of the last start
# If the postgres user cannot reach DIR (e.g. a repo under /root), ROOT is a postgres-owned
# folder under /tmp instead and DIR/.pgroot records where it is.
# All clusters use trust auth: they are for local throwaway use only.

set -euo pipefail

_pg_log() { echo "[pg] $*" >&2; }

# Print the newest PostgreSQL bin dir that has initdb, or fail.
_pg_find_bin() {
    local d found=""
    # Debian layout: /usr/lib/postgresql/<major>/bin; pick the highest major version.
    for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k5,5n); do
        if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then found="$d"; fi
    done
    if [[ -z "$found" ]] && command -v initdb >/dev/null 2>&1; then
        found="$(dirname "$(readlink -f "$(command -v initdb)")")"
    fi
    [[ -n "$found" ]] || return 1
    echo "$found"
}

pg_ensure_installed() {
    local bin
    if ! bin="$(_pg_find_bin)"; then
        _pg_log "no initdb found: installing PostgreSQL with apt-get"
        [[ $EUID -eq 0 ]] || { _pg_log "need root to apt-get install postgresql"; return 1; }
        # Keep the package's own cluster from starting (no service left running).
        local made_policy=0
        if [[ ! -e /usr/sbin/policy-rc.d ]]; then
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
            chmod +x /usr/sbin/policy-rc.d
            made_policy=1
        fi
        local rc=0
        { DEBIAN_FRONTEND=noninteractive apt-get update -q &&
          DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql; } \
            </dev/null >&2 || rc=$?
        [[ $made_policy -eq 1 ]] && rm -f /usr/sbin/policy-rc.d
        [[ $rc -eq 0 ]] || { _pg_log "apt-get install postgresql failed ($rc)"; return "$rc"; }
        bin="$(_pg_find_bin)" || { _pg_log "PostgreSQL installed but initdb still not found"; return 1; }
    fi
    export PG_BIN="$bin"
    _pg_log "using PostgreSQL in $PG_BIN ($("$PG_BIN/postgres" --version))"
}

# Run a command as the cluster owner: the postgres user when we are root, else ourselves.
# cd / first: the postgres user may not be able to read the caller's cwd.
_pg_as_owner() {
    if [[ $EUID -eq 0 ]]; then
        (cd / && runuser -u postgres -- "$@")
    else
        (cd / && "$@")
    fi
}

_pg_owner() { if [[ $EUID -eq 0 ]]; then echo postgres; else id -un; fi; }

free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
        return
    fi
    # Fallback: first port nobody answers on, from a random start.
    local p
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % 30000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
    done
    return 1
}

# True if nothing listens on 127.0.0.1:PORT and we can bind it.
_port_is_free() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1",int(sys.argv[1]))); s.close()' "$1" 2>/dev/null
    else
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 1; fi
    fi
}

# Resolve (and prepare) the folder that holds data/, sock/ and the log for DIR.
_pg_root() {
    local dir="$1" owner root
    owner="$(_pg_owner)"
    if [[ -f "$dir/.pgroot" ]]; then
        root="$(cat "$dir/.pgroot")"
        if [[ -d "$root" ]]; then echo "$root"; return; fi
        rm -f "$dir/.pgroot"
    fi
    mkdir -p "$dir"
    if [[ $EUID -eq 0 ]]; then
        chown "$owner:" "$dir"
        chmod 700 "$dir"
    fi
    if _pg_as_owner test -w "$dir" -a -x "$dir"; then
        echo "$dir"
        return
    fi
    # postgres cannot traverse a parent of DIR: use a folder under /tmp instead.
    root="$(mktemp -d /tmp/dreamd-pg.XXXXXX)"
    [[ $EUID -eq 0 ]] && chown "$owner:" "$root"
    echo "$root" >"$dir/.pgroot"
    _pg_log "postgres cannot reach $dir; cluster lives in $root"
    echo "$root"
}

# Socket dir: ROOT/sock unless the socket path would be too long (limit 107 bytes),
# then a short /tmp folder named after a checksum of ROOT.
_pg_sockdir() {
    local root="$1"
    if (( ${#root} + 25 < 100 )); then
        echo "$root/sock"
    else
        echo "/tmp/dreamd-pg-sock.$(printf '%s' "$root" | cksum | cut -d' ' -f1)"
    fi
}

_pg_export() {
    local port="$1"
    export PGHOST=127.0.0.1 PGPORT="$port" PGUSER=postgres
    export DREAMD_PG_ADMIN_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

pg_start_private() {
    local dir="${1:?usage: pg_start_private DIR}" root data sock log port attempt
    [[ -n "${PG_BIN:-}" ]] || pg_ensure_installed
    dir="$(mkdir -p "$dir" && cd "$dir" && pwd)"
    root="$(_pg_root "$dir")"
    data="$root/data"; log="$root/postgres.log"; sock="$(_pg_sockdir "$root")"

    # Already running (e.g. a demo kept with DEMO_KEEP=1)? Reuse it.
    if [[ -f "$root/port" ]] && _pg_as_owner "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        port="$(cat "$root/port")"
        if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port"; then
            _pg_export "$port"
            _pg_log "reusing running cluster in $data on 127.0.0.1:$port"
            return 0
        fi
    fi

    if [[ ! -f "$data/PG_VERSION" ]]; then
        _pg_log "initdb $data"
        rm -rf "$data"
        _pg_as_owner "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C \
            --no-instructions >"$root/initdb.log" 2>&1 \
            || { cat "$root/initdb.log" >&2; return 1; }
        # Settings for a throwaway test cluster: fast, not durable.
        cat >>"$data/postgresql.conf" <<EOF

# --- dreamd private cluster (scripts/lib/pg.sh) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = '$sock'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
shared_buffers = 128MB
EOF
        # Extra settings from the caller (the benchmarks' profiling: pg_stat_statements).
        [[ -n "${PG_EXTRA_CONF:-}" ]] && printf '%s\n' "$PG_EXTRA_CONF" >>"$data/postgresql.conf"
    fi
    mkdir -p "$sock"
    [[ $EUID -eq 0 ]] && chown "$(_pg_owner):" "$sock"

    # Start on a free port; retry with another one if someone grabbed it meanwhile.
    for attempt in 1 2 3 4 5; do
        port="$(free_port)"
        # Prefer the port of the last start (keeps printed URLs valid) when it is free.
        if [[ $attempt -eq 1 && -f "$root/port" ]] && _port_is_free "$(cat "$root/port")"; then
            port="$(cat "$root/port")"
        fi
        _pg_log "starting cluster $data on 127.0.0.1:$port (attempt $attempt)"
        if _pg_as_owner "$PG_BIN/pg_ctl" -D "$data" -l "$log" -w -t 60 \
                -o "-p $port" start >/dev/null; then
            echo "$port" >"$root/port"
            for _ in $(seq 1 60); do
                "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" && break
                sleep 0.5
            done
            "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" || { tail -n 20 "$log" >&2; return 1; }
            _pg_export "$port"
            _pg_log "ready: $DREAMD_PG_ADMIN_URL"
            return 0
        fi
        _pg_as_owner "$PG_BIN/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || true
        # Only a port clash is worth another try.
        if ! tail -n 20 "$log" | grep -q 'already in use'; then
            tail -n 20 "$log" >&2 || true
            break
        fi
    done
    _pg_log "could not start PostgreSQL (see $log)"
    return 1
}

pg_stop_private() {
    local dir="${1:?usage: pg_stop_private DIR}" root data
    [[ -d "$dir" ]] || return 0
    if [[ -f "$dir/.pgroot" ]]; then root="$(cat "$dir/.pgroot")"; else root="$dir"; fi
    data="$root/data"
    [[ -f "$data/postmaster.pid" ]] || return 0
    [[ -n "${PG_BIN:-}" ]] || PG_BIN="$(_pg_find_bin)" || return 0
    if _pg_as_owner "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        _pg_log "stopping cluster $data"
        _pg_as_owner "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null \
            || _pg_as_owner "$PG_BIN/pg_ctl" -D "$data" -m immediate -w stop >/dev/null || true
    fi
}

pg_destroy_private() {
    local dir="${1:?usage: pg_destroy_private DIR}" root=""
    [[ -d "$dir" ]] || return 0
    pg_stop_private "$dir" || true
    dir="$(cd "$dir" && pwd)"
    [[ -f "$dir/.pgroot" ]] && root="$(cat "$dir/.pgroot")"
    if [[ -n "$root" && "$root" == /tmp/dreamd-pg.* ]]; then
        rm -rf "$(_pg_sockdir "$root")" "$root"
    fi
    rm -rf "$(_pg_sockdir "$dir")" "$dir"
}

_pg_need_port() { [[ -n "${PGPORT:-}" ]] || { _pg_log "no cluster started (PGPORT unset)"; return 1; }; }

pg_create_db() {
    local name="${1:?usage: pg_create_db NAME}"
    _pg_need_port
    if [[ "$("$PG_BIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -XtAc \
            "select 1 from pg_database where datname = '$name'")" == 1 ]]; then
        _pg_log "database $name exists"
        return 0
    fi
    "$PG_BIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U postgres "$name"
    _pg_log "created database $name"
}

pg_drop_db() {
    local name="${1:?usage: pg_drop_db NAME}"
    _pg_need_port
    "$PG_BIN/dropdb" -h 127.0.0.1 -p "$PGPORT" -U postgres --if-exists --force "$name"
}

pg_database_url() {
    local name="${1:?usage: pg_database_url NAME}"
    _pg_need_port
    echo "postgres://postgres@127.0.0.1:$PGPORT/$name"
}

pg_print_database_url() { echo "DATABASE_URL=$(pg_database_url "$@")"; }

# Profiling for the benchmarks (BENCH_PROFILE=1): pg_stat_statements in the cluster, and a report of where
# the server's time went.
pg_profile_enable() {
    export PG_EXTRA_CONF="shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
pg_stat_statements.max = 1000"
}

pg_profile_report() {
    local db="${1:?usage: pg_profile_report DB [N]}" n="${2:-10}"
    "$PG_BIN/psql" -X -q -d "$(pg_database_url "$db")" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null 2>&1 || return 0
    "$PG_BIN/psql" -X -d "$(pg_database_url "$db")" -P pager=off -c "
        SELECT round(total_exec_time)::int AS total_ms, calls, round(mean_exec_time::numeric, 3) AS mean_ms,
               rows, round(100 * total_exec_time / sum(total_exec_time) OVER ())::int AS pct,
               left(regexp_replace(query, '\\s+', ' ', 'g'), 110) AS query
        FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
        ORDER BY total_exec_time DESC LIMIT $n"
}
