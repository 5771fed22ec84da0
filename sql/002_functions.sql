-- Writes and reads that belong in the database: one round trip each, atomic.

-- Append entries to a trace and return where they went.
--
-- p_trace_id given: append to that trace (error P0002 when it does not exist).
-- p_trace_id NULL: the thread's most recent trace, created when the thread has none;
-- an advisory lock on the thread makes concurrent first writers agree on one trace.
-- The trace row is locked FOR UPDATE, so concurrent appends to one trace are
-- serialised and seq numbers are dense and never reused.
--
-- p_entries is a JSON array of {"d": entry, "a": started_at, "b": ended_at,
-- "ms": duration_ms, "e": is_error}, prepared by the client.
-- p_offset NULL appends every element. p_offset = k says "element 1 is entry number k
-- of the complete trace": elements already stored are skipped; when k is beyond what is
-- stored nothing is written and in_sync is false (the caller resends from entry_count).
CREATE FUNCTION tracedb_append(
    p_trace_id  uuid,
    p_user_id   text,
    p_provider_id text,
    p_thread_id text,
    p_name      text,
    p_entries   jsonb,
    p_offset    integer,
    p_status    text,
    p_new_id    uuid
) RETURNS TABLE (trace_id uuid, first_seq integer, entry_count integer,
                 written integer, in_sync boolean, created boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_id      uuid;
    v_count   integer;
    v_skip    integer := 0;
    v_n       integer;
    v_err     integer;
    v_nodes   text[];
    v_min     timestamptz;
    v_max     timestamptz;
    v_sum     double precision;
    v_created boolean := false;
BEGIN
    IF p_trace_id IS NOT NULL THEN
        SELECT t.id, t.entry_count INTO v_id, v_count
          FROM automation_traces t WHERE t.id = p_trace_id FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'trace % not found', p_trace_id USING ERRCODE = 'P0002';
        END IF;
    ELSE
        PERFORM pg_advisory_xact_lock(hashtextextended('tracedb.thread:' || p_thread_id, 0));
        SELECT t.id, t.entry_count INTO v_id, v_count
          FROM automation_traces t WHERE t.thread_id = p_thread_id
         ORDER BY t.created_at DESC, t.id DESC LIMIT 1 FOR UPDATE;
        IF NOT FOUND THEN
            INSERT INTO automation_traces AS t (id, user_id, provider_id, thread_id, name, status)
            VALUES (coalesce(p_new_id, gen_random_uuid()), p_user_id, p_provider_id,
                    p_thread_id, p_name, coalesce(p_status, 'completed'))
            RETURNING t.id INTO v_id;
            v_count := 0;
            v_created := true;
        END IF;
    END IF;

    IF p_offset IS NOT NULL THEN
        IF p_offset > v_count THEN
            RETURN QUERY SELECT v_id, v_count, v_count, 0, false, v_created;
            RETURN;
        END IF;
        v_skip := v_count - p_offset;
    END IF;

    WITH src AS (
        SELECT x, o FROM jsonb_array_elements(coalesce(p_entries, '[]'::jsonb)) WITH ORDINALITY AS e(x, o)
         WHERE o > v_skip
    ), ins AS (
        INSERT INTO automation_trace_entries
            (trace_id, seq, node, kind, name, status, started_at, ended_at, duration_ms, data)
        SELECT v_id, v_count + (o - v_skip)::integer - 1,
               x->'d'->>'node', x->'d'->>'kind', x->'d'->>'name',
               CASE WHEN (x->>'e')::boolean THEN 'error' ELSE x->'d'->>'status' END,
               (x->>'a')::timestamptz, (x->>'b')::timestamptz, (x->>'ms')::double precision,
               x->'d'
          FROM src
        RETURNING node, status, started_at, ended_at, duration_ms
    )
    SELECT count(*)::integer,
           count(*) FILTER (WHERE ins.status = 'error')::integer,
           coalesce(array_agg(DISTINCT ins.node) FILTER (WHERE ins.node IS NOT NULL), '{}'),
           min(ins.started_at), max(coalesce(ins.ended_at, ins.started_at)),
           coalesce(sum(ins.duration_ms), 0)
      INTO v_n, v_err, v_nodes, v_min, v_max, v_sum
      FROM ins;

    IF v_n > 0 OR (p_name IS NOT NULL AND NOT v_created) OR (p_status IS NOT NULL AND NOT v_created) THEN
        UPDATE automation_traces t SET
            entry_count = v_count + v_n,
            error_count = t.error_count + v_err,
            nodes = CASE WHEN v_nodes <@ t.nodes THEN t.nodes
                         ELSE ARRAY(SELECT DISTINCT u FROM unnest(t.nodes || v_nodes) AS u ORDER BY u) END,
            first_started_at = least(t.first_started_at, v_min),
            last_ended_at = greatest(t.last_ended_at, v_max),
            total_duration_ms = t.total_duration_ms + v_sum,
            name = coalesce(p_name, t.name),
            status = coalesce(p_status, t.status)
         WHERE t.id = v_id;
    END IF;

    RETURN QUERY SELECT v_id, v_count, v_count + v_n, v_n, true, v_created;
END;
$$;

-- The complete trace as the seed stored it: a JSON array of entries in seq order.
CREATE FUNCTION tracedb_trace_data(p_trace_id uuid) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(e.data ORDER BY e.seq), '[]'::jsonb)
      FROM automation_trace_entries e WHERE e.trace_id = p_trace_id
$$;
