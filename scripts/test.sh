#!/usr/bin/env bash
# scripts/test.sh — the project's test command.
# Starts a throwaway PostgreSQL cluster (installing PostgreSQL if missing), exports
# DREAMD_TEST_DATABASE_URL (the admin URL; tests create their own databases from it),
# then builds and runs the Swift tests. Extra args go to `swift test`, e.g.
#   bash scripts/test.sh --filter DreamdCoreTests
# The cluster and its temp dir are removed on exit, whatever happens; the exit code is
# swift's.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib/pg.sh
source "$ROOT/scripts/lib/pg.sh"

PG_DIR=""
# shellcheck disable=SC2317  # called from the trap
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    [[ -n "$PG_DIR" ]] && pg_destroy_private "$PG_DIR"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

pg_ensure_installed
PG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/dreamd-test-pg.XXXXXX")"
pg_start_private "$PG_DIR"
export DREAMD_TEST_DATABASE_URL="$DREAMD_PG_ADMIN_URL"
echo "DREAMD_TEST_DATABASE_URL=$DREAMD_TEST_DATABASE_URL"

swift build --build-tests
# Tests run one at a time: many of them check that things happen on time (leases, polls, retention,
# schedules), and on a 2-core machine parallel runs starve each other's timers. Each test still has its
# own database, so `bash scripts/test.sh --parallel` works when the machine has room.
if [[ " $* " == *" --parallel "* ]]; then
    swift test "$@"
else
    swift test --no-parallel "$@"
fi
