//! Table test of `netkit explain --error` over real messages from each runtime, stored in
//! fixtures/errors/*.txt: the first line `# key=value ...` says what must be decoded.

mod support_explain;

use std::collections::HashMap;

use netkit::explain::errors::decode;
use support_explain::{Helper, netkit};

#[test]
fn every_fixture_decodes_as_stated() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/errors");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
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
    explanation: Option<support_explain::Explain>,
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
    assert!(out.contains("EADDRINUSE from python (windows)"), "{out}");
    let (code, out, _) = netkit(&["explain", "--json", "--error", "hello world"]);
    assert_eq!(code, 1);
    let r: ErrorOut = serde_json::from_str(&out).unwrap();
    assert!(r.decoded.is_none() && r.explanation.is_none());
}
