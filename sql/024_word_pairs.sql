-- The pairs of words that stand side by side in each indexed entry, for phrase searches.
--
-- A phrase ("a b") found its candidate entries as the entries holding both words: the
-- GIN index of automation_trace_entry_words cannot tell where words stand, so every entry
-- holding both was read to check their positions. At 900,000 traces, a phrase pairing a
-- common word with a middling one had 15,000-50,000 such entries for a few hundred that
-- hold the phrase, and took 140-300 ms either way (from the index, or walking the newest
-- traces).
--
-- Each entry row now also holds a key per pair of adjacent words of its words (the same
-- positions the confirmation reads: a phrase matches an entry only where each pair of its
-- adjacent words is such a pair), and a GIN index on them. A phrase's candidates are the
-- entries holding the keys of all its pairs, about as many as hold the phrase; the
-- confirmation on the stored words stays what decides (two pairs may share a key).
--
-- A key is 4 bytes of the pair's md5, stable across servers and versions (the keys are
-- stored). The pairs are made from the stored words, so the column is computed by the
-- server wherever a row is written; adding it computes it for every row already indexed
-- (about 0.1 ms per entry here) while searches wait.

CREATE FUNCTION tracedb_pair_key(p_pair text) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT ('x' || left(md5(p_pair), 8))::bit(32)::integer
$$;

-- The keys of the pairs of adjacent words of a vector ("first second"), each once. Words
-- at one position (a vector clamps positions past 16,383) each pair with every word at the
-- next: a phrase matches such an entry exactly where its pairs are found here.
CREATE FUNCTION tracedb_word_pairs(p_words tsvector) RETURNS integer[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    WITH w AS MATERIALIZED (
        SELECT u.lexeme, p.pos FROM unnest(p_words) AS u, unnest(u.positions) AS p(pos)
    )
    SELECT ARRAY(SELECT DISTINCT tracedb_pair_key(a.lexeme || ' ' || b.lexeme)
                   FROM w AS a JOIN w AS b ON b.pos = a.pos + 1)
$$;

-- The keys of the given pairs ("first second", as lower-cased words), each once.
CREATE FUNCTION tracedb_phrase_pairs(p_pairs text[]) RETURNS integer[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT ARRAY(SELECT DISTINCT tracedb_pair_key(x) FROM unnest(p_pairs) AS x)
$$;

SET LOCAL maintenance_work_mem = '256MB';
ALTER TABLE automation_trace_entry_words
    ADD COLUMN pairs integer[] GENERATED ALWAYS AS (tracedb_word_pairs(words)) STORED;
ALTER TABLE automation_trace_entry_words ALTER COLUMN pairs SET STATISTICS 1000;
CREATE INDEX automation_trace_entry_words_pairs_idx ON automation_trace_entry_words USING gin (pairs);
ANALYZE automation_trace_entry_words;
