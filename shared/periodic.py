"""Jobs that run for the life of an app, now and then every interval, surviving their failures."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger("tci.periodic")


async def run_periodically(name: str, job: Callable[[], Awaitable[None]], *, every: float) -> None:
    """Run `job` now and then every `every` seconds until cancelled; a failure is logged and
    retried at the next interval (the loop must not die)."""
    while True:
        try:
            await job()
        except Exception:
            log.exception("%s failed; retried in %s s", name, every)
        await asyncio.sleep(every)


@contextlib.asynccontextmanager
async def running(*jobs: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """The jobs at work for as long as the block runs (an app's lifespan), cancelled at its end."""
    tasks = [asyncio.create_task(job) for job in jobs]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
