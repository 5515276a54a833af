//! What `collector run` and `collector job` show: on a terminal (driven here in a
//! pseudo-terminal, its screen rendered by a terminal emulator) one line per job and the
//! summary table, the logs in a file; piped, plain lines without escape codes.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ichiba_collector_tests::*;
use portable_pty::{native_pty_system, CommandBuilder, PtySize};

const JOBS: [&str; 5] = ["ranking", "item", "genre", "tag", "is_active"];

/// The pseudo-terminal's size: large enough that nothing wraps or scrolls away.
const ROWS: u16 = 400;
const COLS: u16 = 250;

fn env(db: &TestDb, sandbox_url: &str, raw: &Path) -> Vec<(String, String)> {
    [
        ("APP_ENV", "local".to_string()),
        ("DATABASE_URL", db.url.clone()),
        ("RAW_STORE", format!("file://{}", raw.display())),
        ("RAKUTEN_API_BASE_URL", sandbox_url.to_string()),
        ("RAKUTEN_APPLICATION_ID", TEST_APP_ID.to_string()),
        ("RAKUTEN_ACCESS_KEY", TEST_ACCESS_KEY.to_string()),
        ("RAKUTEN_REQUESTS_PER_SECOND", "1000".to_string()),
        ("RAKUTEN_RETRY_BASE_MS", "5".to_string()),
        ("RANKING_MAX_PAGES", "2".to_string()),
        // Logs at info: the log file must hold them, the screen must not.
        ("RUST_LOG", "info".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// What a terminal shows after `collector ARGS` ran in it to its end, the bytes it was
/// sent, and the exit code.
struct Screen {
    text: String,
    bytes: Vec<u8>,
    code: u32,
}

/// Runs `collector ARGS` in `dir` on a pseudo-terminal (its stdout and stderr), off the
/// async runtime: the test's sandbox keeps serving meanwhile.
async fn in_pty(env: Vec<(String, String)>, dir: PathBuf, args: Vec<&'static str>) -> Screen {
    tokio::task::spawn_blocking(move || {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: ROWS,
                cols: COLS,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("open a pseudo-terminal");
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_collector"));
        cmd.env_clear();
        cmd.env("PATH", std::env::var("PATH").unwrap_or_default());
        cmd.env("TERM", "xterm-256color");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.cwd(dir);
        cmd.args(args);
        let mut child = pair.slave.spawn_command(cmd).expect("spawn collector");
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().expect("pty reader");
        // Drained while the child runs (a full pty would block it); ends when the child's
        // side closes (EIO on Linux: the bytes read so far are kept).
        let drain = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = reader.read_to_end(&mut bytes);
            bytes
        });
        let status = child.wait().expect("wait for collector");
        let bytes = drain.join().expect("reader");
        drop(pair.master);
        let size = |n| std::num::NonZeroU16::new(n).expect("a size");
        let mut parser = vt100::Parser::new(size(ROWS), size(COLS), 0);
        parser.process(&bytes);
        Screen {
            // Row by row: the live lines fill the width, so a terminal wraps them and
            // `contents()` would join them.
            text: parser
                .screen()
                .rows(0, COLS)
                .map(|r| r.trim_end().to_string())
                .collect::<Vec<_>>()
                .join("\n")
                .trim_end()
                .to_string(),
            bytes,
            code: status.exit_code(),
        }
    })
    .await
    .unwrap()
}

/// `collector ARGS` in `dir` with stdout and stderr piped.
async fn piped(env: Vec<(String, String)>, dir: PathBuf, args: Vec<&'static str>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_collector"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            // A terminal type that could show colours: only the pipe makes it plain.
            .env("TERM", "xterm-256color")
            .envs(env)
            .current_dir(dir)
            .args(args)
            .output()
            .expect("run collector")
    })
    .await
    .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// A job's progress lines: `<mark> <job> …` (the summary table's rows start with the job).
fn progress_lines<'a>(screen: &'a str, job: &str) -> Vec<&'a str> {
    screen
        .lines()
        .filter(|l| l.split_whitespace().nth(1) == Some(job))
        .collect()
}

/// Log lines as the log formatter writes them: a level between spaces.
fn log_lines(s: &str) -> Vec<&str> {
    s.lines()
        .filter(|l| {
            [" TRACE ", " DEBUG ", " INFO ", " WARN ", " ERROR "]
                .iter()
                .any(|level| l.contains(level))
        })
        .collect()
}

/// The log file `collector` named (`logs: PATH`), checked to be under `dir`'s
/// `.local/logs/`, and its text.
fn log_file(said: &str, dir: &Path) -> (PathBuf, String) {
    let path = said
        .lines()
        .find_map(|l| l.trim().strip_prefix("logs: "))
        .unwrap_or_else(|| panic!("no `logs: PATH` line:\n{said}"));
    let path = PathBuf::from(path.trim());
    assert!(
        path.starts_with(dir.join(".local/logs")),
        "{} is not under {}/.local/logs",
        path.display(),
        dir.display()
    );
    let logs = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the log file {}: {e}", path.display()));
    (path, logs)
}

/// The summary table: its header, and one `succeeded` row per job.
fn assert_summary_table(out: &str) {
    let header = out
        .lines()
        .find(|l| l.split_whitespace().take(3).eq(["job", "status", "units"]))
        .unwrap_or_else(|| panic!("no summary table:\n{out}"));
    assert!(header.contains("requests"), "{header}");
    for job in JOBS {
        let rows: Vec<&str> = out
            .lines()
            .filter(|l| l.split_whitespace().next() == Some(job))
            .collect();
        assert_eq!(rows.len(), 1, "{job}: summary rows {rows:?}\n{out}");
        assert_eq!(
            rows[0].split_whitespace().nth(1),
            Some("succeeded"),
            "{}",
            rows[0]
        );
    }
    assert!(out.contains("jobnet succeeded"), "{out}");
}

