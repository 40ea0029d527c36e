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

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Serialize;

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
