//! Who holds a run: the identity of this process as written to `etl_runs.lease_owner`,
//! and whether the process an owner names is still alive.
//!
//! An owner is `host|boot-id|pid-namespace|pid|start-ticks`. Two owners with the same
//! boot id and pid namespace live on one kernel and see each other's pids, so a process
//! that no longer exists (or whose pid was reused: a different start time) is known to be
//! gone at once — that is how a `kill -9`ed `collector run` is found by the next one.
//! Anything else (another machine, another Lambda sandbox) is judged by the lease alone.

use std::sync::OnceLock;

/// What can be said about an owner from this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Gone,
    /// Another machine or pid namespace: only the lease tells.
    Unknown,
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Field 22 of /proc/PID/stat (start time in clock ticks since boot): with the pid it
/// names one process even when pids are reused.
fn start_ticks(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19).map(str::to_string)
}

fn pid_namespace() -> String {
    std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// This process's owner string.
pub fn owner() -> String {
    static OWNER: OnceLock<String> = OnceLock::new();
    OWNER
        .get_or_init(|| {
            let pid = std::process::id();
            format!(
                "{}|{}|{}|{pid}|{}",
                read_trimmed("/proc/sys/kernel/hostname"),
                read_trimmed("/proc/sys/kernel/random/boot_id"),
                pid_namespace(),
                start_ticks(pid).unwrap_or_default()
            )
        })
        .clone()
}

/// Whether the process `owner` names is alive, as far as this process can see.
pub fn liveness(owner: &str) -> Liveness {
    let theirs: Vec<&str> = owner.split('|').collect();
    let mine_owned = self::owner();
    let mine: Vec<&str> = mine_owned.split('|').collect();
    if theirs.len() != 5 || mine.len() != 5 {
        return Liveness::Unknown;
    }
    // Same kernel boot and pid namespace, both known: the pid is meaningful here.
    if theirs[1].is_empty() || theirs[1] != mine[1] || theirs[2].is_empty() || theirs[2] != mine[2]
    {
        return Liveness::Unknown;
    }
    let Ok(pid) = theirs[3].parse::<u32>() else {
        return Liveness::Unknown;
    };
    match start_ticks(pid) {
        Some(ticks) if ticks == theirs[4] => Liveness::Alive,
        _ => Liveness::Gone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_dead_one_is_gone() {
        let me = owner();
        assert_eq!(me.split('|').count(), 5, "{me}");
        assert_eq!(liveness(&me), Liveness::Alive);
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let ticks = start_ticks(pid);
        child.wait().unwrap();
        let parts: Vec<&str> = me.split('|').collect();
        let dead = format!(
            "{}|{}|{}|{pid}|{}",
            parts[0],
            parts[1],
            parts[2],
            ticks.unwrap_or_else(|| "1".into())
        );
        assert_eq!(liveness(&dead), Liveness::Gone);
        assert_eq!(liveness("elsewhere|other-boot|ns|1|1"), Liveness::Unknown);
        assert_eq!(liveness("garbage"), Liveness::Unknown);
    }
}
