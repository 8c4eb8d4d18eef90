-- depends: 0017_data_classification
-- Every window a database comb publishes (or is about to: registered before the upload, so a
-- killed upload leaves a row whose object does not exist, never an object nobody knows of).
-- A run finds the outputs its read range overlaps here, whatever their length or month: a
-- one-off catch-up over a quarter is a neighbour of the next hourly run (a listing of the last
-- month's prefixes missed it and delivered its rows twice).
CREATE TABLE honey_comb_output_windows (
    bucket        TEXT NOT NULL,
    prefix        TEXT NOT NULL,
    key           TEXT NOT NULL,
    window_start  TIMESTAMPTZ NOT NULL,
    window_end    TIMESTAMPTZ NOT NULL,
    kind          TEXT NOT NULL DEFAULT 'window' CHECK (kind IN ('window', 'filled_in_past')),
    registered_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (bucket, key),
    CHECK (window_start < window_end)
);
CREATE INDEX honey_comb_output_windows_range ON honey_comb_output_windows (bucket, prefix, window_end, window_start);
-- Output prefixes whose objects written before this table existed have been listed into it once.
CREATE TABLE honey_comb_output_prefixes (
    bucket     TEXT NOT NULL,
    prefix     TEXT NOT NULL,
    indexed_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    objects    INTEGER NOT NULL,
    PRIMARY KEY (bucket, prefix)
);
COMMENT ON TABLE honey_comb_output_windows IS 'data-classification: internal';
COMMENT ON TABLE honey_comb_output_prefixes IS 'data-classification: internal';
