//! The connect side (`netkit explain --connect HOST:PORT`): a real trial connect to every
//! address HOST resolves to, within a bounded timeout, then the causes from this host's
//! inventory: nothing listens, it listens on another address or family (`localhost` → ::1
//! while the server has 127.0.0.1 only), the listener's accept queue is full, the listener
//! lives in another network namespace, the source ports ran out or the 4-tuple is taken
//! (BIND-RULES.md rules 12, 13), or the SYN got no answer (what netkit cannot see).
//!
//! The probe closes with an RST (`sockopt::probe_connect`), so it leaves no TIME_WAIT; a
//! server that accepts it sees one connection that is reset at once.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use super::causes::{Cause, holder_text};
use super::port::{Check, ExplainError, ExplainReport};
use super::trial::{TrialOpts, errno_name};
use crate::inspect::{
    self, Family, OwnerScope, Proto, Query, SockState, SocketEntry, canonical, fmt_endpoint, sysctl,
};

/// What to connect to.
#[derive(Debug, Clone)]
pub struct DialRequest {
    /// A host name or address, as the user typed it (`localhost`, `[::1]`, `10.0.0.7`).
    pub host: String,
    /// The port.
    pub port: u16,
    /// How long each trial connect may take.
    pub timeout: Duration,
}

/// Parses `HOST:PORT` (`[::1]:8080`, `localhost:5432`, `127.0.0.1:80`).
///
/// ```
/// use netkit::explain::dial::split_host_port;
/// assert_eq!(split_host_port("[::1]:8080"), Some(("::1".to_string(), 8080)));
/// assert_eq!(split_host_port("localhost:5432"), Some(("localhost".to_string(), 5432)));
/// assert_eq!(split_host_port("::1"), None);
/// ```
pub fn split_host_port(s: &str) -> Option<(String, u16)> {
    let s = s.trim();
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once("]:")?;
        (h, p)
    } else {
        let (h, p) = s.rsplit_once(':')?;
        if h.contains(':') {
            return None;
        }
        (h, p)
    };
    let port = port.parse().ok()?;
    (!host.is_empty()).then(|| (host.to_string(), port))
}

/// One trial connect's result.
#[derive(Debug, Clone, Copy)]
struct Tried {
    addr: SocketAddr,
    errno: Option<i32>,
}

