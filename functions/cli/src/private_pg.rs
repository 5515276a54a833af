//! The README's first command on a fresh machine: a private PostgreSQL.
//!
//! It applies only locally (`APP_ENV=local`) with neither `DATABASE_URL` nor
//! `DATABASE_URL_SSM_PARAMETER` set, and only when nothing answers at the default address
//! (`LOCAL_DATABASE_ADDR`, default `127.0.0.1:5432`; something that answers there is
//! used as before). Then `collector run` starts a private server from the installed
//! PostgreSQL server binaries (`PG_BIN_DIR`, else `PATH`, else the newest
//! `/usr/lib/postgresql/*/bin`): `initdb` into `.local/pg/data` under the current
//! directory (the local state directory, beside the raw store's `.local/raw`) on first
//! use, `pg_ctl start` on a free port of 127.0.0.1 (trust authentication, TCP only, no
//! Unix socket), and says so. Without server binaries it exits with one line naming
//! `scripts/start-postgres.sh`.
//!
//! Lifetime: the server outlives the `collector run` that started it, so that the next
//! commands in the same directory (`collector runs`, `job`, `doctor`, another `run`)
//! find it by its `postmaster.pid`, and it keeps its data between runs. It runs until
//! `pg_ctl -D .local/pg/data stop` (the command is printed) or the machine restarts; the
//! next `collector run` starts it again on the data it has. As root, PostgreSQL runs as
//! the `postgres` OS user, which then owns `.local/pg`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use collector_core::config::{AppEnv, Config, Rule, SecretSource, Var};
use secrecy::SecretString;

/// The local state directory's database folder, relative to the current directory.
pub const DIR: &str = ".local/pg";
const DEFAULT_ADDR: &str = "127.0.0.1:5432";
const BINARIES: [&str; 3] = ["initdb", "pg_ctl", "postgres"];
const DATABASE: &str = "ichiba_collector";

/// The variables read here, for `collector --help`.
pub const VARIABLES: &[Var] = &[
    Var {
        name: "LOCAL_DATABASE_ADDR",
        about: "local, without DATABASE_URL: where the database is looked for; nothing there: `collector run` starts a private server in .local/pg",
        rule: Rule::Text { default: Some(DEFAULT_ADDR) },
    },
    Var::text("PG_BIN_DIR", "the private server's initdb, pg_ctl and postgres (default: PATH, then the newest /usr/lib/postgresql/*/bin)"),
];

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Whether the database is ours to choose: local, no URL and no SSM parameter given.
fn applies(config: &Config) -> bool {
    config.env == AppEnv::Local
        && var("DATABASE_URL").is_none()
        && var("DATABASE_URL_SSM_PARAMETER").is_none()
}

/// Where the local database is looked for first.
fn default_addr() -> String {
    var("LOCAL_DATABASE_ADDR").unwrap_or_else(|| DEFAULT_ADDR.to_string())
}

fn url_at(addr: &str) -> String {
    format!("postgresql://postgres@{addr}/{DATABASE}")
}

fn with_url(mut config: Config, url: String) -> Config {
    config.database_url = SecretSource::Value(SecretString::from(url));
    config
}

/// Whether something accepts TCP connections at `addr` (within 2 s).
async fn answers(addr: &str) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

fn state_dir() -> PathBuf {
    std::env::current_dir()
        .unwrap_or_else(|_| PathBuf::from("."))
        .join(DIR)
}

/// The port of the private server of `data` when it is up (its `postmaster.pid`, line 4,
/// and the port answering).
async fn running_port(data: &Path) -> Option<u16> {
    let pid_file = std::fs::read_to_string(data.join("postmaster.pid")).ok()?;
    let port: u16 = pid_file.lines().nth(3)?.trim().parse().ok()?;
    answers(&format!("127.0.0.1:{port}")).await.then_some(port)
}

/// For every command but `run`: the default address when it answers, else a private
/// server already running here, else the configuration unchanged. Never starts one.
pub async fn adopt(config: Config) -> Config {
    if !applies(&config) {
        return config;
    }
    let addr = default_addr();
    if answers(&addr).await {
        return if addr == DEFAULT_ADDR {
            config
        } else {
            with_url(config, url_at(&addr))
        };
    }
    match running_port(&state_dir().join("data")).await {
        Some(port) => {
            eprintln!(
                "database: the private PostgreSQL in {DIR} (127.0.0.1:{port}; nothing answers at {addr})"
            );
            with_url(config, url_at(&format!("127.0.0.1:{port}")))
        }
        None => config,
    }
}

