-- ichiba-collector schema, version 2: item details, genres, tags, the Item job's work
-- queue, refresh bookkeeping and the shared request budget.

-- Item details (written by the Item job; hashed separately from the ranking fields).
ALTER TABLE rakuten_items
    ADD COLUMN item_caption          text,
    ADD COLUMN tag_ids               bigint[],
    ADD COLUMN gift_flag             smallint,
    ADD COLUMN point_rate_start_time text,
    ADD COLUMN point_rate_end_time   text,
    ADD COLUMN detail_hash           bytea,          -- SHA-256 of the Item Search fields
    ADD COLUMN detail_saved_at       timestamptz,    -- when those fields last changed
    ADD COLUMN gone_at               timestamptz;    -- Item Search found no such item (NULL = present)
CREATE INDEX rakuten_items_active_idx ON rakuten_items (is_active);

-- Genres with their full ancestor path (root-first, excluding the root 0).
CREATE TABLE rakuten_genres (
    genre_id      bigint      PRIMARY KEY,
    name          text        NOT NULL,
    english_name  text,
    level         integer     NOT NULL,
    parent_id     bigint,                            -- 0 for level-1 genres
    path_ids      bigint[]    NOT NULL,              -- ancestors then the genre itself
    path_names    text[]      NOT NULL,
    content_hash  bytea       NOT NULL,
    saved_at      timestamptz NOT NULL,
    run_id        uuid        NOT NULL
);
CREATE INDEX rakuten_genres_parent_idx ON rakuten_genres (parent_id);

CREATE TABLE rakuten_tag_groups (
    tag_group_id  bigint      PRIMARY KEY,
    name          text        NOT NULL,
    content_hash  bytea       NOT NULL,
    saved_at      timestamptz NOT NULL,
    run_id        uuid        NOT NULL
);

CREATE TABLE rakuten_tags (
    tag_id        bigint      PRIMARY KEY,
    name          text        NOT NULL,
    tag_group_id  bigint      NOT NULL REFERENCES rakuten_tag_groups (tag_group_id),
    parent_tag_id bigint      NOT NULL DEFAULT 0,
    content_hash  bytea       NOT NULL,
    saved_at      timestamptz NOT NULL,
    run_id        uuid        NOT NULL
);
CREATE INDEX rakuten_tags_group_idx ON rakuten_tags (tag_group_id);

-- When an entity was last fetched successfully (changed or not): the refresh windows
-- read this, so checking an unchanged row never rewrites it.
CREATE TABLE etl_refresh (
    entity      text        NOT NULL CHECK (entity IN ('item', 'genre', 'tag')),
    key         text        NOT NULL,
    checked_at  timestamptz NOT NULL,
    PRIMARY KEY (entity, key)
);

-- The Item job's work queue: one row per target item of a run. Each invocation takes
-- pending rows, fetches and saves them, and marks them in the same transaction, so a
-- killed invocation loses nothing and the next one redoes nothing already saved.
CREATE TABLE etl_item_queue (
    run_id       uuid        NOT NULL REFERENCES etl_runs (run_id) ON DELETE CASCADE,
    item_code    text        NOT NULL,
    status       text        NOT NULL DEFAULT 'pending'
                             CHECK (status IN ('pending', 'saved', 'gone', 'failed')),
    raw_key      text,
    raw_size     bigint,
    raw_md5      text,
    raw_sha256   text,
    raw_outcome  text,
    finished_at  timestamptz,
    PRIMARY KEY (run_id, item_code)
);
CREATE INDEX etl_item_queue_pending_idx ON etl_item_queue (run_id, status);

-- Size of the Item job's queue once built (NULL = not built yet).
ALTER TABLE etl_job_runs ADD COLUMN queue_size integer;

-- The request budget shared by every process using one Rakuten application ID: a process
-- may send only after claiming the budget, which succeeds when the last send was at
-- least 1/rate ago (see pacing.rs).
CREATE TABLE etl_rate_slots (
    budget_key    text        PRIMARY KEY,           -- a hash of the application ID, never the ID
    last_sent_at  timestamptz NOT NULL
);
