//! ichiba-collector's library: everything the Lambda functions and the `collector` CLI share.
//! Handlers stay thin; the jobs here know nothing of Lambda.

pub mod aws_sfn;
pub mod config;
pub mod db;
pub mod jobs;
pub mod metrics;
pub mod pacing;
pub mod rawstore;
pub mod secrets;
pub mod telemetry;
