-- A search confirms a candidate trace against the entries its search rows say can match,
-- not against all of them.
--
-- The entries of an indexed trace (search rows current, none pending) that may hold every
-- one of p_lexemes: in a block indexed whole, those at the positions where all the lexemes
-- occur (a block's words sit at their entry's position in the block); in a block not
-- indexed whole (an entry too big for its words), every entry of the block. As seq numbers.
-- (A block's words carry no weights: setweight marks p_lexemes, ts_filter keeps only them.)
CREATE FUNCTION tracedb_block_candidates(p_trace_id uuid, p_lexemes text[]) RETURNS integer[]
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(s.block * tracedb_search_block_size() + p.pos - 1), '{}')
      FROM automation_trace_search s
     CROSS JOIN LATERAL (
            -- the block's words reduced to p_lexemes, then the positions all of them hold
            SELECT u.pos
              FROM unnest(ts_filter(setweight(s.words, 'A', p_lexemes), '{a}')) AS l,
                   unnest(l.positions) AS u(pos)
             WHERE s.complete
             GROUP BY u.pos
            HAVING count(*) = (SELECT count(DISTINCT x) FROM unnest(p_lexemes) AS x)
            UNION ALL
            SELECT g FROM generate_series(1, tracedb_search_block_size()) AS g WHERE NOT s.complete) AS p
     WHERE s.trace_id = p_trace_id
$$;
