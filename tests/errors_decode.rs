//! Table test of `netkit explain --error` over real messages from each runtime, stored in
//! fixtures/errors/*.txt: the first line `# key=value ...` says what must be decoded.

mod support;

use std::collections::HashMap;

use netkit::explain::errors::decode;
use support::cli::netkit;
use support::python::Helper;

#[test]
fn every_fixture_decodes_as_stated() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/errors");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            continue;
        }
        let body = std::fs::read_to_string(&path).unwrap();
        let (head, text) = body.split_once('\n').unwrap();
        let text = text.trim_end();
        let want: HashMap<&str, &str> = head
            .trim_start_matches('#')
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .collect();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        n += 1;
        let got = decode(text);
        if head.trim() == "# none" {
            assert!(got.is_none(), "{name}: decoded {got:?}");
            continue;
        }
        let d = got.unwrap_or_else(|| panic!("{name}: not decoded"));
        assert_eq!(d.errno, want["errno"], "{name}");
        if let Some(p) = want.get("platform") {
            assert_eq!(d.platform, *p, "{name}");
        }
        if let Some(s) = want.get("source") {
            assert_eq!(d.source, *s, "{name}");
        }
        assert_eq!(
            d.port.map(|p| p.to_string()),
            want.get("port").map(|p| p.to_string()),
            "{name}: port"
        );
        if want.get("addr") == Some(&"localhost") {
            assert_eq!(d.host.as_deref(), Some("localhost"), "{name}: host");
        }
        assert_eq!(
            d.addr.map(|a| a.to_string()),
            want.get("addr").map(|a| if *a == "localhost" {
                "127.0.0.1".to_string()
            } else {
                a.to_string()
            }),
            "{name}: addr"
        );
        let proto = want.get("proto").copied().unwrap_or("tcp");
        assert_eq!(d.proto.to_string(), proto, "{name}: proto");
        assert!(!d.message.is_empty() && !d.fix.is_empty());
        if d.platform == "windows" || d.platform == "macos" {
            assert!(
                d.message.contains("BIND-RULES.md §5") || d.message.contains("macOS"),
                "{name}: {}",
                d.message
            );
        }
    }
    assert!(n >= 30, "only {n} fixtures");
}

#[derive(serde::Deserialize)]
struct ErrorOut {
    decoded: Option<serde_json::Value>,
    explanation: Option<support::explain::Explain>,
}

#[test]
fn node_message_runs_the_live_explanation_of_its_port() {
    let h = Helper::start("listen", &["--addr", "127.0.0.1"], false);
    let text = format!(
        "Error: listen EADDRINUSE: address already in use :::{}",
        h.port()
    );
    let (code, out, err) = netkit(&["explain", "--json", "--error", &text]);
    assert_eq!(code, 1, "{err}");
    let r: ErrorOut = serde_json::from_str(&out).unwrap();
    assert_eq!(r.decoded.unwrap()["errno"], "EADDRINUSE");
    let e = r.explanation.expect("live explanation");
    assert_eq!(e.port, h.port());
    assert!(!e.bindable);
    // Node listens on [::] dual-stack with SO_REUSEADDR: the IPv4 listener overlaps.
    assert_eq!(e.trial["reuseaddr"], true);
    assert_eq!(
        e.cause("dual_stack_overlap").sockets[0].owners[0].pid,
        h.pid()
    );
}

#[test]
fn messages_without_port_or_from_other_platforms_only_decode() {
    let (code, out, _) = netkit(&[
        "explain",
        "--error",
        "OSError: [WinError 10048] Only one usage of each socket address",
    ]);
    assert_eq!(code, 0);
    assert!(
        out.contains("EADDRINUSE at bind() from python (windows)"),
        "{out}"
    );
    let (code, out, _) = netkit(&["explain", "--json", "--error", "hello world"]);
    assert_eq!(code, 1);
    let r: ErrorOut = serde_json::from_str(&out).unwrap();
    assert!(r.decoded.is_none() && r.explanation.is_none());
}

/// One message of fixtures/errors/corpus/real-world.txt.
struct Entry {
    id: String,
    program: String,
    source: String,
    expect: HashMap<String, String>,
    none: bool,
    text: String,
}

fn corpus() -> Vec<Entry> {
    let body = include_str!("../fixtures/errors/corpus/real-world.txt");
    let mut out = Vec::new();
    for block in body.split("\n=== ").skip(1) {
        let (id, rest) = block.split_once('\n').unwrap();
        let mut lines = rest.lines();
        let mut field = |k: &str| {
            let l = lines.next().unwrap_or_default();
            l.strip_prefix(k)
                .unwrap_or_else(|| panic!("{id}: expected {k:?}, got {l:?}"))
                .trim()
                .to_string()
        };
        let program = field("program:");
        let source = field("source:");
        let expect = field("expect:");
        let text = lines.collect::<Vec<_>>().join("\n").trim_end().to_string();
        out.push(Entry {
            id: id.trim().to_string(),
            program,
            source,
            none: expect == "none",
            expect: expect
                .split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            text,
        });
    }
    out
}

fn opt(v: &str) -> Option<&str> {
    (v != "-").then_some(v)
}

