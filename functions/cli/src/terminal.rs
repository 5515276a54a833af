//! What `collector run` and `collector job` show while they work.
//!
//! On a terminal (stderr is a TTY, and neither `NO_COLOR` nor `CI` is set, nor
//! `TERM=dumb`): one live line per job (done/total, request rate, ETA, 429 answers), left
//! in place as the job's outcome when it ends. Anywhere else: plain lines without escape
//! codes — a job's outcome when it ends, and where it is every [`PLAIN_EVERY`] while it
//! works. The logs go to a file under `.local/logs/` whose path is said first; `-v`
//! streams them to stderr too.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use collector_core::jobs::JobOutput;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rakuten_client::StatsScope;

/// Where the command logs go (under the local state directory).
pub const LOG_DIR: &str = ".local/logs";

/// How often a plain (non-terminal) display says where a running job is.
pub const PLAIN_EVERY: Duration = Duration::from_secs(30);

/// How often the live lines are redrawn.
const TICK: Duration = Duration::from_millis(200);

/// The live lines of this process (set on a terminal only).
static MULTI: OnceLock<MultiProgress> = OnceLock::new();

/// Every job line of this process (the jobs' logs tell them their totals).
static LINES: Mutex<Vec<Arc<JobLine>>> = Mutex::new(Vec::new());

/// A job's total as its log says it: (job, message, field).
const TOTALS: [(&str, &str, &str); 3] = [
    ("item", "item queue ready", "queued"),
    ("genre", "fetching genres", "due"),
    ("tag", "fetching tags", "requests"),
];

