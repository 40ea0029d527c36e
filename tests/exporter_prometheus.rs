//! The exporter against the real thing: `promtool check metrics` on its real output, and a
//! real Prometheus server scraping it and answering a query about a listener the test made.
//! Both skip with a printed reason where Debian's `prometheus` package is not installed
//! (`.ci/run` installs it).

mod support;

use std::io::Write;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::exporter::{Exporter, get, my_comm};
use support::listeners::free_port;
use support::{have, poll};

fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let msg = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && msg.trim().is_empty(), msg)
}

#[test]
fn promtool_accepts_the_real_exposition_without_lint_findings() {
    if !have("promtool") {
        eprintln!("skip: promtool not installed (Debian package prometheus; .ci/run installs it)");
        return;
    }
    // A listener, a TIME_WAIT and a bound-only socket so most families have samples.
    let lst = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = lst.local_addr().unwrap().port().to_string();
    let ex = Exporter::start(&["--port", &p, "--max-ports", "3"]);
    let body = ex.get("/metrics").body;
    let (ok, msg) = promtool_check(&body);
    assert!(
        ok,
        "promtool check metrics: {msg}\n--- exposition ---\n{body}"
    );
    // And a failed-collection exposition would be checked the same way by the unit tests;
    // a known-bad exposition shows promtool really checks (the test cannot pass vacuously).
    let (bad, _) =
        promtool_check("# TYPE x_total counter\nx_total{a=\"1\"} 1\nx_total{a=\"1\"} 2\n");
    assert!(!bad, "promtool accepted a duplicate series");
}

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A real Prometheus on a free loopback port scraping `target` every second; its web
/// address and the temporary directory holding its config and data.
fn prometheus_scraping(
    target: std::net::SocketAddr,
) -> (Prometheus, std::net::SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: netkit\n    static_configs:\n      - targets: ['{}']\n",
            target
        ),
    )
    .unwrap();
    // Prometheus binds its own port; if another process took the free port in between, try again.
    let mut server = None;
    for _ in 0..3 {
        let web = format!("127.0.0.1:{}", free_port());
        let mut child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn prometheus");
        let up = poll(Duration::from_secs(20), || {
            if let Ok(Some(_)) = child.try_wait() {
                return Some(false);
            }
            std::net::TcpStream::connect(&web).ok().map(|_| true)
        });
        if up == Some(true) {
            server = Some((
                Prometheus(child),
                web.parse::<std::net::SocketAddr>().unwrap(),
            ));
            break;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    let (prom, web) = server.expect("prometheus did not start");
    (prom, web, dir)
}

/// The result vector of an instant query, once Prometheus has one (bounded wait).
fn query_until_found(web: std::net::SocketAddr, query: &str) -> Option<Vec<serde_json::Value>> {
    poll(Duration::from_secs(30), || {
        let r = get(web, &format!("/api/v1/query?query={query}"), &[]);
        if r.status != 200 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
        let res = v["data"]["result"].as_array()?.clone();
        (!res.is_empty()).then_some(res)
    })
}

#[test]
fn a_real_prometheus_scrapes_it_and_answers_about_our_listener() {
    if !have("prometheus") {
        eprintln!(
            "skip: prometheus not installed (Debian package prometheus; .ci/run installs it)"
        );
        return;
    }
    let lst = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = lst.local_addr().unwrap().port().to_string();
    let ex = Exporter::start(&["--port", &port]);
    let (_prom, web, _dir) = prometheus_scraping(ex.addr);
    let query = format!("netkit_listener_info%7Bport%3D%22{port}%22%7D");
    let result = poll(Duration::from_secs(30), || {
        let r = get(web, &format!("/api/v1/query?query={query}"), &[]);
        if r.status != 200 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
        let res = v["data"]["result"].as_array()?.clone();
        (!res.is_empty()).then_some(res)
    })
    .expect("Prometheus never had netkit_listener_info for our port");
    assert_eq!(result.len(), 1, "{result:?}");
    let metric = &result[0]["metric"];
    assert_eq!(metric["job"], "netkit");
    assert_eq!(metric["proto"], "tcp");
    assert_eq!(metric["addr"], "127.0.0.1");
    assert_eq!(metric["pid"], std::process::id().to_string());
    assert_eq!(metric["process"], my_comm());
    assert_eq!(result[0]["value"][1], "1");
    // The target is healthy (the exposition parsed, in whichever format was negotiated).
    let r = get(web, "/api/v1/targets", &[]);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let t = &v["data"]["activeTargets"][0];
    assert_eq!(t["health"], "up", "{t}");
    assert_eq!(t["lastError"], "", "{t}");
    // A value: LISTEN sockets on the port.
    let q = format!("netkit_port_sockets%7Bport%3D%22{port}%22,state%3D%22LISTEN%22%7D");
    let r = get(web, &format!("/api/v1/query?query={q}"), &[]);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["data"]["result"][0]["value"][1], "1", "{v}");
    drop(lst);
}

