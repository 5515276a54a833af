-- ichiba-collector schema, version 3: trust in the data (SPEC §11).

-- Every run and job run ends succeeded, failed or abandoned. A run whose process or
-- execution is gone (its lease expired, or its local process no longer exists) is marked
-- abandoned by the next start, never left running.
ALTER TABLE etl_runs DROP CONSTRAINT etl_runs_status_check;
ALTER TABLE etl_runs ADD CONSTRAINT etl_runs_status_check
    CHECK (status IN ('running', 'succeeded', 'failed', 'abandoned'));
ALTER TABLE etl_job_runs DROP CONSTRAINT etl_job_runs_status_check;
ALTER TABLE etl_job_runs ADD CONSTRAINT etl_job_runs_status_check
    CHECK (status IN ('running', 'succeeded', 'failed', 'abandoned'));

-- The lease of the process working on a run: renewed while it works (RUN_LEASE_SECS).
ALTER TABLE etl_runs
    ADD COLUMN lease_owner      text,            -- host/pid/start of the process (no secrets)
    ADD COLUMN lease_expires_at timestamptz,
    ADD COLUMN resumed_at       timestamptz;     -- when a later start resumed this run's unfinished work
CREATE INDEX etl_runs_env_status_idx ON etl_runs (env, status);

-- Requests that were retries (requests counts every HTTP request sent, retries included).
ALTER TABLE etl_job_runs ADD COLUMN retries integer NOT NULL DEFAULT 0;

-- One row per (snapshot date, ranking target): is the day's ranking complete, and if not,
-- which ranks are missing. A site should read only complete snapshots.
CREATE TABLE rakuten_ranking_snapshots (
    snapshot_date     date        NOT NULL,
    ranking_genre_id  bigint      NOT NULL,
    period            text        NOT NULL,
    last_build_date   timestamptz,                   -- the ranking's own lastBuildDate
    title             text,
    pages             integer     NOT NULL,          -- pages fetched and stored
    row_count         integer     NOT NULL,          -- ranks in rakuten_rankings for this target and day
    complete          boolean     NOT NULL,
    missing_ranks     text,                          -- e.g. '61-90'; NULL when complete
    stale             boolean     NOT NULL DEFAULT false,  -- same lastBuildDate as the previous snapshot
    run_id            uuid        NOT NULL,
    saved_at          timestamptz NOT NULL,
    PRIMARY KEY (snapshot_date, ranking_genre_id, period)
);
CREATE INDEX rakuten_ranking_snapshots_incomplete_idx
    ON rakuten_ranking_snapshots (snapshot_date) WHERE NOT complete;
