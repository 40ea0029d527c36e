//! Running the netkit binary under test and decoding its `--json`.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde::de::DeserializeOwned;

/// Path of the binary under test.
pub fn netkit_bin() -> &'static str {
    env!("CARGO_BIN_EXE_netkit")
}

/// A `Command` for the binary under test.
pub fn netkit_cmd() -> Command {
    Command::new(netkit_bin())
}

/// Runs netkit with `args` (stdin closed) and returns its output.
pub fn netkit_output(args: &[&str]) -> Output {
    netkit_cmd()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run netkit")
}

/// Runs netkit; returns (exit code, stdout, stderr); -1 when killed by a signal.
pub fn netkit(args: &[&str]) -> (i32, String, String) {
    let o = netkit_output(args);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs netkit with `args` plus `--json`, decodes stdout as `T`; returns it with the exit code.
pub fn netkit_json<T: DeserializeOwned>(args: &[&str]) -> (T, i32) {
    let mut all: Vec<&str> = args.to_vec();
    all.push("--json");
    let out = netkit_output(&all);
    decode(&out, &all)
}

/// Runs netkit with `--json`, validates stdout against the schema of `args[0]` (the
/// command) and returns (exit code, value, stderr).
pub fn netkit_json_validated(args: &[&str]) -> (i32, serde_json::Value, String) {
    let mut all = args.to_vec();
    all.push("--json");
    let (code, out, err) = netkit(&all);
    let v = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {out:?}\nstderr: {err}"));
    super::schema::validate(args[0], &v);
    (code, v, err)
}

/// Decodes the stdout of a `--json` run.
pub fn decode<T: DeserializeOwned>(out: &Output, args: &[&str]) -> (T, i32) {
    let code = out.status.code().expect("exit code");
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "netkit {args:?} printed no valid JSON ({e}); exit {code}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (v, code)
}

/// Runs `netkit ARGS` to completion with a deadline (killed at the deadline); returns
/// (exit code, stdout, stderr).
pub fn run(args: &[&str], d: Duration) -> (Option<i32>, String, String) {
    let mut c = netkit_cmd()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    if super::proc::wait_exit(&mut c, d).is_none() {
        let _ = c.kill();
    }
    let out = c.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
