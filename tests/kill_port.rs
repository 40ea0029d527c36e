//! `netkit who-owns PORT --kill`: stops the listener, never a connected client; refuses
//! without --yes when stdin is not a terminal; as a normal user only own processes.

mod support;

use std::time::Duration;

use support::cli::netkit;
use support::is_root;
use support::python::Helper;

#[derive(serde::Deserialize)]
struct Target {
    pid: u32,
    refused: Option<String>,
    signalled: bool,
    released: bool,
}

#[derive(serde::Deserialize)]
struct Killed {
    port: u16,
    signal: String,
    targets: Vec<Target>,
    port_released: bool,
}

fn alive(pid: u32) -> bool {
    // A zombie still answers kill(0); check /proc state instead.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

#[test]
fn kills_the_listener_and_spares_the_connected_client() {
    let mut srv = Helper::start("serve", &["--addr", "127.0.0.1"], false);
    let port = srv.port().to_string();
    // Narrowed to our address and protocol: a bare port number would also match (and signal)
    // another program's socket on a shared machine.
    let p = format!("127.0.0.1:{port}");
    let cl = Helper::start("client", &["--addr", "127.0.0.1", "--port", &port], false);
    // Refused without --yes when stdin is not a terminal.
    let (code, _, err) = netkit(&["who-owns", &p, "--tcp", "--kill"]);
    assert_eq!(code, 2);
    assert!(err.contains("--yes"), "{err}");
    assert!(alive(srv.pid()));
    let (code, out, err) = netkit(&["who-owns", &p, "--tcp", "--kill", "--yes", "--json"]);
    assert_eq!(code, 0, "{out} {err}");
    let k: Killed = serde_json::from_str(&out).unwrap();
    assert_eq!(k.port, srv.port());
    assert_eq!(k.signal, "TERM");
    assert!(k.port_released);
    assert_eq!(k.targets.len(), 1, "only the listener's process");
    assert_eq!(k.targets[0].pid, srv.pid());
    assert!(k.targets[0].signalled && k.targets[0].released);
    let _ = srv.proc.child.wait();
    std::thread::sleep(Duration::from_millis(50));
    assert!(alive(cl.pid()), "the connected client must survive");
    srv.proc.kill_group(libc::SIGKILL);
}

#[test]
fn nothing_to_kill_is_exit_1_and_bad_signal_exit_2() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let p = format!("127.0.0.1:{}", l.local_addr().unwrap().port());
    drop(l);
    let (code, _, _) = netkit(&["who-owns", &p, "--tcp", "--kill", "--yes"]);
    assert_eq!(code, 1);
    let (code, _, err) = netkit(&[
        "who-owns", &p, "--tcp", "--kill", "--signal", "BOGUS", "--yes",
    ]);
    assert_eq!(code, 2);
    assert!(err.starts_with("netkit: unknown signal"));
}

#[test]
fn another_users_listener_is_not_touched() {
    // As nobody, a root listener's owner is not even visible (root's /proc/PID/fd), so
    // nothing is signalled and the hint says to run as root.
    if !is_root() {
        eprintln!("skipped: needs root to run netkit as another user");
        return;
    }
    let h = Helper::start("listen", &["--addr", "127.0.0.1"], false);
    let p = format!("127.0.0.1:{}", h.port());
    let o = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_netkit"),
        ])
        .args(["who-owns", &p, "--tcp", "--kill", "--yes", "--json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("run as root"), "{out}");
    assert!(alive(h.pid()));
}

#[test]
fn kill_signal_option_is_used() {
    let mut h = Helper::start("udp", &["--addr", "127.0.0.1"], false);
    let p = format!("127.0.0.1:{}", h.port());
    let (code, out, _) = netkit(&[
        "who-owns", &p, "--udp", "--kill", "--signal", "KILL", "--yes", "--json",
    ]);
    assert_eq!(code, 0);
    let k: Killed = serde_json::from_str(&out).unwrap();
    assert_eq!(k.signal, "KILL");
    assert!(k.targets.iter().all(|t| t.refused.is_none()));
    let st = h.proc.child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(libc::SIGKILL));
    h.proc.kill_group(libc::SIGKILL);
}
