//! `collector prune --older-than DAYS [--dry-run]`: retention for ranking snapshots.
//! Deletes the rows of `rakuten_rankings` and `rakuten_ranking_snapshots` dated more than
//! DAYS days before today's JST date (the SQL: `collector_core::db::retention`), one
//! snapshot date per transaction, and prints what it deleted per table. Nothing runs it
//! on a schedule. The database is the environment's (`DATABASE_URL`); snapshot rows carry
//! no environment of their own.
//!
//! Exit status: 0 done (also when nothing was old enough); 2 DAYS is not a positive whole
//! number, or is below `ACTIVE_WINDOW_DAYS` (IsActive reads that many days of rankings:
//! pruning them would mark ranked items inactive), or bad configuration; 4 the database
//! failed (docs/runbook.md).

use std::process::ExitCode;

use chrono::Utc;
use clap::Args;
use collector_core::config::Config;
use collector_core::db::retention::{self, PruneReport};
use collector_core::db::{self, ledger};
use collector_core::jobs::JobError;
use collector_core::secrets;

use crate::job::fail;
use crate::OutputFormat;

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Delete the snapshot rows dated more than DAYS days before today's JST date: with
    /// DAYS=30 on 2026-12-01, 2026-11-01 and later stay. At least 1 and at least
    /// ACTIVE_WINDOW_DAYS
    #[arg(long, value_name = "DAYS", allow_negative_numbers = true)]
    pub older_than: i64,
    /// Count what would be deleted per table; delete nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Text, or the report as JSON
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// DAYS as a day count, or why it is refused.
fn days_of(older_than: i64, active_window_days: u32) -> Result<u32, String> {
    if older_than < 1 {
        return Err(format!(
            "--older-than {older_than}: DAYS must be a positive number of days (1 or more); \
             0 would delete every snapshot before today, less than 0 today's as well"
        ));
    }
    let days = u32::try_from(older_than)
        .map_err(|_| format!("--older-than {older_than}: DAYS is too large"))?;
    if days < active_window_days {
        return Err(format!(
            "--older-than {days}: DAYS must be at least ACTIVE_WINDOW_DAYS ({active_window_days}): \
             IsActive marks items active from the last {active_window_days} days of rankings, \
             pruning them would mark ranked items inactive"
        ));
    }
    Ok(days)
}

pub async fn run(config: Config, args: PruneArgs) -> ExitCode {
    let days = match days_of(args.older_than, config.active_window_days) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let today = ledger::jst_date(Utc::now());
    let before = retention::cutoff(today, days);
    let result = async {
        let secrets = secrets::resolve(&config).await?;
        let mut db = db::connect(&secrets.database_url).await?;
        if args.output == OutputFormat::Text {
            println!(
                "{} snapshot rows dated before {before} (older than {days} days before {today} JST) in {}",
                if args.dry_run { "counting (dry run, nothing is deleted)" } else { "pruning" },
                db.target
            );
        }
        let report = retention::prune_snapshots(&mut db.client, before, args.dry_run).await?;
        Ok::<_, JobError>(report)
    }
    .await;
    match result {
        Ok(report) => {
            print_report(&report, args.output);
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn print_report(report: &PruneReport, output: OutputFormat) {
    if output == OutputFormat::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).expect("report serialises")
        );
        return;
    }
    let verb = if report.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    for table in retention::TABLES {
        println!("{table:<26} {verb} {} rows", report.rows_of(table));
    }
    match (report.dates.first(), report.dates.last()) {
        (Some(first), Some(last)) => {
            println!("snapshot dates: {} ({first} .. {last})", report.dates.len())
        }
        _ => println!("no snapshot dated before {}", report.before),
    }
}

#[cfg(test)]
mod tests {
    use super::days_of;

    #[test]
    fn days_must_be_positive_and_cover_the_active_window() {
        assert_eq!(days_of(30, 7), Ok(30));
        assert_eq!(days_of(7, 7), Ok(7));
        assert!(days_of(0, 7).unwrap_err().contains("positive"));
        assert!(days_of(-3, 7).unwrap_err().contains("positive"));
        assert!(days_of(6, 7)
            .unwrap_err()
            .contains("ACTIVE_WINDOW_DAYS (7)"));
        assert!(days_of(i64::MAX, 7).is_err());
    }
}
