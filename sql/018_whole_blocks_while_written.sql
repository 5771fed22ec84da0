-- While a trace is being written, the indexer indexes its complete blocks only. A block's
-- row holds the words of up to 32 entries; indexing a block's first entries and adding the
-- rest later rewrites the row (and every word of it in the GIN index) at each step: a trace
-- written at 25 entries a second and indexed once a second had each block rewritten about
-- once per entry it got, which cost three times the CPU and WAL of indexing the block once
-- (0.79 against 0.23-0.26 ms, 1,551 against 536 bytes of WAL per entry). p_live: a trace
-- whose content changed within this interval keeps its last, incomplete block pending
-- (searches read those entries directly, as they read any entries not indexed yet); the
-- indexer calls again once the trace has been quiet that long. NULL (the default, and what
-- tracedb_index_stale and processes of the previous version call): every entry. Otherwise
-- as in 009.
DROP FUNCTION tracedb_index_traces(uuid[], integer);

CREATE FUNCTION tracedb_index_traces(p_ids uuid[], p_max_entries integer DEFAULT 256,
                                     p_live interval DEFAULT NULL)
RETURNS SETOF uuid
LANGUAGE plpgsql AS $$
DECLARE
    r      record;
    v_ids  uuid[] := '{}';
    v_from integer[] := '{}';
    v_to   integer[] := '{}';
    v_ep   integer[] := '{}';
    v_n    integer;
    v_upto integer;
BEGIN
    BEGIN
        FOR r IN
            SELECT t.id, t.indexed_count, t.entry_count, t.index_epoch, t.updated_at FROM automation_traces t
             WHERE t.id = ANY(p_ids) AND t.index_pending
             ORDER BY t.id
               FOR KEY SHARE OF t SKIP LOCKED
        LOOP
            v_upto := least(r.entry_count, r.indexed_count + p_max_entries);
            IF p_live IS NOT NULL AND r.updated_at > clock_timestamp() - p_live THEN
                v_upto := v_upto - v_upto % tracedb_search_block_size();  -- complete blocks
                CONTINUE WHEN v_upto <= r.indexed_count;
            END IF;
            CONTINUE WHEN NOT pg_try_advisory_xact_lock(hashtextextended('tracedb.index:' || r.id, 0));
            v_ids := v_ids || r.id;
            v_from := v_from || r.indexed_count;
            v_to := v_to || v_upto;
            v_ep := v_ep || r.index_epoch;
            IF r.indexed_count = 0 THEN  -- new, or its entries were replaced: start afresh
                DELETE FROM automation_trace_search s WHERE s.trace_id = r.id;
            END IF;
            PERFORM tracedb_index_entries(r.id, r.indexed_count, v_upto);
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
