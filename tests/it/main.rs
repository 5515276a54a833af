//! The cross-crate integration tests, linked into one test executable.
//!
//! Each file here was once a test target of its own; every target links the AWS SDKs,
//! the HTTP stack and aws-lc, so fifteen of them filled several gigabytes of disk and
//! minutes of linking. Each module still owns its database, sandbox and bucket, so they
//! run side by side as before. `cargo test --test it <module>::` runs one module.
//! `tests/secrets_leak.rs` stays a target of its own: it installs a process-wide log
//! subscriber and must see only its own logs.

mod client_sandbox;
mod db_errors;
mod db_faults;
mod full_sequence;
mod genre_tag_jobs;
mod history_views;
mod item_is_active_jobs;
mod pacing;
mod postgres_tls;
mod ranking_job;
mod ranking_provenance;
mod rate_limit;
mod raw_full_disk;
mod refresh_week;
mod replay;
mod s3_store;
mod sample_events;
mod statemachine_crosscheck;
mod statemachine_definition;
mod statemachine_guard;
mod statemachine_notify;