/// For `collector run`: as [`adopt`], and when neither answers, starts the private
/// server (see the module docs). Err: the exit status, after one line saying why.
pub async fn ensure(config: Config) -> Result<Config, ExitCode> {
    if !applies(&config) {
        return Ok(config);
    }
    let addr = default_addr();
    if answers(&addr).await {
        return Ok(if addr == DEFAULT_ADDR {
            config
        } else {
            with_url(config, url_at(&addr))
        });
    }
    let dir = state_dir();
    let data = dir.join("data");
    if let Some(port) = running_port(&data).await {
        eprintln!(
            "database: nothing answers at {addr}; using the private PostgreSQL in {DIR} (127.0.0.1:{port})"
        );
        return Ok(with_url(config, url_at(&format!("127.0.0.1:{port}"))));
    }
    let bin = match find_bin_dir(
        var("PG_BIN_DIR").map(PathBuf::from),
        std::env::var_os("PATH"),
        Path::new("/usr/lib/postgresql"),
    ) {
        Ok(b) => b,
        Err(where_) => {
            eprintln!(
                "error: DATABASE_URL is unset, nothing answers at {addr}, and there are no PostgreSQL server binaries ({}) {where_} to start a private one: run scripts/start-postgres.sh (or set DATABASE_URL)",
                BINARIES.join(", ")
            );
            return Err(ExitCode::from(4));
        }
    };
    match start(&bin, &dir, &data).await {
        Ok((port, fresh)) => {
            let version = std::fs::read_to_string(data.join("PG_VERSION")).unwrap_or_default();
            eprintln!(
                "database: nothing answers at {addr} and DATABASE_URL is unset: {} a private PostgreSQL {} ({}) on 127.0.0.1:{port}, data in {DIR}/data, log {DIR}/server.log",
                if fresh { "created and started" } else { "started" },
                version.trim(),
                bin.display()
            );
            eprintln!(
                "database: it keeps running for the next commands in this directory (they find it); stop it with: {}",
                stop_command(&bin, &data)
            );
            Ok(with_url(config, url_at(&format!("127.0.0.1:{port}"))))
        }
        Err(e) => {
            eprintln!("error: cannot start a private PostgreSQL in {DIR}: {e}; run scripts/start-postgres.sh (or set DATABASE_URL)");
            Err(ExitCode::from(4))
        }
    }
}

