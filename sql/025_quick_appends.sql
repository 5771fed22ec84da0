-- Quick appends: one entry per transaction, the seed's calling pattern, written by one
-- INSERT ... SELECT sent by the client (tracedb.queries.QUICK_APPEND) instead of a call of
-- tracedb_append: no function, no UPDATE of the trace row. Measured through the store's
-- pool, one entry per call interleaved with raw single-row INSERTs: 0.71-0.74 of the
-- INSERT's rate, against 0.48 for tracedb_append (python -m bench.write_paths).
--
-- The trace row's counts, times, tokens, cost and fingerprint then lag behind the entries a
-- quick append stored: its "tail", the entries from seq = entry_count on. Every reader adds
-- the tail of a trace that is index_pending (tracedb.queries.LIVE: the summary columns and
-- the overviews), and tracedb_fold adds it to the row: the indexer before and after each of
-- its calls, and every other write first (tracedb_append, under the row lock). A quick
-- append writes only to a trace that is already pending, so no tail is ever left unseen,
-- and only what keeps the rest of the row exact: no error entry, no node the trace has not
-- had, no start before its first, and only within a second of the row's updated_at (and
-- heartbeat, when running); anything else, and the first entry after the trace stopped
-- being pending, goes by tracedb_append, which moves updated_at at most once a second as
-- before.
--
-- Concurrency: a quick append locks the trace row FOR SHARE, so it never runs beside a
-- write that holds the row (tracedb_append, the fold); it inserts only the entry that
-- follows the trace's last one (a stale count writes nothing, and of two writers racing for
-- the same seq the primary key refuses the second, which the client takes as "nothing
-- written"), and only while the trace's index_epoch is the one the client last saw: a
-- replacement of the entries moves it, and a quick append whose snapshot predates one is
-- stopped by that check on the row it locks. A call that writes nothing is sent again as
-- tracedb_append.
--
-- Each quick entry keeps its digest (digest), from which the fold chains the fingerprint.

ALTER TABLE automation_trace_entries ADD COLUMN digest text;

-- Add the tail of a trace (its entries from seq = entry_count on) to its row. Locks the
-- row FOR NO KEY UPDATE first: the tail is then read in a snapshot taken after every quick
-- append that held the row has committed, and no other can start until this transaction
-- ends. Returns the row's entry count and fingerprint afterwards (none when the trace does
-- not exist).
CREATE FUNCTION tracedb_fold(p_id uuid, OUT entry_count integer, OUT fingerprint text)
LANGUAGE plpgsql AS $$
DECLARE
    v_count  integer;
    v_fp     text;
    v_digest text;
    a        record;
