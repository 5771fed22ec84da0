-- A search page that starts from the search index orders its candidate traces (thousands for
-- two words at a million traces) by updated_at before confirming the newest. This index
-- gives each candidate's place and branch without reading its row: only the page's rows are
-- read whole. It adds no update that was HOT before: updated_at and index_pending are
-- indexed already.
CREATE INDEX automation_traces_order_idx ON automation_traces (id) INCLUDE (updated_at, index_pending);
