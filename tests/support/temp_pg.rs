//! A throw-away PostgreSQL server for tests that freeze or kill their server (never the
//! shared one): `initdb` into a temporary directory, a free port on 127.0.0.1, trust
//! authentication, fsync off. Run as root, it runs the server as the `postgres` OS user
//! (PostgreSQL refuses root) in a directory that user owns. Binaries come from
//! `PG_BIN_DIR`, else the newest `/usr/lib/postgresql/*/bin`, else `PATH`.
//! Dropping it thaws and stops the server and removes the directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TempPostgres {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl TempPostgres {
    /// Starts a server and waits until it accepts connections (panics, with the
    /// server's log, when it cannot).
    pub async fn start() -> TempPostgres {
        let bin = bin_dir();
        let owner = run_as();
        let dir = std::env::temp_dir().join(format!("icx-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create the temporary server directory");
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown the directory");
        }
        let data = dir.join("data");
        let out = command(&bin.join("initdb"), owner)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale"])
            .arg("--no-sync")
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = free_port();
            let log = std::fs::File::create(dir.join("server.log")).expect("server log");
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::chown(dir.join("server.log"), Some(uid), Some(gid))
                    .expect("chown the log");
            }
            let child = command(&bin.join("postgres"), owner)
                .arg("-D")
                .arg(&data)
                .arg("-p")
                .arg(port.to_string())
                .arg("-k")
                .arg(&dir)
                .args(["-c", "listen_addresses=127.0.0.1"])
                .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
                .args(["-c", "full_page_writes=off", "-c", "max_connections=30"])
                .args(["-c", "shared_buffers=16MB"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("start postgres");
            let mut server = TempPostgres {
                dir: dir.clone(),
                port,
                child: Some(child),
            };
            if server.wait_ready().await {
                return server;
            }
            last_log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            server.stop();
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!("the temporary PostgreSQL server did not start:\n{last_log}");
    }

    async fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    return false;
                }
            }
            if let Ok(Ok((c, conn))) = tokio::time::timeout(
                Duration::from_secs(2),
                tokio_postgres::connect(&self.url(), tokio_postgres::NoTls),
            )
            .await
            {
                tokio::spawn(conn);
                if c.simple_query("SELECT 1").await.is_ok() {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgresql://postgres@127.0.0.1:PORT/postgres?sslmode=disable`.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// The URL of database `dbname` on this server.
    pub fn url_for(&self, dbname: &str) -> String {
        format!(
            "postgresql://postgres@127.0.0.1:{}/{dbname}?sslmode=disable",
            self.port
        )
    }

    /// The postmaster's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("server running")
    }

    /// SIGSTOP the postmaster, then every backend and helper: the server is frozen, its
    /// kernel still accepts connections and ACKs data.
    pub fn freeze(&self) {
        signal("STOP", &[self.pid()]);
        signal("STOP", &children(self.pid()));
    }

    /// SIGCONT, undoing [`TempPostgres::freeze`].
    pub fn thaw(&self) {
        signal("CONT", &children(self.pid()));
        signal("CONT", &[self.pid()]);
    }

    /// SIGKILL the postmaster and every backend: the server dies mid-connection.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id();
            let kids = children(pid);
            signal("KILL", &[pid]);
            signal("KILL", &kids);
            let _ = child.wait();
        }
    }

    /// Immediate shutdown (SIGQUIT: the postmaster ends its backends and cleans up).
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id();
        let kids = children(pid);
        signal("CONT", &kids);
        signal("CONT", &[pid]);
        signal("QUIT", &[pid]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let kids = children(pid);
        signal("KILL", &[pid]);
        signal("KILL", &kids);
        let _ = child.wait();
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn bin_dir() -> PathBuf {
    installed_bin_dir().unwrap_or_else(|| PathBuf::from(""))
}

/// The server binaries: `PG_BIN_DIR`, else the newest `/usr/lib/postgresql/*/bin`.
pub fn installed_bin_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("PG_BIN_DIR") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// As root: the `postgres` user's uid and gid.
fn run_as() -> Option<(u32, u32)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid: u32 = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    if uid != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    let line = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .expect("running as root needs a `postgres` OS user to run the test server");
    let fields: Vec<&str> = line.split(':').collect();
    Some((
        fields[2].parse().expect("postgres uid"),
        fields[3].parse().expect("postgres gid"),
    ))
}

fn command(program: &Path, owner: Option<(u32, u32)>) -> Command {
    use std::os::unix::process::CommandExt;
    let program = if program.as_os_str().is_empty() || !program.is_absolute() {
        PathBuf::from(program.file_name().expect("program name"))
    } else {
        program.to_path_buf()
    };
    let mut cmd = Command::new(program);
    cmd.env("LC_ALL", "C");
    if let Some((uid, gid)) = owner {
        cmd.uid(uid).gid(gid).env("HOME", "/tmp");
    }
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The direct children of `pid` (the postmaster's backends and helpers).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

fn signal(name: &str, pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .args(pids.iter().map(u32::to_string))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