/// Reads the totals the jobs log (see [`TOTALS`]) into their lines.
fn tap(message: &str, numbers: &[(&'static str, i64)]) {
    for (job, msg, field) in TOTALS {
        if message != msg {
            continue;
        }
        let Some(&(_, n)) = numbers.iter().find(|(f, _)| *f == field) else {
            continue;
        };
        let lines = LINES.lock().expect("lock");
        if let Some(line) = lines.iter().rev().find(|l| l.name == job) {
            line.total.store(n.max(0) as u64, Ordering::Relaxed);
        }
    }
}

/// Whether this process shows live lines: stderr is a terminal that wants them.
pub fn interactive() -> bool {
    let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    let ci = std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    std::io::stderr().is_terminal()
        && !set("NO_COLOR")
        && !ci
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

/// stderr that steps around the live lines (logs streamed by `-v`).
struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match MULTI.get() {
            Some(m) => m.suspend(|| std::io::stderr().write(buf)),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Logging for `command` (`run`, `job-item`, …): into a new file under [`LOG_DIR`], said
/// on stderr, and on stderr too when `verbose`. Returns the file's path (None when it
/// could not be created: then the logs go to stderr).
pub fn init_logging(command: &str, verbose: bool) -> Option<PathBuf> {
    let tty = interactive();
    if tty {
        let _ = MULTI.set(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
    }
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
    let dir = Path::new(LOG_DIR);
    let path = dir.join(format!("{command}-{stamp}-{}.log", std::process::id()));
    let file = std::fs::create_dir_all(dir).and_then(|()| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
    });
    match file {
        Ok(file) => {
            let path = std::path::absolute(&path).unwrap_or(path);
            collector_core::telemetry::init_cli_file(
                "info",
                file,
                verbose.then_some(|| Stderr),
                tty,
                Some(Box::new(tap)),
            );
            eprintln!("logs: {}", path.display());
            Some(path)
        }
        Err(e) => {
            eprintln!(
                "warning: cannot write the logs to {} ({e}): logging to stderr",
                path.display()
            );
            collector_core::telemetry::init_cli("info");
            None
        }
    }
}

/// Says `msg` on its own line (above the live lines on a terminal).
pub fn say(msg: impl AsRef<str>) {
    match MULTI.get() {
        Some(m) => {
            let _ = m.println(msg.as_ref());
        }
        None => eprintln!("{}", msg.as_ref()),
    }
}

/// One job's line.
pub struct JobLine {
    name: &'static str,
    /// Whether the job calls the Rakuten API (has requests to show).
    fetches: bool,
    /// The job's request counters: run its work inside `ctx.rakuten.scoped_in(&scope, …)`.
    pub scope: StatsScope,
    started: Instant,
    /// Units to do, when known (0: not known).
    total: AtomicU64,
    /// Units done = first tries sent + this (the work done before this process sent any).
    offset: AtomicI64,
    finished: AtomicBool,
    /// The last failed attempt's error and cause (a retry may still succeed).
    last_error: Mutex<Option<(String, String)>>,
    bar: Option<ProgressBar>,
    last_plain: Mutex<Instant>,
}

/// `✔`, `✘`, or the spinner, then the job's name in a column.
fn head(mark: &str, name: &str) -> String {
    format!("{mark} {name:<9}")
}

fn duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    } else {
        format!("{}h{:02}m", d.as_secs() / 3600, d.as_secs() % 3600 / 60)
    }
}

impl JobLine {
    /// Starts the line of job `name`; `total` units when known in advance.
    pub fn start(name: &'static str, fetches: bool, total: Option<u64>) -> Arc<JobLine> {
        let bar = MULTI.get().map(|m| {
            let bar = m.add(ProgressBar::new_spinner());
            bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("template"));
            bar
        });
        let line = Arc::new(JobLine {
            name,
            fetches,
            scope: StatsScope::default(),
            started: Instant::now(),
            total: AtomicU64::new(total.unwrap_or(0)),
            offset: AtomicI64::new(0),
            finished: AtomicBool::new(false),
            last_error: Mutex::new(None),
            bar,
            last_plain: Mutex::new(Instant::now()),
        });
        if let Some(b) = &line.bar {
            b.set_message(line.live());
        }
        LINES.lock().expect("lock").push(Arc::clone(&line));
        let l = Arc::clone(&line);
        tokio::spawn(async move {
            while !l.finished.load(Ordering::Relaxed) {
                tokio::time::sleep(TICK).await;
                if l.finished.load(Ordering::Relaxed) {
                    break;
                }
                match &l.bar {
                    Some(b) => {
                        b.set_message(l.live());
                        b.tick();
                    }
                    None => {
                        let mut last = l.last_plain.lock().expect("lock");
                        if last.elapsed() >= PLAIN_EVERY {
                            *last = Instant::now();
                            eprintln!("… {}", l.live());
                        }
                    }
                }
            }
        });
        line
    }

    /// Work known from the job's own count: `done` of `total` units.
    pub fn set_done(&self, done: u64, total: u64) {
        let s = self.scope.stats();
        let sent = s.requests.saturating_sub(s.retries) as i64;
        self.total.store(total, Ordering::Relaxed);
        self.offset.store(done as i64 - sent, Ordering::Relaxed);
    }

    /// (done, total) units, total None when not known.
    fn progress(&self) -> (u64, Option<u64>) {
        let s = self.scope.stats();
        let sent = s.requests.saturating_sub(s.retries) as i64;
        let done = (sent + self.offset.load(Ordering::Relaxed)).max(0) as u64;
        let total = self.total.load(Ordering::Relaxed);
        (done, (total > 0).then_some(total.max(done)))
    }

    /// The line while the job works.
    fn live(&self) -> String {
        let elapsed = self.started.elapsed();
        let mut text = format!("{:<9}", self.name);
        if self.fetches {
            let s = self.scope.stats();
            let (done, total) = self.progress();
            let secs = elapsed.as_secs_f64().max(0.001);
            let rate = s.requests as f64 / secs;
            match total {
                Some(t) => {
                    text.push_str(&format!(" {done}/{t}"));
                    // Units per second in this process: first tries sent.
                    let per_sec = s.requests.saturating_sub(s.retries) as f64 / secs;
                    if t > done && per_sec > 0.0 {
                        let eta = Duration::from_secs_f64((t - done) as f64 / per_sec);
                        text.push_str(&format!(" · {rate:.1} req/s · ETA {}", duration(eta)));
                    } else {
                        text.push_str(&format!(" · {rate:.1} req/s · ETA -"));
                    }
                }
                None => text.push_str(&format!(" {done}/? · {rate:.1} req/s")),
            }
            text.push_str(&format!(" · {} × 429", s.throttled));
        } else {
            text.push_str(" working");
        }
        text.push_str(&format!(" · {}", duration(elapsed)));
        text
    }

    /// A note on the job's way (plain display only: the live line shows it on a terminal).
    pub fn note(&self, msg: impl AsRef<str>) {
        if self.bar.is_none() {
            eprintln!("… {}: {}", self.name, msg.as_ref());
        }
    }

    fn end(&self, text: String) {
        if self.finished.swap(true, Ordering::Relaxed) {
            return;
        }
        match &self.bar {
            Some(b) => {
                b.set_style(ProgressStyle::with_template("{msg}").expect("template"));
                b.finish_with_message(text);
            }
            None => eprintln!("{text}"),
        }
    }

    /// The job ended with `out`.
    pub fn succeeded(&self, out: &JobOutput) {
        let elapsed = self.started.elapsed();
        let mut text = format!(
            "{} {} units, {} failed ({:.2}%)",
            head("✔", self.name),
            out.units.attempted,
            out.units.failed,
            out.failure_rate * 100.0
        );
        if self.fetches {
            let s = self.scope.stats();
            let requests = s.requests.max(out.requests);
            text.push_str(&format!(
                " · {requests} requests, {:.1} req/s · {} × 429",
                requests as f64 / elapsed.as_secs_f64().max(0.001),
                s.throttled.max(out.throttled)
            ));
        }
        text.push_str(&format!(" · {}", duration(elapsed)));
        self.end(text);
    }

    /// The job failed with `error`: `cause`.
    pub fn failed(&self, error: &str, cause: &str) {
        let mut text = format!("{} FAILED {error}: {cause}", head("✘", self.name));
        if self.fetches {
            let s = self.scope.stats();
            text.push_str(&format!(
                " · {} requests · {} × 429",
                s.requests, s.throttled
            ));
        }
        text.push_str(&format!(" · {}", duration(self.started.elapsed())));
        self.end(text);
    }

    /// An attempt failed with `error`: `cause` (shown if the job gets no further).
    pub fn attempt_failed(&self, error: &str, cause: &str) {
        *self.last_error.lock().expect("lock") = Some((error.to_string(), cause.to_string()));
    }

    /// The job did not get to an end (the jobnet stopped elsewhere), or its end was not
    /// seen: its last failed attempt if any.
    pub fn stopped(&self) {
        if let Some((e, c)) = self.last_error.lock().expect("lock").take() {
            return self.failed(&e, &c);
        }
        self.end(format!(
            "{} did not finish · {}",
            head("-", self.name),
            duration(self.started.elapsed())
        ));
    }
}

/// The job lines of a `collector run`, by job name.
#[derive(Default)]
pub struct JobLines {
    lines: Mutex<Vec<Arc<JobLine>>>,
}

impl JobLines {
    /// The line of job `name`, started on first use.
    pub fn line(&self, name: &'static str, fetches: bool, total: Option<u64>) -> Arc<JobLine> {
        let mut lines = self.lines.lock().expect("lock");
        if let Some(l) = lines.iter().find(|l| l.name == name) {
            return Arc::clone(l);
        }
        let l = JobLine::start(name, fetches, total);
        lines.push(Arc::clone(&l));
        l
    }

    /// Ends the lines still running (before the summary is printed).
    pub fn end_all(&self) {
        for l in self.lines.lock().expect("lock").iter() {
            l.stopped();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_short() {
        assert_eq!(duration(Duration::from_millis(2340)), "2.3 s");
        assert_eq!(duration(Duration::from_secs(125)), "2m05s");
        assert_eq!(duration(Duration::from_secs(7380)), "2h03m");
    }
}
