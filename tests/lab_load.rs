//! `netkit load` against real lab servers on loopback: the summary's fields, `--json`
//! (validated against docs/schema/load.schema.json), bounded runs (`--requests`,
//! `--duration`), error kinds, the `--hold` demo (single mode: every request times out;
//! async: none), and a non-loopback target refused. The run-* event schemas are checked
//! against real output here too.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::cli::*;
use support::eventually;
use support::lab::*;
use support::listeners::*;

fn schema(name: &str) -> Value {
    let path = format!(
        "{}/docs/schema/{name}.schema.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn assert_valid(schema_name: &str, v: &Value) {
    let s = schema(schema_name);
    let validator = jsonschema::validator_for(&s).unwrap();
    let errors: Vec<String> = validator.iter_errors(v).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{schema_name}: {errors:?}\n{v}");
}

fn load(args: &[&str], limit: Duration) -> (Option<i32>, String, String) {
    let mut all = vec!["load"];
    all.extend_from_slice(args);
    run(&all, limit)
}

fn load_json(args: &[&str]) -> (Option<i32>, Value) {
    let mut all = args.to_vec();
    all.push("--json");
    let (code, out, err) = load(&all, Duration::from_secs(30));
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    assert_valid("load", &v);
    (code, v)
}

#[test]
fn summary_table_has_rate_percentiles_and_error_kinds() {
    let (_srv, addr) = server(&["--protocol", "zen"]);
    let a = addr.to_string();
    let (code, out, err) = load(
        &[&a, "--protocol", "zen", "--conns", "4", "--duration", "0.5"],
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    for word in [
        "req/s",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "p99.9_ms",
        "max_ms",
        "refused",
        "reset",
        "timeout",
        "wrong_reply",
    ] {
        assert!(out.contains(word), "{word} missing:\n{out}");
    }
}

#[test]
fn requests_bound_the_run_exactly_and_json_has_the_same_numbers() {
    let (srv, addr) = server(&[]);
    let a = addr.to_string();
    let (code, v) = load_json(&[
        &a,
        "--protocol",
        "lab",
        "--new-conn",
        "--conns",
        "3",
        "--requests",
        "150",
    ]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["requests"], 150);
    assert_eq!(v["ok"], 150);
    assert_eq!(v["errors_total"], 0);
    assert_eq!(v["command"], "load");
    assert_eq!(v["target_port"], addr.port());
    assert!(v["latency_ms"]["p99"].as_f64().unwrap() >= v["latency_ms"]["p50"].as_f64().unwrap());
    assert!(v["req_per_s"].as_f64().unwrap() > 0.0);
    assert!(eventually(Duration::from_secs(5), || srv.count("received") == 150));
}

#[test]
fn duration_bounds_the_run_in_time() {
    let (_srv, addr) = server(&["--protocol", "echo"]);
    let a = addr.to_string();
    let t = Instant::now();
    let (code, v) = load_json(&[
        &a,
        "--protocol",
        "echo",
        "--conns",
        "2",
        "--duration",
        "0.6",
    ]);
    assert_eq!(code, Some(0), "{v}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let d = v["duration_s"].as_f64().unwrap();
    assert!((0.5..=0.7).contains(&d), "{d}");
    assert!(v["ok"].as_u64().unwrap() > 0);
}

#[test]
fn rate_paces_the_requests() {
    let (_srv, addr) = server(&["--protocol", "zen"]);
    let a = addr.to_string();
    let (code, v) = load_json(&[&a, "--conns", "2", "--duration", "1", "--rate", "50"]);
    assert_eq!(code, Some(0), "{v}");
    let ok = v["ok"].as_u64().unwrap();
    assert!((40..=52).contains(&ok), "{ok} requests at 50/s for 1 s");
}

#[test]
fn hold_stalls_a_single_mode_server_but_not_an_async_one() {
    for (mode, stalled) in [("single", true), ("async", false)] {
        let (_srv, addr) = server(&["--protocol", "zen", "--mode", mode]);
        let a = addr.to_string();
        let (code, v) = load_json(&[
            &a,
            "--protocol",
            "zen",
            "--hold",
            "1",
            "--conns",
            "2",
            "--duration",
            "1.5",
            "--timeout",
            "0.5",
        ]);
        assert_eq!(v["held"], 1, "{mode}: {v}");
        if stalled {
            assert_eq!(code, Some(1), "{mode}: {v}");
            assert_eq!(v["ok"], 0, "{mode}: {v}");
            assert!(v["errors"]["timeout"].as_u64().unwrap() >= 2, "{mode}: {v}");
            assert!(v["notes"][0].as_str().unwrap().contains("timed out"), "{v}");
        } else {
            assert_eq!(code, Some(0), "{mode}: {v}");
            assert_eq!(v["errors_total"], 0, "{mode}: {v}");
            assert!(v["ok"].as_u64().unwrap() > 10, "{mode}: {v}");
        }
    }
}

#[test]
fn errors_are_counted_by_kind() {
    // Refused: nothing listens on a port we just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("127.0.0.1:{port}");
    let (code, v) = load_json(&[&dead, "--new-conn", "--duration", "0.3"]);
    assert_eq!(code, Some(1));
    assert!(v["errors"]["refused"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["ok"], 0);
    assert_eq!(v["latency_ms"], Value::Null);
    // Wrong reply: zen questions to a lab server.
    let (_srv, addr) = server(&[]);
    let a = addr.to_string();
    let (code, v) = load_json(&[&a, "--protocol", "zen", "--new-conn", "--requests", "5"]);
    assert_eq!(code, Some(1));
    assert_eq!(v["errors"]["wrong_reply"], 5, "{v}");
}

#[test]
fn proxy_json_goes_through_the_netkit_proxy() {
    let (_srv, server_addr) = server(&[]);
    let proxy = Proc::spawn(&["run", "proxy", "--listen", "127.0.0.1:0", "--quiet"]);
    let p: SocketAddr = proxy.listening();
    let (pa, sa) = (p.to_string(), server_addr.to_string());
    for extra in [&["--new-conn"][..], &[][..]] {
        let mut args = vec![
            &pa[..],
            "--protocol",
            "proxy-json",
            "--server",
            &sa,
            "--requests",
            "40",
        ];
        args.extend_from_slice(extra);
        let (code, v) = load_json(&args);
        assert_eq!(code, Some(0), "{extra:?}: {v}");
        assert_eq!(v["ok"], 40, "{v}");
    }
}

#[test]
fn non_loopback_targets_and_bad_bounds_are_refused() {
    let (code, _, err) = load(&["192.0.2.1:80"], Duration::from_secs(10));
    assert_eq!(code, Some(2));
    assert!(err.contains("not a loopback address"), "{err}");
    let (code, _, _) = load(
        &["127.0.0.1:80", "--duration", "0"],
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(2));
    let (code, _, _) = load(
        &["127.0.0.1:80", "--conns", "100000"],
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(2));
}

#[test]
fn run_server_and_client_events_match_their_schemas() {
    let (srv, addr) = server(&["--protocol", "zen", "--mode", "threaded"]);
    let mut s = connect(addr, Duration::from_secs(5));
    use std::io::Write;
    s.write_all(b"Beautiful is better than").unwrap();
    drop(s);
    assert!(
        srv.wait_line(Duration::from_secs(5), |l| l.event == "closed")
            .is_some()
    );
    let (_lab, lab_addr) = server(&[]);
    let (code, out, err) = run(
        &[
            "run",
            "client",
            "--direct",
            "--server",
            &lab_addr.to_string(),
            "--count",
            "2",
            "--json",
        ],
        Duration::from_secs(10),
    );
    assert_eq!(code, Some(0), "{out}{err}");
    for l in out.lines() {
        assert_valid("run-client", &serde_json::from_str(l).unwrap());
    }
    for l in srv.lines() {
        assert_valid("run-server", &l.raw);
    }
    assert!(srv.lines().len() >= 3);
}

#[test]
fn a_reply_with_bytes_beyond_the_answer_is_a_wrong_reply_at_once() {
    use std::io::{Read, Write};
    // Answers every zen question on a kept connection with "Ugly." plus one stray byte.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in l.incoming().take(8) {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 256];
                while matches!(s.read(&mut buf), Ok(n) if n > 0) {
                    if s.write_all(b"Ugly.!").is_err() {
                        break;
                    }
                }
            });
        }
    });
    let (code, v) = load_json(&[
        &addr,
        "--protocol",
        "zen",
        "--conns",
        "1",
        "--requests",
        "3",
    ]);
    assert_eq!(code, Some(1), "{v}");
    // Each reply is wrong where it is read, not one request later.
    assert_eq!(v["errors"]["wrong_reply"], 3, "{v}");
    assert_eq!(v["ok"], 0, "{v}");
}