fn has_all(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    BINARIES.iter().all(|b| {
        std::fs::metadata(dir.join(b))
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    })
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`: `explicit` (PG_BIN_DIR) alone
/// when given, else the first `PATH` entry with all three, else the newest
/// `<versions>/N/bin`. Err: where it looked, for the message.
fn find_bin_dir(
    explicit: Option<PathBuf>,
    path: Option<std::ffi::OsString>,
    versions: &Path,
) -> Result<PathBuf, String> {
    if let Some(dir) = explicit {
        return if has_all(&dir) {
            Ok(dir)
        } else {
            Err(format!("in PG_BIN_DIR={}", dir.display()))
        };
    }
    if let Some(p) = path {
        if let Some(dir) = std::env::split_paths(&p).find(|d| has_all(d)) {
            return Ok(dir);
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(versions)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            has_all(&bin).then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| format!("on PATH or in {}/*/bin", versions.display()))
}

/// As root: the uid and gid of the `postgres` user the server runs as (PostgreSQL
/// refuses to run as root). Ok(None): not root.
fn run_as() -> Result<Option<(u32, u32)>, String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse::<u32>().ok());
    if euid != Some(0) {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let fields: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .ok_or("PostgreSQL refuses to run as root and there is no `postgres` user to run it as")?
        .split(':')
        .collect();
    match (
        fields.get(2).and_then(|u| u.parse().ok()),
        fields.get(3).and_then(|g| g.parse().ok()),
    ) {
        (Some(u), Some(g)) => Ok(Some((u, g))),
        _ => Err("cannot read the `postgres` user's uid and gid from /etc/passwd".into()),
    }
}

fn command(program: PathBuf, owner: Option<(u32, u32)>, dir: &Path) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(program);
    cmd.current_dir(dir).env("LC_ALL", "C");
    // Its own process group: a Ctrl-C at the terminal stops `collector run`, not the server.
    cmd.process_group(0);
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid).env("HOME", dir);
    }
    cmd
}

fn output_text(out: &std::process::Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" / ")
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

/// The command that stops the server, as the user must type it.
fn stop_command(bin: &Path, data: &Path) -> String {
    let pg_ctl = bin.join("pg_ctl");
    match run_as() {
        Ok(Some(_)) => format!(
            "su postgres -s /bin/sh -c '{} -D {} stop'",
            pg_ctl.display(),
            data.display()
        ),
        _ => format!("{} -D {} stop", pg_ctl.display(), data.display()),
    }
}

/// initdb (first use) and pg_ctl start on a free port. Ok((port, created)).
async fn start(bin: &Path, dir: &Path, data: &Path) -> Result<(u16, bool), String> {
    let owner = run_as()?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(dir, Some(uid), Some(gid))
            .map_err(|e| format!("cannot hand {} to the postgres user: {e}", dir.display()))?;
    }
    let fresh = !data.join("PG_VERSION").exists();
    if fresh {
        let bin = bin.to_path_buf();
        let (dir2, data2) = (dir.to_path_buf(), data.to_path_buf());
        let out = tokio::task::spawn_blocking(move || {
            command(bin.join("initdb"), owner, &dir2)
                .arg("-D")
                .arg(&data2)
                .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale"])
                .output()
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot run initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!("initdb failed: {}", output_text(&out)));
        }
    }
    let mut last = String::new();
    for _ in 0..3 {
        let port = free_port()?;
        let (bin2, dir2, data2) = (bin.to_path_buf(), dir.to_path_buf(), data.to_path_buf());
        let out = tokio::task::spawn_blocking(move || {
            command(bin2.join("pg_ctl"), owner, &dir2)
                .arg("-D")
                .arg(&data2)
                .arg("-l")
                .arg(dir2.join("server.log"))
                .args(["-w", "-t", "60", "-o"])
                .arg(format!(
                    "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
                ))
                .arg("start")
                .output()
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot run pg_ctl: {e}"))?;
        if out.status.success() && answers(&format!("127.0.0.1:{port}")).await {
            return Ok((port, fresh));
        }
        // Another `collector run` may have started it meanwhile.
        if let Some(port) = running_port(data).await {
            return Ok((port, false));
        }
        last = output_text(&out);
    }
    Err(format!(
        "pg_ctl start failed: {last} (see {DIR}/server.log)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_bin(dir: &Path, names: &[&str]) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir).unwrap();
        for n in names {
            let p = dir.join(n);
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    #[test]
    fn server_binaries_are_found_on_path_then_in_the_newest_version_dir() {
        let t = tempfile::tempdir().unwrap();
        let only_client = t.path().join("client");
        fake_bin(&only_client, &["psql", "pg_ctl"]);
        let on_path = t.path().join("server");
        fake_bin(&on_path, &BINARIES);
        let versions = t.path().join("versions");
        fake_bin(&versions.join("9/bin"), &BINARIES);
        fake_bin(&versions.join("15/bin"), &BINARIES);
        fake_bin(&versions.join("16/bin"), &["initdb"]);
        let path = std::env::join_paths([&only_client, &on_path]).unwrap();
        assert_eq!(find_bin_dir(None, Some(path), &versions).unwrap(), on_path);
        let path = std::env::join_paths([&only_client]).unwrap();
        assert_eq!(
            find_bin_dir(None, Some(path.clone()), &versions).unwrap(),
            versions.join("15/bin")
        );
        let e = find_bin_dir(None, Some(path.clone()), &t.path().join("none")).unwrap_err();
        assert!(e.contains("on PATH"), "{e}");
        // PG_BIN_DIR alone when given.
        let e = find_bin_dir(Some(only_client.clone()), Some(path), &versions).unwrap_err();
        assert!(e.contains("PG_BIN_DIR="), "{e}");
    }
}
