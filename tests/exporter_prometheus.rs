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
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: netkit\n    static_configs:\n      - targets: ['{}']\n",
            ex.addr
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
    let (_prom, web) = server.expect("prometheus did not start");
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
