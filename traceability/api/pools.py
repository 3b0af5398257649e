"""Stage 3, API: the API's connection pools and each request's one connection (its lease)."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from psycopg_pool import ConnectionPool

from traceability.api.options import ApiOptions
from traceability.api.problems import BUSY, PROBLEM_BASE, ApiProblemError

Conn = psycopg.Connection[Any]

# /health has a connection of its own (a pool of one), so it answers while every request connection is
# busy; it waits this long for it, or for the database, before it reports the database unreachable.
HEALTH_TIMEOUT_S = 2.0


class Pools:
    """The API's connections: a pool for the requests (one connection each) and one of a single connection
    for /health. A request waits for its connection on an asyncio semaphore as wide as the pool, in the
    event loop: no worker thread is held while it waits, so a request that has a connection always finds
    a thread to run on (waiting in the threads, a burst of requests could hold them all)."""

    def __init__(self, conninfo: str, options: ApiOptions) -> None:
        kwargs = {"autocommit": True}
        self.work: ConnectionPool[Conn] = ConnectionPool(
            conninfo, min_size=1, max_size=options.pool_size, open=False, kwargs=kwargs
        )
        self.health: ConnectionPool[Conn] = ConnectionPool(
            conninfo, min_size=1, max_size=1, open=False, kwargs=kwargs
        )
        self.work_gate = asyncio.Semaphore(options.pool_size)
        self.health_gate = asyncio.Semaphore(1)
        self.timeout_s = options.pool_timeout_s

    def open(self) -> None:
        self.work.open(wait=False)
        self.health.open(wait=False)

    def close(self) -> None:
        self.work.close()
        self.health.close()

    def lease(self) -> Lease:
        return Lease(self.work, self.work_gate, self.timeout_s)

    def health_lease(self) -> Lease:
        return Lease(self.health, self.health_gate, HEALTH_TIMEOUT_S)


def open_pools(app: FastAPI, conninfo: str, options: ApiOptions | None = None) -> Pools:
    """Open the app's connection pools (the lifespan does this; a caller that runs the app without its
    lifespan, as schemathesis does, calls it and closes what it returns)."""
    pools = Pools(conninfo, options or app.state.options)
    pools.open()
    app.state.pools = pools
    return pools


class Lease:
    """A request's one connection: taken when a dependency first asks for it, given back after the audit."""

    def __init__(self, pool: ConnectionPool[Conn], gate: asyncio.Semaphore, timeout_s: float) -> None:
        self.pool, self.gate, self.timeout_s = pool, gate, timeout_s
        self.conn: Conn | None = None
        self._gated = False

    async def acquire(self) -> Conn:
        if self.conn is not None:
            return self.conn
        if not self._gated:
            try:
                await asyncio.wait_for(self.gate.acquire(), self.timeout_s)
            except TimeoutError:
                raise ApiProblemError(
                    503, "Service Unavailable", BUSY, type_=PROBLEM_BASE + "busy", retry_after=1
                ) from None
            self._gated = True
        # The gate leaves a connection free (or one being opened): this wait is short, or the database is
        # down (PoolTimeout, an OperationalError: 503).
        self.conn = await run_in_threadpool(self.pool.getconn, self.timeout_s)
        return self.conn

    async def release(self) -> None:
        conn, self.conn = self.conn, None
        try:
            if conn is not None:
                await run_in_threadpool(self.pool.putconn, conn)
        finally:
            if self._gated:
                self._gated = False
                self.gate.release()
