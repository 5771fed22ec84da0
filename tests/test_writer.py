"""The writer thread's ordering, retries, splitting, gaps and heartbeat, with a sink that
fails on purpose (the same behaviour against a real server is in test_faults.py)."""

from __future__ import annotations

import threading
import time
from typing import Any

from tracedb.buffer import Batch
from tracedb.errors import AccessDenied, DatabaseUnavailable, InvalidTraceData, QueryTimeout
from tracedb.writer import KEEP_MESSAGES, Writer


class Sink:
    """Stores batches in memory; fails as told: ``down`` calls raise DatabaseUnavailable,
    ``timeouts`` calls raise QueryTimeout, entries with ``"bad"`` are refused (raising
    ``refuse``), and ``lose_replies`` batches are stored but answered with an outage."""

    def __init__(
        self, *, down: int = 0, timeouts: int = 0, refuse: type[Exception] = InvalidTraceData
    ) -> None:
        self.thread_id = "t"
        self.trace_id: str | None = None
        self.down = down
        self.timeouts = timeouts
        self.refuse = refuse
        self.lose_replies = 0
        self.refuse_everything = False
        self.batches: list[Batch] = []
        self.seen_ids: set[str] = set()
        self.touches = 0
        self.lock = threading.Lock()

    def append(self, batch: Batch) -> None:
        with self.lock:
            if self.down:
                self.down -= 1
                raise DatabaseUnavailable("down")
            if self.timeouts:
                self.timeouts -= 1
                raise QueryTimeout("cancelled")
            if self.refuse_everything:
                raise AccessDenied("not yours")
            if any(e.get("bad") for e in batch.entries):
                raise self.refuse("refused")
            if batch.batch_id in self.seen_ids:
                return  # a batch sent again after a lost reply is stored once
            self.seen_ids.add(batch.batch_id)
            self.batches.append(batch)
            self.trace_id = "trace"
            if self.lose_replies:
                self.lose_replies -= 1
                raise DatabaseUnavailable("reply lost")

    def touch(self) -> None:
        self.touches += 1

    def after_append(self) -> None:
        raise RuntimeError("metadata failed")  # must not matter

    def forget_trace(self) -> None:
        self.trace_id = None

    def idle(self) -> None:
        raise RuntimeError("idle failed")  # must not matter

    @property
    def stored(self) -> list[dict[str, Any]]:
        return [e for b in self.batches for e in b.entries]


def _writer(sink: Sink, limit: int = 1000, **kw: Any) -> Writer:
    w = Writer(sink, limit, **kw)
    w.start()
    return w


def test_batches_keep_order_across_outages_and_lost_replies():
    sink = Sink(down=3)
    sink.lose_replies = 2
    w = _writer(sink)
    for i in range(50):
        w.put([{"i": i}])
    w.put([], status="completed")
    assert w.drain(10)
    w.close()
    assert [e["i"] for e in sink.stored] == list(range(50))
    assert sink.batches[-1].status == "completed"
    report = w.report("trace")
    assert report.written == 50 and report.ok
    assert report.error_counts["unreachable"] >= 3
    assert any("unreachable" in e for e in report.errors)


def test_a_refused_entry_is_found_and_stored_as_an_error():
    sink = Sink()
    w = _writer(sink)
    w.put([], status="running", new_turn=True)
    w.put([{"i": i, "node": "n", "bad": i == 7} for i in range(20)], ends=["task-1"])
    w.put([], status="completed")
    assert w.drain(10)
    stored = sink.stored
    assert len(stored) == 20
    assert [e.get("i") for e in stored[:7]] == list(range(7))
    assert stored[7]["kind"] == "error" and "refused" in stored[7]["error"]
    assert stored[7]["refused"]["index"] == 7 and stored[7]["node"] == "n"
    assert [e["i"] for e in stored[8:]] == list(range(8, 20))
    assert sink.batches[0].new_turn and any(b.status == "completed" for b in sink.batches)
    assert "task-1" in [t for b in sink.batches for t in b.running_end]
    report = w.report("trace")
    assert report.replaced == 1 and report.written == 19 and not report.ok
    assert report.error_counts["refused"] >= 1


def test_an_unexpected_error_while_preparing_an_entry_is_treated_as_refused_content():
    sink = Sink(refuse=OverflowError)
    w = _writer(sink)
    w.put([{"i": 0}, {"i": 1, "bad": True}, {"i": 2}])
    assert w.drain(10)
    assert [e.get("i", "x") for e in sink.stored] == [0, "x", 2]
    assert "OverflowError" in sink.stored[1]["error"]


