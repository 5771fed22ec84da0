-- Each size defined once. The search blocks' size and the largest entry indexed whole are
-- functions here (and constants in tracedb/limits.py, which a test compares with these);
-- the functions that used the literal numbers are redefined to call them. Being IMMUTABLE
-- SQL functions, they are folded into constants when a statement is planned.

CREATE FUNCTION tracedb_search_block_size() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT 32';

CREATE FUNCTION tracedb_search_entry_bytes() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT 65536';

CREATE OR REPLACE FUNCTION tracedb_index_words() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO automation_trace_search AS s (trace_id, block, words, complete)
    SELECT n.trace_id, n.seq / tracedb_search_block_size(),
           tracedb_block_words(jsonb_agg(n.data)
               FILTER (WHERE pg_column_size(n.data) <= tracedb_search_entry_bytes())),
           bool_and(pg_column_size(n.data) <= tracedb_search_entry_bytes())
      FROM new_entries n
     GROUP BY n.trace_id, n.seq / tracedb_search_block_size()
    ON CONFLICT (trace_id, block) DO UPDATE
       SET words = s.words || excluded.words, complete = s.complete AND excluded.complete
     WHERE NOT (tsvector_to_array(excluded.words) <@ tsvector_to_array(s.words))
        OR (s.complete AND NOT excluded.complete);
    RETURN NULL;
EXCEPTION WHEN program_limit_exceeded THEN
    -- the block's words outgrew a tsvector: keep what it has, a candidate for every query
    INSERT INTO automation_trace_search AS s (trace_id, block, words, complete)
    SELECT DISTINCT n.trace_id, n.seq / tracedb_search_block_size(), ''::tsvector, false
      FROM new_entries n
    ON CONFLICT (trace_id, block) DO UPDATE SET complete = false;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION tracedb_rebuild_words(p_trace_ids uuid[]) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM automation_trace_search s WHERE s.trace_id = ANY(p_trace_ids);
    INSERT INTO automation_trace_search (trace_id, block, words, complete)
    SELECT b.trace_id, b.block, coalesce(b.words, ''::tsvector), b.complete AND b.words IS NOT NULL
      FROM (SELECT e.trace_id, e.seq / tracedb_search_block_size() AS block,
                   tracedb_block_words_or_null(jsonb_agg(e.data)
                       FILTER (WHERE pg_column_size(e.data) <= tracedb_search_entry_bytes())) AS words,
                   bool_and(pg_column_size(e.data) <= tracedb_search_entry_bytes()) AS complete
              FROM automation_trace_entries e
             WHERE e.trace_id = ANY(p_trace_ids)
             GROUP BY e.trace_id, e.seq / tracedb_search_block_size()) b;
$$;

-- Imported history (demo data, converted rows) keeps its own times: with tracedb.keep_times
-- set for the transaction (set_config(..., true)), the trigger leaves updated_at as given.
-- This replaces ALTER TABLE ... DISABLE TRIGGER, which needs table-owner rights and locks
-- out every writer.
CREATE OR REPLACE FUNCTION tracedb_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('tracedb.keep_times', true) = 'on' THEN
        RETURN NEW;
    END IF;
    IF NEW.updated_at IS DISTINCT FROM OLD.updated_at
       OR NEW.name IS DISTINCT FROM OLD.name
       OR NEW.status IS DISTINCT FROM OLD.status
       OR clock_timestamp() - OLD.updated_at >= interval '1 second' THEN
        NEW.updated_at := greatest(clock_timestamp(), OLD.updated_at);
    ELSE
        NEW.updated_at := OLD.updated_at;
    END IF;
    RETURN NEW;
END;
$$;

-- Nothing ever wrote tags; metadata holds whatever a caller wants to attach.
ALTER TABLE automation_traces DROP COLUMN tags;