/// A listener on 127.0.0.1 inside the namespace that closed two accepted connections itself
/// (two TIME_WAIT on its port); prints its port, waits for stdin to close.
const HOLD_IN_NS: &str = r#"
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(); p = s.getsockname()[1]
for _ in range(2):
    c = socket.create_connection(("127.0.0.1", p)); a, _ = s.accept()
    a.close(); c.recv(1); c.close()
deadline = time.time() + 5
while time.time() < deadline:
    rows = open("/proc/self/net/tcp").read().splitlines()[1:]
    if sum(1 for r in rows if r.split()[3] == "06") >= 2:
        break
    time.sleep(0.01)
print(p, flush=True)
sys.stdin.read()
"#;

struct NsHolder {
    child: Child,
    port: u16,
}

impl Drop for NsHolder {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The namespace and its holder (holder first, so it ends before the namespace goes).
fn listener_in_named_netns(tag: &str) -> Option<(NsHolder, support::netns::Netns)> {
    if !support::is_root() {
        eprintln!("skip: ip netns add and entering namespaces need root");
        return None;
    }
    let ns = support::netns::Netns::new(&format!("netns2-{tag}"))?;
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.0, "python3", "-c", HOLD_IN_NS])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take()?),
        &mut line,
    )
    .ok()?;
    let port = line.trim().parse().ok()?;
    Some((NsHolder { child, port }, ns))
}

fn own_netns_inode() -> String {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/net")
        .expect("own netns")
        .ino()
        .to_string()
}

