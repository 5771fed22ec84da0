-- Turns of a conversation. A recorder starts each run of a thread with new_turn: the trace
-- counts its turns, and every entry appended afterwards carries the turn it belongs to, so
-- the dashboard can show turns apart and add up the work of each instead of the idle time
-- between them. Writers that never start a turn (the seed-style upsert) leave turn NULL.
--
-- Appends also learn whose traces they may touch: a thread's trace is the most recent one
-- of that thread *and that user* (another user's trace of the same thread id is never
-- appended to), and p_scope, when set, makes any other user's trace id unknown.

ALTER TABLE automation_traces ADD COLUMN turns integer NOT NULL DEFAULT 0;
ALTER TABLE automation_trace_entries ADD COLUMN turn integer;

DROP FUNCTION tracedb_append(uuid, text, text, text, text, jsonb, integer, text, uuid);

CREATE FUNCTION tracedb_append(
    p_trace_id  uuid,
    p_user_id   text,
    p_provider_id text,
    p_thread_id text,
    p_name      text,
    p_entries   jsonb,
    p_offset    integer,
    p_status    text,
    p_new_id    uuid,
    p_new_turn  boolean DEFAULT false,
    p_scope     text DEFAULT NULL
) RETURNS TABLE (trace_id uuid, first_seq integer, entry_count integer,
                 written integer, in_sync boolean, created boolean, turn integer)
LANGUAGE plpgsql AS $$
DECLARE
    v_id      uuid;
    v_count   integer;
    v_turns   integer;
    v_turn    integer;
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
        SELECT t.id, t.entry_count, t.turns INTO v_id, v_count, v_turns
          FROM automation_traces t
         WHERE t.id = p_trace_id AND (p_scope IS NULL OR t.user_id = p_scope) FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'trace % not found', p_trace_id USING ERRCODE = 'P0002';
        END IF;
    ELSE
        PERFORM pg_advisory_xact_lock(hashtextextended('tracedb.thread:' || p_thread_id, 0));
        SELECT t.id, t.entry_count, t.turns INTO v_id, v_count, v_turns
          FROM automation_traces t WHERE t.thread_id = p_thread_id AND t.user_id = p_user_id
         ORDER BY t.created_at DESC, t.id DESC LIMIT 1 FOR UPDATE;
        IF NOT FOUND THEN
            INSERT INTO automation_traces AS t (id, user_id, provider_id, thread_id, name, status)
            VALUES (coalesce(p_new_id, gen_random_uuid()), p_user_id, p_provider_id,
                    p_thread_id, p_name, coalesce(p_status, 'completed'))
            RETURNING t.id INTO v_id;
            v_count := 0;
            v_turns := 0;
            v_created := true;
        END IF;
    END IF;

    IF p_offset IS NOT NULL THEN
        IF p_offset > v_count THEN
            RETURN QUERY SELECT v_id, v_count, v_count, 0, false, v_created, nullif(v_turns, 0);
            RETURN;
        END IF;
        v_skip := v_count - p_offset;
    END IF;

    IF coalesce(p_new_turn, false) THEN
        v_turns := v_turns + 1;
    END IF;
    v_turn := nullif(v_turns, 0);

    WITH src AS (
        SELECT x, o FROM jsonb_array_elements(coalesce(p_entries, '[]'::jsonb)) WITH ORDINALITY AS e(x, o)
         WHERE o > v_skip
    ), ins AS (
        INSERT INTO automation_trace_entries
            (trace_id, seq, node, kind, name, status, started_at, ended_at, duration_ms, data, turn)
        SELECT v_id, v_count + (o - v_skip)::integer - 1,
               x->'d'->>'node', x->'d'->>'kind', x->'d'->>'name',
               CASE WHEN (x->>'e')::boolean THEN 'error' ELSE x->'d'->>'status' END,
               (x->>'a')::timestamptz, (x->>'b')::timestamptz, (x->>'ms')::double precision,
               x->'d', v_turn
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

    IF v_n > 0 OR coalesce(p_new_turn, false)
       OR (p_name IS NOT NULL AND NOT v_created) OR (p_status IS NOT NULL AND NOT v_created) THEN
        UPDATE automation_traces t SET
            entry_count = v_count + v_n,
            error_count = t.error_count + v_err,
            nodes = CASE WHEN v_nodes <@ t.nodes THEN t.nodes
                         ELSE ARRAY(SELECT DISTINCT u FROM unnest(t.nodes || v_nodes) AS u ORDER BY u) END,
            first_started_at = least(t.first_started_at, v_min),
            last_ended_at = greatest(t.last_ended_at, v_max),
            total_duration_ms = t.total_duration_ms + v_sum,
            name = coalesce(p_name, t.name),
            status = coalesce(p_status, t.status),
            turns = v_turns
         WHERE t.id = v_id;
    END IF;

    RETURN QUERY SELECT v_id, v_count, v_count + v_n, v_n, true, v_created, v_turn;
END;
$$;
