//! The jobs of the jobnet. Each job has one library entry point, called by its Lambda
//! handler and by the `collector` CLI alike, and knows nothing of Lambda.

mod context;
mod dispatch;
mod error;
pub mod genre;
pub mod guard;
mod input;
pub mod is_active;
pub mod item;
pub mod job;
pub mod lifecycle;
pub mod notify;
mod output;
pub mod pipeline;
pub mod ranking;
pub mod replay;
pub mod run_items;
pub mod staging;
pub mod tag;

pub use context::{AppContext, RakutenEndpoint, TxWork};
pub use dispatch::dispatch;
pub use error::{exit_code, JobError};
pub use input::RunInput;
pub use job::{Job, JobSpec, JOBS};
pub use output::{JobOutput, RowCounts, UnitCounts};