/// The logs reached the file: Notify's run summary among them.
fn assert_logs_in_file(logs: &str, path: &Path) {
    assert!(
        !log_lines(logs).is_empty(),
        "no log line in {}:\n{logs}",
        path.display()
    );
    assert!(
        logs.contains("summary="),
        "Notify's run summary is not in {}:\n{logs}",
        path.display()
    );
    assert!(!logs.contains('\x1b'), "escape codes in {}", path.display());
}

#[tokio::test]
async fn on_a_terminal_run_shows_one_line_per_job_and_the_table_and_logs_to_a_file() {
    let db = TestDb::new().await;
    let sandbox = start_sandbox(sandbox_config(20)).await;
    let raw = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let screen = in_pty(
        env(&db, &sandbox.base_url(), raw.path()),
        dir.path().to_path_buf(),
        vec!["run"],
    )
    .await;
    let shown = &screen.text;
    eprintln!("the screen:\n{shown}");
    assert_eq!(screen.code, 0, "{shown}");
    assert!(
        screen.bytes.contains(&0x1b),
        "no escape code: not the live display"
    );

    // No log line, no JSON.
    assert!(
        log_lines(shown).is_empty(),
        "log lines on the screen: {:?}",
        log_lines(shown)
    );
    assert!(!shown.contains("summary="), "{shown}");
    assert!(!shown.contains("{\""), "JSON on the screen:\n{shown}");

    // One line per job, left as the job's outcome.
    for job in JOBS {
        let lines = progress_lines(shown, job);
        assert_eq!(lines.len(), 1, "{job}: {lines:?}\n{shown}");
        let line = lines[0].trim_start();
        assert!(
            line.starts_with(&format!("✔ {job} ")) && line.contains(" units, 0 failed"),
            "{line}"
        );
        if job != "is_active" {
            assert!(
                line.contains(" requests, ") && line.contains("req/s") && line.contains("× 429"),
                "{job}: no request rate or 429 count: {line}"
            );
        }
    }
    assert_summary_table(shown);

    let (path, logs) = log_file(shown, dir.path());
    assert_logs_in_file(&logs, &path);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn piped_run_and_job_print_plain_lines_without_escape_codes() {
    let db = TestDb::new().await;
    let sandbox = start_sandbox(sandbox_config(20)).await;
    let raw = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let vars = env(&db, &sandbox.base_url(), raw.path());

    let out = piped(vars.clone(), dir.path().to_path_buf(), vec!["run"]).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    eprintln!("stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        assert!(!bytes.contains(&0x1b), "an escape code on {name}");
        assert!(
            !bytes.contains(&b'\r'),
            "a carriage return (a redrawn line) on {name}"
        );
    }
    assert!(
        log_lines(&stderr).is_empty() && !stderr.contains("summary="),
        "log lines on stderr: {:?}",
        log_lines(&stderr)
    );
    assert!(!stdout.contains("{\""), "JSON on stdout:\n{stdout}");
    for job in JOBS {
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with(&format!("✔ {job} ")))
            .collect();
        assert_eq!(lines.len(), 1, "{job}: {lines:?}\n{stderr}");
        assert!(lines[0].contains(" units, 0 failed"), "{}", lines[0]);
    }
    assert_summary_table(&stdout);
    let (path, logs) = log_file(&stderr, dir.path());
    assert_logs_in_file(&logs, &path);

    // The same for one job: its plain line, its summary, its log file.
    let out = piped(vars.clone(), dir.path().to_path_buf(), vec!["job", "genre"]).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!out.stdout.contains(&0x1b) && !out.stderr.contains(&0x1b));
    assert!(log_lines(&stderr).is_empty(), "{stderr}");
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("✔ genre ")).count(),
        1,
        "{stderr}"
    );
    assert!(stdout.starts_with("genre job succeeded"), "{stdout}");
    let (job_log, logs) = log_file(&stderr, dir.path());
    assert_ne!(job_log, path, "each command logs to a file of its own");
    assert!(!log_lines(&logs).is_empty(), "{logs}");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn output_json_prints_the_summary_document_and_verbose_streams_the_logs() {
    let db = TestDb::new().await;
    let sandbox = start_sandbox(sandbox_config(10)).await;
    let raw = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = piped(
        env(&db, &sandbox.base_url(), raw.path()),
        dir.path().to_path_buf(),
        vec!["run", "--output", "json", "-v"],
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{stdout}"));
    assert_eq!(doc["status"], "succeeded", "{doc}");
    assert_eq!(doc["env"], "local", "{doc}");
    let jobs: Vec<&str> = doc["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("no jobs: {doc}"))
        .iter()
        .filter_map(|j| j["job"].as_str())
        .collect();
    for job in JOBS {
        assert!(jobs.contains(&job), "{job} missing from {jobs:?}");
    }
    // -v: the logs on stderr too (plain, piped), and in the file.
    assert!(
        !log_lines(&stderr).is_empty(),
        "-v streamed no log:\n{stderr}"
    );
    assert!(
        !out.stderr.contains(&0x1b),
        "escape codes in the streamed logs"
    );
    let (path, logs) = log_file(&stderr, dir.path());
    assert_logs_in_file(&logs, &path);
    sandbox.shutdown().await;
}
