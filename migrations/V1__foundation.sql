-- ichiba-collector schema, version 1: the run ledger, the ranking snapshot and the item table.
-- Table names are an interface (the site reading this data queries them): never rename.

-- One row per jobnet run (one Step Functions execution or one local `collector run`/`job`).
CREATE TABLE etl_runs (
    run_id        uuid        PRIMARY KEY,
    env           text        NOT NULL,
    run_date      date        NOT NULL,              -- JST calendar date the run started; names the raw-store folders
    status        text        NOT NULL DEFAULT 'running'
                              CHECK (status IN ('running', 'succeeded', 'failed')),
    trigger       text        NOT NULL DEFAULT 'manual',
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    error_type    text,
    error_message text
);
CREATE INDEX etl_runs_env_started_idx ON etl_runs (env, started_at DESC);

-- One row per job of a run. A rerun of the same job in the same run updates this row
-- (attempt + 1) and keeps job_start_at, the start of the job's first invocation.
CREATE TABLE etl_job_runs (
    run_id          uuid        NOT NULL REFERENCES etl_runs (run_id) ON DELETE CASCADE,
    job             text        NOT NULL CHECK (job IN ('ranking', 'item', 'genre', 'tag', 'is_active')),
    status          text        NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    attempt         integer     NOT NULL DEFAULT 1,
    invocations     integer     NOT NULL DEFAULT 1,
    job_start_at    timestamptz NOT NULL,
    last_started_at timestamptz NOT NULL,
    finished_at     timestamptz,
    duration_ms     bigint,
    attempted       integer     NOT NULL DEFAULT 0,  -- units (API requests after their retries)
    succeeded       integer     NOT NULL DEFAULT 0,
    failed          integer     NOT NULL DEFAULT 0,
    failure_rate    double precision NOT NULL DEFAULT 0,
    threshold       double precision NOT NULL,
    requests        integer     NOT NULL DEFAULT 0,  -- HTTP requests sent, retries included
    throttled       integer     NOT NULL DEFAULT 0,  -- 429 answers received
    rows_inserted   integer     NOT NULL DEFAULT 0,
    rows_updated    integer     NOT NULL DEFAULT 0,
    rows_unchanged  integer     NOT NULL DEFAULT 0,
    rows_deleted    integer     NOT NULL DEFAULT 0,
    raw_written     integer     NOT NULL DEFAULT 0,  -- raw objects created
    raw_identical   integer     NOT NULL DEFAULT 0,  -- raw objects already present with identical bytes
    manifest_key    text,
    error_type      text,
    error_message   text,
    output          jsonb,                            -- the job's output document, as returned to Step Functions
    PRIMARY KEY (run_id, job)
);

-- One row per failed unit (one API request after its retries), for diagnosis.
CREATE TABLE etl_failures (
    failure_id   bigserial   PRIMARY KEY,
    run_id       uuid        NOT NULL,
    job          text        NOT NULL,
    attempt      integer     NOT NULL,
    unit         text        NOT NULL,   -- e.g. "ranking genreId=0 page=7"; never carries credentials
    error_kind   text        NOT NULL,   -- rate_limited | server_error | client_error | timeout | transport | malformed | raw_conflict
    http_status  integer,
    message      text        NOT NULL,
    tries        integer,
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (run_id, job) REFERENCES etl_job_runs (run_id, job) ON DELETE CASCADE
);
CREATE INDEX etl_failures_run_job_idx ON etl_failures (run_id, job);

-- The daily ranking snapshot: one row per JST date, ranking target (genre, period) and rank.
CREATE TABLE rakuten_rankings (
    snapshot_date     date        NOT NULL,
    ranking_genre_id  bigint      NOT NULL,         -- 0 = overall ranking
    period            text        NOT NULL,         -- 'daily' (the API default) or 'realtime'
    rank              integer     NOT NULL CHECK (rank BETWEEN 1 AND 1000),
    item_code         text        NOT NULL,
    item_name         text        NOT NULL,
    item_price        bigint,
    review_count      bigint,
    review_average    double precision,
    point_rate        integer,
    availability      smallint,
    shop_code         text,
    item_genre_id     bigint,
    content_hash      bytea       NOT NULL,          -- SHA-256 of the row's content; equal hash = not rewritten
    run_id            uuid        NOT NULL,          -- the run that last wrote this row's content
    saved_at          timestamptz NOT NULL,          -- when this row's content was last written
    PRIMARY KEY (snapshot_date, ranking_genre_id, period, rank)
);
CREATE INDEX rakuten_rankings_item_idx ON rakuten_rankings (item_code, snapshot_date);
CREATE INDEX rakuten_rankings_saved_idx ON rakuten_rankings (saved_at);

-- Items, keyed by item code. The Ranking job writes the fields a ranking carries;
-- the Item job (detail columns, added by a later migration) writes the rest.
CREATE TABLE rakuten_items (
    item_code         text        PRIMARY KEY,
    item_name         text        NOT NULL,
    catchcopy         text,
    item_price        bigint,
    item_url          text,
    affiliate_url     text,
    image_url         text,
    availability      smallint,
    tax_flag          smallint,
    postage_flag      smallint,
    review_count      bigint,
    review_average    double precision,
    point_rate        integer,
    affiliate_rate    double precision,
    shop_code         text,
    shop_name         text,
    shop_url          text,
    genre_id          bigint,
    is_active         boolean     NOT NULL DEFAULT true,
    ranking_hash      bytea       NOT NULL,          -- SHA-256 of the ranking-carried fields
    ranking_saved_at  timestamptz NOT NULL,          -- when those fields last changed
    first_seen_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rakuten_items_genre_idx ON rakuten_items (genre_id);