BEGIN
    SELECT x.entry_count, x.fingerprint INTO v_count, v_fp
      FROM automation_traces x WHERE x.id = p_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT count(*) AS n, max(e.seq) AS top,
           array_agg(DISTINCT e.node) FILTER (WHERE e.node IS NOT NULL) AS nodes,
           min(e.started_at) AS first_at, max(coalesce(e.ended_at, e.started_at)) AS last_at,
           coalesce(sum(e.duration_ms), 0) AS ms,
           sum(e.input_tokens) AS it, sum(e.output_tokens) AS ot, sum(e.total_tokens) AS tt,
           sum(e.cost_usd) AS usd, array_agg(e.digest ORDER BY e.seq) AS digests
      INTO a
      FROM automation_trace_entries e WHERE e.trace_id = p_id AND e.seq >= v_count;
    IF a.n = 0 THEN
        entry_count := v_count;
        fingerprint := v_fp;
        RETURN;
    END IF;
    IF a.top <> v_count + a.n - 1 THEN  -- never: a quick append writes only the next seq
        RAISE EXCEPTION 'the entries of trace % after % are not contiguous', p_id, v_count;
    END IF;
    IF v_fp IS NOT NULL THEN
        FOREACH v_digest IN ARRAY a.digests LOOP
            IF v_digest IS NULL THEN
                v_fp := NULL;
                EXIT;
            END IF;
            v_fp := md5(v_fp || v_digest);
        END LOOP;
    END IF;
    UPDATE automation_traces x SET
        entry_count = x.entry_count + a.n,
        nodes = CASE WHEN a.nodes IS NULL OR a.nodes <@ x.nodes THEN x.nodes
                     ELSE ARRAY(SELECT DISTINCT u FROM unnest(x.nodes || a.nodes) AS u ORDER BY u) END,
        first_started_at = least(x.first_started_at, a.first_at),
        last_ended_at = greatest(x.last_ended_at, a.last_at),
        total_duration_ms = x.total_duration_ms + a.ms,
        input_tokens = CASE WHEN a.it IS NULL THEN x.input_tokens ELSE coalesce(x.input_tokens, 0) + a.it END,
        output_tokens = CASE WHEN a.ot IS NULL THEN x.output_tokens ELSE coalesce(x.output_tokens, 0) + a.ot END,
        total_tokens = CASE WHEN a.tt IS NULL THEN x.total_tokens ELSE coalesce(x.total_tokens, 0) + a.tt END,
        cost_usd = CASE WHEN a.usd IS NULL THEN x.cost_usd ELSE coalesce(x.cost_usd, 0) + a.usd END,
        fingerprint = v_fp,
        index_pending = true
     WHERE x.id = p_id
    RETURNING x.entry_count, x.fingerprint INTO entry_count, fingerprint;
END;
$$;

-- tracedb_append and tracedb_append_many: as before (sql/023, sql/019), but the tail is
-- folded into the row before anything else, and each returns the trace's index_epoch
-- (epoch), which a client sends with its next quick append.
DROP FUNCTION tracedb_append_many(integer[], uuid[], text[], jsonb, text[], boolean[], text[], uuid[],
                                  text[], integer[]);
DROP FUNCTION tracedb_append(uuid, text, text, text, text, jsonb, integer, text, uuid, boolean, text,
                             uuid, text[], boolean, jsonb, integer);

CREATE FUNCTION tracedb_append(
    p_trace_id    uuid,
    p_user_id     text,
    p_provider_id text,
    p_thread_id   text,
    p_name        text,
    p_entries     jsonb,
    p_offset      integer,
    p_status      text,
    p_new_id      uuid,
    p_new_turn    boolean DEFAULT false,
    p_scope       text DEFAULT NULL,
    p_batch       uuid DEFAULT NULL,
    p_chain       text[] DEFAULT NULL,
    p_replace     boolean DEFAULT false,
    p_running     jsonb DEFAULT NULL,
    p_dropped     integer DEFAULT 0
,
    OUT trace_id     uuid,
    OUT first_seq    integer,
    OUT entry_count  integer,
    OUT written      integer,
    OUT in_sync      boolean,
    OUT created      boolean,
    OUT turn         integer,
    OUT duplicate    boolean,
    OUT replaced     boolean,
    OUT fingerprint  text,
    OUT epoch        integer
) LANGUAGE plpgsql AS $$
DECLARE
    t         automation_traces%ROWTYPE;
    v_created boolean := false;
    v_skip    integer := 0;
    v_total   integer;
    v_replace boolean := false;
    v_turn    integer;
    v_n       integer;
    v_fp      text;
    v_digest  text;
    agg       record;
    x1        jsonb;
    v_node    text;
    v_first   timestamptz;
    v_last    timestamptz;
    v_id      uuid;
