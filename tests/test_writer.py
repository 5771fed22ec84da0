"""The writer thread's ordering, retry and bound, with a sink that fails on purpose.

The database side of the same behaviour is tested in test_recorder.py with a real server
that is stopped and started."""

from __future__ import annotations

from typing import Any

from tracedb.errors import DatabaseUnavailable, InvalidTraceData
from tracedb.writer import Writer


class FlakySink:
    def __init__(self, failures: int = 0, bad: bool = False) -> None:
        self.thread_id = "t"
        self.failures = failures
        self.bad = bad
        self.batches: list[tuple[list[Any], str | None]] = []

    def _write(
        self, entries: list[dict[str, Any]], status: str | None, new_turn: bool = False, batch_id: str = ""
    ) -> None:
        if self.failures:
            self.failures -= 1
            raise DatabaseUnavailable("down")
        if self.bad:
            raise InvalidTraceData("refused")
        self.batches.append((entries, status))


def test_batches_keep_order_across_failures():
    sink = FlakySink(failures=3)
    w = Writer(sink, buffer_limit=1000)
    w.start()
    for i in range(50):
        w.put([{"i": i}])
    w.put([], status="completed")
    assert w.drain(10)
    w.close()
    got = [e["i"] for batch, _ in sink.batches for e in batch]
    assert got == list(range(50))
    assert sink.batches[-1][1] == "completed"
    assert w.written == 50 and w.dropped == 0
    assert any("unreachable" in e for e in w.errors)


def test_refused_batches_are_counted_not_retried_forever():
    sink = FlakySink(bad=True)
    w = Writer(sink, buffer_limit=1000)
    w.start()
    w.put([{"i": 1}, {"i": 2}])
    assert w.drain(5)
    w.close()
    assert w.dropped == 2 and "refused" in w.errors[-1]


def test_drain_gives_up_after_its_timeout():
    sink = FlakySink(failures=10**6)
    w = Writer(sink, buffer_limit=3)
    w.start()
    w.put([{"i": i} for i in range(5)])
    assert w.drain(0.3) is False
    assert w.dropped == 2
    w.close()
