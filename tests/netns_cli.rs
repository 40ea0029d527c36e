//! Network namespaces and containers from the command line (issue 12): a listener in another
//! namespace is never "nothing", `--netns` runs the command inside a namespace, `--all-netns`
//! tags rows with theirs, and owners in cgroups named like a runtime's are named as such.
//! Real namespaces (`unshare --net`, `ip netns add`) and real cgroups; root-only parts skip with
//! a printed reason.

mod support;

use std::net::TcpListener;
use std::process::{Command, Output};

use serde_json::Value;
use support::cli::netkit_output;
use support::is_root;
use support::proc::PortHolder as Holder;

const LISTEN: &str = "import socket,sys,subprocess\n\
subprocess.run(['ip','link','set','lo','up'])\n\
s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen()\n\
print(s.getsockname()[1], flush=True)\n\
sys.stdin.read()\n";

/// A process in its own network namespace (made by `prefix`, e.g. `unshare --net`) holding a
/// TCP listener on 127.0.0.1; the port it got.
impl Holder {
    fn start(prefix: &[&str]) -> Option<Holder> {
        let mut cmd = Command::new(prefix[0]);
        cmd.args(&prefix[1..]).args(["python3", "-c", LISTEN]);
        Holder::spawn(cmd)
    }
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bad JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn unshared() -> Option<Holder> {
    if !is_root() {
        eprintln!("skipped: entering another network namespace needs root");
        return None;
    }
    let h = Holder::start(&["unshare", "--net"]);
    if h.is_none() {
        eprintln!("skipped: unshare (util-linux) or python3 missing");
    }
    h
}

#[test]
fn who_owns_finds_a_listener_in_another_namespace_instead_of_saying_nothing() {
    let Some(h) = unshared() else { return };
    let port = h.port.to_string();
    // Is the port also in use here (any socket, any state: a TIME_WAIT or a client's
    // ephemeral port of another program on this shared machine)? Then the fallback does not
    // run. (A trial bind cannot tell: SO_REUSEADDR binds past TIME_WAIT and connected ones.)
    if netkit_output(&["who-owns", &port, "--here"]).status.code() != Some(1) {
        eprintln!("skipped: port {port} happens to be in use in this namespace too");
        return;
    }
    let out = netkit_output(&["who-owns", &port, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = support::schema::validate_stdout("who-owns", &out);
    let sockets = v["sockets"].as_array().expect("sockets");
    let s = sockets
        .iter()
        .find(|s| s["state"] == "LISTEN")
        .unwrap_or_else(|| panic!("the listener: {v}"));
    assert_eq!(s["netns"]["current"], false);
    assert!(
        s["netns"]["pids"]
            .as_array()
            .is_some_and(|p| p.contains(&h.pid().into()))
    );
    assert!(
        s["owners"]
            .as_array()
            .is_some_and(|o| o.iter().any(|o| o["pid"] == h.pid())),
        "{s}"
    );
    let notes = v["notes"].to_string();
    assert!(notes.contains("not reachable from here"), "{notes}");

    // The table names the namespace, the hint goes to stderr.
    let out = netkit_output(&["who-owns", &port]);
    assert_eq!(out.status.code(), Some(0));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.lines().next().is_some_and(|h| h.contains("NETNS")),
        "{table}"
    );
    assert!(table.contains("net:["), "{table}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("another namespace"));

    // --here: only this namespace, where nothing holds it.
    let out = netkit_output(&["who-owns", &port, "--here"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing holds"));
}

#[test]
fn netns_runs_the_command_inside_and_all_netns_tags_rows() {
    let Some(h) = unshared() else { return };
    let port = h.port.to_string();
    let spec = format!("pid:{}", h.pid());
    let out = netkit_output(&["who-owns", &port, "--netns", &spec, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = support::schema::validate_stdout("who-owns", &out);
    let s = &v["sockets"][0];
    assert_eq!(s["local_port"], h.port);
    assert!(
        s.get("netns").is_none(),
        "inside, rows are this namespace's: {s}"
    );

    let out = netkit_output(&["listening", "--all-netns", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v = support::schema::validate_stdout("listening", &out);
    let row = v["sockets"]
        .as_array()
        .expect("sockets")
        .iter()
        .find(|s| s["local_port"] == h.port && s["netns"]["current"] == false)
        .expect("the other namespace's listener, tagged");
    assert!(row["netns"]["inode"].as_u64().is_some_and(|i| i > 0));

    // explain --netns agrees with a real bind inside that namespace.
    let out = netkit_output(&[
        "explain",
        &port,
        "--addr",
        "127.0.0.1",
        "--netns",
        &spec,
        "--json",
    ]);
    let v = json(&out);
    let inside = Command::new("nsenter")
        .arg(format!("--net=/proc/{}/ns/net", h.pid()))
        .args(["python3", "-c"])
        .arg(format!(
            "import socket,sys\ns=socket.socket()\ntry:\n s.bind(('127.0.0.1',{port})); sys.exit(0)\nexcept OSError: sys.exit(1)"
        ))
        .status()
        .expect("nsenter");
    assert_eq!(v["bindable"], inside.success(), "{v}");
    assert_eq!(v["bindable"], false, "the holder is listening there");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_named_namespace_is_named() {
    if !is_root() {
        eprintln!("skipped: ip netns add needs root");
        return;
    }
    let name = format!("nk-netns-{}", std::process::id());
    if !Command::new("ip")
        .args(["netns", "add", &name])
        .status()
        .is_ok_and(|s| s.success())
    {
        eprintln!("skipped: ip netns add {name} failed");
        return;
    }
    struct Del(String);
    impl Drop for Del {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let _del = Del(name.clone());
    let Some(h) = Holder::start(&["ip", "netns", "exec", &name]) else {
        eprintln!("skipped: ip netns exec failed");
        return;
    };
    let port = h.port.to_string();
    let out = netkit_output(&["who-owns", &port, "--all-netns", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = support::schema::validate_stdout("who-owns", &out);
    assert!(
        v["sockets"]
            .as_array()
            .expect("sockets")
            .iter()
            .any(|s| s["netns"]["name"] == name.as_str()),
        "{v}"
    );
    let out = netkit_output(&["who-owns", &port, "--netns", &name]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = netkit_output(&["who-owns", &port, "--netns", "nk-netns-no-such-name"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no such namespace"), "{err}");
}

#[test]
fn an_ordinary_user_is_told_entering_needs_root() {
    if !is_root() || Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("skipped: needs root to start a nobody process (setpriv)");
        return;
    }
    let out = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_netkit"))
        .args(["who-owns", "22", "--netns", "pid:1"])
        .output()
        .expect("setpriv");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("needs root"), "{err}");
}

#[test]
fn an_owner_in_a_docker_named_cgroup_is_named_as_the_container() {
    let root = std::path::Path::new("/sys/fs/cgroup/unified");
    if !is_root() || !root.join("cgroup.procs").exists() {
        eprintln!("skipped: needs root and the cgroup v2 (unified) hierarchy");
        return;
    }
    let id = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";
    let dir = root.join(format!("system.slice/docker-{id}.scope"));
    std::fs::create_dir_all(&dir).expect("mkdir cgroup");
    let Some(h) = Holder::start(&["env"]) else {
        let _ = std::fs::remove_dir(&dir);
        eprintln!("skipped: python3 missing");
        return;
    };
    std::fs::write(dir.join("cgroup.procs"), h.pid().to_string()).expect("move into cgroup");
    let port = h.port.to_string();
    let out = netkit_output(&["who-owns", &port, "--json"]);
    let table = netkit_output(&["who-owns", &port]);
    let inspected = netkit_output(&["inspect", "--port", &port, "--json"]);
    let inspect_table = netkit_output(&["inspect", "--port", &port]);
    drop(h);
    let _ = std::fs::remove_dir(&dir);
    let _ = std::fs::remove_dir(root.join("system.slice"));
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = support::schema::validate_stdout("who-owns", &out);
    let c = &v["sockets"][0]["owners"][0]["container"];
    assert_eq!(c["runtime"], "docker", "{v}");
    assert_eq!(c["id"], id);
    let t = String::from_utf8_lossy(&table.stdout);
    assert!(t.contains("UNIT/CONTAINER"), "{t}");
    assert!(t.contains(&format!("docker:{}", &id[..12])), "{t}");
    // inspect names it the same way.
    let v = support::schema::validate_stdout("inspect", &inspected);
    let c = &v["sockets"][0]["owners"][0]["container"];
    assert_eq!(c["runtime"], "docker", "{v}");
    assert_eq!(c["id"], id);
    let t = String::from_utf8_lossy(&inspect_table.stdout);
    assert!(t.contains("UNIT/CONTAINER"), "{t}");
    assert!(t.contains(&format!("docker:{}", &id[..12])), "{t}");
}

#[test]
fn wait_listen_and_free_port_work_inside_a_namespace() {
    let Some(h) = unshared() else { return };
    let port = h.port.to_string();
    let spec = format!("pid:{}", h.pid());
    let target = format!("127.0.0.1:{port}");
    let out = netkit_output(&["wait-listen", &target, "--timeout", "2", "--netns", &spec]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // Here nothing listens on that port (unless by chance): one check, exit 1.
    if TcpListener::bind(("127.0.0.1", h.port)).is_ok() {
        let out = netkit_output(&["wait-listen", &target, "--timeout", "0"]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
    }
    // free-port inside the namespace never offers the port its listener holds there.
    let out = netkit_output(&["free-port", "--prefer", &port, "--netns", &spec, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = json(&out);
    let offered = v["ports"].as_array().expect("ports");
    assert_eq!(offered.len(), 1, "{v}");
    assert_ne!(
        offered[0], h.port,
        "the namespace's listener holds it there: {v}"
    );
}
