//! The proxy's blocklist and not-an-open-relay policy, against the real binary: one test per
//! bypass spelling (each first proves the spelling reaches the server when it is not blocked,
//! then that the block refuses it without touching the server), and the open-relay refusals
//! inside a private network namespace so a policy bug cannot send a packet off loopback.

mod support;

use std::time::Duration;

use support::eventually;
use support::netns::{Inside, enter_netns};
use support::proxy::{DoneServer, ProxyProc, ask_until_close, lab_request};

const NOT_ALLOWED: &str = "Error, not allowed address";

/// `spelling` reaches a dual-stack DONE server through an unguarded proxy, and a proxy with
/// `--block 127.0.0.1:PORT` refuses it without a connection reaching the server.
fn blocked_spelling_never_reaches_the_server(spelling: &str) {
    let srv = DoneServer::bind("[::]:0", Duration::ZERO);
    let port = srv.port();
    let req = lab_request(spelling, port, "tgmr");
    let open = ProxyProc::start(&["--no-default-block"]);
    assert_eq!(
        ask_until_close(open.addr, req.as_bytes()),
        "DONE",
        "{spelling} must reach the server when nothing blocks it"
    );
    let before = srv.conns();
    let block = format!("127.0.0.1:{port}");
    let guarded = ProxyProc::start(&["--no-default-block", "--block", &block]);
    assert_eq!(
        ask_until_close(guarded.addr, req.as_bytes()),
        NOT_ALLOWED,
        "{spelling}"
    );
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(srv.conns(), before, "{spelling} touched the blocked server");
}

macro_rules! spelling_is_blocked {
    ($($name:ident: $spelling:expr,)*) => {$(
        #[test]
        fn $name() {
            blocked_spelling_never_reaches_the_server($spelling);
        }
    )*};
}

spelling_is_blocked! {
    block_holds_for_dotted_quad: "127.0.0.1",
    block_holds_for_short_form_127_1: "127.1",
    block_holds_for_hex_0x7f: "0x7f.0.0.1",
    block_holds_for_single_number_2130706433: "2130706433",
    block_holds_for_octal_0177: "0177.0.0.1",
    block_holds_for_leading_zeros: "127.000.000.001",
    block_holds_for_trailing_dot: "127.0.0.1.",
    block_holds_for_v4_mapped_ipv6: "::ffff:127.0.0.1",
    block_holds_for_v4_mapped_hex: "::ffff:7f00:1",
    block_holds_for_bracketed_ipv6_loopback: "[::1]",
    block_holds_for_ipv6_loopback: "::1",
    block_holds_for_localhost: "localhost",
    block_holds_for_localhost_trailing_dot_and_case: "LocalHost.",
    block_holds_for_unspecified_0_0_0_0: "0.0.0.0",
    block_holds_for_unspecified_ipv6: "::",
    block_holds_for_other_loopback_address: "127.0.0.2",
}

#[test]
fn zone_id_is_a_bad_request_and_never_connects() {
    let srv = DoneServer::bind("[::]:0", Duration::ZERO);
    let p = ProxyProc::start(&["--no-default-block"]);
    for s in ["::1%lo", "[::1%1]", "fe80::1%lo"] {
        let r = ask_until_close(p.addr, lab_request(s, srv.port(), "x").as_bytes());
        assert!(r.starts_with("Error, bad request: "), "{s}: {r}");
        assert!(r.contains("zone"), "{s}: {r}");
    }
    assert_eq!(srv.conns(), 0);
}

#[test]
fn malformed_addresses_are_bad_requests() {
    let srv = DoneServer::start();
    let p = ProxyProc::start(&["--no-default-block"]);
    for s in [
        "127.0.0.256",
        "1.2.3.4.5",
        "127.0.0.1:8888",
        "",
        " 127.0.0.1",
        "08.0.0.1",
        "a b",
    ] {
        let r = ask_until_close(p.addr, lab_request(s, srv.port(), "x").as_bytes());
        assert!(r.starts_with("Error, bad request: "), "{s:?}: {r}");
    }
    assert_eq!(srv.conns(), 0);
}

#[test]
fn default_blocklist_refuses_the_lab_port_7777() {
    let p = ProxyProc::start(&[]);
    for s in [
        "127.0.0.1",
        "127.1",
        "0.0.0.0",
        "::ffff:127.0.0.1",
        "localhost",
    ] {
        assert_eq!(
            ask_until_close(p.addr, lab_request(s, 7777, "x").as_bytes()),
            NOT_ALLOWED,
            "{s}"
        );
    }
    let line = p.wait_line("blocked event", |l| l.contains("\"blocked\""));
    assert!(line.contains("127.0.0.1:7777"), "{line}");
}

#[test]
fn block_by_port_refuses_every_address() {
    let srv = DoneServer::start();
    let port = srv.port().to_string();
    let p = ProxyProc::start(&["--no-default-block", "--block", &port]);
    for s in ["127.0.0.1", "127.0.0.9", "::1"] {
        assert_eq!(
            ask_until_close(p.addr, lab_request(s, &port, "x").as_bytes()),
            NOT_ALLOWED
        );
    }
    assert_eq!(srv.conns(), 0);
}

#[test]
fn block_by_address_refuses_every_port() {
    let srv = DoneServer::bind("127.0.0.3:0", Duration::ZERO);
    let p = ProxyProc::start(&[
        "--no-default-block",
        "--block",
        "10.0.0.1",
        "--block",
        "127.0.0.3",
    ]);
    // 127.0.0.3 is an address of this host, so it stands for the host (every local address).
    let r = ask_until_close(p.addr, lab_request("127.0.0.3", srv.port(), "x").as_bytes());
    assert_eq!(r, NOT_ALLOWED);
    assert_eq!(srv.conns(), 0);
}

