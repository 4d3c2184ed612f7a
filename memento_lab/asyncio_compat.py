"""One way to call a coroutine from synchronous code, in a script or inside a running loop (Jupyter).

    trace = run_sync(agent.arun(task))

Outside an event loop this is ``asyncio.run``. Inside one (a Jupyter cell runs on a live loop)
``asyncio.run`` refuses, so the running loop is made re-entrant with ``nest_asyncio2`` (the
maintained fork of the archived ``nest-asyncio``, the one ipykernel uses) and the coroutine runs to
completion on it. The patch is applied only in that case, never at import. ``await`` stays the
first choice in notebooks: the nested run blocks the cell (and the loop) until it finishes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion and return its result, whether or not a loop is already running."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    import nest_asyncio2

    nest_asyncio2.apply(loop)
    return loop.run_until_complete(coro)
