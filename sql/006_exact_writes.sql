-- Writes that are exact and cheap: one statement per batch of entries that
--
--   * never stores a batch twice: a batch id already applied to the trace (the last 16 are
--     kept) is recognised when a batch is sent again after a lost reply;
--   * keeps a fingerprint of the stored entries (a chain of digests the client computes),
--     so that a seed-style upsert of the complete trace can tell "extends what is stored"
--     (append the new entries) from "differs" (replace them all, in the same transaction)
--     without reading a single entry;
--   * keeps a heartbeat while a trace runs (a run whose writer died reads as abandoned),
--     the nodes running right now, how many entries a writer had to drop, the checkpoint a
--     step started from, and token and cost totals;
--   * leaves search indexing to a step behind the writes (tracedb_index_traces, which each
--     store runs in the background for the traces it wrote, about once a second): an append
--     only marks its trace index_pending. Traces with entries not yet indexed are candidates
--     of every search and are confirmed against their entries, so results stay exact.
--
-- The search rows now give each lexeme the position of its entry within the block (1-32):
-- "a <0> b" then asks for both words in one entry, so the candidates of multi-word and
-- containment queries are entries that could match, not traces that merely hold the words
-- somewhere.

ALTER TABLE automation_traces
    ADD COLUMN heartbeat_at timestamptz,
    ADD COLUMN dropped_count integer NOT NULL DEFAULT 0,
    ADD COLUMN running jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN input_tokens bigint,
    ADD COLUMN output_tokens bigint,
    ADD COLUMN total_tokens bigint,
    ADD COLUMN cost_usd double precision,
    -- what went wrong last: the error of the newest error entry (a hint for listings)
    ADD COLUMN last_error text,
    -- chain of the entries' digests; '' for no entries, NULL when unknown (written before
    -- fingerprints existed, or by SQL): an upsert then replaces the entries once
    ADD COLUMN fingerprint text DEFAULT '',
    ADD COLUMN recent_batches uuid[] NOT NULL DEFAULT '{}',
    ADD COLUMN indexed_count integer NOT NULL DEFAULT 0,
    -- entries not yet indexed: a flag, not "indexed_count < entry_count", in the partial
    -- index below: a column read by a partial index's predicate makes every update of it a
    -- non-HOT update; the flag changes once per indexing, the count on every append
    ADD COLUMN index_pending boolean NOT NULL DEFAULT false,
    ADD COLUMN indexed_at timestamptz,
    -- moves when a trace's entries are replaced: an indexer that read the entries before
    -- then throws away what it built from them
    ADD COLUMN index_epoch integer NOT NULL DEFAULT 0;

UPDATE automation_traces SET fingerprint = NULL, indexed_count = entry_count;
UPDATE automation_traces t
   SET last_error = (SELECT left(coalesce(e.data->>'error', e.name, e.node, 'error'), 500)
                       FROM automation_trace_entries e
                      WHERE e.trace_id = t.id AND e.status = 'error' ORDER BY e.seq DESC LIMIT 1)
 WHERE t.error_count > 0;

ALTER TABLE automation_trace_entries
    ADD COLUMN checkpoint_id text,
    ADD COLUMN model text,
    ADD COLUMN input_tokens integer,
    ADD COLUMN output_tokens integer,
    ADD COLUMN total_tokens integer,
    ADD COLUMN cost_usd double precision;

-- Traces with entries not yet in the search rows: few at any time (those being written).
CREATE INDEX automation_traces_unindexed_idx ON automation_traces (updated_at) WHERE index_pending;

