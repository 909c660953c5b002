#!/usr/bin/env bash
# Runs a command with DATABASE_URL set: the given server if DATABASE_URL is already set,
# otherwise a throwaway cluster that is started first and stopped (and deleted) afterwards.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [[ -n ${DATABASE_URL:-} ]]; then
    "$@"
    exit
fi
"$root/scripts/pg.sh" start
# Stop (and delete) the cluster however we leave, keeping the command's own exit status.
trap '"$root/scripts/pg.sh" stop || true' EXIT
DATABASE_URL=$("$root/scripts/pg.sh" url)
export DATABASE_URL
# How to restart the embedded server (the restart test and the chaos run use it); unset for an external one.
export DROVER_PG_RESTART="$root/scripts/pg.sh restart"
status=0
"$@" || status=$?
exit "$status"
