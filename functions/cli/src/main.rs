//! `collector`: ichiba-collector's command-line tool for local work and operations.

mod aws;
mod doctor;
mod job;
mod private_pg;
mod prune;
mod replay;
mod run;
mod runs;
mod sandbox;
mod summary;
mod terminal;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use collector_core::config::{Config, VARIABLES};
use collector_core::jobs::Job;

#[derive(Parser)]
#[command(
    name = "collector",
    version,
    about = "Collects Rakuten Ichiba rankings, items, genres and tags into PostgreSQL, keeping every raw response",
    after_help = config_help()
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// `run` and `job`: stream the logs to stderr too (they always go to the file under
    /// .local/logs/ named on stderr)
    #[arg(short, long, global = true)]
    verbose: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Apply the database migrations (creates the local database first when APP_ENV=local)
    Migrate,
    /// Run one job of the jobnet
    Job {
        #[command(subcommand)]
        job: JobCommand,
    },
    /// Serve the built-in Rakuten API sandbox until stopped (Ctrl-C)
    Sandbox(sandbox::SandboxArgs),
    /// Run the whole jobnet locally from statemachine/jobnet.asl.json (the definition AWS
    /// runs): migrations, Guard, Ranking, the Item loop, Genre and Tag in parallel,
    /// IsActive, Notify; one line per job and a summary table (the logs in a file under
    /// .local/logs/, named first; -v: on stderr too). A plain run first resumes an
    /// abandoned run of the same JST day. Exit status: 1 a job failed on its data, 2 bad
    /// input or configuration, 3 another run of the environment is still going, 4 the
    /// database or raw store failed, 5 anything else (docs/runbook.md)
    Run(run::RunArgs),
    /// Check manifests against the raw store (RAW_STORE; no database): every listed object
    /// must exist with its recorded size and SHA-256. Exit 0 when all match, 1 naming each
    /// missing or damaged object (or when nothing matched), 2 on invalid arguments
    Verify(verify::VerifyArgs),
    /// Rebuild the data tables from the raw store (RAW_STORE, local or S3) for a range of
    /// JST run dates, through the jobs' own parsers and loads; no API call. Each listed
    /// object is checked against its manifest first: a missing or damaged one is reported
    /// and its unit not loaded. Idempotent (a second replay changes nothing); --dry-run
    /// prints what would change per table. Each replayed run is in the ledger with trigger
    /// replay. Exit 0 all loaded, 1 objects not loaded or nothing found, 2 bad arguments,
    /// 4 database or raw store failure
    Replay(replay::ReplayArgs),
    /// Recent runs of the environment, one line each: date, trigger, status and per job
    /// status, requests, failure rate and duration, and the day's incomplete or stale
    /// snapshots. `runs show RUN_ID`: one run's jobs, failures by kind with examples,
    /// snapshots and manifests. Marks abandoned the runs whose process is gone first
    Runs(runs::RunsArgs),
    /// The deployed jobnet through Step Functions: `aws start --env E [--start-at J
    /// --run-id R]` starts an execution; `aws status --env E` lists the recent executions
    /// (status, input, error) with each one's run and jobs from the ledger. The state
    /// machine is ichiba-collector-<env>-jobnet, or --state-machine-arn / STATE_MACHINE_ARN
    Aws(aws::AwsArgs),
    /// Check everything a run needs, one line each (✓/✗ and what to do): configuration and
    /// where each secret comes from (masked), the database (reachable, TLS, migrations),
    /// the raw store (a probe object under {env}/doctor/), and each of the four Rakuten APIs
    /// called once. Exit 0 only when every check passes
    Doctor,
    /// Retention: delete the ranking snapshot rows (rakuten_rankings,
    /// rakuten_ranking_snapshots) dated more than DAYS days before today's JST date, one
    /// date per transaction, and print the rows deleted per table; --dry-run only counts.
    /// Never runs unless asked. Exit 2 when DAYS is below 1 or below ACTIVE_WINDOW_DAYS
    Prune(prune::PruneArgs),
}

#[derive(Subcommand)]
enum JobCommand {
    /// JOB-R-01: fetch every configured ranking target × page, store raw pages, load the
    /// day's snapshot (rakuten_rankings) and the items' ranking fields (rakuten_items)
    Ranking(job::JobArgs),
    /// JOB-I-01: look up the items ranked on the run's date (Item Search by itemCode) whose
    /// details are older than ITEM_REFRESH_DAYS, best-ranked first within
    /// ITEM_DAILY_REQUEST_BUDGET; saves details and tag IDs, marks vanished items gone.
    /// Resumable: with --budget it stops early with done=false; run it again to continue
    Item(job::ItemArgs),
    /// JOB-A-01: mark items active when ranked within ACTIVE_WINDOW_DAYS, inactive
    /// otherwise, in one transaction; refuses (EvidenceMissing) unless this run's Ranking
    /// and Item manifests are in the raw store
    IsActive(job::JobArgs),
    /// JOB-G-01: Genre Search for the genre IDs of this run's ranked items not fetched
    /// within GENRE_REFRESH_DAYS; saves each genre and all its ancestors (name, level,
    /// parent, root-first path) in rakuten_genres. Output: rows.rakuten_genres
    /// (inserted/updated/unchanged), extra.targets; fails above GENRE_FAILURE_THRESHOLD
    Genre(job::JobArgs),
    /// JOB-T-01: Tag Search (≤ 10 IDs per request) for the tag IDs of this run's items not
    /// fetched within TAG_REFRESH_DAYS; saves rakuten_tag_groups and rakuten_tags. Output:
    /// rows per table, extra.targets, extra.missing (IDs the API did not return); fails
    /// above TAG_FAILURE_THRESHOLD
    Tag(job::JobArgs),
}

