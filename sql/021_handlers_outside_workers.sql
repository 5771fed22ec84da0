-- A PL/pgSQL function with an EXCEPTION clause starts a subtransaction at every call, which
-- a parallel worker cannot do ("cannot start subtransactions during a parallel operation"),
-- nor can the leader of a parallel plan while its workers run. Such functions were
-- declared PARALLEL SAFE (tracedb_entry_matches, tracedb_block_vector, tracedb_entry_words):
-- counting the traces with a phrase, on a million traces of which one held an entry too big
-- to keep its words, was planned in parallel and failed when its confirmation read that
-- entry. They are now PARALLEL UNSAFE, as PostgreSQL asks of a function with an EXCEPTION
-- block: a query that calls them runs without workers.
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN
        SELECT p.oid::regprocedure FROM pg_proc p
          JOIN pg_language l ON l.oid = p.prolang
          JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE l.lanname = 'plpgsql' AND p.proparallel <> 'u' AND p.proname LIKE 'tracedb\_%'
           AND n.nspname = current_schema() AND p.prosrc ~* '\mEXCEPTION\M'
    LOOP
        EXECUTE format('ALTER FUNCTION %s PARALLEL UNSAFE', f);
    END LOOP;
END;
$$;
