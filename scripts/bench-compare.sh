#!/usr/bin/env bash
# `make bench-compare`: Drover's set-based no-op cycles and PgQueuer's no-op drain side by side on
# one Postgres of its own (pg_stat_statements loaded for the statement counts), interleaved, fresh
# databases, CHECKPOINT first, 5 repetitions of 100,000 items (BENCH_ITEMS, BENCH_REPS override).
# PgQueuer and asyncpg are installed from PyPI into .drover/pyq. See bench/compare.py.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
drover=${DROVER_BIN:-$root/.build/release/drover}
venv=$root/.drover/pyq
if [[ ! -x $venv/bin/python ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "pgqueuer==1.6.0" "asyncpg" >&2
fi
export DROVER_PG_HOME=$root/.drover/pg-compare
export DROVER_PG_OPTIONS="-c shared_preload_libraries=pg_stat_statements"
"$root/scripts/pg.sh" start
trap '"$root/scripts/pg.sh" stop || true' EXIT
"$venv/bin/python" "$root/bench/compare.py" "$("$root/scripts/pg.sh" url)" "$(readlink -f "$DROVER_PG_HOME")/data" "$drover" \
    --items "${BENCH_ITEMS:-100000}" --reps "${BENCH_REPS:-5}"
