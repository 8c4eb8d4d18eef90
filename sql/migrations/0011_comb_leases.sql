-- depends: 0010_comb_attempts
-- A checkpointed comb (api, file_system, stream) is read by one run at a time: the run that holds
-- the lease reads from the checkpoint and releases it in the transaction that moves the
-- checkpoint (or when it fails). Concurrent runs (a backfill runs 10 at once) wait instead of
-- reading the same checkpoint and failing on commit.
CREATE TABLE honey_comb_leases (
    comb_id     UUID PRIMARY KEY REFERENCES honey_combs(id) ON DELETE CASCADE,
    run_key     TEXT NOT NULL,
    acquired_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    expires_at  TIMESTAMPTZ NOT NULL
);
