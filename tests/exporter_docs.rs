//! The exporter's documents agree with what it exports: the alert rules pass `promtool check
//! rules` and their unit tests, the Grafana dashboard is valid JSON whose queries parse and
//! name only exported metrics, and the README documents every metric the binary prints.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use netkit::exporter::metrics::METRICS;

fn have(prog: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {prog}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Metric names used in a PromQL text, histogram suffixes folded back to the family.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"\bnetkit_[a-z0-9_]+").unwrap();
    re.find_iter(expr)
        .map(|m| {
            let n = m.as_str();
            for suffix in ["_bucket", "_sum", "_count"] {
                if let Some(base) = n.strip_suffix(suffix)
                    && METRICS.iter().any(|m| m.0 == base && m.1 == "histogram")
                {
                    return base.to_string();
                }
            }
            n.to_string()
        })
        .collect()
}

fn exported() -> BTreeSet<String> {
    METRICS.iter().map(|m| m.0.to_string()).collect()
}

/// Every family the real binary prints (its `# TYPE` lines, which exist without samples too).
fn printed_families() -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_netkit"))
        .args(["exporter", "--once"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect()
}

#[test]
fn metrics_table_matches_the_binary_and_the_readme() {
    assert_eq!(printed_families(), exported());
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for (name, _, _) in METRICS {
        assert!(
            readme.contains(&format!("`{name}`")),
            "README does not document {name}"
        );
    }
}

fn yaml_exprs(text: &str) -> Vec<String> {
    // The rules file keeps each expr either on one line or as a `|` block.
    let mut out = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(l) = lines.next() {
        let t = l.trim_start();
        if let Some(rest) = t.strip_prefix("expr:") {
            let rest = rest.trim();
            if rest == "|" {
                let indent = l.len() - t.len();
                let mut block = String::new();
                while let Some(n) = lines.peek() {
                    if n.trim().is_empty() || n.len() - n.trim_start().len() > indent {
                        block.push_str(n.trim());
                        block.push(' ');
                        lines.next();
                    } else {
                        break;
                    }
                }
                out.push(block);
            } else {
                out.push(rest.to_string());
            }
        }
    }
    out
}

#[test]
fn alert_rules_check_and_test_clean_and_use_exported_metrics() {
    let rules = root().join("docs/alerts/netkit.rules.yml");
    let text = std::fs::read_to_string(&rules).unwrap();
    let exprs = yaml_exprs(&text);
    assert_eq!(exprs.len(), 5, "{exprs:?}");
    let known = exported();
    for e in &exprs {
        let used = metric_names(e);
        assert!(!used.is_empty(), "{e}");
        for n in used {
            assert!(
                known.contains(&n),
                "alert uses {n}, which the exporter does not export"
            );
        }
    }
    if !have("promtool") {
        eprintln!("skip: promtool not installed (Debian package prometheus; .ci/run installs it)");
        return;
    }
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("promtool")
        .args(["test", "rules", "netkit.rules.test.yml"])
        .current_dir(root().join("docs/alerts"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                if k == "expr"
                    && let Some(s) = x.as_str()
                {
                    out.push(s.to_string());
                }
                collect_exprs(x, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_exprs(x, out)),
        _ => {}
    }
}

#[test]
fn dashboard_parses_and_queries_only_exported_metrics() {
    let path = root().join("docs/grafana/netkit-dashboard.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .expect("dashboard is valid JSON");
    assert!(v["panels"].as_array().is_some_and(|p| p.len() >= 10));
    let mut exprs = Vec::new();
    collect_exprs(&v, &mut exprs);
    let known = exported();
    let mut used_all = BTreeSet::new();
    for e in &exprs {
        let used = metric_names(e);
        assert!(!used.is_empty(), "panel query names no netkit metric: {e}");
        for n in used {
            assert!(
                known.contains(&n),
                "dashboard uses {n}, which the exporter does not export"
            );
            used_all.insert(n);
        }
    }
    // The main families each have a panel.
    for must in [
        "netkit_port_sockets",
        "netkit_listener_info",
        "netkit_listener_accept_queue",
        "netkit_timewait_sockets",
        "netkit_timewait_remaining_seconds",
        "netkit_bound_sockets",
        "netkit_ephemeral_port_usage_ratio",
        "netkit_close_wait_sockets",
    ] {
        assert!(used_all.contains(must), "no panel shows {must}");
    }
    if !have("promtool") {
        eprintln!("skip: promtool not installed, dashboard queries not parsed");
        return;
    }
    // Parse every query with Prometheus's own parser: as recording rules in a rules file
    // (Grafana's $instance becomes a regex that matches everything).
    let dir = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        let e = e.replace("$instance", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:q{i}\n        expr: {}\n",
            serde_json::to_string(&e).unwrap()
        ));
    }
    let f = dir.path().join("dash.rules.yml");
    std::fs::write(&f, rules).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
