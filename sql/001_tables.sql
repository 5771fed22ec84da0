-- Traces and their entries. One row per trace, one row per entry: appending an entry
-- never rewrites the entries already stored (a JSONB document per trace would be
-- rewritten, with its TOAST, on every streamed event).

CREATE TABLE automation_traces (
    id              uuid PRIMARY KEY,
    user_id         text        NOT NULL,
    provider_id     text,
    thread_id       text        NOT NULL,
    name            text,
    status          text        NOT NULL DEFAULT 'completed'
                    CHECK (status IN ('running', 'completed', 'failed', 'interrupted')),
    entry_count     integer     NOT NULL DEFAULT 0,
    error_count     integer     NOT NULL DEFAULT 0,
    -- distinct node names seen in the entries, for the node filter without a join
    nodes           text[]      NOT NULL DEFAULT '{}',
    first_started_at timestamptz,
    last_ended_at   timestamptz,
    total_duration_ms double precision NOT NULL DEFAULT 0,
    metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    tags            text[]      NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 70);  -- room on each page for HOT updates of the counters

CREATE TABLE automation_trace_entries (
    trace_id    uuid    NOT NULL REFERENCES automation_traces (id) ON DELETE CASCADE,
    seq         integer NOT NULL,
    node        text,
    kind        text,
    name        text,
    status      text,
    started_at  timestamptz,
    ended_at    timestamptz,
    duration_ms double precision,
    data        jsonb   NOT NULL,
    PRIMARY KEY (trace_id, seq)
);

-- Newest-first listings, keyset paginated on (updated_at, id).
CREATE INDEX automation_traces_updated_idx ON automation_traces (updated_at DESC, id DESC);
CREATE INDEX automation_traces_user_updated_idx
    ON automation_traces (user_id, updated_at DESC, id DESC);
CREATE INDEX automation_traces_thread_idx
    ON automation_traces (thread_id, created_at DESC, id DESC);
CREATE INDEX automation_traces_status_updated_idx
    ON automation_traces (status, updated_at DESC, id DESC);
CREATE INDEX automation_traces_created_idx ON automation_traces (created_at);
CREATE INDEX automation_traces_name_idx
    ON automation_traces (lower(name) text_pattern_ops);
CREATE INDEX automation_traces_nodes_idx ON automation_traces USING gin (nodes);

-- JSON containment (data @> '{"node": "tools"}') and full-text search over entry strings.
CREATE INDEX automation_trace_entries_data_idx
    ON automation_trace_entries USING gin (data jsonb_path_ops);
CREATE INDEX automation_trace_entries_text_idx
    ON automation_trace_entries
    USING gin (jsonb_to_tsvector('simple'::regconfig, data, '["string"]'::jsonb));

-- updated_at is indexed (listings are ordered by it), so changing it makes every append
-- a non-HOT update that adds a tuple to each index of the table and leaves a growing chain
-- of dead versions for a busy trace. While a trace streams, appends within one second of
-- the last bump keep updated_at as it is: those updates touch no indexed column and stay
-- HOT. A rename or a status change always moves updated_at.
CREATE FUNCTION tracedb_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.updated_at IS DISTINCT FROM OLD.updated_at
       OR NEW.name IS DISTINCT FROM OLD.name
       OR NEW.status IS DISTINCT FROM OLD.status
       OR clock_timestamp() - OLD.updated_at >= interval '1 second' THEN
        NEW.updated_at := greatest(clock_timestamp(), OLD.updated_at);
    ELSE
        NEW.updated_at := OLD.updated_at;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER automation_traces_touch
    BEFORE UPDATE ON automation_traces
    FOR EACH ROW EXECUTE FUNCTION tracedb_touch_updated_at();