/// Issue 8: the real world's messages, decoded as the table says: errno, side, port,
/// address, platform (and host/proto where given). Prints the counts per errno and side.
#[test]
fn issue_8_real_world_corpus_decodes_as_tabled() {
    let entries = corpus();
    let mut by_errno_side: std::collections::BTreeMap<(String, String), usize> =
        std::collections::BTreeMap::new();
    let mut programs = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    for e in &entries {
        assert!(
            e.source.starts_with("https://"),
            "{}: source {}",
            e.id,
            e.source
        );
        programs.insert(
            e.program
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_lowercase(),
        );
        let got = decode(&e.text);
        if e.none {
            if got.is_some() {
                failures.push(format!("{}: decoded {:?} but should not", e.id, got));
            }
            *by_errno_side
                .entry(("none".into(), "-".into()))
                .or_default() += 1;
            continue;
        }
        let Some(d) = got else {
            failures.push(format!("{}: not decoded", e.id));
            continue;
        };
        let x = |k: &str| e.expect.get(k).map(String::as_str).unwrap_or("-");
        let mut check = |what: &str, got: Option<String>, want: Option<&str>| {
            if got.as_deref() != want {
                failures.push(format!("{}: {what} {got:?}, want {want:?}", e.id));
            }
        };
        check("errno", Some(d.errno.to_string()), Some(x("errno")));
        check("side", Some(d.side.to_string()), Some(x("side")));
        check("port", d.port.map(|p| p.to_string()), opt(x("port")));
        check("addr", d.addr.map(|a| a.to_string()), opt(x("addr")));
        check(
            "platform",
            Some(d.platform.to_string()),
            Some(x("platform")),
        );
        if let Some(h) = e.expect.get("host") {
            check("host", d.host.clone(), Some(h.as_str()));
        }
        check(
            "proto",
            Some(d.proto.to_string()),
            Some(e.expect.get("proto").map_or("tcp", String::as_str)),
        );
        *by_errno_side
            .entry((d.errno.to_string(), d.side.to_string()))
            .or_default() += 1;
    }
    eprintln!(
        "corpus: {} messages from {} programs",
        entries.len(),
        programs.len()
    );
    for ((errno, side), n) in &by_errno_side {
        eprintln!("  {errno:<14} {side:<8} {n}");
    }
    assert!(
        failures.is_empty(),
        "{} of {}:\n{}",
        failures.len(),
        entries.len(),
        failures.join("\n")
    );
    assert!(entries.len() >= 120, "only {} messages", entries.len());
    assert!(
        programs.len() >= 30,
        "only {} programs: {programs:?}",
        programs.len()
    );
}

/// `explain --error TEXT --json` as a JSON value.
fn error_json(text: &str) -> (i32, serde_json::Value) {
    let (code, out, err) = netkit(&["explain", "--json", "--error", text]);
    let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out} {err}"));
    (code, v)
}

/// Issue 8: a connection-refused text goes to the connect side and is live-checked with
/// the address and port it names; an address standing away from the port (sshd,
/// PostgreSQL's HINT line) is the one the bind trial uses; a macOS text is never checked
/// as this host.
#[test]
fn issue_8_live_checks_use_what_the_message_names() {
    // Connect side: curl to a loopback port nothing listens on.
    let p = support::listeners::free_port();
    let (code, v) = error_json(&format!(
        "curl: (7) Failed to connect to 127.0.0.1 port {p}: Connection refused"
    ));
    assert_eq!(code, 1);
    assert_eq!(v["decoded"]["side"], "connect");
    let e = &v["explanation"];
    assert_eq!(e["mode"], "connect", "{v:#}");
    assert_eq!(e["target_addr"], "127.0.0.1");
    assert_eq!(e["target_port"], p);
    assert_eq!(e["causes"][0]["kind"], "nothing_listens");
    // Bind side, address before the port: sshd on 127.0.0.1 with a listener there.
    let h = Helper::start("listen", &["--addr", "127.0.0.1"], false);
    let (_, v) = error_json(&format!(
        "Bind to port {} on 127.0.0.1 failed: Address already in use.",
        h.port()
    ));
    let e = &v["explanation"];
    assert_eq!(e["trial"]["local_addr"], "127.0.0.1", "{v:#}");
    assert_eq!(e["bindable"], false);
    assert_eq!(e["causes"][0]["sockets"][0]["owners"][0]["pid"], h.pid());
    // PostgreSQL: the address in quotes, the port on the HINT line.
    let (_, v) = error_json(&format!(
        "LOG:  could not bind IPv6 address \"::1\": Address already in use\nHINT:  Is another postmaster already running on port {}? If not, wait a few seconds and retry.",
        h.port()
    ));
    assert_eq!(v["decoded"]["named_addr"], "::1");
    assert_eq!(v["explanation"]["trial"]["local_addr"], "::1", "{v:#}");
    // macOS (AirPlay hint): decoded, never live-checked here.
    let (code, v) = error_json(
        "Address already in use\nPort 5000 is in use by another program. Either identify and stop that program, or start the server with a different port.\nOn macOS, try disabling the 'AirPlay Receiver' service from System Preferences -> General -> AirDrop & Handoff.",
    );
    assert_eq!(code, 0);
    assert_eq!(v["decoded"]["platform"], "macos");
    assert!(v["explanation"].is_null());
    assert!(
        v["notes"][0]
            .as_str()
            .unwrap()
            .contains("says nothing about it"),
        "{v:#}"
    );
    // EACCES on an unprivileged port is not called a privileged-port problem.
    let (_, v) = error_json("Error: listen EACCES: permission denied 0.0.0.0:3000");
    let m = v["decoded"]["message"].as_str().unwrap();
    assert!(m.contains("NOT a privileged port"), "{m}");
}
