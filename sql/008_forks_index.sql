-- Replays: a trace run again from a step of another records it in
-- metadata.forked_from = {"trace_id": ..., "seq": ...}. The thread page lists a trace's
-- replays on every view, so the look-up goes through this index instead of reading every
-- trace's metadata; it holds only the traces that are replays.

CREATE INDEX automation_traces_forked_from_idx
    ON automation_traces ((metadata -> 'forked_from' ->> 'trace_id'), created_at DESC)
    WHERE metadata ? 'forked_from';
