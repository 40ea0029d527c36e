//! Turning CLI filter flags into an inspect `Query` and row predicates.

use anyhow::{Context, bail};

use crate::cli::inventory::ProtoFilter;
use crate::inspect::{Query, SocketEntry, users};

/// Applies --tcp/--udp/-4/-6 (none given = all).
pub fn apply_proto(q: &mut Query, f: ProtoFilter) {
    if f.tcp || f.udp {
        q.tcp = f.tcp;
        q.udp = f.udp;
    }
    if f.v4 || f.v6 {
        q.v4 = f.v4;
        q.v6 = f.v6;
    }
}

/// Resolves --user to a uid.
///
/// # Errors
/// When the name is not a known user.
pub fn user_filter(user: Option<&str>) -> anyhow::Result<Option<u32>> {
    match user {
        None => Ok(None),
        Some(u) => match users::uid_of(u) {
            Some(uid) => Ok(Some(uid)),
            None => bail!("no such user: {u:?}"),
        },
    }
}

/// Keeps sockets held by `pid` (when given) and owned by `uid` (when given).
pub fn keep(s: &SocketEntry, pid: Option<u32>, uid: Option<u32>) -> bool {
    pid.is_none_or(|p| s.owners.iter().any(|o| o.pid == p)) && uid.is_none_or(|u| s.uid == Some(u))
}

/// Checks that a PID exists, so `--pid 999999` says so instead of "nothing found".
///
/// # Errors
/// When /proc/PID does not exist.
pub fn check_pid(pid: Option<u32>) -> anyhow::Result<()> {
    if let Some(p) = pid {
        std::fs::metadata(format!("/proc/{p}"))
            .with_context(|| format!("no process with PID {p}"))?;
    }
    Ok(())
}
