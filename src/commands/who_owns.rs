//! `netkit who-owns PORT`: every socket on a local port and the processes holding it.

use anyhow::Context;

use super::filters::apply_proto;
use super::sockets_report::SocketsReport;
use crate::cli::inventory::WhoOwnsArgs;
use crate::inspect::{self, OwnerScope, Query, SockState};

/// Gathers the sockets on `args.port`, with owners and, for kernel-held rows, the listener.
///
/// # Errors
/// When the socket table cannot be read.
pub fn report(args: &WhoOwnsArgs) -> anyhow::Result<SocketsReport> {
    let mut q = Query {
        local_port: Some(args.port),
        owners: OwnerScope::All,
        ..Query::default()
    };
    apply_proto(&mut q, args.filter);
    let snap = inspect::snapshot(&q).context("reading the socket table")?;
    let mut sockets = snap.sockets;
    inspect::link_listeners(&mut sockets);
    let mut notes = snap.notes;
    let kernel_held = sockets.iter().filter(|s| s.is_ownerless()).count();
    if kernel_held > 0 {
        let latest = sockets
            .iter()
            .filter(|s| s.is_ownerless())
            .filter_map(|s| s.expires_ms)
            .max()
            .unwrap_or(0);
        notes.push(format!(
            "{kernel_held} socket(s) in TIME_WAIT/FIN_WAIT2 belong to no process; the kernel drops them by itself, the last in {:.1}s (see `netkit timewait --port {}`)",
            latest as f64 / 1000.0,
            args.port
        ));
    }
    if sockets.iter().any(|s| s.state == SockState::Bound) {
        notes.push(format!(
            "BOUND sockets called bind() but not listen(): they hold port {} yet `ss -tlnp` does not show them",
            args.port
        ));
    }
    Ok(SocketsReport {
        command: "who-owns",
        port: Some(args.port),
        sockets,
        notes,
        cmdline_column: true,
    })
}
