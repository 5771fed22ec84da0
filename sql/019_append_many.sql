-- Appends of many callers in one statement and one commit (tracedb.combine): a store that
-- records many conversations at once sends the appends that queue while one statement is at
-- the server together, instead of committing each on its own.
--
-- Element i of the arrays is one append to the trace p_trace_ids[i], the same call of
-- tracedb_append that the append alone would make (p_entries -> (i - 1) its entries).
-- Appends run in the order of the arrays, one row each, which carries p_ords[i].
--
-- The traces are locked first, in the order of their ids, skipping any that another
-- transaction holds and any that the append's user (p_scopes[i]) may not see: this
-- statement never waits for a row lock (so one busy trace does not hold up the appends to
-- others, and two such statements never wait for each other), and an append whose trace it
-- did not lock is not run: its row has a NULL trace_id, and its caller sends it on its own.
CREATE FUNCTION tracedb_append_many(
    p_ords      integer[],
    p_trace_ids uuid[],
    p_names     text[],
    p_entries   jsonb,
    p_statuses  text[],
    p_new_turns boolean[],
    p_scopes    text[],
    p_batches   uuid[],
    p_runnings  text[],
    p_dropped   integer[]
)
RETURNS TABLE (ord integer, trace_id uuid, first_seq integer, entry_count integer, written integer,
               in_sync boolean, created boolean, turn integer, duplicate boolean, replaced boolean,
               fingerprint text)
LANGUAGE plpgsql AS $$
DECLARE
    v_locked uuid[];
    r        record;
BEGIN
    SELECT coalesce(array_agg(l.id), '{}') INTO v_locked
      FROM (SELECT x.id FROM automation_traces x
             WHERE x.id = ANY(p_trace_ids)
               AND EXISTS (SELECT 1 FROM unnest(p_trace_ids, p_scopes) AS v(id, scope)
                            WHERE v.id = x.id AND (v.scope IS NULL OR v.scope = x.user_id))
             ORDER BY x.id
               FOR NO KEY UPDATE SKIP LOCKED) AS l;
    FOR i IN 1 .. coalesce(array_length(p_trace_ids, 1), 0) LOOP
        ord := p_ords[i];
        IF p_trace_ids[i] = ANY(v_locked) THEN
            SELECT * INTO r
              FROM tracedb_append(p_trace_ids[i], NULL, NULL, NULL, p_names[i], p_entries -> (i - 1),
                                  NULL, p_statuses[i], NULL, p_new_turns[i], p_scopes[i], p_batches[i],
                                  NULL, false, p_runnings[i]::jsonb, p_dropped[i]) AS a;
            trace_id := r.trace_id;
            first_seq := r.first_seq;
            entry_count := r.entry_count;
            written := r.written;
            in_sync := r.in_sync;
            created := r.created;
            turn := r.turn;
            duplicate := r.duplicate;
            replaced := r.replaced;
            fingerprint := r.fingerprint;
        ELSE
            trace_id := NULL;
            first_seq := NULL;
            entry_count := NULL;
            written := NULL;
            in_sync := NULL;
            created := NULL;
            turn := NULL;
            duplicate := NULL;
            replaced := NULL;
            fingerprint := NULL;
        END IF;
        RETURN NEXT;
    END LOOP;
END;
$$;
