//! `netkit who-owns PORT`: every socket on a local port and the processes holding it.

use anyhow::Context;

use super::filters::{apply_proto, snapshot_ports};
use super::sockets_report::SocketsReport;
use crate::cli::inventory::WhoOwnsArgs;
use crate::cli::port::PortSet;
use crate::inspect::{self, OwnerScope, Query, SockState};

/// Gathers the sockets on the ports asked, with owners and, for kernel-held rows, the listener.
///
/// # Errors
/// When the socket table cannot be read.
pub fn report(args: &WhoOwnsArgs) -> anyhow::Result<SocketsReport> {
    let ports = args.port_set();
    let mut q = Query {
        owners: OwnerScope::All,
        ..Query::default()
    };
    apply_proto(&mut q, args.filter);
    let snap = snapshot_ports(&q, &ports).context("reading the socket table")?;
    let single = ports.single();
    // `timewait --port` takes one port; with several, point at the plain listing.
    let tw_cmd = match single {
        Some(p) => format!("netkit timewait --port {p}"),
        None => "netkit timewait".to_string(),
    };
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
            "{kernel_held} socket(s) in TIME_WAIT/FIN_WAIT2 belong to no process; the kernel drops them by itself, the last in {:.1}s (see `{tw_cmd}`)",
            latest as f64 / 1000.0,
        ));
    }
    if sockets.iter().any(|s| s.state == SockState::Bound) {
        notes.push(format!(
            "BOUND sockets called bind() but not listen(): they hold {} yet `ss -tlnp` does not show them",
            port_words(&ports)
        ));
    }
    if sockets.is_empty() {
        notes.push(format!(
            "nothing holds {} ({})",
            port_words(&ports),
            what_was_searched(args, &ports)
        ));
    }
    Ok(SocketsReport {
        command: "who-owns",
        port: single,
        sockets,
        notes,
        cmdline_column: true,
    })
}

/// `local port 6000`, `local ports 6000, 6001/udp`.
pub fn port_words(ports: &PortSet) -> String {
    match ports.single() {
        Some(p) if ports.0.len() == 1 && ports.0[0].text.trim() == p.to_string() => {
            format!("local port {p}")
        }
        _ if ports.0.len() == 1 && ports.0[0].is_one() => {
            format!("local port {}", ports.describe())
        }
        _ => format!("local ports {}", ports.describe()),
    }
}

/// `TCP or UDP, IPv4 or IPv6, any state`, narrowed as the flags and suffixes narrowed it.
fn what_was_searched(args: &WhoOwnsArgs, ports: &PortSet) -> String {
    let (mut tcp, mut udp) = ports.protos();
    if args.filter.tcp || args.filter.udp {
        tcp &= args.filter.tcp;
        udp &= args.filter.udp;
    }
    let (mut v4, mut v6) = (true, true);
    if args.filter.v4 || args.filter.v6 {
        v4 = args.filter.v4;
        v6 = args.filter.v6;
    }
    let protos = match (tcp, udp) {
        (true, true) => "TCP or UDP",
        (true, false) => "TCP",
        _ => "UDP",
    };
    let families = match (v4, v6) {
        (true, true) => "IPv4 or IPv6",
        (true, false) => "IPv4",
        _ => "IPv6",
    };
    format!("{protos}, {families}, any state")
}
