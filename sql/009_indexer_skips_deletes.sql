-- The background indexer and a delete of traces never deadlock. The indexer used to take
-- no row lock on a trace until it inserted the trace's search rows (their foreign key takes
-- a key-share lock on the trace row), so an indexer working through traces X, Y and a
-- delete of Y, X could each wait for the other. The indexer now claims the rows of the
-- traces it indexes up front, with a key-share lock, and skips any trace a delete holds:
-- appends (FOR NO KEY UPDATE) are not held up by that lock; a delete waits for the indexer
-- to finish, never the other way round. Otherwise the function is as in 006.
CREATE OR REPLACE FUNCTION tracedb_index_traces(p_ids uuid[], p_max_entries integer DEFAULT 256)
RETURNS SETOF uuid
LANGUAGE plpgsql AS $$
DECLARE
    r      record;
    v_ids  uuid[] := '{}';
    v_from integer[] := '{}';
    v_to   integer[] := '{}';
    v_ep   integer[] := '{}';
    v_n    integer;
BEGIN
    BEGIN
        FOR r IN
            SELECT t.id, t.indexed_count, t.entry_count, t.index_epoch FROM automation_traces t
             WHERE t.id = ANY(p_ids) AND t.index_pending
             ORDER BY t.id
               FOR KEY SHARE OF t SKIP LOCKED
        LOOP
            CONTINUE WHEN NOT pg_try_advisory_xact_lock(hashtextextended('tracedb.index:' || r.id, 0));
            v_ids := v_ids || r.id;
            v_from := v_from || r.indexed_count;
            v_to := v_to || least(r.entry_count, r.indexed_count + p_max_entries);
            v_ep := v_ep || r.index_epoch;
            IF r.indexed_count = 0 THEN  -- new, or its entries were replaced: start afresh
                DELETE FROM automation_trace_search s WHERE s.trace_id = r.id;
            END IF;
            PERFORM tracedb_index_entries(r.id, r.indexed_count, v_to[cardinality(v_to)]);
        END LOOP;
        UPDATE automation_traces t
           SET indexed_count = d.upto, index_pending = d.upto < t.entry_count,
               indexed_at = clock_timestamp()
          FROM unnest(v_ids, v_from, v_to, v_ep) AS d(id, since, upto, epoch)
         WHERE t.id = d.id AND t.indexed_count = d.since AND t.index_epoch = d.epoch;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        IF v_n < cardinality(v_ids) THEN
            RAISE EXCEPTION 'entries replaced while indexed' USING ERRCODE = 'TDB01';
        END IF;
    EXCEPTION WHEN SQLSTATE 'TDB01' THEN
        NULL;  -- undone; the traces stay pending for the next round
    END;
    RETURN QUERY SELECT t.id FROM automation_traces t WHERE t.id = ANY(p_ids) AND t.index_pending;
END;
$$;
