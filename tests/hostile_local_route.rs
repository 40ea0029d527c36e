//! Issue 11, attack 1: a blocklist bypass through a local-route address. After `ip addr add
//! 10.98.0.1/24 dev lo` the kernel delivers the whole /24 locally, so with `--allow
//! 10.98.0.0/24` a request to 10.98.0.2:7777 reached a wildcard listener on port 7777
//! despite the default block of 127.0.0.1:7777 (the proxy only knew getifaddrs' 10.98.0.1).
//! The same with a `local` route on a veth (no interface address at all) and with IPv6.
//! Each test runs in a private network namespace (root only; skipped otherwise).

mod support;

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use support::cli::netkit_bin;
use support::eventually;
use support::netns::{Inside, enter_netns};
use support::proxy::{DoneServer, ProxyProc, ask_until_close, lab_request};

const SETUP: &str = "ip addr add 10.98.0.1/24 dev lo; \
    ip link add nk-hostile-a type veth peer name nk-hostile-b; \
    ip link set nk-hostile-a up; ip link set nk-hostile-b up; \
    ip route add local 10.97.0.0/24 dev nk-hostile-a table local; \
    ip -6 route add local fd98::/64 dev nk-hostile-a table local";

const ALLOW: [&str; 6] = [
    "--allow",
    "10.98.0.0/24",
    "--allow",
    "10.97.0.0/24",
    "--allow",
    "fd98::/64",
];

const LOCAL_BY_ROUTE: [&str; 3] = ["10.98.0.2", "10.97.0.5", "fd98::2"];

fn at(ip: &str, port: u16) -> SocketAddr {
    let ip: std::net::IpAddr = ip.parse().unwrap();
    SocketAddr::new(ip, port)
}

#[test]
fn local_route_addresses_count_as_this_host_for_the_blocklist() {
    if !enter_netns(
        "local_route_addresses_count_as_this_host_for_the_blocklist",
        Inside {
            setup: SETUP,
            ..Inside::default()
        },
    ) {
        return;
    }
    // A wildcard listener on the blocked port (dual-stack [::]) and an allowed one.
    let blocked = DoneServer::bind("[::]:7777", Duration::ZERO);
    let open = DoneServer::bind("[::]:0", Duration::ZERO);
    // The kernel really delivers these addresses to the wildcard listener: the attack works.
    for ip in LOCAL_BY_ROUTE {
        TcpStream::connect_timeout(&at(ip, 7777), Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("{ip}:7777 not local in the namespace: {e}"));
    }
    assert!(
        eventually(Duration::from_secs(20), || {
            blocked.conns() == LOCAL_BY_ROUTE.len()
        }),
        "timed out waiting for direct connections counted"
    );
    let seen = blocked.conns();
    let p = ProxyProc::start(&ALLOW);
    for ip in LOCAL_BY_ROUTE {
        assert_eq!(
            ask_until_close(p.addr, lab_request(ip, 7777, "tgmr").as_bytes()),
            "Error, not allowed address",
            "{ip}:7777 slipped past --block 127.0.0.1:7777"
        );
        // The allow list still works for the other port: the refusal is the blocklist's.
        assert_eq!(
            ask_until_close(p.addr, lab_request(ip, open.port(), "tgmr").as_bytes()),
            "DONE"
        );
    }
    assert_eq!(blocked.conns(), seen, "the blocked listener was reached");
    let lines = p.stdout().join("\n");
    assert!(
        lines.contains("blocked by --block 127.0.0.1:7777"),
        "{lines}"
    );
}

#[test]
fn relay_to_a_local_route_address_of_a_blocked_port_is_refused_at_start() {
    if !enter_netns(
        "relay_to_a_local_route_address_of_a_blocked_port_is_refused_at_start",
        Inside {
            setup: SETUP,
            ..Inside::default()
        },
    ) {
        return;
    }
    for target in ["10.98.0.2:7777", "10.97.0.5:7777", "[fd98::2]:7777"] {
        let out = Command::new(netkit_bin())
            .args(["run", "proxy", "--listen", "127.0.0.1:0", "--relay", target])
            .args(ALLOW)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "--relay {target} started: {err}"
        );
        assert!(err.contains("blocked by --block 127.0.0.1:7777"), "{err}");
    }
}
