-- Text search by trace, not by entry.
--
-- Listing the newest traces whose entries mention a word means either walking the traces
-- newest first and probing each one's entries, or collecting every matching entry from an
-- index and sorting their traces. With a GIN index on each entry's tsvector the probe has
-- to rebuild about ten tsvectors per trace and the collection fetches one heap row per
-- matching entry, so words found in 0.1%-5% of 1M traces took hundreds of ms either way.
--
-- automation_trace_search keeps the distinct words (a stripped tsvector) of each block of
-- 32 consecutive entries of a trace: one row for a typical trace. Probing a trace is then
-- one index look-up and a binary search, and collecting reads one small row per matching
-- trace. The rows are a superset filter: the list query confirms each candidate against
-- the entries themselves, so phrases, negations and "all words in one entry" keep their
-- exact meaning; for a single plain word the rows alone are exact. A row is rewritten only
-- when an append brings a word the block does not have yet, so a long trace costs O(block)
-- per append, never O(trace). Deleting entries rebuilds the rows of their traces.

CREATE TABLE automation_trace_search (
    trace_id uuid     NOT NULL REFERENCES automation_traces (id) ON DELETE CASCADE,
    block    integer  NOT NULL,
    words    tsvector NOT NULL,
    PRIMARY KEY (trace_id, block)
) WITH (toast_tuple_target = 8160);  -- keep a typical row (2-3 kB) inline and uncompressed:
                                      -- a probe then reads one heap tuple, no TOAST

DO $$
BEGIN
    -- lz4 decompresses several times faster than pglz; keep the default where it is missing.
    ALTER TABLE automation_trace_search ALTER COLUMN words SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    NULL;
END;
$$;

CREATE FUNCTION tracedb_index_words() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO automation_trace_search AS s (trace_id, block, words)
    SELECT n.trace_id, n.seq / 32,
           strip(jsonb_to_tsvector('simple'::regconfig, jsonb_agg(n.data), '["string"]'::jsonb))
      FROM new_entries n
     GROUP BY n.trace_id, n.seq / 32
    ON CONFLICT (trace_id, block) DO UPDATE SET words = s.words || excluded.words
     WHERE NOT (tsvector_to_array(excluded.words) <@ tsvector_to_array(s.words));
    RETURN NULL;
END;
$$;

CREATE FUNCTION tracedb_reindex_words() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM automation_trace_search s
     WHERE s.trace_id IN (SELECT DISTINCT o.trace_id FROM old_entries o);
    INSERT INTO automation_trace_search (trace_id, block, words)
    SELECT e.trace_id, e.seq / 32,
           strip(jsonb_to_tsvector('simple'::regconfig, jsonb_agg(e.data), '["string"]'::jsonb))
      FROM automation_trace_entries e
     WHERE e.trace_id IN (SELECT DISTINCT o.trace_id FROM old_entries o)
     GROUP BY e.trace_id, e.seq / 32;
    RETURN NULL;
END;
$$;

INSERT INTO automation_trace_search (trace_id, block, words)
SELECT e.trace_id, e.seq / 32,
       strip(jsonb_to_tsvector('simple'::regconfig, jsonb_agg(e.data), '["string"]'::jsonb))
  FROM automation_trace_entries e
 GROUP BY e.trace_id, e.seq / 32;

CREATE TRIGGER automation_trace_entries_words
    AFTER INSERT ON automation_trace_entries
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION tracedb_index_words();

CREATE TRIGGER automation_trace_entries_reindex_words
    AFTER DELETE ON automation_trace_entries
    REFERENCING OLD TABLE AS old_entries
    FOR EACH STATEMENT EXECUTE FUNCTION tracedb_reindex_words();

CREATE INDEX automation_trace_search_words_idx ON automation_trace_search USING gin (words);

-- Replaced by automation_trace_search: one entry's tsvector is only computed to confirm a
-- candidate trace, never searched through an index.
DROP INDEX automation_trace_entries_text_idx;
