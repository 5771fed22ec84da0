-- Search indexing builds each block's words once. tracedb_index_entries and
-- tracedb_rebuild_words read a block's words twice in the query around it (the words stored,
-- and whether they fit a tsvector); PostgreSQL pulled the subquery that made them up into
-- that query and so called tracedb_block_vector twice per block, which was about half of
-- what indexing cost (120 ms for 256 entries, 60 ms for their words once). The subquery is
-- now kept as it is (OFFSET 0); what is stored is the same. Otherwise as in 010 and 014.

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
$$;


CREATE OR REPLACE FUNCTION tracedb_rebuild_words(p_trace_ids uuid[]) RETURNS void
LANGUAGE sql AS $$
    SELECT 1 FROM automation_traces t WHERE t.id = ANY(p_trace_ids) ORDER BY t.id FOR SHARE OF t;
    DELETE FROM automation_trace_search s WHERE s.trace_id = ANY(p_trace_ids);
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
