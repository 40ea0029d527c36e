//! `netkit exporter` over HTTP against real sockets on loopback: the metrics of listeners the
//! test creates (labels and values), content negotiation, and clients that misbehave.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use support::exporter::{Exporter, Exposition, get, my_comm};
use support::poll;

fn listener(backlog: i32) -> (Socket, u16) {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    s.listen(backlog).unwrap();
    let port = s.local_addr().unwrap().as_socket().unwrap().port();
    (s, port)
}

#[test]
fn a_listener_the_test_made_appears_with_owner_queue_and_states() {
    let (lst, port) = listener(7);
    let p = port.to_string();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // Three clients waiting in the accept queue, never accepted.
    let waiting: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let ex = Exporter::start(&["--port", &p, "--max-ports", "0"]);
    let pid = std::process::id().to_string();
    let comm = my_comm();
    let m = poll(Duration::from_secs(5), || {
        let m = ex.metrics();
        (m.value("netkit_listener_accept_queue", &[("port", &p)]) == Some(3.0)).then_some(m)
    })
    .expect("accept queue of 3 never seen");
    let info = m.find("netkit_listener_info", &[("port", &p)]);
    assert_eq!(info.len(), 1, "{info:?}");
    let i = info[0];
    assert_eq!(i.value, 1.0);
    assert_eq!(i.label("proto"), Some("tcp"));
    assert_eq!(i.label("family"), Some("inet"));
    assert_eq!(i.label("addr"), Some("127.0.0.1"));
    assert_eq!(i.label("pid"), Some(pid.as_str()), "{i:?}");
    assert_eq!(i.label("process"), Some(comm.as_str()), "{i:?}");
    assert!(i.label("user").is_some(), "{i:?}");
    assert_eq!(
        m.value("netkit_listener_accept_backlog", &[("port", &p)]),
        Some(7.0)
    );
    let st = |s: &str| {
        m.value(
            "netkit_port_sockets",
            &[("port", &p), ("state", s), ("proto", "tcp")],
        )
    };
    assert_eq!(st("LISTEN"), Some(1.0));
    // The accepted-but-not-yet-accepted server sides are ESTABLISHED on the port.
    assert_eq!(st("ESTABLISHED"), Some(3.0));
    drop(waiting);
    drop(lst);
}

#[test]
fn close_wait_is_counted_per_owner_and_timewait_per_port() {
    let lst = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = lst.local_addr().unwrap();
    let p = addr.port().to_string();
    // CLOSE_WAIT: the client closes, the server side (ours) never does.
    let c = TcpStream::connect(addr).unwrap();
    let (server_side, _) = lst.accept().unwrap();
    drop(c);
    // TIME_WAIT on the listening port: the server side closes first.
    let c2 = TcpStream::connect(addr).unwrap();
    let (s2, _) = lst.accept().unwrap();
    s2.shutdown(Shutdown::Both).unwrap();
    drop(s2);
    let mut buf = [0u8; 1];
    let mut c2 = c2;
    let _ = c2.read(&mut buf);
    drop(c2);
    let ex = Exporter::start(&["--port", &p]);
    let pid = std::process::id().to_string();
    let m = poll(Duration::from_secs(5), || {
        let m = ex.metrics();
        (m.value("netkit_timewait_sockets", &[("port", &p)]) == Some(1.0)).then_some(m)
    })
    .expect("TIME_WAIT on the port never seen");
    let cw = m.find("netkit_close_wait_sockets", &[("pid", &pid)]);
    assert_eq!(cw.len(), 1, "{cw:?}");
    assert!(cw[0].value >= 1.0);
    assert_eq!(cw[0].label("process"), Some(my_comm().as_str()));
    let count = m
        .value("netkit_timewait_remaining_seconds_count", &[])
        .unwrap();
    let le60 = m
        .value("netkit_timewait_remaining_seconds_bucket", &[("le", "60")])
        .unwrap();
    assert!(count >= 1.0 && le60 <= count);
    assert!(m.value("netkit_ephemeral_ports", &[]).unwrap() > 0.0);
    let ratio = m.value("netkit_ephemeral_port_usage_ratio", &[]).unwrap();
    assert!((0.0..=1.0).contains(&ratio));
    drop(server_side);
}

#[test]
fn bound_only_sockets_are_counted_per_port() {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let port = s.local_addr().unwrap().as_socket().unwrap().port();
    let p = port.to_string();
    let ex = Exporter::start(&["--port", &p]);
    let m = ex.metrics();
    match m.value("netkit_bound_sockets", &[("port", &p)]) {
        Some(v) => assert_eq!(v, 1.0),
        None => {
            // sock_diag shows bound-only sockets from Linux 6.8 (state bit 13).
            let rel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
            let mut it = rel
                .trim()
                .split(|c: char| !c.is_ascii_digit())
                .map(|x| x.parse::<u32>().unwrap_or(0));
            let (maj, min) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
            assert!(
                (maj, min) < (6, 8),
                "kernel {rel} should show the bound socket"
            );
            eprintln!("skip: kernel {} cannot dump bound-only sockets", rel.trim());
        }
    }
}

