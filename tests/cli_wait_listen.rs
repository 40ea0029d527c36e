//! `netkit wait-listen`: waits for a real listener on loopback, runs the command after `--`,
//! times out with exit 1 without running it; JSON validates against its schema.

mod support;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::cli::{netkit_cmd, netkit_output};

/// A TCP socket bound to 127.0.0.1:0 but not listening: connects to its port are refused,
/// and nobody else can take the port while it lives (tests run in parallel with others).
fn bound_only() -> (socket2::Socket, u16) {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    let port = s.local_addr().unwrap().as_socket().unwrap().port();
    (s, port)
}

#[test]
fn ready_port_runs_the_command_and_keeps_stdout_for_it() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = l.local_addr().unwrap().port().to_string();
    let out = netkit_output(&["wait-listen", &p, "--", "echo", "ran", "ok"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ran ok\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("localhost:{p} accepts")), "{err}");
    // The command's own exit status is the result (netkit exec'd it).
    let out = netkit_output(&["wait-listen", &p, "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
}

#[test]
fn waits_for_a_listener_that_comes_later() {
    let (sock, p) = bound_only();
    let started = Instant::now();
    let child = netkit_cmd()
        .args([
            "wait-listen",
            &format!("127.0.0.1:{p}"),
            "--timeout",
            "10",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn netkit");
    // The listener comes a second after netkit was exec'd (spawn returns then), not after
    // the test started: a loaded machine may be slow to start netkit, and its own clock
    // (ready_after_ms) must still see the wait.
    std::thread::sleep(Duration::from_secs(1));
    sock.listen(16).expect("listen");
    let out = child.wait_with_output().expect("wait for netkit");
    drop(sock);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(started.elapsed() >= Duration::from_millis(350));
    let v = support::schema::validate_stdout("wait-listen", &out);
    assert_eq!(v["ready"], true);
    assert_eq!(v["targets"][0]["target_addr"], "127.0.0.1");
    assert!(v["targets"][0]["ready_after_ms"].as_u64().unwrap() >= 300);
}

#[test]
fn timeout_is_exit_1_and_the_command_does_not_run() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let ready = l.local_addr().unwrap().port();
    let (_hold, missing) = bound_only();
    let spec = format!("{ready},{missing}");
    let out = netkit_output(&[
        "wait-listen",
        &spec,
        "--host",
        "127.0.0.1",
        "--timeout",
        "0.5",
        "--",
        "echo",
        "ran",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "the command must not run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "nothing accepts on 127.0.0.1:{missing}; the command was not run"
        )),
        "{err}"
    );
    assert!(!err.contains(&format!("127.0.0.1:{ready};")), "{err}");
    let out = netkit_output(&["wait-listen", &spec, "--timeout", "0", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v = support::schema::validate_stdout("wait-listen", &out);
    assert_eq!(v["ready"], false);
    let t: Vec<&Value> = v["targets"].as_array().unwrap().iter().collect();
    assert_eq!(t.len(), 2);
    assert!(
        t.iter()
            .any(|t| t["ready"] == false && t["target_addr"].is_null())
    );
}

#[test]
fn errors_are_one_line() {
    for (args, want, code) in [
        (
            vec!["wait-listen", "6000/udp"],
            "netkit: '6000/udp': wait-listen waits for a TCP accept; a UDP port cannot be connected to\n",
            2,
        ),
        (
            vec!["wait-listen", "1-2000"],
            "netkit: more than 1024 ports to wait for: give a smaller range\n",
            2,
        ),
        (
            vec!["wait-listen", "6000", "--timeout", "-1"],
            "netkit: invalid value '-1' for --timeout: '-1' is not a number of seconds between 0 and 86400\n",
            2,
        ),
    ] {
        let out = netkit_output(&args);
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with(want.trim_end()), "{args:?}: {err}");
    }
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let ready = l.local_addr().unwrap().port().to_string();
    let out = netkit_output(&["wait-listen", &ready, "--", "/nonexistent/netkit-cmd"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("netkit: cannot run '/nonexistent/netkit-cmd'")
    );
}

#[test]
fn progress_is_shown_on_a_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        println!("skip: util-linux `script` is not installed");
        return;
    }
    let (_hold, p) = bound_only();
    let bin = env!("CARGO_BIN_EXE_netkit");
    let out = Command::new("script")
        .args([
            "-qec",
            &format!("{bin} wait-listen 127.0.0.1:{p} --timeout 1.2"),
            "/dev/null",
        ])
        .output()
        .expect("script");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "waiting for 127.0.0.1:{p} to accept: 0 of 1 ready"
        )),
        "{text}"
    );
    assert!(text.contains("timed out"), "{text}");
}
