-- Search indexing at a fraction of its cost.
--
-- A block's words were made by calling tracedb_entry_lexemes once per entry, a SQL
-- function that calls another (tracedb_json_keys). PostgreSQL 15 plans a SQL function's
-- query again each time the function that calls it runs, so every entry paid for planning
-- the JSON key query: about 0.5 ms of the 0.55 ms an entry took to index. The block's words
-- are now made by one query per block, which plans that query once per block; what it makes
-- is the same text, and tracedb_entry_lexemes is gone.

CREATE OR REPLACE FUNCTION tracedb_block_vector(p_seqs integer[], p_docs jsonb[]) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    -- Each entry's words and "=<hash>" keys, all at the entry's position in its block, as
    -- tsvector text ('lexeme':pos ...): the text of a stripped tsvector is 'lexeme' 'lexeme'
    -- ..., a lexeme never holds a space, so a quote followed by a space closes one, and so
    -- does the last quote; the position goes there. tsvector's text input merges repeated
    -- lexemes, so the entries' texts joined by spaces make the block's vector. An entry with
    -- no words gives NULL, which string_agg skips.
    RETURN (SELECT coalesce(string_agg(replace(nullif(w.v, ''), ''' ', ''':' || w.pos || ' ') || ':' || w.pos, ' '), '')
              FROM (SELECT d.seq % tracedb_search_block_size() + 1 AS pos,
                           (strip(jsonb_to_tsvector('simple'::regconfig, d.doc, '["string"]'::jsonb))
                            || array_to_tsvector(tracedb_json_keys(d.doc)))::text AS v
                      FROM unnest(p_seqs, p_docs) AS d(seq, doc)
                     WHERE pg_column_size(d.doc) <= tracedb_search_entry_bytes()) w)::tsvector;
EXCEPTION WHEN program_limit_exceeded THEN
    RETURN NULL;
END;
$$;

DROP FUNCTION tracedb_entry_lexemes(jsonb, integer);