def test_a_trace_that_cannot_be_recorded_does_not_stop_the_run():
    sink = Sink()
    sink.refuse_everything = True
    w = _writer(sink)
    w.put([], status="running", new_turn=True)
    w.put([{"i": 1}, {"i": 2}])
    assert w.drain(5)
    w.put([{"i": 3}])
    assert w.drain(5)
    report = w.report(None)
    assert report.dropped == 3 and report.pending == 0
    assert "cannot be recorded" in report.errors[-1]
    assert w.is_alive()
    w.close()


def test_cancelled_writes_are_retried():
    sink = Sink(timeouts=2)
    w = _writer(sink)
    w.put([{"i": i} for i in range(5)])
    assert w.drain(10)
    assert [e["i"] for e in sink.stored] == list(range(5))
    assert w.report("trace").error_counts["timeout"] == 2


def test_a_batch_cancelled_every_time_is_given_up_and_marked_as_a_gap():
    sink = Sink(timeouts=5)
    w = _writer(sink)
    w.put([{"i": i} for i in range(3)])
    assert w.drain(20)
    assert sink.stored == []
    w.put([{"i": 3}])
    assert w.drain(5)
    gap, after = sink.stored
    assert gap["kind"] == "gap" and gap["dropped"] == 3 and after == {"i": 3}
    assert sink.batches[0].dropped == 3
    assert w.report("trace").dropped == 3


def test_full_buffer_drops_the_oldest_and_leaves_a_gap():
    sink = Sink(down=10**9)
    w = _writer(sink, limit=5)
    w.put([], status="running", new_turn=True)
    time.sleep(0.1)  # the writer holds the first batch, retrying
    for i in range(20):
        w.put([{"i": i}])
    assert w.drain(0.2) is False
    report = w.report(None)
    assert report.dropped == 15 and report.pending == 5
    assert report.error_counts["buffer_full"] == 15
    assert sum("buffer full" in e for e in report.errors) == 1
    sink.down = 0  # the server is back: once the writer has seen it (within RETRY_CAP_S) ...
    deadline = time.monotonic() + 2
    while w.outage_since is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    for i in range(20, 30):  # ... what comes is kept, more than the buffer's limit included
        w.put([{"i": i}])
    assert w.drain(10)
    stored = sink.stored
    assert stored[0]["kind"] == "gap" and stored[0]["dropped"] == 15
    assert stored[0]["first_dropped_at"] <= stored[0]["last_dropped_at"]
    assert [e.get("i", e.get("kind")) for e in stored[1:]] == list(range(15, 30))
    assert sum(b.dropped for b in sink.batches) == 15


def test_a_node_that_starts_and_ends_within_one_batch_is_not_marked():
    sink = Sink(down=2)
    w = _writer(sink)
    w.put([], starts={"a": {"node": "a"}, "b": {"node": "b"}})
    w.put([{"node": "a"}], ends=["a"])
    assert w.drain(10)
    batch = sink.batches[-1] if len(sink.batches) == 1 else None
    starts = {k for b in sink.batches for k in b.running_start}
    assert starts == {"b"}
    assert batch is None or batch.running_end == ["a"]


def test_heartbeat_while_a_run_writes_nothing():
    sink = Sink()
    w = _writer(sink, heartbeat_s=0.05)
    w.put([], status="running", new_turn=True)
    time.sleep(0.5)
    assert sink.touches >= 4
    w.put([], status="completed")
    assert w.drain(5)
    beats = sink.touches
    time.sleep(0.3)
    assert sink.touches == beats  # no heartbeat once the run has ended


def test_messages_are_bounded_and_counts_kept():
    sink = Sink(refuse=InvalidTraceData)
    w = _writer(sink)
    w.put([{"bad": True, "i": i} for i in range(40)])
    assert w.drain(20)
    report = w.report("trace")
    assert len(report.errors) <= KEEP_MESSAGES
    assert report.replaced == 40 and report.error_counts["refused"] >= 40


def test_drain_gives_up_after_its_timeout():
    sink = Sink(down=10**6)
    w = _writer(sink, limit=3)
    w.put([{"i": 0}])
    time.sleep(0.1)  # the writer has met the outage
    w.put([{"i": i} for i in range(1, 6)])
    t0 = time.monotonic()
    assert w.drain(0.3) is False
    assert 0.3 <= time.monotonic() - t0 < 1
    report = w.report(None)
    assert report.dropped == 2 and report.pending == 4
    w.close()
