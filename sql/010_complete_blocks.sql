-- A block's words are complete exactly when no entry was left out of them. Entries are
-- left out by their size as read (tracedb_block_vector measures each entry after array_agg,
-- decompressed), but 006 decided "complete" on the size as stored, which for a compressible
-- entry is far smaller: an entry of 108 kB stored in 1.3 kB was left out of its block's
-- words while the block said complete, so a search for its words missed the trace. Both are
-- now decided on the same array of entries, and blocks marked complete wrongly are fixed.

CREATE FUNCTION tracedb_block_complete(p_docs jsonb[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(bool_and(pg_column_size(d.doc) <= tracedb_search_entry_bytes()), true)
      FROM unnest(p_docs) AS d(doc)
$$;

CREATE OR REPLACE FUNCTION tracedb_index_entries(p_trace_id uuid, p_from integer, p_to integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO automation_trace_search AS s (trace_id, block, words, complete)
    SELECT p_trace_id, b.block, coalesce(b.words, ''::tsvector), b.complete AND b.words IS NOT NULL
      FROM (SELECT g.block, tracedb_block_vector(g.seqs, g.docs) AS words,
                   tracedb_block_complete(g.docs) AS complete
              FROM (SELECT e.seq / tracedb_search_block_size() AS block,
                           array_agg(e.seq) AS seqs, array_agg(e.data) AS docs
                      FROM automation_trace_entries e
                     WHERE e.trace_id = p_trace_id AND e.seq >= p_from AND e.seq < p_to
                     GROUP BY 1) g) b
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

CREATE OR REPLACE FUNCTION tracedb_rebuild_words(p_trace_ids uuid[]) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM automation_trace_search s WHERE s.trace_id = ANY(p_trace_ids);
    INSERT INTO automation_trace_search (trace_id, block, words, complete)
    SELECT b.trace_id, b.block, coalesce(b.words, ''::tsvector), b.complete AND b.words IS NOT NULL
      FROM (SELECT g.trace_id, g.block, tracedb_block_vector(g.seqs, g.docs) AS words,
                   tracedb_block_complete(g.docs) AS complete
              FROM (SELECT e.trace_id, e.seq / tracedb_search_block_size() AS block,
                           array_agg(e.seq) AS seqs, array_agg(e.data) AS docs
                      FROM automation_trace_entries e
                     WHERE e.trace_id = ANY(p_trace_ids)
                     GROUP BY 1, 2) g) b;
    UPDATE automation_traces t SET indexed_count = t.entry_count, index_pending = false,
           indexed_at = clock_timestamp()
     WHERE t.id = ANY(p_trace_ids) AND (t.index_pending OR t.indexed_count <> t.entry_count);
$$;

-- Blocks already marked complete that hold an entry over the limit as read: only entries
-- stored compressed can be smaller as stored than as read.
UPDATE automation_trace_search s SET complete = false
  FROM (SELECT DISTINCT e.trace_id, e.seq / tracedb_search_block_size() AS block
          FROM automation_trace_entries e
         WHERE pg_column_compression(e.data) IS NOT NULL
           AND NOT tracedb_block_complete(ARRAY[e.data])) big
 WHERE s.trace_id = big.trace_id AND s.block = big.block AND s.complete;
