"""No-op drain rate of PgQueuer (a Python Postgres job queue), for comparison with Drover.

Usage: python pgqueuer_drain.py DSN JOBS WORKERS BATCH
Enqueues JOBS no-op jobs, then runs WORKERS queue managers (each on its own connection) in drain
mode with dequeue batches of BATCH, and prints one JSON line with jobs/s. Written for Drover's
`scripts/bench-python-queue.sh`; it uses only PgQueuer's public API.
"""
import asyncio
import json
import sys
import time

import asyncpg
from pgqueuer import AsyncpgDriver, Queries, QueueManager
from pgqueuer.types import QueueExecutionMode


async def main(dsn: str, jobs: int, workers: int, batch: int) -> None:
    setup = await asyncpg.connect(dsn)
    queries = Queries(AsyncpgDriver(setup))
    for start in range(0, jobs, 1000):
        count = min(1000, jobs - start)
        await queries.enqueue(["noop"] * count, [None] * count, [0] * count)
    await setup.close()

    async def worker() -> None:
        connection = await asyncpg.connect(dsn)
        manager = QueueManager(Queries(AsyncpgDriver(connection)))

        @manager.entrypoint("noop")
        async def noop(job) -> None:
            return None

        await manager.run(batch_size=batch, mode=QueueExecutionMode.drain)
        await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    elapsed = time.perf_counter() - started
    print(json.dumps({"queue": "pgqueuer", "jobs": jobs, "workers": workers, "batch": batch,
                      "seconds": round(elapsed, 3), "jobs_per_s": round(jobs / elapsed, 1)}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
