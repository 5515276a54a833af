//! `collector verify`: checks manifests against the raw store — every listed object must
//! be there with the size and SHA-256 its manifest recorded. It reads only the raw store
//! (`RAW_STORE`), never the database: manifests are found by listing the key layout
//! `{env}/{job}/{date}/{run}/`; `--run-id` without `--date` searches the run's date among
//! the dates in the store, newest first.
//!
//! Exit status: 0 every entry matched; 1 an object is missing, damaged or unreadable, a
//! manifest is unreadable, nothing matched the selection, or the store failed; 2 invalid
//! arguments or configuration.

use std::process::ExitCode;

use clap::Args;
use collector_core::config::Config;
use collector_core::rawstore::{self, verify};
use uuid::Uuid;

use crate::OutputFormat;

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(true).args(["run_id", "date"])))]
pub struct VerifyArgs {
    /// Check every manifest of this run
    #[arg(long)]
    pub run_id: Option<Uuid>,
    /// Check every run of this JST run date (YYYY-MM-DD); with --run-id, the run's date
    /// (saves searching for it)
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: Option<String>,
    /// The environment whose objects to check (default: APP_ENV)
    #[arg(long)]
    pub env: Option<String>,
    /// Text, or the report as JSON
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

pub async fn run(config: Config, args: VerifyArgs) -> ExitCode {
    let env = args
        .env
        .clone()
        .unwrap_or_else(|| config.env.as_str().to_string());
    if env.is_empty()
        || !env
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
    {
        eprintln!("error: --env {env:?} is not an environment name (e.g. local, dev, prod)");
        return ExitCode::from(2);
    }
    let selection = match verify::Selection::from_args(args.run_id, args.date.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: --run-id/--date: {e}");
            return ExitCode::from(2);
        }
    };
    let store = match rawstore::open(&config.raw_store).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot open the raw store {}: {e}", config.raw_store);
            return ExitCode::from(1);
        }
    };
    if args.output == OutputFormat::Text {
        eprintln!("verifying {selection} of env {env} in {}", store.describe());
    }
    let report = match verify::verify(store.as_ref(), &env, &selection).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    match args.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serialises")
        ),
        OutputFormat::Text => {
            for m in &report.manifests {
                if m.problems.is_empty() {
                    println!(
                        "ok      {}: {} objects, {} bytes",
                        m.manifest, m.entries, m.bytes
                    );
                } else {
                    println!(
                        "FAILED  {}: {} of {} objects do not match",
                        m.manifest,
                        m.problems.len(),
                        m.entries
                    );
                    for p in &m.problems {
                        println!("  {p}");
                    }
                }
            }
            println!(
                "{} manifests, {} objects, {} bytes checked",
                report.manifests.len(),
                report.entries(),
                report.bytes()
            );
        }
    }
    let problems = report.problems().count();
    if problems == 0 {
        ExitCode::SUCCESS
    } else {
        let mut by_kind = std::collections::BTreeMap::<&str, usize>::new();
        for p in report.problems() {
            *by_kind.entry(p.kind()).or_default() += 1;
        }
        let summary: Vec<String> = by_kind.iter().map(|(k, n)| format!("{n} {k}")).collect();
        eprintln!(
            "error: verification failed: {} ({})",
            summary.join(", "),
            report.store
        );
        ExitCode::from(1)
    }
}