BEGIN
    -- One entry to a trace, the per-event call of append_entries (by id) and of an upsert
    -- that extends the stored list (by thread, checked against the stored fingerprint):
    -- the trace row is locked and updated by one statement, with no row read into
    -- variables first; what it stores is what the general path below stores for it.
    -- Anything else (an offset, running nodes, a status, a new turn, drops, a list
    -- that does not extend the stored one, a batch the trace has seen) takes the general
    -- path.
    IF coalesce(jsonb_array_length(p_entries), 0) = 1 AND p_running IS NULL
       AND p_status IS NULL AND NOT coalesce(p_new_turn, false)
       AND coalesce(p_dropped, 0) = 0 AND NOT coalesce(p_replace, false) AND p_new_id IS NULL
       AND ((p_trace_id IS NOT NULL AND p_chain IS NULL AND p_offset IS NULL)
            OR (p_trace_id IS NULL AND array_length(p_chain, 1) = 2 AND p_offset IS NOT NULL)) THEN
        x1 := p_entries -> 0;
        v_first := (x1->>'a')::timestamptz;
        v_last := (x1->>'b')::timestamptz;
        v_node := x1->>'n';
        v_id := p_trace_id;
        IF v_id IS NULL THEN
            -- the general path's lock order: the thread, then its trace (the trace row stays
            -- locked when the list no longer matches, and the general path then runs)
            PERFORM pg_advisory_xact_lock(hashtextextended('tracedb.thread:' || p_thread_id, 0));
            SELECT y.id INTO v_id FROM automation_traces y
             WHERE y.thread_id = p_thread_id AND y.user_id = p_user_id
             ORDER BY y.created_at DESC, y.id DESC LIMIT 1;
        END IF;
        -- entries a quick append stored that the row does not count yet go in first (the
        -- fold locks the row: no quick append runs beside this one)
        PERFORM tracedb_fold(v_id);
        UPDATE automation_traces x SET
            updated_at = CASE WHEN clock_timestamp() - x.updated_at >= interval '1 second'
                                   AND current_setting('tracedb.keep_times', true) IS DISTINCT FROM 'on'
                              THEN clock_timestamp() ELSE x.updated_at END,
            entry_count = x.entry_count + 1,
            error_count = x.error_count + CASE WHEN (x1->>'e')::boolean THEN 1 ELSE 0 END,
            last_error = CASE WHEN (x1->>'e')::boolean THEN coalesce(x1->>'err', 'error') ELSE x.last_error END,
            nodes = CASE WHEN v_node IS NULL OR v_node = ANY(x.nodes) THEN x.nodes
                         ELSE ARRAY(SELECT DISTINCT u FROM unnest(x.nodes || v_node) AS u ORDER BY u) END,
            first_started_at = least(x.first_started_at, v_first),
            last_ended_at = greatest(x.last_ended_at, coalesce(v_last, v_first)),
            total_duration_ms = x.total_duration_ms + coalesce((x1->>'ms')::double precision, 0),
            input_tokens = CASE WHEN x1->>'it' IS NULL THEN x.input_tokens
                                ELSE coalesce(x.input_tokens, 0) + (x1->>'it')::bigint END,
            output_tokens = CASE WHEN x1->>'ot' IS NULL THEN x.output_tokens
                                 ELSE coalesce(x.output_tokens, 0) + (x1->>'ot')::bigint END,
            total_tokens = CASE WHEN x1->>'tt' IS NULL THEN x.total_tokens
                                ELSE coalesce(x.total_tokens, 0) + (x1->>'tt')::bigint END,
            cost_usd = CASE WHEN x1->>'usd' IS NULL THEN x.cost_usd
                            ELSE coalesce(x.cost_usd, 0) + (x1->>'usd')::double precision END,
            fingerprint = CASE WHEN p_chain IS NOT NULL THEN p_chain[2] ELSE md5(x.fingerprint || (x1->>'h')) END,
            heartbeat_at = CASE WHEN x.status = 'running' THEN clock_timestamp() ELSE x.heartbeat_at END,
            recent_batches = CASE WHEN p_batch IS NULL THEN x.recent_batches
                                  ELSE (p_batch || x.recent_batches)[1:16] END,
            index_pending = x.indexed_count < x.entry_count + 1,
            name = coalesce(p_name, x.name)  -- a new name moves updated_at (the touch trigger)
         WHERE x.id = v_id AND (p_scope IS NULL OR x.user_id = p_scope)
           AND (p_chain IS NULL OR (x.entry_count = p_offset AND x.fingerprint = p_chain[1]))
           AND (p_batch IS NULL OR NOT p_batch = ANY(x.recent_batches))
        RETURNING x.id, x.entry_count, nullif(x.turns, 0), x.fingerprint, x.index_epoch
             INTO trace_id, entry_count, turn, fingerprint, epoch;
        IF FOUND THEN
            INSERT INTO automation_trace_entries
                (trace_id, seq, node, kind, name, status, started_at, ended_at, duration_ms, data, turn,
                 checkpoint_id, model, input_tokens, output_tokens, total_tokens, cost_usd)
            VALUES (trace_id, entry_count - 1, v_node, x1->>'k', x1->>'nm', x1->>'s', v_first, v_last,
                    (x1->>'ms')::double precision, x1->'d', turn, x1->>'c', x1->>'m',
                    (x1->>'it')::integer, (x1->>'ot')::integer, (x1->>'tt')::integer,
                    (x1->>'usd')::double precision);
            first_seq := entry_count - 1;
            written := 1;
            in_sync := true;
            created := false;
            duplicate := false;
            replaced := false;
            RETURN;
        ELSIF p_trace_id IS NOT NULL AND p_batch IS NULL THEN  -- (a seen batch: answered below)
            RAISE EXCEPTION 'trace % not found', p_trace_id USING ERRCODE = 'P0002';
        END IF;
    END IF;

    IF p_trace_id IS NOT NULL THEN
        SELECT * INTO t FROM automation_traces x
         WHERE x.id = p_trace_id AND (p_scope IS NULL OR x.user_id = p_scope) FOR NO KEY UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'trace % not found', p_trace_id USING ERRCODE = 'P0002';
        END IF;
        IF (tracedb_fold(t.id)).entry_count <> t.entry_count THEN
            SELECT * INTO t FROM automation_traces x WHERE x.id = t.id;
        END IF;
    ELSE
        PERFORM pg_advisory_xact_lock(hashtextextended('tracedb.thread:' || p_thread_id, 0));
        SELECT * INTO t FROM automation_traces x
         WHERE x.thread_id = p_thread_id AND x.user_id = p_user_id
         ORDER BY x.created_at DESC, x.id DESC LIMIT 1 FOR NO KEY UPDATE;
        IF NOT FOUND THEN
            INSERT INTO automation_traces AS x (id, user_id, provider_id, thread_id, name, status)
            VALUES (coalesce(p_new_id, gen_random_uuid()), p_user_id, p_provider_id,
                    p_thread_id, p_name, coalesce(p_status, 'completed'))
            RETURNING * INTO t;
            v_created := true;
        ELSIF (tracedb_fold(t.id)).entry_count <> t.entry_count THEN
            SELECT * INTO t FROM automation_traces x WHERE x.id = t.id;
        END IF;
    END IF;

    IF p_batch IS NOT NULL AND p_batch = ANY(t.recent_batches) THEN
        SELECT t.id, t.entry_count, t.entry_count, 0, true, false, nullif(t.turns, 0), true, false,
               t.fingerprint
          INTO trace_id, first_seq, entry_count, written, in_sync, created, turn, duplicate, replaced, fingerprint;
        epoch := t.index_epoch;
        RETURN;
    END IF;

    v_total := coalesce(jsonb_array_length(p_entries), 0);
    IF p_chain IS NOT NULL THEN
        IF t.fingerprint IS NOT NULL AND t.entry_count >= p_offset AND t.entry_count <= p_offset + v_total
           AND p_chain[t.entry_count - p_offset + 1] = t.fingerprint THEN
            v_skip := t.entry_count - p_offset;
        ELSIF p_replace AND p_offset = 0 THEN
            v_replace := true;
        ELSE
            SELECT t.id, t.entry_count, t.entry_count, 0, false, v_created, nullif(t.turns, 0), false,
                   false, t.fingerprint
              INTO trace_id, first_seq, entry_count, written, in_sync, created, turn, duplicate, replaced, fingerprint;
        epoch := t.index_epoch;
            RETURN;
        END IF;
    ELSIF p_offset IS NOT NULL THEN
        IF p_offset > t.entry_count THEN
            SELECT t.id, t.entry_count, t.entry_count, 0, false, v_created, nullif(t.turns, 0), false,
                   false, t.fingerprint
              INTO trace_id, first_seq, entry_count, written, in_sync, created, turn, duplicate, replaced, fingerprint;
        epoch := t.index_epoch;
            RETURN;
        END IF;
        v_skip := least(t.entry_count - p_offset, v_total);
    END IF;

    IF v_replace THEN
        -- its search rows are rebuilt by the indexer (from entry 0: it replaces them); a
        -- writer never touches search rows, so it never waits for an indexer
        DELETE FROM automation_trace_entries e WHERE e.trace_id = t.id;
        t.entry_count := 0;
        t.error_count := 0;
        t.nodes := '{}';
        t.first_started_at := NULL;
        t.last_ended_at := NULL;
        t.total_duration_ms := 0;
        t.input_tokens := NULL;
        t.output_tokens := NULL;
        t.total_tokens := NULL;
        t.cost_usd := NULL;
        t.last_error := NULL;
        t.turns := 0;
        t.fingerprint := '';
        t.indexed_count := 0;
    END IF;

    IF coalesce(p_new_turn, false) THEN
        t.turns := t.turns + 1;
    END IF;
    v_turn := nullif(t.turns, 0);

    IF v_total - v_skip = 1 THEN
        -- One new entry, the per-event call: the same as below, with its fields read by
        -- expressions rather than by two queries over the array (which cost more than the
        -- insert itself).
        x1 := p_entries -> v_skip;
        v_first := (x1->>'a')::timestamptz;
        v_last := (x1->>'b')::timestamptz;
        INSERT INTO automation_trace_entries
            (trace_id, seq, node, kind, name, status, started_at, ended_at, duration_ms, data, turn,
             checkpoint_id, model, input_tokens, output_tokens, total_tokens, cost_usd)
        VALUES (t.id, t.entry_count, x1->>'n', x1->>'k', x1->>'nm', x1->>'s', v_first, v_last,
                (x1->>'ms')::double precision, x1->'d', v_turn, x1->>'c', x1->>'m',
                (x1->>'it')::integer, (x1->>'ot')::integer, (x1->>'tt')::integer,
                (x1->>'usd')::double precision);
        v_n := 1;
        IF (x1->>'e')::boolean THEN
            t.error_count := t.error_count + 1;
            t.last_error := coalesce(x1->>'err', 'error');
        END IF;
        v_node := x1->>'n';
        IF v_node IS NOT NULL AND NOT ARRAY[v_node] <@ t.nodes THEN
            t.nodes := ARRAY(SELECT DISTINCT u FROM unnest(t.nodes || v_node) AS u ORDER BY u);
        END IF;
        t.first_started_at := least(t.first_started_at, v_first);
        t.last_ended_at := greatest(t.last_ended_at, coalesce(v_last, v_first));
        t.total_duration_ms := t.total_duration_ms + coalesce((x1->>'ms')::double precision, 0);
        IF x1->>'it' IS NOT NULL THEN t.input_tokens := coalesce(t.input_tokens, 0) + (x1->>'it')::bigint; END IF;
        IF x1->>'ot' IS NOT NULL THEN t.output_tokens := coalesce(t.output_tokens, 0) + (x1->>'ot')::bigint; END IF;
        IF x1->>'tt' IS NOT NULL THEN t.total_tokens := coalesce(t.total_tokens, 0) + (x1->>'tt')::bigint; END IF;
        IF x1->>'usd' IS NOT NULL THEN
            t.cost_usd := coalesce(t.cost_usd, 0) + (x1->>'usd')::double precision;
        END IF;
        IF p_chain IS NOT NULL THEN
            t.fingerprint := p_chain[v_skip + 2];
        ELSIF t.fingerprint IS NOT NULL THEN
            t.fingerprint := md5(t.fingerprint || (x1->>'h'));  -- NULL without a digest
        END IF;
        t.entry_count := t.entry_count + 1;
    ELSE
        INSERT INTO automation_trace_entries AS e
            (trace_id, seq, node, kind, name, status, started_at, ended_at, duration_ms, data, turn,
             checkpoint_id, model, input_tokens, output_tokens, total_tokens, cost_usd)
        SELECT t.id, t.entry_count + (o - v_skip)::integer - 1, x->>'n', x->>'k', x->>'nm', x->>'s',
               (x->>'a')::timestamptz, (x->>'b')::timestamptz, (x->>'ms')::double precision, x->'d', v_turn,
               x->>'c', x->>'m', (x->>'it')::integer, (x->>'ot')::integer, (x->>'tt')::integer,
               (x->>'usd')::double precision
          FROM jsonb_array_elements(coalesce(p_entries, '[]'::jsonb)) WITH ORDINALITY AS src(x, o)
         WHERE o > v_skip;
        GET DIAGNOSTICS v_n = ROW_COUNT;

        IF v_n > 0 THEN
            SELECT count(*) FILTER (WHERE (x->>'e')::boolean) AS errors,
                   array_agg(DISTINCT x->>'n') FILTER (WHERE x->>'n' IS NOT NULL) AS nodes,
                   min((x->>'a')::timestamptz) AS first_at,
                   max(coalesce((x->>'b')::timestamptz, (x->>'a')::timestamptz)) AS last_at,
                   coalesce(sum((x->>'ms')::double precision), 0) AS ms,
                   sum((x->>'it')::bigint) AS it, sum((x->>'ot')::bigint) AS ot,
                   sum((x->>'tt')::bigint) AS tt, sum((x->>'usd')::double precision) AS usd,
                   array_agg(x->>'h' ORDER BY o) AS digests,
                   (array_agg(x->>'err' ORDER BY o DESC) FILTER (WHERE (x->>'e')::boolean))[1] AS last_error
              INTO agg
              FROM jsonb_array_elements(p_entries) WITH ORDINALITY AS src(x, o)
             WHERE o > v_skip;
            t.error_count := t.error_count + agg.errors;
            IF agg.errors > 0 THEN
                t.last_error := coalesce(agg.last_error, 'error');
            END IF;
            IF agg.nodes IS NOT NULL AND NOT agg.nodes <@ t.nodes THEN
                t.nodes := ARRAY(SELECT DISTINCT u FROM unnest(t.nodes || agg.nodes) AS u ORDER BY u);
            END IF;
            t.first_started_at := least(t.first_started_at, agg.first_at);
            t.last_ended_at := greatest(t.last_ended_at, agg.last_at);
            t.total_duration_ms := t.total_duration_ms + agg.ms;
            IF agg.it IS NOT NULL THEN t.input_tokens := coalesce(t.input_tokens, 0) + agg.it; END IF;
            IF agg.ot IS NOT NULL THEN t.output_tokens := coalesce(t.output_tokens, 0) + agg.ot; END IF;
            IF agg.tt IS NOT NULL THEN t.total_tokens := coalesce(t.total_tokens, 0) + agg.tt; END IF;
            IF agg.usd IS NOT NULL THEN t.cost_usd := coalesce(t.cost_usd, 0) + agg.usd; END IF;
            IF p_chain IS NOT NULL THEN
                t.fingerprint := p_chain[v_skip + v_n + 1];
            ELSIF t.fingerprint IS NOT NULL THEN
                v_fp := t.fingerprint;
                FOREACH v_digest IN ARRAY agg.digests LOOP
                    IF v_digest IS NULL THEN
                        v_fp := NULL;
                        EXIT;
                    END IF;
                    v_fp := md5(v_fp || v_digest);
                END LOOP;
                t.fingerprint := v_fp;
            END IF;
            t.entry_count := t.entry_count + v_n;
        ELSIF v_replace THEN
            t.fingerprint := coalesce(p_chain[1], '');
        END IF;
    END IF;

    IF p_running IS NOT NULL THEN
        t.running := (t.running - ARRAY(SELECT jsonb_array_elements_text(coalesce(p_running->'end', '[]'))))
                     || coalesce(p_running->'start', '{}');
    END IF;
    IF p_status IN ('completed', 'failed', 'interrupted') THEN
        t.running := '{}';
    END IF;
    IF coalesce(p_status, t.status) = 'running' THEN
        t.heartbeat_at := clock_timestamp();
    END IF;
    IF p_batch IS NOT NULL THEN
        t.recent_batches := (p_batch || t.recent_batches)[1:16];
    END IF;

    UPDATE automation_traces x SET
        -- the once-a-second rule for what an append changes (the trigger does name/status)
        updated_at = CASE WHEN (v_n > 0 OR v_replace OR t.running IS DISTINCT FROM x.running
                                OR t.turns <> x.turns OR coalesce(p_dropped, 0) > 0)
                               AND clock_timestamp() - x.updated_at >= interval '1 second'
                               AND current_setting('tracedb.keep_times', true) IS DISTINCT FROM 'on'
                          THEN clock_timestamp() ELSE x.updated_at END,
        entry_count = t.entry_count, error_count = t.error_count, nodes = t.nodes,
        first_started_at = t.first_started_at, last_ended_at = t.last_ended_at,
        total_duration_ms = t.total_duration_ms, turns = t.turns,
        input_tokens = t.input_tokens, output_tokens = t.output_tokens,
        total_tokens = t.total_tokens, cost_usd = t.cost_usd, last_error = t.last_error,
        fingerprint = t.fingerprint, running = t.running, heartbeat_at = t.heartbeat_at,
        recent_batches = t.recent_batches, indexed_count = t.indexed_count,
        index_epoch = x.index_epoch + CASE WHEN v_replace THEN 1 ELSE 0 END,
        index_pending = t.indexed_count < t.entry_count,
        dropped_count = t.dropped_count + greatest(coalesce(p_dropped, 0), 0),
        name = coalesce(p_name, x.name),
        status = coalesce(p_status, x.status)
     WHERE x.id = t.id
    RETURNING x.index_epoch INTO epoch;

    trace_id := t.id;
    first_seq := t.entry_count - v_n;
    entry_count := t.entry_count;
    written := v_n;
    in_sync := true;
    created := v_created;
    turn := v_turn;
    duplicate := false;
    replaced := v_replace;
    fingerprint := t.fingerprint;
END;
$$;

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
               fingerprint text, epoch integer)
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
            epoch := r.epoch;
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
            epoch := NULL;
        END IF;
        RETURN NEXT;
    END LOOP;
END;
$$;

-- The indexer's round (sql/018) folds the traces it indexed before it says which are
-- still pending.
CREATE OR REPLACE FUNCTION tracedb_index_traces(p_ids uuid[], p_max_entries integer DEFAULT 256,
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
        -- what quick appends stored meanwhile is counted before the trace can stop being
        -- pending (the fold locks each row for the rest of this short transaction)
        PERFORM tracedb_fold(d.id) FROM unnest(v_ids) AS d(id) ORDER BY d.id;
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