#[test]
fn all_netns_labels_each_namespace_and_promtool_accepts_it() {
    let Some((h, ns)) = listener_in_named_netns("once") else {
        return;
    };
    // The namespace's own ephemeral range (ip_local_port_range is per namespace): read from
    // the thread that entered it, /proc/sys/net shows that namespace's value.
    assert!(
        Command::new("ip")
            .args(["netns", "exec", &ns.0, "sysctl", "-qw"])
            .arg("net.ipv4.ip_local_port_range=40000 40009")
            .status()
            .is_ok_and(|s| s.success())
    );
    let out = Command::new(env!("CARGO_BIN_EXE_netkit"))
        .args(["exporter", "--once", "--all-netns"])
        .output()
        .expect("netkit runs");
    assert!(out.status.success(), "{out:?}");
    let body = String::from_utf8(out.stdout).expect("utf-8");
    let e = support::exporter::Exposition::parse(&body);
    let port = h.port.to_string();
    let theirs = [("netns_name", ns.0.as_str()), ("port", port.as_str())];
    let info = e.find("netkit_listener_info", &theirs);
    assert_eq!(info.len(), 1, "{body}");
    assert_eq!(
        info[0].label("pid"),
        Some(h.child.id().to_string().as_str())
    );
    let inode = info[0].label("netns").expect("netns label").to_string();
    assert_ne!(inode, own_netns_inode());
    let with = |extra: &[(&str, &str)]| {
        let mut w = theirs.to_vec();
        w.extend_from_slice(extra);
        e.value("netkit_port_sockets", &w)
    };
    assert_eq!(with(&[("state", "LISTEN")]), Some(1.0), "{body}");
    assert_eq!(
        e.value("netkit_timewait_sockets", &theirs),
        Some(2.0),
        "{body}"
    );
    // Each namespace has its own histogram, its own ephemeral range.
    assert_eq!(
        e.value(
            "netkit_timewait_remaining_seconds_count",
            &[("netns", inode.as_str())]
        ),
        Some(2.0),
        "{body}"
    );
    assert_eq!(
        e.value("netkit_ephemeral_ports", &[("netns", inode.as_str())]),
        Some(10.0),
        "{body}"
    );
    let own = e
        .value(
            "netkit_ephemeral_ports",
            &[("netns", own_netns_inode().as_str())],
        )
        .expect("own range");
    assert_ne!(own, 10.0, "the host's range is not the namespace's");
    // The exporter's own namespace is labelled with its inode; its own metrics are not.
    assert!(
        !e.find("netkit_sockets", &[("netns", own_netns_inode().as_str())])
            .is_empty(),
        "{body}"
    );
    assert!(
        e.find("netkit_exporter_collections_total", &[])
            .iter()
            .all(|s| s.label("netns").is_none())
    );
    if have("promtool") {
        let (ok, msg) = promtool_check(&body);
        assert!(ok, "promtool check metrics: {msg}\n{body}");
    } else {
        eprintln!("promtool part skipped: not installed (.ci/run installs it)");
    }
    // Without CAP_SYS_ADMIN (uid 65534): only its own namespace, and it says how many not.
    if support::can_setpriv() {
        let out = Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_netkit"))
            .args(["exporter", "--once", "--all-netns"])
            .output()
            .expect("setpriv");
        assert!(out.status.success(), "{out:?}");
        let body = String::from_utf8_lossy(&out.stdout);
        let e = support::exporter::Exposition::parse(&body);
        assert!(
            e.find("netkit_listener_info", &[("netns_name", ns.0.as_str())])
                .is_empty(),
            "{body}"
        );
        let missed = e
            .value("netkit_exporter_unreadable_namespaces", &[])
            .expect("the gauge");
        assert!(
            missed >= 1.0,
            "{ns:?} at least was not entered: {body}",
            ns = ns.0
        );
    } else {
        eprintln!("uid 65534 part skipped: setpriv missing");
    }
    drop(h);
}

#[test]
fn a_real_prometheus_sees_a_listener_in_another_namespace_by_its_netns_labels() {
    if !have("prometheus") {
        eprintln!(
            "skip: prometheus not installed (Debian package prometheus; .ci/run installs it)"
        );
        return;
    }
    let Some((h, ns)) = listener_in_named_netns("prom") else {
        return;
    };
    let ex = Exporter::start(&["--all-netns"]);
    let (_prom, web, _dir) = prometheus_scraping(ex.addr);
    let query = format!(
        "netkit_listener_info%7Bnetns_name%3D%22{}%22,port%3D%22{}%22%7D",
        ns.0, h.port
    );
    let result = query_until_found(web, &query)
        .expect("Prometheus never had netkit_listener_info for the namespace's listener");
    assert_eq!(result.len(), 1, "{result:?}");
    let m = &result[0]["metric"];
    assert_eq!(m["pid"], h.child.id().to_string(), "{m}");
    assert_eq!(m["addr"], "127.0.0.1");
    assert!(
        m["netns"].as_str().is_some_and(|i| i != own_netns_inode()),
        "{m}"
    );
    let q = format!(
        "netkit_timewait_sockets%7Bnetns_name%3D%22{}%22,port%3D%22{}%22%7D",
        ns.0, h.port
    );
    let r = query_until_found(web, &q).expect("timewait series");
    assert_eq!(r[0]["value"][1], "2", "{r:?}");
    drop(h);
}
