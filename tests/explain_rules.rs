//! One test per BIND-RULES.md §1 row one host can produce: the real situation (python3
//! helpers), `netkit explain --json` with matching options, then (a) the verdict equals a
//! real bind with those options at that moment, (b) the cause kind, (c) holder PID/user and
//! seconds left where they apply. Cross-uid rows need root and skip otherwise.

mod support;

use std::time::Duration;

use support::explain::{explain_and_verify, verify_around};
use support::is_root;
use support::python::Helper;

/// This process's user name, as netkit would print it.
fn uzers_name() -> String {
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn holder_pid(e: &support::explain::Explain, kind: &str) -> u32 {
    e.cause(kind).sockets[0].owners[0].pid
}

#[test]
fn rule1_listener_on_the_same_address() {
    let h = Helper::start("listen", &["--addr", "127.0.0.1"], false);
    let p = h.port();
    for flags in [&[][..], &["--reuseaddr"][..]] {
        let e = explain_and_verify(p, "127.0.0.1", flags);
        assert!(!e.bindable);
        assert_eq!(e.errno.as_deref(), Some("EADDRINUSE"));
        assert_eq!(e.errno_code, Some(98));
        assert_eq!(e.kinds(), vec!["listening"]);
        assert_eq!(holder_pid(&e, "listening"), h.pid());
        let me = uzers_name();
        assert_eq!(
            e.cause("listening").sockets[0].user.as_deref(),
            Some(me.as_str())
        );
        assert!(e.cause("listening").fix.contains("--kill"));
    }
}

#[test]
fn rule1_reuseport_on_one_side_only() {
    let h = Helper::start("listen", &["--addr", "127.0.0.1"], false);
    let e = explain_and_verify(h.port(), "127.0.0.1", &["--reuseport"]);
    assert_eq!(e.errno.as_deref(), Some("EADDRINUSE"));
    assert_eq!(e.kinds(), vec!["reuseport_one_sided"]);
    assert_eq!(holder_pid(&e, "reuseport_one_sided"), h.pid());
}

#[test]
fn rule2_wildcard_listener_covers_a_specific_address() {
    let h = Helper::start("listen", &["--addr", "0.0.0.0", "--ra"], false);
    let e = explain_and_verify(h.port(), "127.0.0.1", &["--reuseaddr"]);
    assert_eq!(e.kinds(), vec!["wildcard_overlap"]);
    assert_eq!(holder_pid(&e, "wildcard_overlap"), h.pid());
    // 127.0.0.1 next to 127.0.0.2 is fine.
    let h2 = Helper::start("listen", &["--addr", "127.0.0.2"], false);
    let e = explain_and_verify(h2.port(), "127.0.0.3", &[]);
    assert!(e.bindable, "{:#?}", e.causes);
    assert!(e.causes.is_empty(), "{:#?}", e.causes);
}

#[test]
fn rule3_dual_stack_listener_owns_ipv4_too() {
    let h = Helper::start("listen", &["--addr", "::", "--v6only", "0"], false);
    let e = explain_and_verify(h.port(), "127.0.0.1", &["--reuseaddr"]);
    assert_eq!(e.kinds(), vec!["dual_stack_overlap"]);
    assert_eq!(holder_pid(&e, "dual_stack_overlap"), h.pid());
    assert!(e.cause("dual_stack_overlap").fix.contains("IPV6_V6ONLY"));
    // With V6ONLY=1 the IPv4 side is free.
    let free = support::listeners::free_port().to_string();
    let h6 = Helper::start(
        "listen",
        &["--addr", "::", "--v6only", "1", "--port", &free],
        false,
    );
    let e = explain_and_verify(h6.port(), "0.0.0.0", &[]);
    assert!(e.bindable, "{:#?}", e.causes);
    // ...but [::1] is inside [::].
    let e = explain_and_verify(h6.port(), "::1", &[]);
    assert_eq!(e.kinds(), vec!["wildcard_overlap"]);
}

#[test]
fn rule3_dual_stack_trial_against_ipv4_listener() {
    let free = support::listeners::free_port().to_string();
    let h = Helper::start("listen", &["--addr", "127.0.0.1", "--port", &free], false);
    let e = explain_and_verify(h.port(), "::", &["--dual-stack"]);
    assert_eq!(e.kinds(), vec!["dual_stack_overlap"]);
    let e = explain_and_verify(h.port(), "::", &["--v6only"]);
    assert!(e.bindable, "{:#?}", e.causes);
}

#[test]
fn rule4_reuseport_group_same_user_and_4a_specificity() {
    let free = support::listeners::free_port().to_string();
    let h = Helper::start(
        "listen",
        &["--addr", "127.0.0.1", "--rp", "--port", &free],
        false,
    );
    let e = explain_and_verify(h.port(), "127.0.0.1", &["--reuseport"]);
    assert!(e.bindable, "{:#?}", e.causes);
    let c = e.cause("reuseport_group");
    assert_eq!(c.sockets[0].owners[0].pid, h.pid());
    assert!(c.message.contains("spreads"), "{}", c.message);
    let e = explain_and_verify(h.port(), "0.0.0.0", &["--reuseport"]);
    assert!(e.bindable, "{:#?}", e.causes);
    assert!(
        e.cause("reuseport_group")
            .message
            .contains("NO load balancing")
    );
}

#[test]
fn rule5_reuseport_across_users_is_refused() {
    if !is_root() {
        eprintln!("skipped: needs root to run the holder as nobody");
        return;
    }
    let h = Helper::start("listen", &["--addr", "127.0.0.1", "--rp"], true);
    let e = explain_and_verify(h.port(), "127.0.0.1", &["--reuseport"]);
    assert_eq!(e.errno.as_deref(), Some("EADDRINUSE"));
    let c = e.cause("reuseport_uid_mismatch");
    assert_eq!(c.sockets[0].uid, Some(65534));
    assert_eq!(c.sockets[0].owners[0].pid, h.pid());
    // The same user (via --as-user) joins the group.
    let p = h.port().to_string();
    let e = verify_around(
        &[
            &p,
            "--addr",
            "127.0.0.1",
            "--reuseport",
            "--as-user",
            "nobody",
        ],
        &["--addr", "127.0.0.1", "--port", &p, "--rp"],
        true,
    );
    assert!(e.bindable, "{:#?}", e.causes);
    assert!(e.kinds().contains(&"reuseport_group"));
}

#[test]
fn rule6_bound_but_not_listening() {
    let free = support::listeners::free_port().to_string();
    let h = Helper::start("bound", &["--addr", "127.0.0.1", "--port", &free], false);
    for flags in [&[][..], &["--reuseaddr"][..]] {
        let e = explain_and_verify(h.port(), "127.0.0.1", flags);
        assert_eq!(e.kinds(), vec!["bound_not_listening"]);
        let s = &e.cause("bound_not_listening").sockets[0];
        assert_eq!(s.state, "BOUND");
        assert_eq!(s.owners[0].pid, h.pid());
    }
    // Wildcard trial over a specific bound socket, too.
    let e = explain_and_verify(h.port(), "0.0.0.0", &[]);
    assert_eq!(e.kinds(), vec!["bound_not_listening"]);
}

#[test]
fn rule6a_bound_with_reuseaddr_on_both_passes_but_steals_listen() {
    let h = Helper::start("bound", &["--addr", "127.0.0.1", "--ra"], false);
    let e = explain_and_verify(h.port(), "127.0.0.1", &["--reuseaddr"]);
    assert!(e.bindable, "{:#?}", e.causes);
    let c = e.cause("bound_reuseaddr_shared");
    assert_eq!(c.sockets[0].owners[0].pid, h.pid());
    assert!(c.message.contains("listen()"));
}

#[test]
fn rule6b_bound_reuseaddr_has_no_uid_check() {
    if !is_root() {
        eprintln!("skipped: needs root for a second uid");
        return;
    }
    let h = Helper::start("bound", &["--addr", "127.0.0.1", "--ra"], false);
    let p = h.port().to_string();
    let e = verify_around(
        &[
            &p,
            "--addr",
            "127.0.0.1",
            "--reuseaddr",
            "--as-user",
            "nobody",
        ],
        &["--addr", "127.0.0.1", "--port", &p, "--ra"],
        true,
    );
    assert!(e.bindable, "{:#?}", e.causes);
    assert!(
        e.cause("bound_reuseaddr_shared")
            .message
            .contains("another user")
    );
}

#[test]
fn rule7_time_wait_old_socket_without_reuseaddr() {
    let h = Helper::start("timewait", &["--addr", "127.0.0.1"], false);
    let p = h.port();
    for flags in [&[][..], &["--reuseaddr"][..]] {
        let e = explain_and_verify(p, "127.0.0.1", flags);
        assert_eq!(e.errno.as_deref(), Some("EADDRINUSE"));
        let tw = e.cause("time_wait");
        let left = tw.seconds_left.unwrap();
        assert!((50..=61).contains(&left), "seconds left {left}");
        assert_eq!(tw.sockets[0].state, "TIME_WAIT");
        assert!(tw.sockets[0].owners.is_empty());
        // The trial with SO_REUSEADDR failed too: the old socket lacked it.
        assert!(
            e.kinds().contains(&"old_socket_lacked_reuseaddr"),
            "{:?}",
            e.kinds()
        );
        assert!(tw.fix.contains("wait"));
    }
    // Rule 7c: another specific address is not blocked.
    let e = explain_and_verify(p, "127.0.0.2", &[]);
    assert!(e.bindable, "{:#?}", e.causes);
}

#[test]
fn rule7_time_wait_old_socket_with_reuseaddr_new_without() {
    if support::listeners::time_wait_table_full() {
        return;
    }
    let h = Helper::start("timewait", &["--addr", "127.0.0.1", "--ra"], false);
    let e = explain_and_verify(h.port(), "127.0.0.1", &[]);
    assert_eq!(e.errno.as_deref(), Some("EADDRINUSE"));
    assert!(!e.kinds().contains(&"old_socket_lacked_reuseaddr"));
    assert!(e.cause("time_wait").fix.contains("set SO_REUSEADDR"));
    assert!(
        e.checks
            .iter()
            .any(|c| c.what.contains("SO_REUSEADDR") && c.bindable)
    );
    // Rule 7a: both with RA pass.
    let e = explain_and_verify(h.port(), "127.0.0.1", &["--reuseaddr"]);
    assert!(e.bindable, "{:#?}", e.causes);
    assert!(e.cause("time_wait_exempt").seconds_left.unwrap() > 40);
}

#[test]
fn rule7b_time_wait_reuseport_on_both() {
    if support::listeners::time_wait_table_full() {
        return;
    }
    let h = Helper::start("timewait", &["--addr", "127.0.0.1", "--rp"], false);
    let e = explain_and_verify(h.port(), "127.0.0.1", &["--reuseport"]);
    assert!(e.bindable, "{:#?}", e.causes);
    // Old RP, new RA only: fails.
    let e = explain_and_verify(h.port(), "127.0.0.1", &["--reuseaddr"]);
    assert!(!e.bindable);
    assert!(e.cause("time_wait").fix.contains("SO_REUSEPORT"));
}

/// Issue 8, defect 1: with a TIME_WAIT left by an SO_REUSEADDR listener, an extra trial
/// with SO_REUSEADDR+SO_REUSEPORT used to pass and leave the bind bucket marked for
/// SO_REUSEPORT, so a plain SO_REUSEPORT bind passed afterwards and the second explain said
/// "bindable". Every option set a user can give is checked before and after.
#[test]
fn issue_8_trials_never_mark_the_bind_bucket() {
    for (holder, user) in [
        (&["--ra"][..], &["--reuseport"][..]),
        (&["--ra"][..], &[][..]),
        (&["--rp"][..], &["--reuseaddr"][..]),
        (&["--rp"][..], &[][..]),
        (&[][..], &["--reuseport"][..]),
        (&[][..], &["--reuseaddr"][..]),
    ] {
        let mut args = vec!["--addr", "127.0.0.1"];
        args.extend_from_slice(holder);
        let h = Helper::start("timewait", &args, false);
        let e = explain_and_verify(h.port(), "127.0.0.1", user);
        assert!(!e.bindable, "{holder:?} {user:?}: {:#?}", e.causes);
        assert!(e.kinds().contains(&"time_wait"), "{:?}", e.kinds());
        // Nothing combined both flags behind the user's back.
        for c in &e.checks {
            assert!(
                !(c.what.contains("SO_REUSEADDR") && c.what.contains("SO_REUSEPORT"))
                    || c.what.contains("instead of"),
                "{}",
                c.what
            );
        }
    }
}

#[test]
fn rule8_orphan_established_connection() {
    let h = Helper::start("orphan", &["--addr", "127.0.0.1"], false);
    let p = h.port().to_string();
    let _c = Helper::start("client", &["--addr", "127.0.0.1", "--port", &p], false);
    assert_eq!(h.line(Duration::from_secs(5)).as_deref(), Some("ACCEPTED"));
    let e = explain_and_verify(h.port(), "127.0.0.1", &[]);
    let c = e.cause("orphan_established");
    assert_eq!(c.sockets[0].state, "ESTABLISHED");
    assert_eq!(c.sockets[0].owners[0].pid, h.pid());
    assert!(e.kinds().contains(&"old_socket_lacked_reuseaddr"));
}

#[test]
fn rule9_killed_server_leaves_fin_wait2() {
    if support::listeners::time_wait_table_full() {
        return;
    }
    let mut h = Helper::start("serve", &["--addr", "127.0.0.1"], false);
    let p = h.port().to_string();
    let _c = Helper::start("client", &["--addr", "127.0.0.1", "--port", &p], false);
    // Killed only once it accepted: a connection still in the accept queue would be reset.
    assert_eq!(h.line(Duration::from_secs(10)).as_deref(), Some("ACCEPTED"));
    h.proc.kill_group(libc::SIGKILL);
    let _ = h.proc.child.wait();
    // Wait for the orphan to reach FIN_WAIT2 (the client ACKs the kernel's FIN at once;
    // a loaded machine may take a while to run the explain round trips).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let e = loop {
        let e = explain_and_verify(h.port(), "127.0.0.1", &[]);
        if e.kinds().contains(&"fin_wait2") || std::time::Instant::now() > deadline {
            break e;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let c = e.cause("fin_wait2");
    assert!(c.seconds_left.unwrap() > 10);
    assert_eq!(c.sockets[0].state, "FIN_WAIT2");
    assert!(e.kinds().contains(&"old_socket_lacked_reuseaddr"));
}

#[test]
fn rule10_listener_shared_with_a_forked_child() {
    let h = Helper::start("fork_keep", &["--addr", "127.0.0.1"], false);
    let child: u32 = h.ready[1].parse().unwrap();
    let e = explain_and_verify(h.port(), "127.0.0.1", &["--reuseaddr"]);
    let c = e.cause("inherited_fd");
    let pids: Vec<u32> = c.sockets[0].owners.iter().map(|o| o.pid).collect();
    assert!(pids.contains(&h.pid()) && pids.contains(&child), "{pids:?}");
    assert!(c.message.contains("2 live processes"), "{}", c.message);
}

/// Issue 8, defect 3: a child of the same program that opened its own listener (Django's
/// autoreloader, pytest, nodemon) is not "inherited"; nor is a forked child whose parent
/// closed its copy, since nothing shows the fork any more: the holder is named, no more.
#[test]
fn issue_8_inherited_fd_only_on_evidence() {
    let h = Helper::start("spawn_own", &["--addr", "127.0.0.1"], false);
    let child: u32 = h.ready[1].parse().unwrap();
    let e = explain_and_verify(h.port(), "127.0.0.1", &[]);
    assert_eq!(e.kinds(), vec!["listening"], "{:#?}", e.causes);
    assert_eq!(holder_pid(&e, "listening"), child);
    let h = Helper::start("inherit", &["--addr", "127.0.0.1"], false);
    let child: u32 = h.ready[1].parse().unwrap();
    let e = explain_and_verify(h.port(), "127.0.0.1", &["--reuseaddr"]);
    assert_eq!(e.kinds(), vec!["listening"], "{:#?}", e.causes);
    assert_eq!(holder_pid(&e, "listening"), child);
}

/// Issue 8, defect 2 (the README's example): TIME_WAITs next to a live SO_REUSEADDR
/// listener carry SO_REUSEADDR; for an SO_REUSEADDR bind the listener is the only cause and
/// the fix never says "wait". Without SO_REUSEADDR they may block later: still no "wait"
/// while the listener lives, but they are named for after.
#[test]
fn issue_8_time_wait_is_a_cause_only_when_it_blocks() {
    if support::listeners::time_wait_table_full() {
        return;
    }
    let h = Helper::start("listen_tw", &["--addr", "127.0.0.1", "--ra"], false);
    for addr in ["127.0.0.1", "0.0.0.0"] {
        let e = explain_and_verify(h.port(), addr, &["--reuseaddr"]);
        assert!(!e.kinds().contains(&"time_wait"), "{:#?}", e.causes);
        let c = e.cause("time_wait_harmless");
        assert_eq!(c.sockets.len(), 3);
        assert!(c.message.contains("harmless"), "{}", c.message);
        for c in &e.causes {
            assert!(!c.fix.contains("wait "), "{}: {}", c.kind, c.fix);
        }
    }
    let e = explain_and_verify(h.port(), "127.0.0.1", &[]);
    assert!(!e.kinds().contains(&"time_wait"), "{:#?}", e.causes);
    assert!(e.kinds().contains(&"time_wait_after_holder"));
    // A listener without SO_REUSEADDR: its TIME_WAITs lack it, netkit says they may block later.
    let h = Helper::start("listen_tw", &["--addr", "127.0.0.1"], false);
    let e = explain_and_verify(h.port(), "127.0.0.1", &["--reuseaddr"]);
    assert!(
        e.kinds().contains(&"time_wait_after_holder"),
        "{:?}",
        e.kinds()
    );
    assert!(!e.kinds().contains(&"time_wait_harmless"));
}

/// Issue 8, defect 4: a bound-only SO_REUSEPORT socket and an SO_REUSEPORT trial of the
/// same user form a REUSEPORT group (both may listen), not the SO_REUSEADDR rule 6a case.
#[test]
fn issue_8_bound_reuseport_socket_is_a_reuseport_group() {
    let h = Helper::start("bound", &["--addr", "127.0.0.1", "--rp"], false);
    let e = explain_and_verify(h.port(), "127.0.0.1", &["--reuseport"]);
    assert!(e.bindable, "{:#?}", e.causes);
    assert_eq!(e.kinds(), vec!["reuseport_group"], "{:#?}", e.causes);
    assert_eq!(e.cause("reuseport_group").sockets[0].owners[0].pid, h.pid());
    // With SO_REUSEADDR on both it stays the rule-6a case.
    let h = Helper::start("bound", &["--addr", "127.0.0.1", "--ra", "--rp"], false);
    let e = explain_and_verify(h.port(), "127.0.0.1", &["--reuseaddr"]);
    assert_eq!(e.kinds(), vec!["bound_reuseaddr_shared"], "{:#?}", e.causes);
}

#[test]
fn rule15a_multicast_and_rule18_port_zero() {
    let e = explain_and_verify(0, "224.0.0.1", &[]);
    assert!(e.bindable, "{:#?}", e.causes);
    let e = explain_and_verify(0, "127.0.0.1", &["--udp"]);
    assert!(e.bindable, "{:#?}", e.causes);
}

#[test]
fn rule11_outgoing_connection_source_port() {
    let srv = Helper::start("serve", &["--addr", "127.0.0.1"], false);
    let sp = srv.port().to_string();
    let cl = Helper::start("client", &["--addr", "127.0.0.1", "--port", &sp], false);
    let e = explain_and_verify(cl.port(), "127.0.0.1", &["--reuseaddr"]);
    let c = e.cause("ephemeral_source_port");
    // Other connections on this shared machine may use the same source port (to other
    // destinations); ours must be among the evidence.
    assert!(
        c.sockets
            .iter()
            .any(|s| s.owners.iter().any(|o| o.pid == cl.pid())),
        "{:#?}",
        c.sockets
    );
    assert!(c.message.contains("inside"), "{}", c.message);
    // Our client's connection is never taken for an orphan of a gone listener (other
    // programs' connections on a busy machine may share the port number and be one).
    if e.kinds().contains(&"orphan_established") {
        let o = e.cause("orphan_established");
        assert!(
            !o.sockets
                .iter()
                .any(|s| s.owners.iter().any(|w| w.pid == cl.pid())),
            "{:#?}",
            o.sockets
        );
    }
}

/// A free port below 1024 (searched, never fixed).
fn low_free_port() -> Option<u16> {
    (600..1024u16).rev().find(|p| {
        std::net::TcpListener::bind(("0.0.0.0", *p)).is_ok()
            && std::net::UdpSocket::bind(("0.0.0.0", *p)).is_ok()
    })
}

#[test]
fn rule14_privileged_port_and_14a_hidden_conflict() {
    if !is_root() {
        // As an ordinary user the trial itself gets EACCES: check that directly.
        let p = 1023u16.to_string();
        verify_around(&[&p], &["--addr", "0.0.0.0", "--port", &p], false);
        eprintln!("skipped: the cross-uid part needs root");
        return;
    }
    let Some(p) = low_free_port() else {
        eprintln!("skipped: no free port below 1024");
        return;
    };
    let ps = p.to_string();
    // As root it is bindable, and netkit says what an ordinary user would get.
    let e = verify_around(
        &[&ps, "--addr", "127.0.0.1"],
        &["--addr", "127.0.0.1", "--port", &ps],
        false,
    );
    assert!(e.bindable, "{:#?}", e.causes);
    assert!(e.cause("privileged_port").message.contains("ordinary user"));
    assert!(
        e.checks
            .iter()
            .any(|c| c.errno.as_deref() == Some("EACCES"))
    );
    // As nobody: EACCES, and it hides the listener behind it (rule 14a).
    let h = Helper::start("listen", &["--addr", "127.0.0.1", "--port", &ps], false);
    let e = verify_around(
        &[&ps, "--addr", "127.0.0.1", "--as-user", "nobody"],
        &["--addr", "127.0.0.1", "--port", &ps],
        true,
    );
    assert_eq!(e.errno.as_deref(), Some("EACCES"));
    assert_eq!(e.kinds(), vec!["privileged_port", "hidden_conflict"]);
    assert_eq!(e.cause("hidden_conflict").sockets[0].owners[0].pid, h.pid());
}

#[test]
fn rule15_address_not_on_this_host() {
    let e = explain_and_verify(8, "192.0.2.1", &[]);
    assert_eq!(e.errno.as_deref(), Some("EADDRNOTAVAIL"));
    assert_eq!(e.kinds(), vec!["address_not_local"]);
    let e = explain_and_verify(0, "2001:db8::1", &["--udp"]);
    assert_eq!(e.kinds(), vec!["address_not_local"]);
}

#[test]
fn rule16_invalid_arguments() {
    let e = explain_and_verify(0, "::ffff:127.0.0.1", &["--v6only"]);
    assert_eq!(e.errno.as_deref(), Some("EINVAL"));
    assert!(e.cause("invalid_argument").message.contains("IPv4-mapped"));
    let e = explain_and_verify(0, "fe80::1", &[]);
    assert_eq!(e.errno.as_deref(), Some("EINVAL"));
    assert!(e.cause("invalid_argument").message.contains("link-local"));
}

#[test]
fn ruleu1_udp_port_in_use() {
    let free = support::listeners::free_port().to_string();
    let h = Helper::start("udp", &["--addr", "127.0.0.1", "--port", &free], false);
    let e = explain_and_verify(h.port(), "0.0.0.0", &["--udp", "--reuseaddr"]);
    let c = e.cause("udp_in_use");
    assert_eq!(c.sockets[0].state, "UNCONN");
    assert_eq!(c.sockets[0].owners[0].pid, h.pid());
    let e = explain_and_verify(h.port(), "127.0.0.1", &["--udp", "--reuseport"]);
    assert_eq!(e.kinds(), vec!["reuseport_one_sided"]);
}

#[test]
fn ruleu2_udp_reuseaddr_both_takes_the_datagrams() {
    let free = support::listeners::free_port().to_string();
    let h = Helper::start(
        "udp",
        &["--addr", "127.0.0.1", "--ra", "--port", &free],
        false,
    );
    let e = explain_and_verify(h.port(), "127.0.0.1", &["--udp", "--reuseaddr"]);
    assert!(e.bindable, "{:#?}", e.causes);
    let c = e.cause("udp_reuseaddr_takeover");
    assert!(c.message.contains("ALL unicast"));
    assert_eq!(c.sockets[0].owners[0].pid, h.pid());
    // Specific beats wildcard: a wildcard newcomer does not take them.
    let e = explain_and_verify(h.port(), "0.0.0.0", &["--udp", "--reuseaddr"]);
    assert!(
        e.cause("udp_reuseaddr_takeover")
            .message
            .contains("keeps receiving")
    );
}

#[test]
fn ruleu3_udp_reuseport_group() {
    let h = Helper::start("udp", &["--addr", "127.0.0.1", "--rp"], false);
    let e = explain_and_verify(h.port(), "127.0.0.1", &["--udp", "--reuseport"]);
    assert!(e.bindable, "{:#?}", e.causes);
    assert!(e.cause("reuseport_group").message.contains("per flow"));
}

#[test]
fn ruleu4_udp_connected_socket_shares_the_port() {
    let h = Helper::start("udpconn", &["--addr", "127.0.0.1", "--ra"], false);
    let e = explain_and_verify(h.port(), "127.0.0.1", &["--udp", "--reuseaddr"]);
    assert!(e.bindable, "{:#?}", e.causes);
    let c = e.cause("udp_connected_share");
    assert_eq!(c.sockets[0].state, "ESTABLISHED");
    assert_eq!(c.sockets[0].owners[0].pid, h.pid());
    // Without SO_REUSEADDR the connected socket still holds the port (rule U1).
    let e = explain_and_verify(h.port(), "127.0.0.1", &["--udp"]);
    assert_eq!(e.kinds(), vec!["udp_in_use"]);
}

#[test]
fn human_output_has_verdict_cause_and_fix() {
    let h = Helper::start("listen", &["--addr", "127.0.0.1"], false);
    let p = h.port().to_string();
    let (code, out, _) = support::cli::netkit(&["explain", &p, "--addr", "127.0.0.1"]);
    assert_eq!(code, 1);
    assert!(
        out.lines()
            .next()
            .unwrap()
            .contains("not bindable: EADDRINUSE at bind()"),
        "{out}"
    );
    assert!(out.contains("[listening]"));
    assert!(out.contains(&h.pid().to_string()));
    assert!(out.contains("fix: stop PID"));
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    for args in [
        &["explain", "80", "--addr", "not-an-ip"][..],
        &["explain", "80", "--addr", "127.0.0.1", "--v6only"][..],
        &["explain", "80", "--as-user", "no-such-user-xyz"][..],
    ] {
        let (code, out, err) = support::cli::netkit(args);
        assert_eq!(code, 2, "{args:?}: {out} {err}");
        assert!(
            err.starts_with("netkit: ") && err.trim().lines().count() == 1,
            "{err}"
        );
    }
}

#[test]
fn rule13_port_zero_with_the_ephemeral_range_exhausted() {
    if !is_root() {
        eprintln!("skipped: needs root to create a private network namespace");
        return;
    }
    // In a throw-away netns with a 2-port range: hold both ports, then bind(0) for real and
    // ask netkit. The host's sysctls are untouched (ip_local_port_range is per netns).
    let script = format!(
        r#"
import socket, subprocess
held = []
for _ in range(2):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); held.append(s)
c = socket.socket()
try:
    c.bind(("127.0.0.1", 0)); c.listen(1); print("REAL OK")
except OSError as e:
    print("REAL", "EADDRINUSE" if e.errno == 98 else e.errno)
r = subprocess.run(["{}", "explain", "0", "--addr", "127.0.0.1", "--json"], capture_output=True, text=True)
print(r.stdout.strip())
"#,
        env!("CARGO_BIN_EXE_netkit")
    );
    let sh = format!(
        "ip link set lo up && sysctl -qw net.ipv4.ip_local_port_range='40000 40001' && exec {} -c \"$0\"",
        support::python::python()
    );
    let o = std::process::Command::new("unshare")
        .args(["-n", "sh", "-c", &sh, &script])
        .output()
        .unwrap();
    if !o.status.success() {
        eprintln!(
            "skipped: cannot create a network namespace here: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        return;
    }
    let out = String::from_utf8_lossy(&o.stdout);
    let mut lines = out.lines();
    let real = lines
        .next()
        .unwrap()
        .trim_start_matches("REAL ")
        .to_string();
    let e: support::explain::Explain = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(e.verdict(), real);
    assert_eq!(e.errno.as_deref(), Some("EADDRINUSE"));
    let c = e.cause("ephemeral_exhausted");
    assert!(c.message.contains("40000-40001"), "{}", c.message);
    assert_eq!(c.sockets.len(), 2);
}
