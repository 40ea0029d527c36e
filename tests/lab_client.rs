//! `netkit run client` on loopback: JSON to a proxy (a test-side stand-in that checks the
//! lab's three keys), `--direct` to the netkit server and to the seed's Python server,
//! `--block`, `--count`/`--persistent`, exit codes, and bind/connect failures explained
//! from the socket inventory (EADDRINUSE at bind, EADDRNOTAVAIL on a reused 4-tuple).

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use serde::Deserialize;
use support::cli::*;
use support::lab::*;
use support::{eventually, have};

#[derive(Debug, Deserialize)]
struct Request {
    server_ip: String,
    server_port: u16,
    message: String,
}

#[derive(Debug, Deserialize)]
struct ReplyLine {
    event: String,
    command: String,
    via: String,
    remote_addr: std::net::IpAddr,
    remote_port: u16,
    local_addr: std::net::IpAddr,
    local_port: u16,
    sent: String,
    reply: Option<String>,
    ok: bool,
}

impl ReplyLine {
    fn from(&self) -> SocketAddr {
        SocketAddr::new(self.remote_addr, self.remote_port)
    }
    fn local(&self) -> SocketAddr {
        SocketAddr::new(self.local_addr, self.local_port)
    }
}

fn replies(stdout: &str) -> Vec<ReplyLine> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<ReplyLine>(l).ok())
        .filter(|r| r.event == "reply" && r.command == "run client")
        .collect()
}

/// A stand-in for the lab proxy: reads one request per connection (the client sends no
/// newline, so it parses what arrives as JSON), refuses port 7777, answers DONE otherwise.
fn fake_proxy(conns: usize) -> (SocketAddr, thread::JoinHandle<Vec<Request>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..conns {
            let (mut s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            let req = loop {
                let n = s.read(&mut chunk).unwrap();
                assert!(n > 0, "client closed before a complete JSON request");
                buf.extend_from_slice(&chunk[..n]);
                if let Ok(r) = serde_json::from_slice::<Request>(&buf) {
                    break r;
                }
            };
            let answer: &[u8] = if req.server_port == 7777 {
                b"Error, not allowed address"
            } else {
                b"DONE"
            };
            s.write_all(answer).unwrap();
            seen.push(req);
        }
        seen
    });
    (addr, h)
}

#[test]
fn default_client_sends_the_labs_json_to_the_proxy_and_exits_zero_on_done() {
    let (proxy, h) = fake_proxy(1);
    let (code, out, err) = run(
        &["run", "client", "--proxy", &proxy.to_string(), "--json"],
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let req = h.join().unwrap().pop().unwrap();
    assert_eq!(
        (req.server_ip.as_str(), req.server_port),
        ("127.0.0.1", 8888)
    );
    assert_eq!(req.message.len(), 4);
    assert!(req.message.bytes().all(|b| b.is_ascii_lowercase()));
    let r = replies(&out);
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].via.as_str(), r[0].from()), ("proxy", proxy));
    assert_eq!(r[0].reply.as_deref(), Some("DONE"));
    assert!(r[0].ok);
    assert!(r[0].sent.contains(&req.message));
}

#[test]
fn server_host_goes_to_the_proxy_as_written_so_its_policy_can_be_tested() {
    let (proxy, h) = fake_proxy(2);
    for server in ["127.1:8888", "[::ffff:127.0.0.1]:8888"] {
        let (code, out, err) = run(
            &[
                "run",
                "client",
                "--proxy",
                &proxy.to_string(),
                "--server",
                server,
            ],
            Duration::from_secs(10),
        );
        assert_eq!(code, Some(0), "{server}: {out}{err}");
    }
    let seen = h.join().unwrap();
    let hosts: Vec<&str> = seen.iter().map(|r| r.server_ip.as_str()).collect();
    assert_eq!(hosts, ["127.1", "::ffff:127.0.0.1"]);
    let (code, _, err) = run(
        &["run", "client", "--server", "localhost"],
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("is not HOST:PORT"), "{err}");
}

