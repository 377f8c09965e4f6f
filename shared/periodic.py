"""Jobs that run for the life of an app, now and then every interval, surviving their failures."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

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
