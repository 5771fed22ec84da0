-- Search by trace, not by entry: text search and JSON containment.
--
-- Listing the newest traces with an entry that mentions a word (or contains a JSON object)
-- means either walking the traces newest first and probing each one's entries, or
-- collecting every matching entry from an index and sorting their traces. With GIN indexes
-- on the entries, a probe rebuilds about ten tsvectors per trace and a collection fetches
-- one heap row per matching entry from a table of 10M rows, so terms found in 0.1%-5% of
-- 1M traces took hundreds of ms either way.
--
-- automation_trace_search keeps, for each block of 32 consecutive entries of a trace (one
-- row for a typical trace), a stripped tsvector of
--   * the words of the entries' strings (as jsonb_to_tsvector 'simple' finds them), and
--   * "=<hash>" lexemes, one per (nearest object key, scalar value) pair found in the
--     entries, so that containment queries have a candidate filter too.
-- Probing a trace is then one index look-up and a binary search, and collecting reads one
-- small row per matching trace. The rows are a superset filter only: the list and count
-- queries confirm each candidate against its entries, so phrases, negation, "all words in
-- one entry" and containment keep their exact meaning.
--
-- A block with an entry over 64 kB as stored, or whose words would not fit a tsvector, is
-- marked complete = false (its words leave that entry out): such blocks are candidates for
-- every query and are decided by the confirmation. A flag rather than a marker lexeme, so
-- that the planner's estimate for a rare word stays that of the word.
--
-- A row is rewritten only when an append brings a lexeme the block does not have yet, so a
-- long trace costs O(block) per append, never O(trace). Deleting entries rebuilds the rows
-- of their traces.

CREATE TABLE automation_trace_search (
    trace_id uuid     NOT NULL REFERENCES automation_traces (id) ON DELETE CASCADE,
    block    integer  NOT NULL,
    words    tsvector NOT NULL,
    complete boolean  NOT NULL DEFAULT true,
    PRIMARY KEY (trace_id, block)
) WITH (toast_tuple_target = 8160);  -- keep a typical row (2-3 kB) inline and uncompressed:
                                      -- a probe then reads one heap tuple, no TOAST

-- A longer list of most common lexemes than the default 1,000: the planner estimates a word
-- or key not on the list at half the rarest listed frequency, which at 1M traces made rare
-- words look common enough to walk every trace (measured: 350 ms instead of 1-30 ms).
ALTER TABLE automation_trace_search ALTER COLUMN words SET STATISTICS 1000;

DO $$
BEGIN
    -- lz4 decompresses several times faster than pglz; keep the default where it is missing.
    ALTER TABLE automation_trace_search ALTER COLUMN words SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    NULL;
END;
$$;