/// Runs the trial connects and explains the outcome.
///
/// # Errors
/// When HOST does not resolve; an unreadable inventory becomes a note.
pub fn dial(req: &DialRequest) -> Result<ExplainReport, ExplainError> {
    let host = req.host.trim_start_matches('[').trim_end_matches(']');
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for a in (host, req.port)
        .to_socket_addrs()
        .map_err(|e| ExplainError::Resolve(req.host.clone(), e))?
    {
        if !addrs.contains(&a) && addrs.len() < 8 {
            addrs.push(a);
        }
    }
    let Some(&first) = addrs.first() else {
        return Err(ExplainError::Resolve(
            req.host.clone(),
            std::io::Error::other("no addresses"),
        ));
    };
    // 1. The trials.
    let tried: Vec<Tried> = addrs
        .iter()
        .map(|&a| Tried {
            addr: a,
            errno: crate::sockopt::probe_connect(a, req.timeout)
                .err()
                .map(|e| e.errno().unwrap_or(libc::EIO)),
        })
        .collect();
    let mut notes = Vec::new();
    if addrs.len() > 1 || host.parse::<IpAddr>().is_err() {
        notes.push(format!(
            "{} resolved to {} (in this order; a client that tries only the first gets the first result)",
            req.host,
            addrs
                .iter()
                .map(|a| a.ip().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    // 2. The inventory: every TCP listener on the port, owners resolved.
    let q = Query {
        udp: false,
        tcp_states: vec![SockState::Listen],
        local_port: Some(req.port),
        owners: OwnerScope::All,
        ..Query::default()
    };
    let listeners = match inspect::snapshot(&q) {
        Ok(s) => {
            notes.extend(s.notes);
            s.sockets
                .into_iter()
                .filter(|s| s.state == SockState::Listen && s.local_port == req.port)
                .collect()
        }
        Err(e) => {
            notes.push(format!("the socket inventory could not be read ({e})"));
            Vec::new()
        }
    };
    let bindv6only = sysctl::bindv6only();
    let mut causes = Vec::new();
    let mut seen_kinds = HashSet::new();
    for t in &tried {
        for c in causes_for(t, &tried, &listeners, bindv6only, req) {
            if seen_kinds.insert((c.kind, c.message.clone())) {
                causes.push(c);
            }
        }
    }
    let connected = tried.iter().any(|t| t.errno.is_none());
    if connected {
        notes.push(
            "the trial connection was reset at once (SO_LINGER 0, no TIME_WAIT left): the server saw one connection that ended with ECONNRESET".into(),
        );
    }
    let verdict = tried
        .iter()
        .find(|t| t.errno.is_none())
        .copied()
        .unwrap_or(tried[0]);
    let checks = tried
        .iter()
        .map(|t| Check {
            what: format!("connect to {}", fmt_endpoint(t.addr.ip(), t.addr.port())),
            bindable: t.errno.is_none(),
            errno: t.errno.map(errno_name),
        })
        .collect();
    let mut trial = TrialOpts::plain(Proto::Tcp, verdict.addr.ip(), req.port);
    trial.listen = false;
    Ok(ExplainReport {
        mode: "connect",
        port: req.port,
        target_addr: Some(first.ip()),
        target_port: Some(req.port),
        bindable: None,
        connected: Some(connected),
        errno: verdict.errno.map(errno_name),
        errno_code: verdict.errno,
        stage: verdict.errno.map(|_| "connect"),
        trial,
        checks,
        causes,
        holders: Vec::new(),
        notes,
    })
}

/// Whether listener `l` accepts connections to `a` (same address, its family's wildcard, or
/// a dual-stack `[::]` for IPv4).
fn accepts(l: &SocketEntry, a: IpAddr, bindv6only: bool) -> bool {
    let dual = l.family == Family::Inet6 && !bindv6only;
    let a = canonical(a);
    let la = canonical(l.local_addr);
    match l.local_addr {
        IpAddr::V4(x) if x.is_unspecified() => a.is_ipv4(),
        IpAddr::V6(x) if x.is_unspecified() => a.is_ipv6() || dual,
        _ => la == a,
    }
}

/// True when `a` is an address of this host (a bind to it on port 0 passes).
fn is_local(a: IpAddr) -> bool {
    if a.is_loopback() {
        return true;
    }
    let t = TrialOpts {
        listen: false,
        ..TrialOpts::plain(Proto::Udp, a, 0)
    };
    super::trial::run(&t).ok
}

fn list(v: &[&SocketEntry]) -> String {
    v.iter()
        .map(|s| format!("{} ({})", s.local(), holder_text(s)))
        .collect::<Vec<_>>()
        .join("; ")
}

fn causes_for(
    t: &Tried,
    all: &[Tried],
    listeners: &[SocketEntry],
    bindv6only: bool,
    req: &DialRequest,
) -> Vec<Cause> {
    let a = t.addr;
    let target = fmt_endpoint(a.ip(), a.port());
    let covering: Vec<&SocketEntry> = listeners
        .iter()
        .filter(|l| accepts(l, a.ip(), bindv6only))
        .collect();
    let mut out = Vec::new();
    let Some(errno) = t.errno else {
        out.push(Cause {
            kind: "connected",
            message: if covering.is_empty() {
                format!(
                    "connect() to {target} succeeded; no listener on port {} is visible here, so another host (or namespace) answered",
                    a.port()
                )
            } else {
                format!(
                    "connect() to {target} succeeded: {} accepts it",
                    list(&covering)
                )
            },
            fix: "nothing to fix at the TCP level".into(),
            seconds_left: None,
            sockets: covering.into_iter().cloned().collect(),
        });
        return out;
    };
    let local = is_local(a.ip());
    match errno {
        libc::ECONNREFUSED if !local => out.push(Cause {
            kind: "refused_by_remote",
            message: format!(
                "{target} refused the connection (a TCP RST): {} is not an address of this host, so netkit cannot see its sockets; nothing listens there on port {}, or a firewall on the way rejects it",
                a.ip(),
                a.port()
            ),
            fix: format!(
                "on {}: `netkit who-owns {}` or `ss -tlnp 'sport = :{}'`; check that the server listens on that address (not only 127.0.0.1)",
                a.ip(),
                a.port(),
                a.port()
            ),
            seconds_left: None,
            sockets: Vec::new(),
        }),
        libc::ECONNREFUSED if covering.is_empty() && !listeners.is_empty() => {
            let ok_elsewhere: Vec<String> = all
                .iter()
                .filter(|o| o.errno.is_none())
                .map(|o| o.addr.ip().to_string())
                .collect();
            let l: Vec<&SocketEntry> = listeners.iter().collect();
            out.push(Cause {
                kind: "listens_elsewhere",
                message: format!(
                    "something listens on port {} but not on {}: {}. A listener takes connections only for its own address (or its family's wildcard; [::] also covers IPv4 only when dual-stack){}",
                    a.port(),
                    a.ip(),
                    list(&l),
                    if ok_elsewhere.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; {} resolved to {} too, and that one connects",
                            req.host,
                            ok_elsewhere.join(", ")
                        )
                    }
                ),
                fix: format!(
                    "dial the address it listens on ({}), or make the server listen on {} too (or on the wildcard {})",
                    listeners
                        .iter()
                        .map(|l| l.local_addr.to_string())
                        .collect::<HashSet<_>>()
                        .into_iter()
                        .collect::<Vec<_>>()
                        .join(", "),
                    a.ip(),
                    if a.is_ipv6() { "[::]" } else { "0.0.0.0" }
                ),
                seconds_left: None,
                sockets: listeners.to_vec(),
            });
        }
        libc::ECONNREFUSED if covering.is_empty() => match other_netns_listeners(a.port()) {
            found if !found.is_empty() => out.push(Cause {
                kind: "listener_in_other_netns",
                message: format!(
                    "nothing listens on port {} in netkit's network namespace, but {} in another one: a network namespace has its own sockets and its own loopback, so 127.0.0.1 there is not 127.0.0.1 here",
                    a.port(),
                    found
                        .iter()
                        .map(|(ns, l)| format!("{} listens on {} in {ns}", l.1, fmt_endpoint(l.0, a.port())))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                fix: "run the client in that namespace (`ip netns exec NAME ...`, `nsenter -t PID -n ...`, `docker exec`), or publish the port to this namespace (a veth pair, `docker run -p`)".into(),
                seconds_left: None,
                sockets: Vec::new(),
            }),
            _ => out.push(Cause {
                kind: "nothing_listens",
                message: format!(
                    "nothing listens on TCP port {} on this host (netkit's sock_diag sees every socket of this network namespace; {}), so the kernel answered the SYN with an RST: ECONNREFUSED",
                    a.port(),
                    if crate::inspect::procfd::is_root() {
                        "no other namespace visible to root has one either"
                    } else {
                        "other namespaces are visible to root only"
                    }
                ),
                fix: format!(
                    "start the server first (and check its log: did its bind fail? `netkit explain {}`), or dial the port it really uses (`netkit listening`)",
                    a.port()
                ),
                seconds_left: None,
                sockets: Vec::new(),
            }),
        },
        libc::ETIMEDOUT | libc::ECONNREFUSED => {
            let full: Vec<&SocketEntry> = covering
                .iter()
                .copied()
                .filter(|l| l.recv_q > l.send_q)
                .collect();
            if !full.is_empty() {
                out.push(Cause {
                    kind: "accept_queue_full",
                    message: format!(
                        "the listener's accept queue is full: {} — {} connection(s) wait for accept() with a backlog of {}. The kernel drops a SYN while the queue holds more than the backlog (sk_acceptq_is_full in tcp_conn_request, net/ipv4/tcp_input.c; counted in TcpExtListenOverflows), so clients retry and time out{}",
                        list(&full),
                        full[0].recv_q,
                        full[0].send_q,
                        if errno == libc::ECONNREFUSED {
                            " (or get RST with net.ipv4.tcp_abort_on_overflow=1)"
                        } else {
                            ""
                        }
                    ),
                    fix: "the server does not call accept() fast enough (blocked, single-threaded, stuck): fix or restart it; raise its listen() backlog (and net.core.somaxconn)".into(),
                    seconds_left: None,
                    sockets: full.into_iter().cloned().collect(),
                });
            } else if errno == libc::ETIMEDOUT {
                out.push(Cause {
                    kind: "timed_out",
                    message: format!(
                        "no answer from {target} within {:.1} s: the SYN was dropped. netkit sees this host's sockets only{}; it cannot see firewalls (nftables/iptables DROP rules), routing on the way, or a remote host that is down",
                        req.timeout.as_secs_f64(),
                        if covering.is_empty() {
                            String::new()
                        } else {
                            format!(
                                ", and here a listener exists ({}) with room in its queue",
                                list(&covering)
                            )
                        }
                    ),
                    fix: format!(
                        "check the path: `ip route get {}`, `nft list ruleset` (or `iptables -S`) on both ends, and that the host is up",
                        a.ip()
                    ),
                    seconds_left: None,
                    sockets: covering.into_iter().cloned().collect(),
                });
            } else {
                out.push(Cause {
                    kind: "refused_despite_listener",
                    message: format!(
                        "{target} refused although {} accepts that address: most likely a firewall rule rejects it (REJECT with tcp-reset), or the listener went away just now",
                        list(&covering)
                    ),
                    fix: format!("run `netkit explain --connect {target}` again; check `nft list ruleset`"),
                    seconds_left: None,
                    sockets: covering.into_iter().cloned().collect(),
                });
            }
        }
        libc::EADDRNOTAVAIL | libc::EADDRINUSE => {
            let q = Query {
                udp: false,
                owners: OwnerScope::None,
                ..Query::default()
            };
            let mut v = inspect::diag::query(&q).unwrap_or_default();
            v.retain(|s| s.remote_port == Some(a.port()));
            let _ = inspect::resolve_owners(&mut v, |_| true);
            let num = |p: &str, d: u8| sysctl::read(p).and_then(|v| v.parse().ok()).unwrap_or(d);
            let ev = super::connect::ConnectEvidence {
                local: None,
                remote: a,
                errno,
                sockets: &v,
                ephemeral: sysctl::ephemeral_range(),
                tw_reuse: num("net/ipv4/tcp_tw_reuse", 2),
                timestamps: num("net/ipv4/tcp_timestamps", 1),
            };
            out.extend(super::connect::diagnose(&ev));
        }
        libc::ENETUNREACH | libc::EHOSTUNREACH => out.push(Cause {
            kind: "no_route",
            message: format!(
                "connect() to {target} failed with {}: this host has no route to {} (or an ICMP unreachable came back)",
                errno_name(errno),
                a.ip()
            ),
            fix: format!("`ip route get {}`; check the interface and the default route", a.ip()),
            seconds_left: None,
            sockets: Vec::new(),
        }),
        _ => {}
    }
    if out.is_empty() {
        out.push(Cause {
            kind: "other_error",
            message: format!(
                "connect() to {target} failed with {} (errno {errno})",
                errno_name(errno)
            ),
            fix: "see connect(2) for this errno".into(),
            seconds_left: None,
            sockets: Vec::new(),
        });
    }
    out
}

/// Listeners on `port` in other network namespaces this process can see, read from
/// `/proc/PID/net/tcp{,6}` of one process per namespace (that file shows the namespace of
/// PID). Named namespaces (`/run/netns/NAME`, made by `ip netns add`) are named.
/// Returns (namespace description, (address, holder)).
fn other_netns_listeners(port: u16) -> Vec<(String, (IpAddr, String))> {
    use std::os::unix::fs::MetadataExt;
    let ns_of = |pid: &str| {
        std::fs::metadata(format!("/proc/{pid}/ns/net"))
            .ok()
            .map(|m| m.ino())
    };
    let Some(mine) = ns_of("self") else {
        return Vec::new();
    };
    let mut names = BTreeMap::new();
    if let Ok(d) = std::fs::read_dir("/run/netns") {
        for e in d.flatten() {
            if let Ok(m) = std::fs::metadata(e.path()) {
                names.insert(m.ino(), e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    let mut first_pid: BTreeMap<u64, String> = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for e in dir.flatten().take(200_000) {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Some(ns) = ns_of(&name)
            && ns != mine
        {
            first_pid.entry(ns).or_insert(name);
        }
    }
    let mut out = Vec::new();
    for (ns, pid) in first_pid {
        for (file, fam) in [("tcp", Family::Inet), ("tcp6", Family::Inet6)] {
            let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{file}")) else {
                continue;
            };
            let Ok(rows) = inspect::procnet::parse_table(&text, Proto::Tcp, fam) else {
                continue;
            };
            for r in rows
                .iter()
                .filter(|r| r.state == SockState::Listen && r.local_port == port)
            {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map(|c| c.trim().to_string())
                    .unwrap_or_default();
                let desc = match names.get(&ns) {
                    Some(n) => format!("network namespace {n} (net:[{ns}])"),
                    None => format!("network namespace net:[{ns}] (of PID {pid} {comm})"),
                };
                out.push((
                    desc,
                    (r.local_addr, format!("a socket (inode {})", r.inode)),
                ));
            }
        }
    }
    out
}
