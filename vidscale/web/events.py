"""Fan-out of job events from the worker thread to every open server-sent event stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

HEARTBEAT_S = 15.0  # a comment line now and then, so proxies and browsers keep the stream open


class Broadcaster:
    """`publish` may be called from any thread; each subscriber gets every event after it joined."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def publish(self, event: dict[str, Any] | None) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._deliver, event)

    def close(self) -> None:
        """End every stream (the server is stopping; open streams would hold its stop up). Any thread."""
        self.publish(None)

    def _deliver(self, event: dict[str, Any] | None) -> None:
        for queue in self._subscribers:
            queue.put_nowait(event)

    async def stream(self, snapshot: Callable[[], dict[str, Any]]) -> AsyncIterator[str]:
        """SSE text: the state now, then each event as it happens."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            yield _message(snapshot())
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if event is None:
                    return
                yield _message(event)
        finally:
            self._subscribers.discard(queue)


def _message(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, allow_nan=False)}\n\n"
