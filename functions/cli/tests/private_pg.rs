//! The README's first command on a fresh machine: `collector run` with `DATABASE_URL`
//! unset and nothing answering at the default address (`LOCAL_DATABASE_ADDR` pointed at
//! a port where nothing listens) starts a private PostgreSQL from the server binaries it
//! finds, completes on it, and later commands in the same directory find it; without
//! server binaries it exits with one line naming `scripts/start-postgres.sh`. The
//! machine's shared PostgreSQL is never touched.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ichiba_collector_tests::*;

/// A port of 127.0.0.1 where nothing listens (bound, then released).
fn dead_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr.to_string()
}

/// The newest installed server binaries (`/usr/lib/postgresql/*/bin`), or PG_BIN_DIR.
fn server_bin_dir() -> PathBuf {
    installed_bin_dir().expect(
        "PostgreSQL server binaries under /usr/lib/postgresql (scripts/start-postgres.sh installs them)",
    )
}

/// The binary in `cwd` with a fresh machine's environment: no DATABASE_URL, no APP_ENV.
async fn collector(cwd: &Path, env: Vec<(String, String)>, args: Vec<&'static str>) -> Output {
    let mut cmd = collector_command(env!("CARGO_BIN_EXE_collector"), env);
    cmd.env("RUST_LOG", "warn").current_dir(cwd).args(args);
    output_of(cmd).await
}

/// The command succeeded and its stderr says `what`.
fn assert_succeeded_saying(out: &Output, what: &str) {
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(what), "{stderr}");
}

/// A directory the `postgres` OS user can reach (the server runs as it under root).
fn workdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// Stops the private server of `dir` when the test ends, however it ends.
struct StopServer {
    bin: PathBuf,
    data: PathBuf,
}

impl Drop for StopServer {
    fn drop(&mut self) {
        if !self.data.join("postmaster.pid").exists() {
            return;
        }
        let pg_ctl = format!(
            "{} -D {} stop -m immediate",
            self.bin.join("pg_ctl").display(),
            self.data.display()
        );
        let root = std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
        let _ = if root {
            Command::new("su")
                .args(["postgres", "-s", "/bin/sh", "-c", &pg_ctl])
                .output()
        } else {
            Command::new("sh").args(["-c", &pg_ctl]).output()
        };
    }
}

#[tokio::test]
async fn a_fresh_machine_run_completes_on_a_private_server_that_later_commands_find() {
    let sandbox = start_sandbox(sandbox_config(5)).await;
    let dir = workdir();
    let bin = server_bin_dir();
    let data = dir.path().join(".local/pg/data");
    let _stop = StopServer {
        bin: bin.clone(),
        data: data.clone(),
    };
    let dead = dead_addr();
    let env: Vec<(String, String)> = [
        ("PATH", format!("{}:/usr/bin:/bin", bin.display())),
        ("LOCAL_DATABASE_ADDR", dead.clone()),
        ("RAKUTEN_API_BASE_URL", sandbox.base_url()),
        ("RAKUTEN_APPLICATION_ID", TEST_APP_ID.to_string()),
        ("RAKUTEN_ACCESS_KEY", TEST_ACCESS_KEY.to_string()),
        ("RAKUTEN_REQUESTS_PER_SECOND", "1000".to_string()),
        ("RANKING_MAX_PAGES", "1".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();

    let out = collector(dir.path(), env.clone(), vec!["run"]).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    assert!(
        stderr.contains(&format!(
            "database: nothing answers at {dead} and DATABASE_URL is unset: created and started a private PostgreSQL"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("data in .local/pg/data"), "{stderr}");
    assert!(stderr.contains("stop it with: "), "{stderr}");
    assert!(stdout.contains("jobnet succeeded"), "{stdout}");
    // The server runs from the state directory, on a port of its own.
    let pid = std::fs::read_to_string(data.join("postmaster.pid")).expect("the server is up");
    let port: u16 = pid.lines().nth(3).unwrap().trim().parse().unwrap();
    assert_ne!(port, 5432);
    assert!(stderr.contains(&format!("on 127.0.0.1:{port}")), "{stderr}");

    // The run is in its ledger, and `collector runs` finds the server by itself.
    let client = connect_plain(&format!(
        "postgresql://postgres@127.0.0.1:{port}/ichiba_collector"
    ))
    .await;
    let succeeded = "SELECT count(*) FROM etl_runs WHERE status = 'succeeded'";
    assert_eq!(count(&client, succeeded).await, 1);
    let out = collector(dir.path(), env.clone(), vec!["runs", "--output", "json"]).await;
    assert_succeeded_saying(
        &out,
        &format!("the private PostgreSQL in .local/pg (127.0.0.1:{port}"),
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["status"], "succeeded");

    // The next run uses it again: the ledger keeps both runs.
    let out = collector(dir.path(), env, vec!["run"]).await;
    assert_succeeded_saying(
        &out,
        &format!("using the private PostgreSQL in .local/pg (127.0.0.1:{port})"),
    );
    assert_eq!(count(&client, succeeded).await, 2);
}

#[tokio::test]
async fn without_server_binaries_the_run_names_the_command_that_gets_one() {
    let dir = workdir();
    let no_binaries = tempfile::tempdir().unwrap();
    let dead = dead_addr();
    let out = collector(
        dir.path(),
        vec![
            ("PATH".into(), "/usr/bin:/bin".into()),
            (
                "PG_BIN_DIR".into(),
                no_binaries.path().display().to_string(),
            ),
            ("LOCAL_DATABASE_ADDR".into(), dead.clone()),
        ],
        vec!["run"],
    )
    .await;
    let stderr = one_line_error(&out, 4);
    assert!(
        stderr.starts_with(&format!(
            "error: DATABASE_URL is unset, nothing answers at {dead}, and there are no PostgreSQL server binaries"
        )) && stderr.contains("run scripts/start-postgres.sh"),
        "{stderr}"
    );
    assert!(text(&out.stdout).is_empty());
    assert!(!dir.path().join(".local/pg/data").exists());
}

#[tokio::test]
async fn help_names_the_variables() {
    let dir = workdir();
    let out = collector(dir.path(), vec![], vec!["--help"]).await;
    let help = text(&out.stdout);
    for v in ["LOCAL_DATABASE_ADDR", "PG_BIN_DIR", "STATE_MACHINE_ARN"] {
        assert!(help.contains(v), "--help lacks {v}:\n{help}");
    }
}

#[tokio::test]
async fn a_database_url_is_used_as_before() {
    // DATABASE_URL set: no private server, even with nothing at the default address.
    let db = TestDb::new().await;
    let dir = workdir();
    let out = collector(
        dir.path(),
        vec![
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("DATABASE_URL".into(), db.url.clone()),
            ("LOCAL_DATABASE_ADDR".into(), dead_addr()),
        ],
        vec!["runs"],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("private PostgreSQL"));
    assert!(text(&out.stdout).contains("no runs in env local"));
    assert!(!dir.path().join(".local/pg").exists());
}
