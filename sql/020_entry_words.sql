-- A search row per entry, for searches of several terms in one entry.
--
-- automation_trace_search holds the words of a block of 32 entries, each word at the
-- position of its entry in the block. For one word that is what a search needs. For two
-- words in one entry, or a phrase, the index can only say that a block holds all the words:
-- at a million traces, two unrelated words gave 13,000-31,000 candidate blocks, most of them
-- rejected once their positions were read, and a phrase was confirmed by reading and
-- tokenising the candidates' entries again.
--
-- automation_trace_entry_words holds each indexed entry's words with their real positions,
-- exactly as the confirmation makes them (jsonb_to_tsvector 'simple' of its strings): the
-- index finds the entries holding all the words, and a phrase or "all words in one entry"
-- is decided on the stored vector, without reading the entry. words is NULL for an entry
-- whose words are not kept (over tracedb_search_entry_bytes() as stored, or more words than
-- a tsvector holds): such entries are candidates of every search and are confirmed from
-- their data.
--
-- The indexer fills both tables in the same transaction, for the same entries: a trace's
-- entry rows are exactly its first indexed_count entries, so a trace that is not
-- index_pending has a row for every entry.
CREATE TABLE automation_trace_entry_words (
    trace_id uuid    NOT NULL REFERENCES automation_traces (id) ON DELETE CASCADE,
    seq      integer NOT NULL,
    words    tsvector,
    PRIMARY KEY (trace_id, seq)
);
ALTER TABLE automation_trace_entry_words ALTER COLUMN words SET STATISTICS 1000;

DO $$
BEGIN
    ALTER TABLE automation_trace_entry_words ALTER COLUMN words SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    NULL;
END;
$$;

-- The words of one entry as a confirmation makes them; NULL when they are not kept.
CREATE FUNCTION tracedb_entry_words(p_doc jsonb) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF pg_column_size(p_doc) > tracedb_search_entry_bytes() THEN
        RETURN NULL;
    END IF;
    RETURN jsonb_to_tsvector('simple'::regconfig, p_doc, '["string"]'::jsonb);
EXCEPTION WHEN program_limit_exceeded THEN
    RETURN NULL;
END;
$$;

-- Index the entries of one trace with seq in [p_from, p_to): their words, one row each, and
-- their blocks' rows (as in 017). Rows from p_from on are dropped first: they can only be
-- left from a list of entries that an upsert replaced.
CREATE OR REPLACE FUNCTION tracedb_index_entries(p_trace_id uuid, p_from integer, p_to integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM automation_trace_entry_words w WHERE w.trace_id = p_trace_id AND w.seq >= p_from;
    INSERT INTO automation_trace_entry_words (trace_id, seq, words)
    SELECT p_trace_id, e.seq, tracedb_entry_words(e.data)
      FROM automation_trace_entries e
     WHERE e.trace_id = p_trace_id AND e.seq >= p_from AND e.seq < p_to;
    BEGIN
        INSERT INTO automation_trace_search AS s (trace_id, block, words, complete)
        SELECT p_trace_id, b.block, coalesce(b.words, ''::tsvector), b.complete AND b.words IS NOT NULL
          FROM (SELECT g.block, tracedb_block_vector(g.seqs, g.docs) AS words,
                       tracedb_block_complete(g.docs) AS complete
                  FROM (SELECT e.seq / tracedb_search_block_size() AS block,
                               array_agg(e.seq) AS seqs, array_agg(e.data) AS docs
                          FROM automation_trace_entries e
                         WHERE e.trace_id = p_trace_id AND e.seq >= p_from AND e.seq < p_to
                         GROUP BY 1) g
                 OFFSET 0) b  -- kept a subquery: each block's words are made once
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
END;
$$;

-- The search rows of some traces rebuilt from their entries (as in 017), entry rows too.
CREATE OR REPLACE FUNCTION tracedb_rebuild_words(p_trace_ids uuid[]) RETURNS void
LANGUAGE sql AS $$
    SELECT 1 FROM automation_traces t WHERE t.id = ANY(p_trace_ids) ORDER BY t.id FOR SHARE OF t;
    DELETE FROM automation_trace_search s WHERE s.trace_id = ANY(p_trace_ids);
    DELETE FROM automation_trace_entry_words w WHERE w.trace_id = ANY(p_trace_ids);
    INSERT INTO automation_trace_entry_words (trace_id, seq, words)
    SELECT e.trace_id, e.seq, tracedb_entry_words(e.data)
      FROM automation_trace_entries e
     WHERE e.trace_id = ANY(p_trace_ids);
    INSERT INTO automation_trace_search (trace_id, block, words, complete)
    SELECT b.trace_id, b.block, coalesce(b.words, ''::tsvector), b.complete AND b.words IS NOT NULL
      FROM (SELECT g.trace_id, g.block, tracedb_block_vector(g.seqs, g.docs) AS words,
                   tracedb_block_complete(g.docs) AS complete
              FROM (SELECT e.trace_id, e.seq / tracedb_search_block_size() AS block,
                           array_agg(e.seq) AS seqs, array_agg(e.data) AS docs
                      FROM automation_trace_entries e
                     WHERE e.trace_id = ANY(p_trace_ids)
                     GROUP BY 1, 2) g
             OFFSET 0) b;  -- kept a subquery: each block's words are made once
    UPDATE automation_traces t SET indexed_count = t.entry_count, index_pending = false,
           indexed_at = clock_timestamp()
     WHERE t.id = ANY(p_trace_ids) AND (t.index_pending OR t.indexed_count <> t.entry_count);
$$;

-- The entries indexed so far get their rows now. Writers and indexers (which lock trace rows)
-- wait until this commits, so that none indexes an entry with the previous functions, which
-- would leave it without a row; readers go on.
LOCK TABLE automation_traces IN EXCLUSIVE MODE;
SET LOCAL maintenance_work_mem = '256MB';
INSERT INTO automation_trace_entry_words (trace_id, seq, words)
SELECT e.trace_id, e.seq, tracedb_entry_words(e.data)
  FROM automation_traces t
  JOIN automation_trace_entries e ON e.trace_id = t.id AND e.seq < t.indexed_count;

CREATE INDEX automation_trace_entry_words_idx ON automation_trace_entry_words USING gin (words);
-- the entries without words, candidates of every search
CREATE INDEX automation_trace_entry_words_unkept_idx ON automation_trace_entry_words (trace_id)
 WHERE words IS NULL;
ANALYZE automation_trace_entry_words;
