//! `netkit listening`: LISTEN and bound-only TCP sockets and bound UDP sockets, with owners.

use anyhow::Context;

use super::filters::{apply_proto, check_pid, keep, scope_of, snapshot_scoped, user_filter};
use super::sockets_report::SocketsReport;
use crate::cli::inventory::ListeningArgs;
use crate::inspect::{self, OwnerScope, Query, SockState};

/// Gathers the sockets that hold ports for servers.
///
/// # Errors
/// Unknown user or PID, or an unreadable socket table.
pub fn report(args: &ListeningArgs) -> anyhow::Result<SocketsReport> {
    let uid = user_filter(args.user.as_deref())?;
    check_pid(args.pid)?;
    let ports = args.port_set();
    let mut q = Query {
        tcp_states: vec![SockState::Listen, SockState::Bound],
        owners: OwnerScope::All,
        ..Query::default()
    };
    apply_proto(&mut q, args.filter);
    // The owner walk's survey runs while the kernel dumps.
    inspect::procfd::head_start(inspect::procfd::HeadStart::Survey);
    let snap =
        snapshot_scoped(&q, &ports, &scope_of(&args.ns)).context("reading the socket table")?;
    let mut sockets: Vec<_> = snap
        .sockets
        .into_iter()
        .filter(|s| s.is_binder())
        .filter(|s| keep(s, args.pid, uid))
        .collect();
    inspect::attribute_owners(&mut sockets);
    Ok(SocketsReport {
        command: "listening",
        port: ports.single(),
        sockets,
        notes: snap.notes,
        cmdline_column: false,
        cols: Default::default(),
    })
}
