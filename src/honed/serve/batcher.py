"""Server-side micro-batching: concurrent requests share one model call.

Requests wait at most `max_wait` seconds (or until `max_batch` items are queued), then one worker
thread runs the model on all of them and each request gets its own slice back. The model runs off
the event loop, so the server keeps accepting requests while it computes.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable


class MicroBatcher:
    def __init__(self, predict: Callable[[list], list], max_batch: int = 64, max_wait: float = 0.005) -> None:
        self.predict, self.max_batch, self.max_wait = predict, max_batch, max_wait
        self.queue: asyncio.Queue | None = None
        self.worker: asyncio.Task | None = None
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="honed-model")
        self.calls = 0  # model calls so far (batches)

    async def submit(self, items: list) -> list:
        """The predictions for `items`, computed together with whatever else is waiting."""
        if self.worker is None or self.worker.done():
            self.queue = asyncio.Queue()
            self.worker = asyncio.get_running_loop().create_task(self._run())
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((items, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            waiting = [await self.queue.get()]
            size = len(waiting[0][0])
            deadline = time.perf_counter() + self.max_wait
            while size < self.max_batch:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self.queue.get(), left)
                except asyncio.TimeoutError:
                    break
                waiting.append(item)
                size += len(item[0])
            batch = [x for items, _ in waiting for x in items]
            try:
                results = await loop.run_in_executor(self.pool, self.predict, batch)
                self.calls += 1
            except Exception as e:  # noqa: BLE001 - the requests that shared the batch get the error
                for _, future in waiting:
                    if not future.done():
                        future.set_exception(e)
                continue
            start = 0
            for items, future in waiting:
                if not future.done():
                    future.set_result(results[start: start + len(items)])
                start += len(items)
