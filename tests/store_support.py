"""Run the same store tests against AutomationTraceDB and AsyncAutomationTraceDB.

``BlockingAsyncStore`` drives an async store on an event loop of its own (in a thread), so
that a test written against the sync API exercises the async class unchanged.
"""

from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import Callable
from typing import Any

from tracedb import AsyncAutomationTraceDB, AutomationTraceDB


class BlockingAsyncStore:
    """An AsyncAutomationTraceDB behind the sync store's interface."""

    def __init__(self, url: str | None = None, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="async-store", daemon=True)
        self._thread.start()
        try:
            self.store = self._wait(AsyncAutomationTraceDB.open(url, **kwargs))
        except BaseException:
            self._stop()
            raise

    def _wait(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def __getattr__(self, name: str) -> Any:
        if name == "store" or name.startswith("__"):
            raise AttributeError(name)
        attr = getattr(self.store, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            return self._wait(result) if asyncio.iscoroutine(result) else result

        return call

    def as_user(self, user_id: str | None) -> BlockingAsyncStore:
        view = copy.copy(self)
        view.store = self.store.as_user(user_id)
        return view

    def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def close(self) -> None:
        try:
            self._wait(self.store.close())
        finally:
            self._stop()

    def __enter__(self) -> BlockingAsyncStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


STORES = {"sync": AutomationTraceDB, "async": BlockingAsyncStore}


def in_threads(work: Callable[[int], Any], n: int) -> list[BaseException]:
    """Run ``work(0)`` ... ``work(n - 1)`` in threads of their own, at once, and return what
    they raised (a test asserts it is empty)."""
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors
