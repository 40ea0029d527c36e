//! Port forwarders that listen on the host for a container: `docker-proxy`, `slirp4netns`,
//! `rootlessport`, `pasta`. The listener's owner is the forwarder, but the user means the
//! container behind it; where the forwarder's command line says where it forwards, netkit
//! names that.
//!
//! - `docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port 8080 -container-ip 172.17.0.2
//!   -container-port 80` (moby's `cmd/docker-proxy`; newer versions also pass
//!   `-use-listen-fd`): the target is an address inside a container's namespace.
//! - `slirp4netns ... [--netns-type=path] PID|PATH TAPNAME`: the namespace is on the command
//!   line (a PID or a path); ports are added later over its API socket, so only the namespace
//!   is known.
//! - `rootlessport` and `pasta` take their configuration over a pipe or from options that do
//!   not name the container: netkit says "forwarder" and names no container.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use super::netns::{self, Netns};
use super::{Owner, Proto, Query, SockState, cgroup, diag, procfd};

/// Where a forwarder sends what it accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// An address and port (`docker-proxy -container-ip -container-port`).
    Addr {
        /// The container's address.
        target_addr: IpAddr,
        /// The container's port.
        target_port: u16,
    },
    /// The namespace of a process (`slirp4netns PID tap0`).
    NetnsPid {
        /// That process.
        pid: u32,
    },
    /// A namespace file (`slirp4netns --netns-type=path PATH tap0`).
    NetnsPath {
        /// The file.
        path: PathBuf,
    },
    /// The command line does not say.
    Unknown,
}

/// A forwarder process recognised from its command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Forwarder {
    /// `docker-proxy`, `slirp4netns`, `rootlessport`, `pasta`.
    pub tool: &'static str,
    /// Where it forwards.
    pub target: Target,
}

/// Recognises a forwarder from its argv (`/proc/PID/cmdline` split at NULs).
pub fn parse(argv: &[&str]) -> Option<Forwarder> {
    let exe = argv.first()?;
    let base = exe.rsplit('/').next().unwrap_or(exe);
    match base {
        "docker-proxy" => Some(Forwarder {
            tool: "docker-proxy",
            target: docker_proxy(argv),
        }),
        "slirp4netns" => Some(Forwarder {
            tool: "slirp4netns",
            target: slirp4netns(argv),
        }),
        "rootlessport" | "rootlessport-child" => Some(Forwarder {
            tool: "rootlessport",
            target: Target::Unknown,
        }),
        "pasta" | "pasta.avx2" => Some(Forwarder {
            tool: "pasta",
            target: Target::Unknown,
        }),
        _ => None,
    }
}

/// Value of `-flag V`, `--flag V`, `-flag=V` or `--flag=V` (Go's flag package accepts all four).
fn flag<'a>(argv: &[&'a str], name: &str) -> Option<&'a str> {
    let mut it = argv.iter().skip(1);
    while let Some(a) = it.next() {
        let bare = a.trim_start_matches('-');
        if bare.len() == a.len() {
            continue;
        }
        if bare == name {
            return it.next().copied();
        }
        if let Some(v) = bare.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
            return Some(v);
        }
    }
    None
}

fn docker_proxy(argv: &[&str]) -> Target {
    let ip = flag(argv, "container-ip").and_then(|s| s.parse().ok());
    let port = flag(argv, "container-port").and_then(|s| s.parse().ok());
    match (ip, port) {
        (Some(target_addr), Some(target_port)) => Target::Addr {
            target_addr,
            target_port,
        },
        _ => Target::Unknown,
    }
}

fn slirp4netns(argv: &[&str]) -> Target {
    // Positional arguments: everything that is not an option or an option's value. Options
    // taking a separate value in slirp4netns(1): -c/--configure takes none; these do.
    const WITH_VALUE: &[&str] = &[
        "-e",
        "--exit-fd",
        "-r",
        "--ready-fd",
        "-m",
        "--mtu",
        "-a",
        "--api-socket",
        "--cidr",
        "--netns-type",
        "--userns-path",
        "--outbound-addr",
        "--outbound-addr6",
        "--macaddress",
        "--target-type",
    ];
    let mut positional = Vec::new();
    let mut it = argv.iter().skip(1);
    while let Some(a) = it.next() {
        if a.starts_with('-') {
            if !a.contains('=') && WITH_VALUE.contains(a) {
                it.next();
            }
            continue;
        }
        positional.push(*a);
    }
    let path_type = flag(argv, "netns-type") == Some("path");
    match positional.first() {
        Some(p) if path_type || p.contains('/') => Target::NetnsPath { path: p.into() },
        Some(p) => match p.parse() {
            Ok(pid) => Target::NetnsPid { pid },
            Err(_) => Target::Unknown,
        },
        None => Target::Unknown,
    }
}

/// The process names (`/proc/PID/comm`) of the forwarders [`parse`] knows.
pub fn is_forwarder_name(comm: &str) -> bool {
    matches!(
        comm,
        "docker-proxy"
            | "slirp4netns"
            | "rootlessport"
            | "rootlessport-ch"
            | "pasta"
            | "pasta.avx2"
    )
}

/// Where a forwarder that holds a port really sends its connections, with the evidence: the
/// arguments that say so, the namespace that owns the target address, and the process
/// listening there. JSON: `owners[].forwards_to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Forwarding {
    /// `docker-proxy`, `slirp4netns`, `rootlessport`, `pasta`.
    pub tool: &'static str,
    /// The command-line arguments that name the target (`-container-ip 172.17.0.2
    /// -container-port 80`), as the forwarder was started.
    pub args: Vec<String>,
    /// The container's address (`-container-ip`), where the command line names it.
    pub target_addr: Option<IpAddr>,
    /// The container's port (`-container-port`).
    pub target_port: Option<u16>,
    /// The network namespace that owns `target_addr` (one of its interfaces has it), or the
    /// one the command line names (slirp4netns); `None` when none was found or entering the
    /// namespaces was not allowed (root only).
    pub netns: Option<Arc<Netns>>,
    /// The process listening on `target_port` in that namespace (with its unit/container):
    /// the one that really serves the port.
    pub listener: Option<Owner>,
    /// The container behind it: the listener's, else that of a process of the namespace.
    pub container: Option<cgroup::Container>,
}

impl Forwarding {
    /// `docker:3f9a1c2b7e4d 172.17.0.2:80`, `nk-web 10.0.0.2:80`, `? 172.17.0.2:80`.
    pub fn label(&self) -> String {
        let whose = match (&self.container, &self.netns) {
            (Some(c), _) => c.label(),
            (None, Some(n)) => n.label(),
            (None, None) => "?".to_string(),
        };
        match (self.target_addr, self.target_port) {
            (Some(a), Some(p)) => format!("{whose} {}", super::fmt_endpoint(a, p)),
            _ => whose,
        }
    }
}

/// Finds where forwarders forward, entering each namespace at most once per resolver (the
/// addresses of every namespace are read on first use, only when a forwarder is an owner).
#[derive(Debug, Default)]
pub struct Resolver {
    /// Each namespace with its interface addresses, once read.
    spaces: Option<Vec<(Arc<Netns>, Vec<IpAddr>)>>,
    /// Namespaces that could not be entered (not root).
    pub denied: usize,
}

impl Resolver {
    /// The forwarding of process `pid` when it is a forwarder whose command line names its
    /// target; `None` for any other process.
    pub fn resolve(&mut self, pid: u32) -> Option<Forwarding> {
        let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let text = String::from_utf8_lossy(&raw);
        let argv: Vec<&str> = text.split('\0').filter(|a| !a.is_empty()).collect();
        let f = parse(&argv)?;
        let mut out = Forwarding {
            tool: f.tool,
            args: evidence(&argv),
            target_addr: None,
            target_port: None,
            netns: None,
            listener: None,
            container: None,
        };
        match f.target {
            Target::Addr {
                target_addr,
                target_port,
            } => {
                out.target_addr = Some(target_addr);
                out.target_port = Some(target_port);
                out.netns = self.owner_of(target_addr);
                if let Some(ns) = &out.netns {
                    let proto = match flag(&argv, "proto") {
                        Some("udp") => Proto::Udp,
                        _ => Proto::Tcp,
                    };
                    out.listener = listener_in(ns, proto, target_addr, target_port);
                }
            }
            Target::NetnsPid { pid } => {
                out.netns = self.by_inode(netns::inode_of(&netns::NetnsSpec::Pid(pid)).ok());
            }
            Target::NetnsPath { path } => {
                out.netns = self.by_inode(netns::inode_of(&netns::NetnsSpec::Path(path)).ok());
            }
            Target::Unknown => {}
        }
        out.container = out
            .listener
            .as_ref()
            .and_then(|l| l.container.clone())
            .or_else(|| {
                out.netns.as_ref().and_then(|n| {
                    n.pids
                        .iter()
                        .find_map(|&p| cgroup::resolve(p).and_then(|a| a.container))
                })
            });
        Some(out)
    }

    fn spaces(&mut self) -> &[(Arc<Netns>, Vec<IpAddr>)] {
        if self.spaces.is_none() {
            let (all, _) = netns::list_all();
            let mut v = Vec::new();
            for ns in all {
                let addrs = if ns.current {
                    crate::ifaddrs::interface_addrs()
                } else {
                    netns::run_in(&ns.path, crate::ifaddrs::interface_addrs).and_then(|r| r)
                };
                match addrs {
                    Ok(a) => v.push((Arc::new(ns), a)),
                    Err(_) => self.denied += 1,
                }
            }
            self.spaces = Some(v);
        }
        self.spaces.as_deref().unwrap_or_default()
    }

    /// The namespace one of whose interfaces has `addr` (a container's own namespace, not
    /// the host's bridge: the host side has the gateway address, not the container's).
    fn owner_of(&mut self, addr: IpAddr) -> Option<Arc<Netns>> {
        let addr = super::canonical(addr);
        self.spaces()
            .iter()
            .find(|(_, a)| a.contains(&addr))
            .map(|(n, _)| n.clone())
    }

    fn by_inode(&mut self, inode: Option<u64>) -> Option<Arc<Netns>> {
        let inode = inode?;
        self.spaces()
            .iter()
            .find(|(n, _)| n.inode == inode)
            .map(|(n, _)| n.clone())
    }
}

/// The arguments of `argv` that say where it forwards (flag and value pairs, or the
/// positional namespace of slirp4netns).
fn evidence(argv: &[&str]) -> Vec<String> {
    const FLAGS: &[&str] = &["proto", "container-ip", "container-port", "netns-type"];
    let mut out = Vec::new();
    let mut it = argv.iter().skip(1);
    while let Some(a) = it.next() {
        let bare = a.trim_start_matches('-');
        if bare.len() == a.len() {
            continue;
        }
        let name = bare.split('=').next().unwrap_or(bare);
        if FLAGS.contains(&name) {
            out.push((*a).to_string());
            if !bare.contains('=')
                && let Some(v) = it.next()
            {
                out.push((*v).to_string());
            }
        }
    }
    if out.is_empty() {
        // slirp4netns: the namespace is positional.
        out = argv.iter().skip(1).map(|a| (*a).to_string()).collect();
    }
    out
}

