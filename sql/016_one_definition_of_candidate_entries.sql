-- tracedb_block_candidates, kept in 015 for processes of the previous version, is now made
-- from tracedb_candidate_seqs: which entries a confirmation reads is defined in one place.
CREATE OR REPLACE FUNCTION tracedb_block_candidates(p_trace_id uuid, p_lexemes text[]) RETURNS integer[]
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(k.seq), '{}') FROM tracedb_candidate_seqs(p_trace_id, p_lexemes) AS k(seq)
$$;
