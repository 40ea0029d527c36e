//! `netkit inspect`: the full socket table with owners, like `ss -tuanp`.

use anyhow::{Context, bail};

use super::filters::{apply_proto, check_pid, keep, user_filter};
use super::sockets_report::SocketsReport;
use crate::cli::inventory::InspectArgs;
use crate::inspect::{self, OwnerScope, Query, SockState};

/// Gathers the socket table with the filters applied.
///
/// # Errors
/// Unknown state, user or PID, or an unreadable socket table.
pub fn report(args: &InspectArgs) -> anyhow::Result<SocketsReport> {
    let uid = user_filter(args.user.as_deref())?;
    check_pid(args.pid)?;
    let mut q = Query {
        owners: OwnerScope::All,
        ..Query::default()
    };
    apply_proto(&mut q, args.filter);
    let state = match args.state.as_deref() {
        None => None,
        Some(s) => match SockState::parse(s) {
            Some(st) => Some(st),
            None => bail!(
                "unknown state {s:?}: use one of {}",
                SockState::ALL.map(|s| s.name()).join(", ")
            ),
        },
    };
    if let Some(st) = state {
        match st {
            SockState::Unconn => q.tcp = false,
            SockState::Established => q.tcp_states = vec![st],
            // The listener column of kernel-held rows needs the listeners too.
            SockState::TimeWait | SockState::FinWait2 => {
                q.udp = false;
                q.tcp_states = vec![st, SockState::Listen];
            }
            _ => {
                q.udp = false;
                q.tcp_states = vec![st];
            }
        }
    }
    let mut snap = inspect::snapshot(&q).context("reading the socket table")?;
    inspect::link_listeners(&mut snap.sockets);
    let sockets = snap
        .sockets
        .into_iter()
        .filter(|s| state.is_none_or(|st| s.state == st))
        .filter(|s| {
            args.port
                .is_none_or(|p| s.local_port == p || s.remote_port == Some(p))
        })
        .filter(|s| keep(s, args.pid, uid))
        .collect();
    Ok(SocketsReport {
        command: "inspect",
        port: args.port,
        sockets,
        notes: snap.notes,
        cmdline_column: false,
    })
}