#[test]
fn block_targets_port_7777_and_a_refusal_exits_one() {
    let (proxy, h) = fake_proxy(1);
    let (code, out, _) = run(
        &["run", "client", "--proxy", &proxy.to_string(), "--block"],
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(h.join().unwrap()[0].server_port, 7777);
    assert!(out.contains("Error, not allowed address"), "{out}");
    assert!(out.contains("Random 4 letter string: "), "{out}");
}

#[test]
fn direct_client_talks_to_the_netkit_server_with_new_connections_or_one_persistent() {
    let (srv, addr) = server(&[]);
    let a = addr.to_string();
    let (code, out, err) = run(
        &[
            "run", "client", "--direct", "--server", &a, "--count", "3", "--json",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let r = replies(&out);
    assert_eq!(r.len(), 3);
    assert!(r.iter().all(|r| r.ok && r.reply.as_deref() == Some("DONE")));
    let locals: std::collections::HashSet<_> = r.iter().map(|r| r.local()).collect();
    assert_eq!(locals.len(), 3, "a new connection per request");
    assert!(eventually(Duration::from_secs(5), || srv.count("received") == 3));

    let (code, out, err) = run(
        &[
            "run",
            "client",
            "--direct",
            "--server",
            &a,
            "--count",
            "3",
            "--persistent",
            "--message",
            "same",
            "--json",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let r = replies(&out);
    assert_eq!(r.len(), 3);
    assert!(r.iter().all(|x| x.local() == r[0].local() && x.ok));
    assert!(eventually(Duration::from_secs(5), || srv.count("received") == 6));
    assert_eq!(srv.count("accepted"), 4);
}

#[test]
fn client_works_with_the_seeds_python_server() {
    if !have("python3") {
        eprintln!("skipped: python3 not installed");
        return;
    }
    // The seed's server: recv(1024), print, sendall(b"DONE"), close.
    let script = r#"
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(5)
print(s.getsockname()[1], flush=True)
c, a = s.accept()
data = c.recv(1024)
print("Server received:", data.decode(), flush=True)
c.sendall(b"DONE"); c.close()
"#;
    let mut py = Command::new("python3")
        .args(["-c", script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = py.stdout.take().unwrap();
    let mut first = String::new();
    let mut b = [0u8; 1];
    while out.read(&mut b).unwrap() == 1 && b[0] != b'\n' {
        first.push(b[0] as char);
    }
    let server = format!("127.0.0.1:{}", first.trim());
    let (code, stdout, err) = run(
        &[
            "run",
            "client",
            "--direct",
            "--server",
            &server,
            "--message",
            "ebvr",
        ],
        Duration::from_secs(10),
    );
    let mut rest = String::new();
    let _ = out.read_to_string(&mut rest);
    let _ = py.wait();
    assert_eq!(code, Some(0), "{stdout}{err}");
    assert!(
        stdout.contains(&format!("Response from server {server}: DONE")),
        "{stdout}"
    );
    assert_eq!(rest.trim(), "Server received: ebvr");
}

#[test]
fn connection_refused_is_a_local_error() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = l.local_addr().unwrap().to_string();
    drop(l);
    let (code, _, err) = run(
        &["run", "client", "--proxy", &dead],
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("ECONNREFUSED"), "{err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("netkit: ")).count(), 1);
}

#[test]
fn bind_port_in_use_is_explained_with_its_holder() {
    let (_srv, addr) = server(&[]);
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let (code, _, err) = run(
        &[
            "run",
            "client",
            "--direct",
            "--server",
            &addr.to_string(),
            "--bind-port",
            &port,
        ],
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("EADDRINUSE (98)"), "{err}");
    // The explain engine's diagnosis: the listener, its PID, and the fix.
    assert!(
        err.contains(&format!(
            "[listening] PID {} (lab_client",
            std::process::id()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("netkit who-owns {port} --kill")),
        "{err}"
    );
}

#[test]
fn reused_four_tuple_is_eaddrnotavail_at_connect_and_explained() {
    // BIND-RULES.md rule 12: both sockets set SO_REUSEADDR, the old connection is still
    // ESTABLISHED, so bind() succeeds and connect() fails with EADDRNOTAVAIL.
    let (_srv, addr) = server(&["--protocol", "echo"]);
    let opts = netkit::sockopt::SockOpts {
        reuseaddr: true,
        ..Default::default()
    };
    let old =
        netkit::sockopt::connect(addr, &opts, Some("127.0.0.1:0".parse().unwrap()), None).unwrap();
    let port = old.local_addr().unwrap().port().to_string();
    let (code, out, err) = run(
        &[
            "run",
            "client",
            "--direct",
            "--server",
            &addr.to_string(),
            "--bind-port",
            &port,
            "--reuseaddr",
            "--json",
        ],
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(2), "{out}{err}");
    #[derive(Deserialize)]
    struct ErrorLine {
        event: String,
        stage: String,
        errno_name: Option<String>,
        explanation: Vec<String>,
    }
    let e: ErrorLine = out
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no error line: {out}"));
    assert_eq!(e.event, "error");
    assert_eq!(e.stage, "connect");
    assert_eq!(e.errno_name.as_deref(), Some("EADDRNOTAVAIL"));
    let text = e.explanation.join("\n");
    assert!(text.contains("[same_four_tuple]"), "{text}");
    assert!(
        text.contains(&format!(
            "127.0.0.1:{port} -> {addr} already exists (ESTABLISHED"
        )),
        "{text}"
    );
}

#[test]
fn rerun_on_the_same_source_port_hits_the_clients_own_time_wait() {
    // Seed 003: the client closed first, so its 4-tuple sits in TIME_WAIT and a new bind()
    // of that source port fails, even with SO_REUSEADDR on the new socket only (rule 7).
    let (_srv, addr) = server(&[]);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let a = addr.to_string();
    let first = [
        "run",
        "client",
        "--direct",
        "--server",
        &a,
        "--bind-port",
        &port,
        "--persistent",
    ];
    let (code, out, err) = run(&first, Duration::from_secs(10));
    assert_eq!(code, Some(0), "{out}{err}");
    let again = [
        "run",
        "client",
        "--direct",
        "--server",
        &a,
        "--bind-port",
        &port,
        "--reuseaddr",
    ];
    let (code, _, err) = run(&again, Duration::from_secs(10));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("EADDRINUSE (98)"), "{err}");
    // The explain engine: the client's own TIME_WAIT row with its timer, and the inference
    // that the first run (no --reuseaddr) decides (BIND-RULES.md rule 7).
    let row = err
        .lines()
        .find(|l| l.starts_with("tcp") && l.contains("TIME_WAIT") && l.contains(&addr.to_string()))
        .unwrap_or_else(|| panic!("no TIME_WAIT row: {err}"));
    assert!(row.contains(&format!("127.0.0.1:{port}")), "{row}");
    assert!(row.contains("none (kernel-held)"), "{row}");
    assert!(row.contains("59.") || row.contains("60.0s"), "{row}");
    assert!(err.contains("[time_wait]"), "{err}");
    assert!(err.contains("[old_socket_lacked_reuseaddr]"), "{err}");
}

/// A proxy that serves one request per connection, as the seed's Python proxy does: one
/// recv, reply DONE, close.
fn one_shot_proxy(conns: usize) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for _ in 0..conns {
            let Ok((mut s, _)) = l.accept() else { return };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"DONE");
        }
    });
    addr
}

#[test]
fn persistent_client_says_when_the_proxy_closes_after_one_request() {
    let proxy = one_shot_proxy(1);
    let (code, out, err) = run(
        &[
            "run",
            "client",
            "--proxy",
            &proxy.to_string(),
            "--persistent",
            "--count",
            "3",
            "--json",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(
        err.contains(
            "the proxy closed the connection after one request; it serves one request per connection"
        ),
        "{err}"
    );
    assert_eq!(replies(&out).len(), 1, "{out}");
    assert!(replies(&out)[0].ok);
}

#[test]
fn destination_port_zero_is_refused_at_start() {
    for args in [
        &[
            "run",
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--relay",
            "127.0.0.1:0",
        ][..],
        &["run", "udp-client", "-p", "0", "--to", "127.0.0.1:0"][..],
    ] {
        let (code, out, err) = run(args, Duration::from_secs(10));
        assert_eq!(code, Some(2), "{args:?}: {out}{err}");
        assert!(err.contains("port 0 is not a destination"), "{err}");
    }
}

#[test]
fn control_characters_in_a_reply_are_escaped_for_people_and_exact_in_json() {
    for json in [false, true] {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"DO\x1b[2J\rNE");
        });
        let a = addr.to_string();
        let mut args = vec!["run", "client", "--direct", "--server", &a];
        if json {
            args.push("--json");
        }
        let (code, out, err) = run(&args, Duration::from_secs(10));
        assert_eq!(code, Some(1), "{out}{err}");
        if json {
            assert_eq!(replies(&out)[0].reply.as_deref(), Some("DO\x1b[2J\rNE"));
        } else {
            assert!(!out.contains('\x1b') && !out.contains('\r'), "{out:?}");
            assert!(out.contains("DO\\u{1b}[2J\\rNE"), "{out}");
        }
    }
}
