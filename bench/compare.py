"""Drover's set-based no-op session cycles and PgQueuer's no-op job drain, side by side, fairly.

Usage: python compare.py ADMIN_DSN DATA_DIR DROVER_BIN [--items N] [--reps N]

On one Postgres (started by scripts/bench-compare.sh with pg_stat_statements loaded), each
repetition runs every configuration once, in an order rotated per repetition (interleaved):
Drover with 2 and 4 claimers, PgQueuer with 1 and 2 worker processes (each its own event loop and
connection), all with batches of 32 and durable commits. Every run gets a fresh database, its items
queued first, then VACUUM ANALYZE and a CHECKPOINT, then the drain, timed, with the server's counters read before and
after: top-level statements (pg_stat_statements), commits, WAL bytes and full-page images, the HOT
share of updates, and client and server CPU. After each Drover run `drover verify` must find no
breach (but user_event_seen: a no-op cycle sends no model request). Prints a table of medians and ranges per configuration and one JSON line.

One asymmetry, stated in the output: PgQueuer reports a job done before its completion is durable
(completions are buffered and flushed later); Drover reports a cycle only after its commit.
"""
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from multiprocessing import get_context

import asyncpg


def server_cpu(data_dir: str) -> float:
    """CPU seconds of the cluster so far: the postmaster with its reaped children, and live children."""
    pid = int(open(os.path.join(data_dir, "postmaster.pid")).readline())
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        ppid, utime, stime, cutime, cstime = int(fields[1]), *map(int, fields[11:15])
        if int(entry) == pid:
            total += (utime + stime + cutime + cstime) / tick
        elif ppid == pid:
            total += (utime + stime) / tick
    return total


async def counters(admin: asyncpg.Connection, db: str, tables: list, data_dir: str) -> dict:
    row = await admin.fetchrow(
        """SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = $1) AS commits,
                  (SELECT wal_bytes FROM pg_stat_wal)::float8 AS wal_bytes, (SELECT wal_fpi FROM pg_stat_wal) AS wal_fpi,
                  (SELECT coalesce(sum(calls), 0) FROM pg_stat_statements
                    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1) AND toplevel) AS statements""", db)
    db_conn = await asyncpg.connect(admin_dsn_for(db))
    upd = await db_conn.fetchrow(
        "SELECT coalesce(sum(n_tup_upd), 0) AS upd, coalesce(sum(n_tup_hot_upd), 0) AS hot FROM pg_stat_user_tables WHERE relname = ANY($1::text[])",
        tables)
    await db_conn.close()
    return {**dict(row), "updates": upd["upd"], "hot_updates": upd["hot"], "server_cpu": server_cpu(data_dir)}


ADMIN_DSN = ""


def admin_dsn_for(db: str) -> str:
    return ADMIN_DSN.rsplit("/", 1)[0] + "/" + db


# PgQueuer ------------------------------------------------------------------------------------

def pgq_worker(dsn: str, batch: int) -> None:
    from pgqueuer import AsyncpgDriver, Queries, QueueManager
    from pgqueuer.types import QueueExecutionMode

    async def run() -> None:
        connection = await asyncpg.connect(dsn)
        manager = QueueManager(Queries(AsyncpgDriver(connection)))

        @manager.entrypoint("noop")
        async def noop(job) -> None:
            return None

        await manager.run(batch_size=batch, mode=QueueExecutionMode.drain)
        await connection.close()

    asyncio.run(run())


async def pgq_prepare(dsn: str, items: int) -> None:
    from pgqueuer import AsyncpgDriver, Queries
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "pgq"), "install"], env={**os.environ, "PGDSN": dsn},
                   check=True, stdout=subprocess.DEVNULL)
    connection = await asyncpg.connect(dsn)
    queries = Queries(AsyncpgDriver(connection))
    for start in range(0, items, 1000):
        count = min(1000, items - start)
        await queries.enqueue(["noop"] * count, [None] * count, [0] * count)
    await connection.close()