/// The process listening on `addr:port` (or the wildcard) inside `ns`, with its unit or
/// container.
fn listener_in(ns: &Netns, proto: Proto, addr: IpAddr, port: u16) -> Option<Owner> {
    let q = Query {
        tcp: proto == Proto::Tcp,
        udp: proto == Proto::Udp,
        local_port: Some(port),
        tcp_states: vec![SockState::Listen],
        ..Query::default()
    };
    let dump = || diag::query(&q);
    let sockets = if ns.current {
        dump().ok()?
    } else {
        netns::run_in(&ns.path, dump).ok()?.ok()?
    };
    let addr = super::canonical(addr);
    let inodes: HashSet<u64> = sockets
        .iter()
        .filter(|s| s.is_binder() && s.inode != 0)
        .filter(|s| s.local_addr.is_unspecified() || super::canonical(s.local_addr) == addr)
        .map(|s| s.inode)
        .collect();
    if inodes.is_empty() {
        return None;
    }
    let (owners, _): (HashMap<u64, Vec<Arc<Owner>>>, _) =
        super::owners_by_inode(&inodes, procfd::Reach::First);
    let first = owners.values().flatten().next()?;
    let mut o = Owner::clone(first);
    if let Some(a) = cgroup::resolve(o.pid) {
        o.unit = a.unit;
        o.container = a.container;
    }
    Some(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_proxy_names_the_container_address() {
        // As moby's daemon starts it (libnetwork/portmapper/proxy_linux.go).
        let argv = [
            "/usr/bin/docker-proxy",
            "-proto",
            "tcp",
            "-host-ip",
            "0.0.0.0",
            "-host-port",
            "8080",
            "-container-ip",
            "172.17.0.2",
            "-container-port",
            "80",
        ];
        let f = parse(&argv).expect("docker-proxy");
        assert_eq!(
            f.target,
            Target::Addr {
                target_addr: "172.17.0.2".parse().expect("ip"),
                target_port: 80
            }
        );
        let argv = [
            "docker-proxy",
            "--container-ip=fd00::2",
            "--container-port=443",
            "-use-listen-fd",
        ];
        assert!(matches!(
            parse(&argv).map(|f| f.target),
            Some(Target::Addr {
                target_port: 443,
                ..
            })
        ));
    }

    #[test]
    fn slirp4netns_names_the_namespace() {
        let argv = [
            "/usr/bin/slirp4netns",
            "--disable-host-loopback",
            "--mtu=65520",
            "--enable-sandbox",
            "--enable-seccomp",
            "-c",
            "-e",
            "3",
            "-r",
            "4",
            "--netns-type=path",
            "/run/user/1000/netns/netns-8a4b",
            "tap0",
        ];
        assert_eq!(
            parse(&argv).map(|f| f.target),
            Some(Target::NetnsPath {
                path: "/run/user/1000/netns/netns-8a4b".into()
            })
        );
        let argv = [
            "slirp4netns",
            "--configure",
            "--mtu",
            "65520",
            "4242",
            "tap0",
        ];
        assert_eq!(
            parse(&argv).map(|f| f.target),
            Some(Target::NetnsPid { pid: 4242 })
        );
    }

    #[test]
    fn the_evidence_is_the_arguments_that_name_the_target() {
        let argv = [
            "/usr/bin/docker-proxy",
            "-proto",
            "tcp",
            "-host-ip",
            "0.0.0.0",
            "-host-port",
            "8080",
            "-container-ip",
            "172.17.0.2",
            "-container-port",
            "80",
            "-use-listen-fd",
        ];
        assert_eq!(
            evidence(&argv),
            [
                "-proto",
                "tcp",
                "-container-ip",
                "172.17.0.2",
                "-container-port",
                "80"
            ]
        );
        assert_eq!(
            evidence(&["docker-proxy", "--container-ip=fd00::2"]),
            ["--container-ip=fd00::2"]
        );
        assert!(is_forwarder_name("docker-proxy"));
        assert!(!is_forwarder_name("python3"));
    }

    #[test]
    fn this_namespace_has_loopback() {
        assert!(
            crate::ifaddrs::interface_addrs()
                .unwrap()
                .contains(&IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
        );
    }

    #[test]
    fn others_are_forwarders_without_a_target_or_not_forwarders() {
        assert_eq!(
            parse(&["rootlessport"]).map(|f| f.target),
            Some(Target::Unknown)
        );
        assert_eq!(parse(&["/usr/bin/python3", "-m", "http.server"]), None);
        assert_eq!(parse(&[]), None);
        assert_eq!(
            parse(&["docker-proxy", "-container-ip", "nope"]).map(|f| f.target),
            Some(Target::Unknown)
        );
    }
}
