"""Running several commands at once: the first failure cancels the rest, and is raised."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator
import contextlib


@contextlib.contextmanager
def first_failure_unwrapped() -> Iterator[None]:
    """Raise the first error of a task group inside the block as itself, not wrapped."""
    try:
        yield
    except ExceptionGroup as group_error:
        # Callers want the library error (a PbxTimeoutError, ...), not the group.
        first = group_error.exceptions[0]
        while isinstance(first, ExceptionGroup):
            first = first.exceptions[0]
        raise first from None


async def gather_bounded[K, T](
    keys: Iterable[K], fetch: Callable[[K], Awaitable[T]], limit: int
) -> dict[K, T]:
    """``fetch`` of every key, at most ``limit`` at a time; results by key."""
    semaphore = asyncio.Semaphore(limit)

    async def one(key: K) -> T:
        async with semaphore:
            return await fetch(key)

    with first_failure_unwrapped():
        async with asyncio.TaskGroup() as group:
            tasks = {key: group.create_task(one(key)) for key in keys}
    return {key: task.result() for key, task in tasks.items()}
