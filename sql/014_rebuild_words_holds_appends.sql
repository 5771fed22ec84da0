-- Rebuilding traces' search rows holds their appends off. tracedb_rebuild_words ran its
-- INSERT of the search rows and its UPDATE of indexed_count as two statements, each with a
-- snapshot of its own: an append committing between them (or waited for by the UPDATE) was
-- counted as indexed without being in the search rows, and plain-word searches, which trust
-- the rows of an indexed trace, missed it. The traces' rows are now share-locked first (an
-- append's FOR NO KEY UPDATE waits for that lock, and the function waits for appends in
-- flight), so the rows and the count are of the same entries. Otherwise as in 010.
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
                     GROUP BY 1, 2) g) b;
    UPDATE automation_traces t SET indexed_count = t.entry_count, index_pending = false,
           indexed_at = clock_timestamp()
     WHERE t.id = ANY(p_trace_ids) AND (t.index_pending OR t.indexed_count <> t.entry_count);
$$;