#[test]
fn block_by_cidr_refuses_addresses_inside_only() {
    let inside = DoneServer::bind("127.0.0.5:0", Duration::ZERO);
    let outside = DoneServer::bind("127.0.1.5:0", Duration::ZERO);
    let p = ProxyProc::start(&["--no-default-block", "--block", "127.0.0.0/24"]);
    let r = ask_until_close(
        p.addr,
        lab_request("127.0.0.5", inside.port(), "x").as_bytes(),
    );
    assert_eq!(r, NOT_ALLOWED);
    let r = ask_until_close(
        p.addr,
        lab_request("127.0.1.5", outside.port(), "x").as_bytes(),
    );
    assert_eq!(r, "DONE");
    assert_eq!((inside.conns(), outside.conns()), (0, 1));
}

#[test]
fn bad_block_entries_are_refused_at_start() {
    for bad in ["127.0.0.1:0", "10.0.0.0/40", "example.com", "1.2.3.4.5:80"] {
        let out = std::process::Command::new(support::cli::netkit_bin())
            .args(["run", "proxy", "--listen", "127.0.0.1:0", "--block", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("netkit: ") && err.lines().count() == 1,
            "{bad}: {err}"
        );
    }
}

// ---- open relay: inside a private network namespace (only lo exists) ----

#[test]
fn default_block_never_touches_7777_in_netns() {
    if !enter_netns(
        "default_block_never_touches_7777_in_netns",
        Inside::default(),
    ) {
        return;
    }
    // A fixed port is safe here: the namespace is ours alone.
    let srv = DoneServer::bind("127.0.0.1:7777", Duration::ZERO);
    let p = ProxyProc::start(&[]);
    assert_eq!(
        ask_until_close(p.addr, lab_request("127.0.0.1", 7777, "x").as_bytes()),
        NOT_ALLOWED
    );
    assert_eq!(srv.conns(), 0);
    let cleared = ProxyProc::start(&["--no-default-block"]);
    assert_eq!(
        ask_until_close(cleared.addr, lab_request("127.0.0.1", 7777, "x").as_bytes()),
        "DONE"
    );
    assert_eq!(srv.conns(), 1);
}

fn refused_in_netns(targets: &[(&str, u16)], extra: &[&str]) {
    let p = ProxyProc::start(extra);
    for (ip, port) in targets {
        let r = ask_until_close(p.addr, lab_request(ip, port, "x").as_bytes());
        assert_eq!(r, NOT_ALLOWED, "{ip}:{port}");
    }
    // The event line is printed just after the reply is sent.
    let refused = || {
        p.stdout()
            .iter()
            .filter(|l| l.contains("\"not_allowed\""))
            .count()
    };
    assert!(
        eventually(Duration::from_secs(5), || refused() == targets.len()),
        "timed out waiting for a not_allowed line per target"
    );
}

#[test]
fn open_relay_refuses_public_ipv4_in_netns() {
    if !enter_netns("open_relay_refuses_public_ipv4_in_netns", Inside::default()) {
        return;
    }
    refused_in_netns(
        &[("8.8.8.8", 53), ("10.0.0.1", 80), ("192.168.1.1", 22)],
        &[],
    );
}

#[test]
fn open_relay_refuses_other_spellings_of_public_addresses_in_netns() {
    if !enter_netns(
        "open_relay_refuses_other_spellings_of_public_addresses_in_netns",
        Inside::default(),
    ) {
        return;
    }
    refused_in_netns(
        &[
            ("::ffff:8.8.8.8", 53),
            ("0x08080808", 53),
            ("134744072", 53),
            ("010.0.0.1", 80), // octal: 8.0.0.1
            ("8.8.8.8.", 53),
        ],
        &[],
    );
}

#[test]
fn open_relay_refuses_ipv6_outside_loopback_in_netns() {
    if !enter_netns(
        "open_relay_refuses_ipv6_outside_loopback_in_netns",
        Inside::default(),
    ) {
        return;
    }
    refused_in_netns(
        &[
            ("2001:db8::1", 80),
            ("[2001:4860:4860::8888]", 53),
            ("::127.0.0.1", 80),
        ],
        &[],
    );
}

#[test]
fn open_relay_refuses_hostnames_resolving_outside_in_netns() {
    let hosts = "127.0.0.1 localhost\n::1 localhost\n10.9.8.7 outside.test\n127.0.0.1 mixed.test\n10.9.8.8 mixed.test\n";
    let inside = Inside {
        hosts: Some(hosts),
        ..Inside::default()
    };
    if !enter_netns(
        "open_relay_refuses_hostnames_resolving_outside_in_netns",
        inside,
    ) {
        return;
    }
    // mixed.test has a loopback and an outside address: every resolved address is checked.
    refused_in_netns(
        &[
            ("outside.test", 80),
            ("mixed.test", 80),
            ("OUTSIDE.test.", 80),
        ],
        &[],
    );
}

#[test]
fn allow_widens_the_policy_in_netns() {
    if !enter_netns("allow_widens_the_policy_in_netns", Inside::default()) {
        return;
    }
    let p = ProxyProc::start(&["--allow", "10.0.0.0/8"]);
    // Allowed, so the proxy tries: the namespace has no route, so the kernel says so at once.
    let r = ask_until_close(p.addr, lab_request("10.1.2.3", 80, "x").as_bytes());
    assert_eq!(r, "Error, server unreachable: network unreachable");
    assert_eq!(
        ask_until_close(p.addr, lab_request("11.1.2.3", 80, "x").as_bytes()),
        NOT_ALLOWED
    );
}
