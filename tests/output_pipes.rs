//! Every command survives a reader that leaves early (`| head -n1`, `| head -c1`): exit 0 and
//! nothing on stderr, in table and JSON mode; and a broken pipe on a SOCKET is not taken for
//! a closed stdout. Stdout here is a real pipe whose read end is already closed, so the first
//! write fails with EPIPE every time (not only when the output outgrows the pipe buffer).

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::cli::netkit_cmd;
use support::listeners::{free_port, make_time_wait};

/// Runs netkit with stdout connected to a pipe nobody reads.
fn closed_stdout(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    netkit_cmd()
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run netkit")
}

fn assert_silent_success(args: &[&str], out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "netkit {args:?} with a closed stdout: {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "netkit {args:?} with a closed stdout wrote to stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts a `| head` run exited 0 without an error line or a panic. (Hints may still
/// appear: when the whole output fit in the pipe before `head` left, netkit could not know.)
fn assert_head_ok(what: &str, (code, err): (i32, String)) {
    assert_eq!(code, 0, "{what}: exit {code}, stderr: {err}");
    assert!(
        err.lines().all(|l| l.starts_with("hint: ")),
        "{what}: stderr has more than hints: {err}"
    );
}

/// `sh -c 'netkit ARGS | head FLAG'`: netkit's own exit code and stderr.
fn through_head(args: &[&str], head: &str) -> (i32, String) {
    let bin = env!("CARGO_BIN_EXE_netkit");
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    let script = format!(
        "'{bin}' {} 2>/tmp/.nk-pipes-$$ | head {head} >/dev/null; s=${{PIPESTATUS[0]}}; cat /tmp/.nk-pipes-$$ >&2; rm -f /tmp/.nk-pipes-$$; exit $s",
        quoted.join(" ")
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Sockets that give every inventory command something to print.
struct Scene {
    _l: TcpListener,
    _c: TcpStream,
    _u: UdpSocket,
    port: String,
}

fn scene() -> Scene {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    make_time_wait(&l);
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let port = l.local_addr().unwrap().port();
    let u = UdpSocket::bind(("127.0.0.1", port)).unwrap();
    Scene {
        _l: l,
        _c: c,
        _u: u,
        port: port.to_string(),
    }
}

#[test]
fn every_one_shot_command_exits_0_silently_when_stdout_is_closed() {
    let s = scene();
    let me = std::process::id().to_string();
    let p = s.port.as_str();
    let runs: Vec<Vec<&str>> = vec![
        vec!["who-owns", p],
        vec!["listening"],
        vec!["listening", "--port", p],
        vec!["timewait"],
        vec!["timewait", "--all"],
        vec!["inspect"],
        vec!["explain", p],
        vec![
            "explain",
            "--error",
            "OSError: [Errno 98] Address already in use",
        ],
        vec!["free-port", "--count", "5"],
        vec!["sockopt", &me, "--port", p],
        vec!["completions", "bash"],
        vec!["completions", "zsh"],
        vec!["completions", "fish"],
        vec!["--help"],
        vec!["who-owns", "--help"],
        vec!["--version"],
    ];
    for args in &runs {
        assert_silent_success(args, &closed_stdout(args));
        if !args[0].starts_with("--") && !args.contains(&"--help") && args[0] != "completions" {
            let mut j = args.clone();
            j.push("--json");
            assert_silent_success(&j, &closed_stdout(&j));
        }
    }
    // wait-free on a port that is free: prints one line.
    let f = free_port().to_string();
    for args in [vec!["wait-free", &f], vec!["wait-free", &f, "--json"]] {
        assert_silent_success(&args, &closed_stdout(&args));
    }
}

#[test]
fn json_larger_than_the_write_buffer_exits_0_when_cut() {
    // 400 listeners of this process: `listening --pid` prints well over the 64 KiB buffer,
    // so serde_json itself meets the broken pipe (the bug: it turned it into "other").
    let held: Vec<TcpListener> = (0..400)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let me = std::process::id().to_string();
    let args = ["listening", "--pid", &me, "--json"];
    let full = netkit_cmd().args(args).output().unwrap();
    assert!(full.stdout.len() > 100_000, "{}", full.stdout.len());
    assert_silent_success(&args, &closed_stdout(&args));
    for head in ["-c100", "-c1", "-n1"] {
        assert_head_ok(
            &format!("{args:?} | head {head}"),
            through_head(&args, head),
        );
        for a in [
            &["inspect", "--json"][..],
            &["inspect"],
            &["listening", "--pid", &me],
        ] {
            assert_head_ok(&format!("{a:?} | head {head}"), through_head(a, head));
        }
    }
    drop(held);
}

#[test]
fn completions_through_head_never_abort() {
    for _ in 0..5 {
        for shell in ["bash", "zsh", "fish"] {
            let (code, err) = through_head(&["completions", shell], "-c1");
            assert_eq!(
                (code, err.as_str()),
                (0, ""),
                "completions {shell} | head -c1"
            );
            let (code, err) = through_head(&["completions", shell], "-n1");
            assert_eq!(
                (code, err.as_str()),
                (0, ""),
                "completions {shell} | head -n1"
            );
        }
    }
}

fn wait_listening(port: u16) {
    let end = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "server on {port} did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child killed on drop, so a failed assertion leaves no server behind.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn sigint_and_wait(mut g: Guard) -> Output {
    let mut child = g.0.take().expect("child");
    // SAFETY: kill(2) on the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let end = Instant::now() + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            panic!("netkit did not stop on SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn spawn_closed(args: &[&str]) -> Guard {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    Guard(Some(
        netkit_cmd()
            .args(args)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ))
}

#[test]
fn lab_components_keep_serving_with_a_closed_stdout() {
    for json in [false, true] {
        let port = free_port();
        let ps = port.to_string();
        let mut args = vec!["run", "server", "127.0.0.1", "-p", &ps, "--drain", "0"];
        if json {
            args.push("--json");
        }
        let server = spawn_closed(&args);
        wait_listening(port);
        // The client, with its own stdout closed too, still gets its answer: exit 0.
        let mut cargs = vec![
            "run",
            "client",
            "--direct",
            "--server",
            &format!("127.0.0.1:{port}"),
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        if json {
            cargs.push("--json".into());
        }
        let cargs: Vec<&str> = cargs.iter().map(String::as_str).collect();
        assert_silent_success(&cargs, &closed_stdout(&cargs));
        // And the server still answers after its stdout broke.
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"hello\n").unwrap();
        let mut buf = [0u8; 16];
        assert!(s.read(&mut buf).unwrap() > 0, "no reply");
        drop(s);
        let out = sigint_and_wait(server);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {:?}", out);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("panicked") && !err.contains("netkit:"),
            "{err}"
        );
    }
    // UDP pair.
    let port = free_port().to_string();
    let server = spawn_closed(&["run", "udp-server", "-p", &port]);
    std::thread::sleep(Duration::from_millis(300));
    let out = sigint_and_wait(server);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn a_socket_broken_pipe_is_not_a_closed_stdout() {
    // A peer that answers the first request and closes at once. The persistent client reads
    // DONE, sends its second request into a socket in CLOSE_WAIT (the peer answers RST; the
    // kernel sets EPIPE for a reset in CLOSE_WAIT, tcp_reset()), reads EOF, and its third
    // write fails with EPIPE. Its stdout is fine, so that is an error (exit 2, one line),
    // never the silent exit 0 of a closed stdout (issue 9: it used to exit 0).
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        let mut buf = [0u8; 256];
        let _ = c.read(&mut buf);
        let _ = c.write_all(b"DONE\n");
        drop(c);
        std::thread::sleep(Duration::from_millis(500));
    });
    let out = netkit_cmd()
        .args([
            "run",
            "client",
            "--direct",
            "--server",
            &format!("127.0.0.1:{port}"),
            "--persistent",
            "--count",
            "5",
            "--timeout",
            "2",
        ])
        .output()
        .unwrap();
    t.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a lost peer is a failure: {out:?}"
    );
    // The client names what happened (issue 10): the peer closed after one request.
    assert!(
        err.contains("netkit: the server closed the connection after one request"),
        "{err}"
    );
}
