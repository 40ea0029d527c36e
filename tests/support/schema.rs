//! The JSON-schema harness every engineer's tests call: validates REAL `--json` output against
//! `docs/schema/<command>.schema.json` (draft 2020-12, the `jsonschema` crate) and checks the
//! vocabulary rules a schema cannot state once for all commands (PROTOCOL / README "JSON
//! schema"): `schema_version: 1` and `command` on every top-level object, split
//! `*_addr`/`*_port`, process objects `{pid, command, cmdline}`, one name per idea.
//!
//! Use from a test file:
//! ```ignore
//! mod support;
//! let v = support::schema::validate_stdout("who-owns", &output);      // one object
//! let events = support::schema::validate_lines("run server", &stdout); // JSON lines
//! ```

use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;

/// `docs/schema/` in this checkout.
pub fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/schema")
}

/// The schema file of `command` as typed (`"run server"` → `run-server.schema.json`).
pub fn schema_path(command: &str) -> PathBuf {
    schema_dir().join(format!("{}.schema.json", command.replace(' ', "-")))
}

/// The compiled validator of `command`'s schema; `$ref`s to `defs.schema.json` resolve as
/// files next to it.
pub fn validator(command: &str) -> jsonschema::Validator {
    let path = schema_path(command);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("no schema for {command:?} at {}: {e}", path.display()));
    let schema: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .with_base_uri(format!("file://{}", path.display()))
        .build(&schema)
        .unwrap_or_else(|e| panic!("{} is not a valid schema: {e}", path.display()))
}

/// Validates one top-level object of `command` against its schema and the vocabulary
/// rules; panics listing every violation.
pub fn validate(command: &str, v: &Value) {
    let validator = validator(command);
    let mut problems: Vec<String> = validator
        .iter_errors(v)
        .map(|e| format!("schema: at {}: {e}", e.instance_path()))
        .collect();
    problems.extend(vocabulary(command, v));
    if !problems.is_empty() {
        let shown = serde_json::to_string(v).unwrap_or_default();
        let shown: String = shown.chars().take(3000).collect();
        panic!(
            "`{command} --json` breaks {}:\n  {}\noutput: {shown}",
            schema_path(command).display(),
            problems.join("\n  ")
        );
    }
}

/// Decodes stdout of a `--json` run as exactly one object and validates it.
pub fn validate_stdout(command: &str, out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "`{command} --json` printed no single JSON object ({e}); exit {:?}\nstdout: {text}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    validate(command, &v);
    v
}

/// Validates every line of JSON-lines output (lab events); returns them. Panics on an
/// empty output, a line that is not JSON, or any violation.
pub fn validate_lines(command: &str, stdout: &[u8]) -> Vec<Value> {
    let text = String::from_utf8_lossy(stdout);
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("`{command}` printed a non-JSON line ({e}): {l}"))
        })
        .collect();
    assert!(!lines.is_empty(), "`{command}` printed no JSON lines");
    for v in &lines {
        validate(command, v);
    }
    lines
}

/// Keys that name an idea the vocabulary spells otherwise.
const RENAMED: &[(&str, &str)] = &[
    ("free", "bindable"),
    ("port_free", "port_released or bindable"),
    ("cut_off", "aborted"),
    ("local", "local_addr + local_port"),
    ("remote", "remote_addr + remote_port"),
    ("peer", "peer_addr + peer_port"),
    ("addr", "<role>_addr + <role>_port"),
    ("target", "target_addr + target_port"),
];

/// The rules of the vocabulary no single schema file states: returns the violations.
pub fn vocabulary(command: &str, v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    match v.as_object() {
        None => out.push("top level is not an object".to_string()),
        Some(o) => {
            if o.get("schema_version") != Some(&Value::from(1)) {
                out.push("top level lacks \"schema_version\": 1".into());
            }
            if o.get("command").and_then(Value::as_str) != Some(command) {
                out.push(format!(
                    "top level \"command\" is {:?}, expected {command:?}",
                    o.get("command")
                ));
            }
        }
    }
    walk("$", v, &mut out);
    out
}

fn walk(path: &str, v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, val) in o {
                let here = format!("{path}.{k}");
                if !is_snake(k) {
                    out.push(format!("{here}: key is not snake_case"));
                }
                if let Some((_, instead)) = RENAMED.iter().find(|(bad, _)| bad == k) {
                    // `target` etc. are fine as objects (a nested role); bad as endpoint strings.
                    if !(val.is_object() || val.is_array()) || *k == "free" || *k == "cut_off" {
                        out.push(format!("{here}: use {instead}"));
                    }
                }
                if k.ends_with("_addr") && !(val.is_null() || val.as_str().is_some_and(is_bare_ip))
                {
                    out.push(format!("{here}: {val} is not a bare IP address (or null)"));
                }
                if k.ends_with("_port")
                    && !(val.is_null() || val.as_u64().is_some_and(|p| p <= 65535))
                {
                    out.push(format!("{here}: {val} is not a port number (or null)"));
                }
                if k == "pid"
                    && !val.is_null()
                    && !(o.contains_key("command") && o.contains_key("cmdline"))
                {
                    out.push(format!(
                        "{path}: an object with a pid is a process: {{pid, command, cmdline}}"
                    ));
                }
                if k != "notes" {
                    walk(&here, val, out);
                }
            }
        }
        Value::Array(a) => {
            for (i, val) in a.iter().enumerate() {
                walk(&format!("{path}[{i}]"), val, out);
            }
        }
        Value::String(s) if is_endpoint(s) => {
            out.push(format!("{path}: {s:?} is an address:port string; split it"));
        }
        _ => {}
    }
}

fn is_snake(k: &str) -> bool {
    !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn is_bare_ip(s: &str) -> bool {
    let ip = s.split('%').next().unwrap_or(s);
    ip.parse::<std::net::IpAddr>().is_ok()
}

/// `127.0.0.1:6000`, `[::1]:6000`, `*:6000`.
pub fn is_endpoint(s: &str) -> bool {
    if is_bare_ip(s) {
        return false;
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "*" || host.parse::<std::net::IpAddr>().is_ok()
}
