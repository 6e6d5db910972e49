"""bench/pgqueuer_drain.py — the peer in bench/queue.sh: pgqueuer (PyPI) draining N no-op jobs.

Usage: python pgqueuer_drain.py DSN JOBS [BATCH=50] [WORKERS=2]

Installs pgqueuer's schema, enqueues JOBS no-op jobs (batched inserts, not timed), then runs WORKERS
QueueManagers (one asyncpg connection each, as pgqueuer's own benchmark does) with batch_size BATCH in
drain mode and prints `PGQUEUER_JOBS_PER_SECOND=<jobs/s>`.
"""

import asyncio
import sys
import time

import asyncpg
from pgqueuer import AsyncpgDriver, Queries, QueueManager
from pgqueuer.types import QueueExecutionMode


async def main() -> None:
    dsn, jobs = sys.argv[1], int(sys.argv[2])
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    workers = int(sys.argv[4]) if len(sys.argv) > 4 else 2

    connection = await asyncpg.connect(dsn)
    queries = Queries(AsyncpgDriver(connection))
    if not await queries.schema_is_installed():
        await queries.install()
    chunk = 5000
    for start in range(0, jobs, chunk):
        n = min(chunk, jobs - start)
        await queries.enqueue(["noop"] * n, [None] * n, [0] * n)
    await connection.close()

    done = 0

    async def worker() -> None:
        nonlocal done
        conn = await asyncpg.connect(dsn)
        qm = QueueManager(Queries(AsyncpgDriver(conn)))

        @qm.entrypoint("noop")
        async def noop(job) -> None:  # noqa: ANN001
            nonlocal done
            done += 1

        await qm.run(batch_size=batch, mode=QueueExecutionMode.drain)
        await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    seconds = time.perf_counter() - started
    print(f"pgqueuer: drained {done} jobs in {seconds:.2f} s with {workers} workers, batch {batch}: {done / seconds:.0f} jobs/s")
    print(f"PGQUEUER_JOBS_PER_SECOND={done / seconds:.0f}")


asyncio.run(main())