impl JobCommand {
    fn name(&self) -> &'static str {
        match self {
            JobCommand::Ranking(_) => Job::Ranking,
            JobCommand::Item(_) => Job::Item,
            JobCommand::IsActive(_) => Job::IsActive,
            JobCommand::Genre(_) => Job::Genre,
            JobCommand::Tag(_) => Job::Tag,
        }
        .spec()
        .name
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A human-readable summary
    #[default]
    Text,
    /// The job's output document, the same JSON its Lambda returns
    Json,
}

fn config_help() -> String {
    let mut s = String::from("Configuration (environment variables):\n");
    for var in VARIABLES
        .iter()
        .chain(private_pg::VARIABLES)
        .chain(aws::VARIABLES)
    {
        s.push_str(&format!("  {:<38} {}\n", var.name, var.help()));
    }
    s
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // `run` and `job` show progress on the terminal and keep their logs in a file.
    match &cli.command {
        Command::Run(_) => {
            terminal::init_logging("run", cli.verbose);
        }
        Command::Job { job } => {
            terminal::init_logging(&format!("job-{}", job.name()), cli.verbose);
        }
        _ => collector_core::telemetry::init_cli("info"),
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // Locally without DATABASE_URL: a private PostgreSQL `collector run` started here.
    let config = match cli.command {
        Command::Run(_) => config,
        _ => private_pg::adopt(config).await,
    };
    match cli.command {
        Command::Migrate => job::migrate(&config).await,
        Command::Job { job } => {
            // Every job through the one door (the job table's `run`), as its Lambda.
            let (which, args, stop_at) = match job {
                JobCommand::Ranking(a) => (Job::Ranking, a, None),
                JobCommand::Item(a) => {
                    let stop_at = a.stop_at();
                    (Job::Item, a.job, stop_at)
                }
                JobCommand::IsActive(a) => (Job::IsActive, a, None),
                JobCommand::Genre(a) => (Job::Genre, a, None),
                JobCommand::Tag(a) => (Job::Tag, a, None),
            };
            job::run_job(config, which, args, stop_at).await
        }
        Command::Sandbox(args) => sandbox::serve(args).await,
        Command::Run(args) => run::run(config, args).await,
        Command::Verify(args) => verify::run(config, args).await,
        Command::Replay(args) => replay::run(config, args).await,
        Command::Runs(args) => runs::run(config, args).await,
        Command::Aws(args) => aws::run(config, args).await,
        Command::Doctor => doctor::run(config).await,
        Command::Prune(args) => prune::run(config, args).await,
    }
}

#[cfg(test)]
mod tests {
    /// The README's default column shows each variable's declared default (declared once,
    /// in `collector_core::config::vars`).
    #[test]
    fn the_readme_shows_each_declared_default() {
        let readme = include_str!("../../../README.md");
        let rows: Vec<&str> = readme.lines().filter(|l| l.starts_with("| `")).collect();
        for var in super::VARIABLES
            .iter()
            .chain(super::private_pg::VARIABLES)
            .chain(super::aws::VARIABLES)
        {
            let Some(default) = var.default_text() else {
                continue;
            };
            let name = format!("`{}`", var.name);
            let row = rows
                .iter()
                .find(|r| r.split('|').nth(1).is_some_and(|c| c.contains(&name)))
                .unwrap_or_else(|| panic!("the README's table has no row for {name}"));
            let cell = row.split('|').nth(2).unwrap_or_default();
            assert!(
                cell.contains(&format!("`{default}`")),
                "README: {name}'s default reads {cell:?}; declared: {default}"
            );
        }
    }

    /// The README's configuration table and `--help` name the same variables.
    #[test]
    fn the_readme_names_every_variable_and_no_other() {
        let readme = include_str!("../../../README.md");
        let known: Vec<&str> = super::VARIABLES
            .iter()
            .chain(super::private_pg::VARIABLES)
            .chain(super::aws::VARIABLES)
            .map(|var| var.name)
            .collect();
        for name in &known {
            assert!(readme.contains(&format!("`{name}`")), "README lacks {name}");
        }
        // Rows of the configuration table: `| `NAME` |` (several names: comma-separated).
        for line in readme.lines().filter(|l| l.starts_with("| `")) {
            let first_cell = line.split('|').nth(1).unwrap_or_default();
            for name in first_cell.split(',').map(|n| n.trim().trim_matches('`')) {
                let is_variable = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
                if is_variable && name != "RUST_LOG" {
                    assert!(
                        known.contains(&name),
                        "README documents {name}, which nothing reads"
                    );
                }
            }
        }
    }
}