def pgq_drain(dsn: str, processes: int, batch: int) -> tuple:
    ctx = get_context("fork")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    workers = [ctx.Process(target=pgq_worker, args=(dsn, batch)) for _ in range(processes)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


# Drover --------------------------------------------------------------------------------------

async def drover_prepare(dsn: str, items: int, drover: str) -> None:
    subprocess.run([drover, "migrate"], env={**os.environ, "DATABASE_URL": dsn}, check=True, stdout=subprocess.DEVNULL)
    connection = await asyncpg.connect(dsn)
    agent = await connection.fetchval("SELECT drover.create_agent('bench', 'none')")
    env = await connection.fetchval("SELECT drover.create_environment('bench')")
    await connection.execute(
        "SELECT count(drover.create_session($1, $2, '{\"content\":[{\"type\":\"text\",\"text\":\"go\"}]}', 0)) FROM generate_series(1, $3)",
        agent, env, items)
    await connection.close()


def drover_drain(dsn: str, claimers: int, batch: int, drover: str) -> tuple:
    out = subprocess.run([drover, "bench", "drain", "--claimers", str(claimers), "--batch", str(batch)],
                         env={**os.environ, "DATABASE_URL": dsn}, check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return result["seconds"], result["client_cpu_s"], result["cycles"]


def drover_verify(dsn: str, drover: str) -> int:
    """Breaches of every invariant but user_event_seen: a no-op cycle by design sends no model
    request, so no user message is ever seen by one."""
    out = subprocess.run([drover, "verify", "--json"], env={**os.environ, "DATABASE_URL": dsn}, capture_output=True, text=True).stdout
    return len([b for b in json.loads(out).get("breaches", []) if b.get("check") != "user_event_seen"])


# The run -------------------------------------------------------------------------------------

async def one_run(config: dict, items: int, data_dir: str, drover: str, admin: asyncpg.Connection) -> dict:
    db = f"cmp_{config['name'].replace('-', '_')}_{os.getpid()}_{int(time.time() * 1000) % 10**9}"
    await admin.execute(f"CREATE DATABASE {db}")
    dsn = admin_dsn_for(db)
    try:
        if config["system"] == "drover":
            await drover_prepare(dsn, items, drover)
            tables = ["sessions", "events", "lease_history"]
        else:
            await pgq_prepare(dsn, items)
            tables = ["pgqueuer", "pgqueuer_log", "pgqueuer_statistics"]
        # Planner statistics for the freshly loaded tables (a queue in steady state has them), then
        # a checkpoint so that no run pays for another's dirty pages.
        conn = await asyncpg.connect(dsn)
        await conn.execute("VACUUM ANALYZE")
        await conn.close()
        await admin.execute("CHECKPOINT")
        await asyncio.sleep(1.2)
        before = await counters(admin, db, tables, data_dir)
        if config["system"] == "drover":
            seconds, client_cpu, done = drover_drain(dsn, config["workers"], 32, drover)
            assert done == items, f"drover drained {done} of {items}"
        else:
            seconds, client_cpu = pgq_drain(dsn, config["workers"], 32)
        await asyncio.sleep(1.2)
        after = await counters(admin, db, tables, data_dir)
        breaches = drover_verify(dsn, drover) if config["system"] == "drover" else None
        if config["system"] == "pgqueuer":
            conn = await asyncpg.connect(dsn)
            left = await conn.fetchval("SELECT count(*) FROM pgqueuer")
            await conn.close()
            assert left == 0, f"pgqueuer left {left} jobs"
        d = {k: float(after[k] - before[k]) for k in after}
        result = {
            "config": config["name"], "rate": items / seconds,
            "statements": d["statements"] / items, "commits": d["commits"] / items, "wal_bytes": d["wal_bytes"] / items,
            "wal_fpi": d["wal_fpi"] / items, "hot_ratio": (d["hot_updates"] / d["updates"]) if d["updates"] else 0.0,
            "client_cpu_us": client_cpu / items * 1e6, "server_cpu_us": d["server_cpu"] / items * 1e6, "breaches": breaches,
        }
        print(f"  {config['name']:<14} {result['rate']:>9.0f}/s  stmts {result['statements']:.3f}  commits {result['commits']:.3f}"
              f"  WAL {result['wal_bytes']:.0f} B  FPI {result['wal_fpi']:.3f}  HOT {result['hot_ratio']:.2f}"
              f"  CPU client {result['client_cpu_us']:.0f} µs server {result['server_cpu_us']:.0f} µs"
              + (f"  verify: {breaches} breaches" if breaches is not None else ""), file=sys.stderr, flush=True)
        return result
    finally:
        await admin.execute(f"DROP DATABASE {db} WITH (FORCE)")


async def main() -> None:
    global ADMIN_DSN
    ADMIN_DSN, data_dir, drover = sys.argv[1], sys.argv[2], sys.argv[3]
    items = int(sys.argv[sys.argv.index("--items") + 1]) if "--items" in sys.argv else 100_000
    reps = int(sys.argv[sys.argv.index("--reps") + 1]) if "--reps" in sys.argv else 5
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    configs = [
        {"name": "drover-2", "system": "drover", "workers": 2}, {"name": "drover-4", "system": "drover", "workers": 4},
        {"name": "pgqueuer-1", "system": "pgqueuer", "workers": 1}, {"name": "pgqueuer-2", "system": "pgqueuer", "workers": 2},
    ]
    results = {c["name"]: [] for c in configs}
    for rep in range(reps):
        order = configs[rep % len(configs):] + configs[:rep % len(configs)]
        print(f"repetition {rep + 1}/{reps}: {', '.join(c['name'] for c in order)}", file=sys.stderr, flush=True)
        for config in order:
            results[config["name"]].append(await one_run(config, items, data_dir, drover, admin))
    await admin.close()

    def med(name, key):
        return statistics.median(r[key] for r in results[name])

    keys = ["statements", "commits", "wal_bytes", "wal_fpi", "hot_ratio", "client_cpu_us", "server_cpu_us"]
    print(f"| config | median/s | range/s | " + " | ".join(f"{k} per item" for k in keys) + " |")
    print("|---|---|---|" + "---|" * len(keys))
    for c in configs:
        rates = [r["rate"] for r in results[c["name"]]]
        print(f"| {c['name']} | {statistics.median(rates):.0f} | {min(rates):.0f}–{max(rates):.0f} | "
              + " | ".join(f"{med(c['name'], k):.3f}" if k in ("statements", "commits", "wal_fpi", "hot_ratio") else f"{med(c['name'], k):.0f}"
                           for k in keys) + " |")
    best_drover = max(("drover-2", "drover-4"), key=lambda n: med(n, "rate"))
    best_pgq = max(("pgqueuer-1", "pgqueuer-2"), key=lambda n: med(n, "rate"))
    ratio = med(best_drover, "rate") / med(best_pgq, "rate")
    breaches = sum(r["breaches"] or 0 for n in ("drover-2", "drover-4") for r in results[n])
    print(f"\nDrover best ({best_drover}) median / PgQueuer best ({best_pgq}) median: {ratio:.2f}x (target 1.5x); "
          f"drover verify breaches over all runs: {breaches} (every check but user_event_seen, which a no-op cycle cannot meet)")
    print("Asymmetry: PgQueuer reports a job done before its completion is durable (buffered); Drover reports a cycle after its commit.")
    print(json.dumps({"items": items, "reps": reps, "ratio": round(ratio, 3), "best_drover": best_drover, "best_pgqueuer": best_pgq,
                      "verify_breaches": breaches, "results": results}))


if __name__ == "__main__":
    asyncio.run(main())