-- The words and "=<hash>" keys of one entry, all at position p_pos, as tsvector text
-- ('lexeme':pos ...). tsvector's text input merges repeated lexemes, so the texts of several
-- entries joined by spaces make their block's vector (|| would shift the right side's
-- positions by the left side's largest).
CREATE FUNCTION tracedb_entry_lexemes(p_doc jsonb, p_pos integer) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    -- the text of a stripped tsvector is 'lexeme' 'lexeme' ...: a lexeme never holds a space,
    -- so a quote followed by a space closes one, and so does the last quote; the position
    -- goes there (replace() is several times faster than a regular expression here)
    SELECT CASE WHEN v = '' THEN '' ELSE replace(v, ''' ', ''':' || p_pos || ' ') || ':' || p_pos END
      FROM (SELECT (strip(jsonb_to_tsvector('simple'::regconfig, p_doc, '["string"]'::jsonb))
                    || array_to_tsvector(tracedb_json_keys(p_doc)))::text AS v) x
$$;

-- The search vector of entries given as (seq, data) pairs, each entry's lexemes at its
-- position in its block; NULL when the words do not fit a tsvector. Entries larger than
-- tracedb_search_entry_bytes() are left out (their block is marked incomplete).
CREATE FUNCTION tracedb_block_vector(p_seqs integer[], p_docs jsonb[]) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN (SELECT coalesce(string_agg(
                       tracedb_entry_lexemes(d.doc, d.seq % tracedb_search_block_size() + 1), ' '), '')
              FROM unnest(p_seqs, p_docs) AS d(seq, doc)
             WHERE pg_column_size(d.doc) <= tracedb_search_entry_bytes())::tsvector;
EXCEPTION WHEN program_limit_exceeded THEN
    RETURN NULL;
END;
$$;

-- Index the entries of one trace with seq in [p_from, p_to): their blocks' rows gain their
-- lexemes (a block partly indexed before keeps what it had).
CREATE FUNCTION tracedb_index_entries(p_trace_id uuid, p_from integer, p_to integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO automation_trace_search AS s (trace_id, block, words, complete)
    SELECT p_trace_id, b.block, coalesce(b.words, ''::tsvector), b.complete AND b.words IS NOT NULL
      FROM (SELECT e.seq / tracedb_search_block_size() AS block,
                   tracedb_block_vector(array_agg(e.seq), array_agg(e.data)) AS words,
                   bool_and(pg_column_size(e.data) <= tracedb_search_entry_bytes()) AS complete
              FROM automation_trace_entries e
             WHERE e.trace_id = p_trace_id AND e.seq >= p_from AND e.seq < p_to
             GROUP BY 1) b
    ON CONFLICT (trace_id, block) DO UPDATE
       SET words = (s.words::text || ' ' || excluded.words::text)::tsvector,
           complete = s.complete AND excluded.complete;
EXCEPTION WHEN program_limit_exceeded THEN
    -- the block's words outgrew a tsvector: it stays a candidate of every query
    INSERT INTO automation_trace_search AS s (trace_id, block, words, complete)
    SELECT DISTINCT p_trace_id, e.seq / tracedb_search_block_size(), ''::tsvector, false
      FROM automation_trace_entries e
     WHERE e.trace_id = p_trace_id AND e.seq >= p_from AND e.seq < p_to
    ON CONFLICT (trace_id, block) DO UPDATE SET complete = false;
END;
$$;

-- The search rows of some traces rebuilt from their entries.
CREATE OR REPLACE FUNCTION tracedb_rebuild_words(p_trace_ids uuid[]) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM automation_trace_search s WHERE s.trace_id = ANY(p_trace_ids);
    INSERT INTO automation_trace_search (trace_id, block, words, complete)
    SELECT b.trace_id, b.block, coalesce(b.words, ''::tsvector), b.complete AND b.words IS NOT NULL
      FROM (SELECT e.trace_id, e.seq / tracedb_search_block_size() AS block,
                   tracedb_block_vector(array_agg(e.seq), array_agg(e.data)) AS words,
                   bool_and(pg_column_size(e.data) <= tracedb_search_entry_bytes()) AS complete
              FROM automation_trace_entries e
             WHERE e.trace_id = ANY(p_trace_ids)
             GROUP BY e.trace_id, e.seq / tracedb_search_block_size()) b;
    UPDATE automation_traces t SET indexed_count = t.entry_count, index_pending = false,
           indexed_at = clock_timestamp()
     WHERE t.id = ANY(p_trace_ids) AND (t.index_pending OR t.indexed_count <> t.entry_count);
$$;

-- Index the entries not yet indexed of the traces given (at most p_max_entries of each per
-- call); returns the ids still pending (to try again). Run in its own transaction by a
-- store's background indexer, never by an append.
--
-- It takes no row lock while it builds search rows: it reads the committed entries, so
-- appends to these traces go on meanwhile, and records what it indexed in one short UPDATE
-- at the end (row locks are held from there to the commit only). Two indexers never work on
-- one trace at once (a transaction-level advisory lock, tried, not waited for), and writers
-- never touch search rows, so neither waits for the other. If a trace's
-- entries were replaced meanwhile (index_epoch moved), what was built may be stale: the
-- whole call is undone and its traces stay pending.
CREATE FUNCTION tracedb_index_traces(p_ids uuid[], p_max_entries integer DEFAULT 256) RETURNS SETOF uuid
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

-- Index the traces left pending for more than p_age (their writer stopped before its
-- indexer ran: a crash, a client that went away), up to p_limit of them; returns how many.
CREATE FUNCTION tracedb_index_stale(p_limit integer, p_age interval DEFAULT interval '10 seconds')
RETURNS integer
LANGUAGE sql AS $$
    WITH stale AS (
        SELECT t.id FROM automation_traces t
         WHERE t.index_pending AND t.updated_at < now() - p_age
         ORDER BY t.updated_at LIMIT p_limit
    ), left_pending AS (
        SELECT tracedb_index_traces(ARRAY(SELECT id FROM stale), 100000) AS id
    )
    SELECT ((SELECT count(*) FROM stale) - (SELECT count(*) FROM left_pending))::integer
$$;

-- updated_at moves when a trace's content changes (entries, status, name, metadata, running
-- nodes, turns, drops) -- at most once a second while it streams, as before -- and not when
-- only its heartbeat or its search bookkeeping changes: a trace's place in the listings is
-- where its content last changed. Appends decide for their own changes (tracedb_append).
CREATE OR REPLACE FUNCTION tracedb_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('tracedb.keep_times', true) = 'on' THEN
        RETURN NEW;
    END IF;
    IF NEW.updated_at IS DISTINCT FROM OLD.updated_at
       OR NEW.name IS DISTINCT FROM OLD.name
       OR NEW.status IS DISTINCT FROM OLD.status THEN
        NEW.updated_at := greatest(clock_timestamp(), OLD.updated_at);
    ELSIF NEW.metadata IS DISTINCT FROM OLD.metadata
          AND clock_timestamp() - OLD.updated_at >= interval '1 second' THEN
        NEW.updated_at := greatest(clock_timestamp(), OLD.updated_at);
    ELSE
        NEW.updated_at := OLD.updated_at;
    END IF;
    RETURN NEW;
END;
$$;

-- The trigger fires only for changes it decides on (name, status, metadata, an explicit
-- updated_at): an append sets updated_at itself by the same once-a-second rule, so the
-- commonest update of all, an append that does not move it, runs no trigger function.
DROP TRIGGER automation_traces_touch ON automation_traces;
CREATE TRIGGER automation_traces_touch
    BEFORE UPDATE ON automation_traces
    FOR EACH ROW
    WHEN (NEW.updated_at IS DISTINCT FROM OLD.updated_at OR NEW.name IS DISTINCT FROM OLD.name
          OR NEW.status IS DISTINCT FROM OLD.status OR NEW.metadata IS DISTINCT FROM OLD.metadata)
    EXECUTE FUNCTION tracedb_touch_updated_at();

-- Replaced by indexing behind the writes (tracedb_index_traces).
DROP TRIGGER automation_trace_entries_words ON automation_trace_entries;
DROP FUNCTION tracedb_index_words();
-- Nor does a delete of entries rebuild search rows in the writer's transaction: a writer
-- never touches search rows (so it never waits for an indexer, nor an indexer for it). The
-- entries of a trace are deleted only when an upsert replaces them (the indexer then starts
-- that trace afresh) or with their trace (its search rows go by the foreign key).
DROP TRIGGER automation_trace_entries_reindex_words ON automation_trace_entries;
DROP FUNCTION tracedb_reindex_words();

-- "a & b" -> "a <0> b" (both in one entry), phrases likewise; quoted lexemes untouched.
CREATE FUNCTION tracedb_same_entry(p_query tsquery) RETURNS tsquery
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    s text := p_query::text;
    out text := '';
    i integer := 1;
    c text;
    quoted boolean := false;
BEGIN
    WHILE i <= length(s) LOOP
        c := substr(s, i, 1);
        IF quoted THEN
            out := out || c;
            IF c = '''' THEN
                IF substr(s, i + 1, 1) = '''' THEN
                    out := out || '''';
                    i := i + 1;
                ELSE
                    quoted := false;
                END IF;
            END IF;
        ELSIF c = '''' THEN
            quoted := true;
            out := out || c;
        ELSIF c = '&' THEN
            out := out || '<0>';
        ELSIF c = '<' THEN
            out := out || '<0>';
            i := i + strpos(substr(s, i), '>') - 1;
        ELSE
            out := out || c;
        END IF;
        i := i + 1;
    END LOOP;
    RETURN out::tsquery;
END;
$$;

-- Does an entry match a text query? An entry whose words do not fit a tsvector (PostgreSQL's
-- limit of 1 MB of lexemes) is matched piece by piece: the query must match within one of
-- its strings cut into 64 kB pieces. No entry can make a search fail.
CREATE FUNCTION tracedb_entry_matches(p_doc jsonb, p_query tsquery) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN jsonb_to_tsvector('simple'::regconfig, p_doc, '["string"]'::jsonb) @@ p_query;
EXCEPTION WHEN program_limit_exceeded THEN
    RETURN EXISTS (
        SELECT 1
          FROM jsonb_path_query(p_doc, 'strict $.** ? (@.type() == "string")') AS s(v),
               LATERAL generate_series(0, length(s.v #>> '{}') / 65536) AS g(k)
         WHERE to_tsvector('simple'::regconfig, substr(s.v #>> '{}', g.k * 65536 + 1, 65536)) @@ p_query);
END;
$$;

DROP FUNCTION tracedb_append(uuid, text, text, text, text, jsonb, integer, text, uuid, boolean, text);

-- Append a batch of entries, or bring a trace up to a complete list of entries.
--
-- p_trace_id given: that trace (P0002 when it does not exist or p_scope may not see it).
-- p_trace_id NULL: the most recent trace of (p_thread_id, p_user_id), created when there is
-- none; an advisory lock on the thread makes concurrent first writers agree on one trace.
-- The trace row is locked FOR NO KEY UPDATE: appends to one trace are serialised, seq is
-- dense; an indexer adding search rows (which hold a key-share lock on the row) waits for none.
--
-- p_entries: a JSON array of {"d": entry, "n"/"k"/"nm"/"s": node, kind, name, status,
-- "a"/"b": started/ended at, "ms": duration, "e": is error, "h": digest, "c": checkpoint id,
-- "m": model, "it"/"ot"/"tt": tokens, "usd": cost, "err": error text}, prepared by the client.
--
-- p_batch: the batch's id; a batch among the trace's last 16 is not applied again
-- (duplicate = true).
-- p_chain (an upsert of a complete list): element i is entry p_offset + i - 1 of the list,
-- p_chain[k] is the list's fingerprint after its first p_offset + k - 1 entries. When the
-- stored fingerprint is the list's at the stored count, the rest is appended; else, when
-- p_replace, the entries are replaced by the elements (which are then the whole list);
-- else nothing changes and in_sync is false (the caller sends more).
-- p_offset without p_chain: element 1 is entry number p_offset; elements already stored are
-- skipped; beyond what is stored nothing is written and in_sync is false.
-- p_running: {"start": {task id: marker}, "end": [task id, ...]}, the nodes running now.
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
) RETURNS TABLE (trace_id uuid, first_seq integer, entry_count integer, written integer,
                 in_sync boolean, created boolean, turn integer, duplicate boolean,
                 replaced boolean, fingerprint text)
LANGUAGE plpgsql AS $$
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
BEGIN
    IF p_trace_id IS NOT NULL THEN
        SELECT * INTO t FROM automation_traces x
         WHERE x.id = p_trace_id AND (p_scope IS NULL OR x.user_id = p_scope) FOR NO KEY UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'trace % not found', p_trace_id USING ERRCODE = 'P0002';
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
        END IF;
    END IF;

    IF p_batch IS NOT NULL AND p_batch = ANY(t.recent_batches) THEN
        RETURN QUERY SELECT t.id, t.entry_count, t.entry_count, 0, true, false,
                            nullif(t.turns, 0), true, false, t.fingerprint;
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
            RETURN QUERY SELECT t.id, t.entry_count, t.entry_count, 0, false, v_created,
                                nullif(t.turns, 0), false, false, t.fingerprint;
            RETURN;
        END IF;
    ELSIF p_offset IS NOT NULL THEN
        IF p_offset > t.entry_count THEN
            RETURN QUERY SELECT t.id, t.entry_count, t.entry_count, 0, false, v_created,
                                nullif(t.turns, 0), false, false, t.fingerprint;
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
     WHERE x.id = t.id;

    RETURN QUERY SELECT t.id, t.entry_count - v_n, t.entry_count, v_n, true, v_created, v_turn,
                        false, v_replace, t.fingerprint;
END;
$$;

-- Existing rows get entry positions in their search rows.
SELECT tracedb_rebuild_words(ARRAY(SELECT id FROM automation_traces));