-- "=<hash>" for each (nearest object key, scalar value) of a JSON document; numbers in a
-- canonical form (trim_scale), since containment compares them by value (1.0 matches 1).
-- tracedb.queries.contains_keys makes the same lexemes from a containment query.
CREATE FUNCTION tracedb_json_keys(p_doc jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(DISTINCT '=' || left(md5((kv->>'key') || '=' ||
               CASE jsonb_typeof(x)
                   WHEN 'string' THEN 's' || (x #>> '{}')
                   WHEN 'number' THEN 'n' || trim_scale((x #>> '{}')::numeric)::text
                   WHEN 'null' THEN 'z'
                   ELSE 'b' || x::text END), 16)),
           '{}')
      FROM jsonb_path_query(p_doc,
               'strict $.** ? (@.type() == "object").keyvalue() ? (@.value.type() != "object")') AS kv,
           LATERAL jsonb_path_query(kv->'value',
               'strict $.** ? (@.type() != "object" && @.type() != "array")') AS x
$$;

-- The lexemes of a block: p_docs is a JSON array of its entries' data.
CREATE FUNCTION tracedb_block_words(p_docs jsonb) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT strip(jsonb_to_tsvector('simple'::regconfig, coalesce(p_docs, '[]'::jsonb), '["string"]'::jsonb))
           || array_to_tsvector(tracedb_json_keys(coalesce(p_docs, '[]'::jsonb)))
$$;

-- The same, or NULL when the words do not fit a tsvector (for rebuilds, not per append).
CREATE FUNCTION tracedb_block_words_or_null(p_docs jsonb) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN tracedb_block_words(p_docs);
EXCEPTION WHEN program_limit_exceeded THEN
    RETURN NULL;
END;
$$;

CREATE FUNCTION tracedb_index_words() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO automation_trace_search AS s (trace_id, block, words, complete)
    SELECT n.trace_id, n.seq / 32,
           tracedb_block_words(jsonb_agg(n.data) FILTER (WHERE pg_column_size(n.data) <= 65536)),
           bool_and(pg_column_size(n.data) <= 65536)
      FROM new_entries n
     GROUP BY n.trace_id, n.seq / 32
    ON CONFLICT (trace_id, block) DO UPDATE
       SET words = s.words || excluded.words, complete = s.complete AND excluded.complete
     WHERE NOT (tsvector_to_array(excluded.words) <@ tsvector_to_array(s.words))
        OR (s.complete AND NOT excluded.complete);
    RETURN NULL;
EXCEPTION WHEN program_limit_exceeded THEN
    -- the block's words outgrew a tsvector: keep what it has, a candidate for every query
    INSERT INTO automation_trace_search AS s (trace_id, block, words, complete)
    SELECT DISTINCT n.trace_id, n.seq / 32, ''::tsvector, false FROM new_entries n
    ON CONFLICT (trace_id, block) DO UPDATE SET complete = false;
    RETURN NULL;
END;
$$;

-- The search rows of some traces rebuilt from their entries.
CREATE FUNCTION tracedb_rebuild_words(p_trace_ids uuid[]) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM automation_trace_search s WHERE s.trace_id = ANY(p_trace_ids);
    INSERT INTO automation_trace_search (trace_id, block, words, complete)
    SELECT b.trace_id, b.block, coalesce(b.words, ''::tsvector), b.complete AND b.words IS NOT NULL
      FROM (SELECT e.trace_id, e.seq / 32 AS block,
                   tracedb_block_words_or_null(
                       jsonb_agg(e.data) FILTER (WHERE pg_column_size(e.data) <= 65536)) AS words,
                   bool_and(pg_column_size(e.data) <= 65536) AS complete
              FROM automation_trace_entries e
             WHERE e.trace_id = ANY(p_trace_ids)
             GROUP BY e.trace_id, e.seq / 32) b;
$$;

CREATE FUNCTION tracedb_reindex_words() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tracedb_rebuild_words(ARRAY(SELECT DISTINCT o.trace_id FROM old_entries o));
    RETURN NULL;
END;
$$;

-- Rows for the traces stored before this migration.
SELECT tracedb_rebuild_words(ARRAY(SELECT id FROM automation_traces));

CREATE TRIGGER automation_trace_entries_words
    AFTER INSERT ON automation_trace_entries
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION tracedb_index_words();

CREATE TRIGGER automation_trace_entries_reindex_words
    AFTER DELETE ON automation_trace_entries
    REFERENCING OLD TABLE AS old_entries
    FOR EACH STATEMENT EXECUTE FUNCTION tracedb_reindex_words();

CREATE INDEX automation_trace_search_words_idx ON automation_trace_search USING gin (words);
CREATE INDEX automation_trace_search_incomplete_idx ON automation_trace_search (trace_id)
    WHERE NOT complete;

-- Replaced by automation_trace_search: an entry's tsvector or containment is only computed
-- to confirm a candidate trace, never searched through an index. Dropping both GIN indexes
-- of the entries saves a GIN insert of ~20 keys per appended entry and about 1 GB at 10M
-- entries.
DROP INDEX automation_trace_entries_text_idx;
DROP INDEX automation_trace_entries_data_idx;
