#!/usr/bin/env bash
# Side by side on one Postgres, in one run: PgQueuer's no-op job drain rate (a Python Postgres
# queue, installed from PyPI into .drover/pyq) and Drover's no-op session cycles, for 1, 2, 4 and
# 8 workers/claimers, 10,000 items each, batches of 32. Needs DATABASE_URL (make bench-compare
# provides one). Prints a table and the ratio.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
drover=${DROVER_BIN:-$root/.build/release/drover}
venv=$root/.drover/pyq
if [[ ! -x $venv/bin/python ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "pgqueuer==1.6.0" "asyncpg" >&2
fi
dsn_base=${DATABASE_URL%/*}
jobs=10000
echo "| workers | PgQueuer jobs/s | Drover cycles/s | Drover / PgQueuer |"
echo "|---|---|---|---|"
drover_json=$("$drover" bench queue --claimers 1,2,4,8 --sessions "$jobs" --events 1000 --reads 10 --appends 10 --json 2>/dev/null)
for workers in 1 2 4 8; do
    db=pyq_bench_$RANDOM$RANDOM
    psql "$DATABASE_URL" -qc "CREATE DATABASE $db" >/dev/null
    PGDSN="$dsn_base/$db" "$venv/bin/pgq" install >/dev/null
    pyq=$("$venv/bin/python" "$root/bench/pgqueuer_drain.py" "$dsn_base/$db" "$jobs" "$workers" 32 | sed -E 's/.*"jobs_per_s": ([0-9.]+).*/\1/')
    psql "$DATABASE_URL" -qc "DROP DATABASE $db WITH (FORCE)" >/dev/null
    cycles=$(echo "$drover_json" | sed -E "s/.*\"cycles_per_s_$workers\":([0-9.]+).*/\1/")
    ratio=$(awk -v a="$cycles" -v b="$pyq" 'BEGIN { printf "%.2f", a / b }')
    echo "| $workers | $pyq | $cycles | $ratio |"
done
