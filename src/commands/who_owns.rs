//! `netkit who-owns PORT`: every socket on a local port and the processes holding it.

use anyhow::Context;

use super::filters::{
    apply_proto, check_pid, keep, link_accept_queue, scope_of, snapshot_scoped, user_filter,
};
use super::sockets_report::SocketsReport;
use crate::cli::inventory::WhoOwnsArgs;
use crate::cli::port::PortSet;
use crate::inspect::multi::Scope;
use crate::inspect::{self, OwnerScope, Query, SockState, procfd};

/// Gathers the sockets on the ports asked, with owners and, for kernel-held rows, the listener.
///
/// # Errors
/// When the socket table cannot be read.
pub fn report(args: &WhoOwnsArgs) -> anyhow::Result<SocketsReport> {
    let ports = args.port_set();
    let uid = user_filter(args.user.as_deref())?;
    check_pid(args.pid)?;
    let mut q = Query {
        owners: OwnerScope::All,
        ..Query::default()
    };
    apply_proto(&mut q, args.filter);
    let scope = scope_of(&args.ns);
    // The owner walk's survey runs while the kernel dumps.
    procfd::head_start(procfd::HeadStart::Survey);
    let mut snap = snapshot_scoped(&q, &ports, &scope).context("reading the socket table")?;
    // Nothing here: a container (another network namespace) may hold the port. Look before
    // saying "nothing" (root only: entering a namespace needs CAP_SYS_ADMIN).
    let mut elsewhere = false;
    if snap.sockets.is_empty()
        && scope == Scope::Here
        && !args.here
        && args.ns.netns.is_none()
        && procfd::is_root()
    {
        // Only sockets that hold the port for a server there (LISTEN, BOUND, UNCONN): a
        // container's client connection that happens to use the same ephemeral port is not
        // what "who holds my port" asks about.
        let mut others = snapshot_scoped(&q, &ports, &Scope::Others)
            .context("reading the other network namespaces")?;
        others.sockets.retain(|s| s.is_binder());
        if !others.sockets.is_empty() {
            elsewhere = true;
            snap = others;
        }
    }
    let single = ports.single();
    // `timewait --port` takes one port; with several, point at the plain listing.
    let tw_cmd = match single {
        Some(p) => format!("netkit timewait --port {p}"),
        None => "netkit timewait".to_string(),
    };
    let mut sockets = snap.sockets;
    inspect::link_listeners(&mut sockets);
    link_accept_queue(&mut sockets);
    sockets.retain(|s| keep(s, args.pid, uid) && (!args.listening || s.is_binder()));
    inspect::attribute_owners(&mut sockets);
    let mut notes = snap.notes;
    if elsewhere {
        let mut names: Vec<String> = sockets
            .iter()
            .filter_map(|s| s.netns.as_ref().map(|n| n.label()))
            .collect();
        names.sort();
        names.dedup();
        notes.push(format!(
            "nothing holds {} in this network namespace; the socket(s) above are in {} ({}): not reachable from here unless the port is published or forwarded (docker -p, a port forwarder); --here looks only here",
            port_words(&ports),
            if names.len() == 1 { "another namespace".to_string() } else { format!("{} other namespaces", names.len()) },
            names.join(", ")
        ));
    }
    forwarder_notes(&sockets, &mut notes);
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
        cols: Default::default(),
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

/// One hint per port forwarder (docker-proxy, ...) holding a listed socket: where it forwards,
/// the arguments that say so, the namespace that owns that address and the process listening
/// there, or why it could not be told.
fn forwarder_notes(sockets: &[inspect::SocketEntry], notes: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    for s in sockets.iter().filter(|s| s.is_binder()) {
        for o in &s.owners {
            let Some(f) = &o.forwards_to else { continue };
            if !seen.insert((o.pid, s.local_port)) {
                continue;
            }
            let target = match (f.target_addr, f.target_port) {
                (Some(a), Some(p)) => inspect::fmt_endpoint(a, p),
                _ => {
                    notes.push(format!(
                        "PID {} ({}) is a port forwarder; its command line does not say where it forwards port {}",
                        o.pid, f.tool, s.local_port
                    ));
                    continue;
                }
            };
            let mut line = format!(
                "port {} is held by {} (PID {}), which forwards it to {target} (its arguments: {})",
                s.local_port,
                f.tool,
                o.pid,
                f.args.join(" ")
            );
            match &f.netns {
                Some(ns) => {
                    line.push_str(&format!(
                        "; {} is an address of network namespace {}{}",
                        f.target_addr.map(|a| a.to_string()).unwrap_or_default(),
                        ns.label(),
                        f.container
                            .as_ref()
                            .map(|c| format!(" (container {})", c.label()))
                            .unwrap_or_default()
                    ));
                    match &f.listener {
                        Some(l) => line.push_str(&format!(
                            ", where PID {} ({}) listens on it: that process serves port {}",
                            l.pid, l.command, s.local_port
                        )),
                        None => line.push_str(&format!(
                            ", but nothing listens on port {} there: connections to {} will be refused or reset",
                            f.target_port.unwrap_or(0),
                            s.local_port
                        )),
                    }
                }
                None if !procfd::is_root() => line.push_str(
                    "; finding the namespace that owns that address needs root (entering namespaces)",
                ),
                None => line.push_str("; no network namespace on this host has that address"),
            }
            notes.push(line);
        }
    }
}