#[test]
fn index_health_openmetrics_and_errors() {
    let ex = Exporter::start(&[]);
    let r = ex.get("/");
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("/metrics") && r.body.lines().count() == 1,
        "{r:?}"
    );
    let r = ex.get("/healthz");
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    assert_eq!(ex.get("/nope").status, 404);
    let r = ex.get("/metrics");
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
        "{r:?}"
    );
    assert!(!r.body.contains("# EOF"));
    let om = get(
        ex.addr,
        "/metrics",
        &[(
            "Accept",
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        )],
    );
    assert!(
        om.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{om:?}"
    );
    assert!(om.body.ends_with("# EOF\n"));
    assert!(
        om.body.contains("# TYPE netkit_listener info"),
        "info type in OpenMetrics"
    );
    // A POST is refused with Allow.
    let mut s = TcpStream::connect(ex.addr).unwrap();
    s.write_all(
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let r = support::exporter::parse_response(&raw);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
}

#[test]
fn silent_garbage_and_excess_clients_do_not_stop_it() {
    let ex = Exporter::start(&["--max-connections", "4", "--header-timeout", "1"]);
    // Garbage: a clear 400 or a close, never a dead exporter.
    for junk in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
        b"GET\r\n\r\n",
        b"HELLO /metrics SPDY/9\r\n\r\n",
        &[0u8; 3000][..],
    ] {
        let mut s = TcpStream::connect(ex.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(junk);
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        if !raw.is_empty() {
            assert!(
                String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 4"),
                "{:?}",
                String::from_utf8_lossy(&raw)
            );
        }
    }
    assert_eq!(ex.get("/healthz").status, 200);
    // A silent client is dropped after the header timeout.
    let mut silent = TcpStream::connect(ex.addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let t = std::time::Instant::now();
    let mut raw = Vec::new();
    let _ = silent.read_to_end(&mut raw);
    let waited = t.elapsed();
    assert!(
        waited < Duration::from_secs(4),
        "silent client held for {waited:?}"
    );
    // More silent clients than the bound: the next scrape is told 503, then served again
    // once the silent ones time out.
    let hogs: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(ex.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let busy = ex.get("/metrics");
    assert_eq!(busy.status, 503, "{busy:?}");
    assert_eq!(busy.header("retry-after"), Some("1"));
    assert_eq!(
        busy.header("content-length"),
        Some(busy.body.len().to_string().as_str())
    );
    let ok = poll(Duration::from_secs(5), || {
        (ex.get("/healthz").status == 200).then_some(())
    });
    assert!(
        ok.is_some(),
        "never served again after the silent clients timed out"
    );
    drop(hogs);
    let m = ex.metrics();
    assert!(
        m.value("netkit_exporter_rejected_connections_total", &[])
            .unwrap()
            >= 1.0
    );
}

#[test]
fn a_hundred_concurrent_scrapes_all_answered_sharing_collections() {
    let ex = Exporter::start(&["--max-connections", "128"]);
    let before = ex
        .metrics()
        .value("netkit_exporter_collections_total", &[])
        .unwrap();
    let addr = ex.addr;
    let threads: Vec<_> = (0..100)
        .map(|_| std::thread::spawn(move || get(addr, "/metrics", &[])))
        .collect();
    let mut ok = 0;
    for t in threads {
        let r = t.join().unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        assert!(
            Exposition::parse(&r.body)
                .value("netkit_ephemeral_ports", &[])
                .is_some()
        );
        ok += 1;
    }
    assert_eq!(ok, 100);
    let after = ex
        .metrics()
        .value("netkit_exporter_collections_total", &[])
        .unwrap();
    // 100 scrapes + the final one; shared collections mean far fewer than 101.
    let ran = after - before;
    assert!(
        (1.0..100.0).contains(&ran),
        "{ran} collections for 100 concurrent scrapes"
    );
}

#[test]
fn once_and_textfile_write_the_same_exposition_kind() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_netkit"))
        .args(["exporter", "--once"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        Exposition::parse(&text)
            .value("netkit_ephemeral_ports", &[])
            .is_some()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("netkit.prom");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_netkit"))
        .args(["exporter", "--textfile"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.contains("# TYPE netkit_sockets gauge"));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "temporary file left behind"
    );
    // --json is refused with one line (the exposition format is the output).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_netkit"))
        .args(["exporter", "--once", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
    // An unwritable path: one line, exit 2, no panic.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_netkit"))
        .args(["exporter", "--textfile", "/nonexistent-dir/x.prom"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent-dir/x.prom") && !err.contains("panicked"),
        "{err}"
    );
}
