//! What the packaged unit's two capabilities buy (README "Privileges"): as uid 0 with only
//! CAP_DAC_READ_SEARCH + CAP_SYS_PTRACE the exporter names the owner of another user's
//! listener; with no capability at all it still counts the socket but names no owner, and
//! says how many processes it could not read. Root only (skips otherwise); needs setpriv
//! and python3.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use support::exporter::Exposition;
use support::have;

struct Holder(Child);
impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn once_with_bounding_set(caps: &str, port: &str) -> Exposition {
    let out = Command::new("setpriv")
        .arg(format!("--bounding-set=-all{caps}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_netkit"))
        .args(["exporter", "--once", "--port", port])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Exposition::parse(&String::from_utf8_lossy(&out.stdout))
}

#[test]
fn two_capabilities_are_enough_to_name_other_users_owners() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skip: needs root (to drop to nobody and to limit root's capabilities)");
        return;
    }
    if !have("setpriv") || !have("python3") {
        eprintln!("skip: needs setpriv (util-linux) and python3");
        return;
    }
    let mut child = Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "/usr/bin/python3", "-c"])
        .arg("import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen()\nprint(s.getsockname()[1],flush=True)\ntime.sleep(60)")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let holder = Holder(child);
    let port = line.trim().to_string();
    let pid = holder.0.id().to_string();

    let m = once_with_bounding_set(",+dac_read_search,+sys_ptrace", &port);
    let info = m.find("netkit_listener_info", &[("port", &port)]);
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(info[0].label("pid"), Some(pid.as_str()), "{info:?}");
    assert_eq!(info[0].label("process"), Some("python3"));
    assert_eq!(info[0].label("user"), Some("nobody"));

    let m = once_with_bounding_set("", &port);
    let info = m.find("netkit_listener_info", &[("port", &port)]);
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(
        info[0].label("pid"),
        None,
        "owner named without capabilities: {info:?}"
    );
    assert_eq!(info[0].label("user"), Some("nobody"));
    assert_eq!(
        m.value(
            "netkit_port_sockets",
            &[("port", &port), ("state", "LISTEN")]
        ),
        Some(1.0)
    );
    assert!(
        m.value("netkit_exporter_unreadable_processes", &[])
            .unwrap()
            >= 1.0
    );
}
