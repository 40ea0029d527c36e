//! The explain tests' pieces: `netkit explain --json` as test-side types, and the
//! before/after check that a real bind (py/helper.py `check`) agrees with netkit's verdict
//! and is not changed by the diagnosis.

use serde::Deserialize;

use super::cli::netkit;
use super::inventory::SockJson;
use super::python::{helper_py, python_cmd};

/// A real bind (+listen for TCP) by helper.py `check`, optionally as `nobody`: `OK` or the
/// errno name — what the kernel says at this moment.
pub fn real_bind(args: &[&str], as_nobody: bool) -> String {
    let o = python_cmd(as_nobody)
        .arg(helper_py())
        .arg("check")
        .args(args)
        .output()
        .expect("run helper check");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[derive(Debug, Deserialize)]
pub struct Cause {
    pub kind: String,
    pub message: String,
    pub fix: String,
    pub seconds_left: Option<u64>,
    /// The shared socket object (docs/schema/defs.schema.json), as the listings print it.
    pub sockets: Vec<SockJson>,
}

#[derive(Debug, Deserialize)]
pub struct Check {
    pub what: String,
    pub bindable: bool,
    pub errno: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Explain {
    pub port: u16,
    pub bindable: bool,
    pub errno: Option<String>,
    pub errno_code: Option<i32>,
    pub stage: Option<String>,
    pub trial: serde_json::Value,
    pub checks: Vec<Check>,
    pub causes: Vec<Cause>,
    pub notes: Vec<String>,
}

impl Explain {
    /// The causes' kinds.
    pub fn kinds(&self) -> Vec<&str> {
        self.causes.iter().map(|c| c.kind.as_str()).collect()
    }

    /// The cause of `kind`, or a panic listing what there was.
    pub fn cause(&self, kind: &str) -> &Cause {
        self.causes
            .iter()
            .find(|c| c.kind == kind)
            .unwrap_or_else(|| panic!("no cause {kind:?} in {:#?}", self.causes))
    }

    /// `OK` or the errno name, comparable with [`real_bind`].
    pub fn verdict(&self) -> String {
        if self.bindable {
            "OK".into()
        } else {
            self.errno.clone().unwrap_or_default()
        }
    }
}

/// Runs `netkit explain --json ARGS` and decodes it; checks the exit code matches.
pub fn explain(args: &[&str]) -> Explain {
    let mut a = vec!["explain", "--json"];
    a.extend_from_slice(args);
    let (code, out, err) = netkit(&a);
    let e: Explain = serde_json::from_str(&out)
        .unwrap_or_else(|x| panic!("bad JSON ({x}): {out}\nstderr: {err}"));
    assert_eq!(
        code,
        if e.bindable { 0 } else { 1 },
        "exit code; stderr: {err}"
    );
    e
}

/// Translates explain flags into helper.py `check` flags.
pub fn check_args(port: u16, addr: &str, flags: &[&str]) -> Vec<String> {
    let mut v = vec![
        "--addr".to_string(),
        addr.to_string(),
        "--port".into(),
        port.to_string(),
    ];
    for f in flags {
        match *f {
            "--reuseaddr" => v.push("--ra".into()),
            "--reuseport" => v.push("--rp".into()),
            "--udp" => v.push("--udp".into()),
            "--v6only" => v.extend(["--v6only".into(), "1".into()]),
            "--dual-stack" => v.extend(["--v6only".into(), "0".into()]),
            other => panic!("unknown flag {other}"),
        }
    }
    v
}

/// Explains `port` on `addr` with `flags` and checks that netkit neither lies nor disturbs
/// (issue 8): a real bind with those options just before, `netkit explain`, a real bind just
/// after, and `netkit explain` again must all give the same verdict.
pub fn explain_and_verify(port: u16, addr: &str, flags: &[&str]) -> Explain {
    let p = port.to_string();
    let mut a = vec![p.as_str(), "--addr", addr];
    a.extend_from_slice(flags);
    let ca = check_args(port, addr, flags);
    let ca: Vec<&str> = ca.iter().map(String::as_str).collect();
    verify_around(&a, &ca, false)
}

/// The before/after check for any explain arguments: `check` are helper.py `check` flags for
/// the same bind (run as `nobody` when `as_nobody`). Returns the first explanation.
pub fn verify_around(explain_args: &[&str], check: &[&str], as_nobody: bool) -> Explain {
    let before = real_bind(check, as_nobody);
    let e = explain(explain_args);
    let after = real_bind(check, as_nobody);
    let again = explain(explain_args);
    assert_eq!(
        e.verdict(),
        before,
        "netkit's verdict vs a real bind made just before; causes: {:#?}",
        e.causes
    );
    assert_eq!(
        after, before,
        "a real bind with the same options changed its result across `netkit explain {explain_args:?}`: netkit disturbed the kernel state it diagnoses"
    );
    assert_eq!(
        again.verdict(),
        e.verdict(),
        "a second `netkit explain {explain_args:?}` gave another verdict"
    );
    e
}
