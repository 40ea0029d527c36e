//! `who-owns --kill` as a workflow: several ports in one call, the documented exit codes
//! (0 freed, 1 nothing to stop or declined, 3 signalled but still held), a declined prompt on
//! a real terminal (util-linux `script`), and no empty table when there is nothing to stop.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use support::cli::netkit;
use support::proc::{GroupChild, wait_exit};
use support::python::python_cmd;

/// A python3 process listening on 127.0.0.1:0, optionally ignoring SIGTERM; killed on drop.
struct Holder {
    proc: GroupChild,
    port: u16,
}

impl Holder {
    fn start(ignore_term: bool) -> Holder {
        let code = format!(
            "import signal, socket, sys, time\n{}s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\nprint(s.getsockname()[1], flush=True)\ntime.sleep(60)\n",
            if ignore_term {
                "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            } else {
                ""
            }
        );
        let mut cmd = python_cmd(false);
        cmd.args(["-c", &code]);
        let proc = GroupChild::spawn(cmd);
        Holder {
            port: proc.line().trim().parse().expect("port"),
            proc,
        }
    }

    fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// True once it has exited, waiting up to 10 s (a loaded machine may be slow to run
    /// the signal's default action).
    fn exited(&mut self) -> bool {
        self.exited_within(Duration::from_secs(10))
    }

    fn exited_within(&mut self, limit: Duration) -> bool {
        wait_exit(&mut self.proc.child, limit).is_some()
    }
}

#[test]
fn several_ports_in_one_call_exit_0_when_freed() {
    let mut a = Holder::start(false);
    let mut b = Holder::start(false);
    // Our address and TCP only: other programs may hold the same port numbers elsewhere
    // (a UDP socket on 127.0.0.1:P, a load generator's 127.0.0.9:P) and must not be killed.
    let spec = format!("127.0.0.1:{},127.0.0.1:{}", a.port, b.port);
    let (code, out, err) = netkit(&["who-owns", &spec, "--tcp", "--kill", "--yes", "--json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["port"].is_null());
    let mut ports: Vec<u64> = v["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    ports.sort();
    let mut want = vec![u64::from(a.port), u64::from(b.port)];
    want.sort();
    assert_eq!(ports, want);
    let pids: Vec<u64> = v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(pids.len(), 2, "{v}");
    assert!(pids.contains(&u64::from(a.pid())) && pids.contains(&u64::from(b.pid())));
    assert_eq!(v["port_released"], true);
    assert!(a.exited() && b.exited());
}

#[test]
fn signalled_but_still_held_is_exit_3() {
    let mut h = Holder::start(true);
    let (code, out, err) = netkit(&[
        "who-owns",
        &format!("127.0.0.1:{}", h.port),
        "--tcp",
        "--kill",
        "--yes",
    ]);
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(out.contains("SIGTERM: still holds the port"), "{out}");
    assert!(
        err.contains(&format!("PID {} still hold", h.pid())),
        "{err}"
    );
    assert!(err.contains("--signal KILL"), "{err}");
    assert!(!h.exited_within(Duration::from_secs(2)));
    let (code, _, _) = netkit(&[
        "who-owns",
        &format!("127.0.0.1:{}", h.port),
        "--tcp",
        "--kill",
        "--yes",
        "--signal",
        "KILL",
    ]);
    assert_eq!(code, 0);
}

#[test]
fn nothing_to_stop_prints_no_table_and_exits_1() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // Our address only: other programs may hold the same port number on other loopback
    // addresses (a load generator's 127.0.0.9:P source port), and must not be signalled.
    let p = format!("127.0.0.1:{}", l.local_addr().unwrap().port());
    drop(l);
    let (code, out, err) = netkit(&["who-owns", &p, "--tcp", "--kill", "--yes"]);
    assert_eq!(code, 1);
    assert_eq!(out, "", "no empty table header");
    assert!(err.contains("nothing to stop"), "{err}");
}

#[test]
fn declining_the_prompt_exits_1_and_signals_nothing() {
    if Command::new("script").arg("--version").output().is_err() {
        println!("skip: util-linux `script` is not installed (no terminal to answer on)");
        return;
    }
    let mut h = Holder::start(false);
    let bin = env!("CARGO_BIN_EXE_netkit");
    // `script` gives netkit a pseudo-terminal; "n" answers the prompt.
    let inner = format!(
        "echo n | script -qec '{bin} who-owns {} --kill' /dev/null",
        h.port
    );
    let out = Command::new("sh")
        .args(["-c", &inner])
        .output()
        .expect("script");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[y/N]"), "{text}");
    assert!(
        text.contains("netkit: cancelled: nothing was signalled"),
        "{text}"
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        !h.exited_within(Duration::from_secs(2)),
        "declined: the holder must live"
    );
}

#[test]
fn pid_narrows_the_targets() {
    let mut a = Holder::start(false);
    let mut b = Holder::start(false);
    let spec = format!("{},{}", a.port, b.port);
    let pid = a.pid().to_string();
    let (code, out, err) = netkit(&[
        "who-owns", &spec, "--kill", "--yes", "--pid", &pid, "--json",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["targets"].as_array().unwrap().len(), 1);
    assert!(a.exited());
    assert!(!b.exited_within(Duration::from_secs(2)));
}
