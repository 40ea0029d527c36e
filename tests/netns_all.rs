//! `--all-netns` on the commands that fold the kernel's records as they arrive (inspect,
//! timewait): each row / count carries its namespace, and a TIME_WAIT's listener is looked up
//! in its own namespace even when another namespace has a listener on the same port. Real
//! named namespaces (`ip netns add nk-netns2-...`, always deleted); root-only parts skip with a
//! printed reason, and the ordinary user's view is checked as uid 65534.

mod support;

use std::process::Command;

use serde_json::Value;

use support::cli::netkit_output as netkit;
use support::is_root;
use support::proc::PortHolder as Holder;

/// A named namespace `nk-netns2-<tag>-...` with loopback up, deleted on drop.
type Ns = support::netns::Netns;

fn ns_add(tag: &str) -> Option<Ns> {
    Ns::new(&format!("netns2-{tag}"))
}

/// A listener on 127.0.0.1:PORT (0: any) that closed `tw` accepted connections itself, so
/// `tw` TIME_WAIT sockets sit on its port; it waits (bounded) until the kernel shows them.
const HOLD: &str = r#"
import socket, sys, time
port, tw = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port)); s.listen(); p = s.getsockname()[1]
for _ in range(tw):
    c = socket.create_connection(("127.0.0.1", p)); a, _ = s.accept()
    a.close(); c.recv(1); c.close()
deadline = time.time() + 5
while time.time() < deadline:
    rows = open("/proc/self/net/tcp").read().splitlines()[1:]
    n = sum(1 for r in rows if r.split()[3] == "06" and int(r.split()[1].split(":")[1], 16) == p)
    if n >= tw:
        break
    time.sleep(0.01)
print(p, flush=True)
sys.stdin.read()
"#;

impl Holder {
    fn start(ns: &Ns, port: u16, tw: usize) -> Option<Holder> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns.0, "python3", "-c", HOLD])
            .arg(port.to_string())
            .arg(tw.to_string());
        Holder::spawn(cmd)
    }
}

/// Two namespaces with a listener on the same port; only the first has TIME_WAIT entries.
struct Pair {
    // Holders first: they must end before their namespaces are deleted.
    a: Holder,
    b: Holder,
    na: Ns,
    nb: Ns,
}

/// `tag` keeps the names of tests running at once in this binary apart.
fn pair(tag: &str, tw: usize) -> Option<Pair> {
    if !is_root() {
        eprintln!("skipped: ip netns add and entering namespaces need root");
        return None;
    }
    let na = ns_add(&format!("{tag}a"))?;
    let nb = ns_add(&format!("{tag}b"))?;
    let Some(a) = Holder::start(&na, 0, tw) else {
        eprintln!("skipped: python3 or ip netns exec missing");
        return None;
    };
    let b = Holder::start(&nb, a.port, 0)?;
    Some(Pair { a, b, na, nb })
}

fn in_ns<'a>(v: &'a Value, name: &str) -> Vec<&'a Value> {
    v["sockets"]
        .as_array()
        .expect("sockets")
        .iter()
        .filter(|s| s["netns"]["name"] == name)
        .collect()
}

#[test]
fn inspect_all_netns_tags_rows_and_finds_each_listener_in_its_own_namespace() {
    let Some(p) = pair("in", 2) else { return };
    let port = p.a.port.to_string();
    let out = netkit(&["inspect", "--all-netns", "--port", &port, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = support::schema::validate_stdout("inspect", &out);

    let a = in_ns(&v, &p.na.0);
    let listen: Vec<_> = a.iter().filter(|s| s["state"] == "LISTEN").collect();
    assert_eq!(listen.len(), 1, "{v}");
    assert_eq!(listen[0]["owners"][0]["pid"], p.a.pid());
    assert_eq!(listen[0]["netns"]["current"], false);
    assert!(listen[0]["netns"]["inode"].as_u64().is_some_and(|i| i > 0));
    let tw: Vec<_> = a.iter().filter(|s| s["state"] == "TIME_WAIT").collect();
    assert_eq!(tw.len(), 2, "{v}");
    for t in tw {
        // The listener of its own namespace, not the other namespace's on the same port.
        assert_eq!(t["listener"]["owner"]["pid"], p.a.pid(), "{t}");
    }
    let b = in_ns(&v, &p.nb.0);
    assert_eq!(b.len(), 1, "only the listener in {}: {v}", p.nb.0);
    assert_eq!(b[0]["state"], "LISTEN");
    assert_eq!(b[0]["owners"][0]["pid"], p.b.pid());
    assert_ne!(b[0]["netns"]["inode"], a[0]["netns"]["inode"]);

    // The table has a NETNS column naming both.
    let out = netkit(&["inspect", "--all-netns", "--port", &port]);
    assert_eq!(out.status.code(), Some(0));
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(t.lines().next().is_some_and(|h| h.contains("NETNS")), "{t}");
    assert_eq!(t.lines().filter(|l| l.ends_with(&p.na.0)).count(), 3, "{t}");
    assert_eq!(t.lines().filter(|l| l.ends_with(&p.nb.0)).count(), 1, "{t}");

    // Without --all-netns: this namespace only, no namespace tags.
    let out = netkit(&["inspect", "--port", &port, "--json"]);
    let v = support::schema::validate_stdout("inspect", &out);
    for s in v["sockets"].as_array().expect("sockets") {
        assert!(s.get("netns").is_none(), "{s}");
        let pids: Vec<&Value> = s["owners"]
            .as_array()
            .map(|o| o.iter().map(|o| &o["pid"]).collect())
            .unwrap_or_default();
        assert!(!pids.contains(&&Value::from(p.a.pid())), "{s}");
    }
}

#[test]
fn an_ordinary_user_is_told_only_this_namespace_was_examined() {
    let (out, how) = if is_root() {
        if Command::new("setpriv").arg("--version").output().is_err() {
            eprintln!("skipped: setpriv missing (needed to run as uid 65534)");
            return;
        }
        let out = Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_netkit"))
            .args(["inspect", "--all-netns", "--listening", "--json"])
            .output()
            .expect("setpriv");
        (out, "as uid 65534")
    } else {
        (
            netkit(&["inspect", "--all-netns", "--listening", "--json"]),
            "as this user",
        )
    };
    assert!(matches!(out.status.code(), Some(0 | 1)), "{how}: {out:?}");
    let v = support::schema::validate_stdout("inspect", &out);
    let notes = v["notes"].to_string();
    // Root's processes are always there, and their namespace link is unreadable to others.
    assert!(
        notes.contains("entering another needs root"),
        "{how}: {notes}"
    );
    for s in v["sockets"].as_array().expect("sockets") {
        assert_eq!(s["netns"]["current"], true, "{how}: {s}");
    }
}

#[test]
fn timewait_all_netns_counts_each_namespace_with_its_own_listener_and_histogram() {
    let Some(p) = pair("tw", 3) else { return };
    // A second namespace with entries on the same port: one TIME_WAIT under its own listener.
    drop(p.b);
    let Some(b) = Holder::start(&p.nb, p.a.port, 1) else {
        panic!("a second listener on port {} in {}", p.a.port, p.nb.0);
    };
    let port = p.a.port.to_string();
    let out = netkit(&["timewait", "--all-netns", "--port", &port, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = support::schema::validate_stdout("timewait", &out);
    let ports = v["ports"].as_array().expect("ports");
    let row = |ns: &str| {
        ports
            .iter()
            .find(|r| r["netns"]["name"] == ns)
            .unwrap_or_else(|| panic!("a row for {ns}: {v}"))
    };
    let (ra, rb) = (row(&p.na.0), row(&p.nb.0));
    assert_eq!(
        (ra["count"].as_u64(), rb["count"].as_u64()),
        (Some(3), Some(1)),
        "{v}"
    );
    assert_eq!(ra["listener"]["owner"]["pid"], p.a.pid(), "{ra}");
    assert_eq!(rb["listener"]["owner"]["pid"], b.pid(), "{rb}");
    let nss = v["namespaces"]
        .as_array()
        .expect("namespaces with --all-netns");
    assert_eq!(
        nss[0]["netns"]["current"], true,
        "the current namespace first"
    );
    for (name, want) in [(&p.na.0, 3), (&p.nb.0, 1)] {
        let n = nss
            .iter()
            .find(|n| n["netns"]["name"] == name.as_str())
            .expect("listed");
        assert_eq!(n["total"], want, "{n}");
        let sum: u64 = n["expiry_buckets"]
            .as_array()
            .expect("buckets")
            .iter()
            .map(|b| b["count"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(sum, want, "{n}");
    }
    let totals: u64 = nss.iter().map(|n| n["total"].as_u64().unwrap_or(0)).sum();
    assert_eq!(v["total"].as_u64(), Some(totals));

    // The table: a NETNS column, a histogram per namespace with entries.
    let out = netkit(&["timewait", "--all-netns", "--port", &port]);
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(t.contains("NETNS"), "{t}");
    assert!(t.contains(&format!("netns {} (inode", p.na.0)), "{t}");
    assert!(t.contains(&format!("netns {} (inode", p.nb.0)), "{t}");

    // --all: every entry, its listener from its own namespace.
    let out = netkit(&[
        "timewait",
        "--all",
        "--all-netns",
        "--port",
        &port,
        "--json",
    ]);
    let v = support::schema::validate_stdout("timewait", &out);
    let a = in_ns(&v, &p.na.0);
    assert_eq!(a.len(), 3, "{v}");
    assert!(
        a.iter().all(|s| s["listener"]["owner"]["pid"] == p.a.pid()),
        "{v}"
    );
    let bs = in_ns(&v, &p.nb.0);
    assert_eq!(bs.len(), 1, "{v}");
    assert_eq!(bs[0]["listener"]["owner"]["pid"], b.pid());

    // Without --all-netns: no namespace fields.
    let out = netkit(&["timewait", "--port", &port, "--json"]);
    let v = support::schema::validate_stdout("timewait", &out);
    assert!(v.get("namespaces").is_none(), "{v}");
    drop(b);
}

/// Prints the port of a listener on ADDR:PORT (argv 1, 2), then waits for stdin to close.
const LISTEN_ON: &str = r#"
import socket, sys
s = socket.socket(); s.bind((sys.argv[1], int(sys.argv[2]))); s.listen()
print(s.getsockname()[1], flush=True)
sys.stdin.read()
"#;

#[test]
fn a_port_held_by_docker_proxy_is_served_by_the_namespace_that_owns_its_container_ip() {
    if !is_root() {
        eprintln!("skipped: making a namespace with a veth pair needs root");
        return;
    }
    let Some(ns) = ns_add("dp") else { return };
    // The "container": its own namespace with an address on a veth pair (both ends inside,
    // so the host's interfaces and routes are untouched; this kernel has no dummy links).
    let ip = format!("10.251.{}.2", 20 + std::process::id() % 200);
    let run = |args: &[&str]| {
        Command::new("ip")
            .args(["-n", &ns.0])
            .args(args)
            .status()
            .is_ok_and(|s| s.success())
    };
    assert!(run(&[
        "link", "add", "nkdp0", "type", "veth", "peer", "name", "nkdp1"
    ]));
    assert!(run(&["addr", "add", &format!("{ip}/24"), "dev", "nkdp0"]));
    assert!(run(&["link", "set", "nkdp0", "up"]) && run(&["link", "set", "nkdp1", "up"]));
    let mut serve = Command::new("ip");
    serve.args(["netns", "exec", &ns.0, "python3", "-c", LISTEN_ON, &ip, "0"]);
    let Some(server) = Holder::spawn(serve) else {
        eprintln!("skipped: python3 missing");
        return;
    };
    // Named like Docker's cgroup where the v2 hierarchy is writable: the container's name.
    let id = "d0c0e7a1d0c0e7a1d0c0e7a1d0c0e7a1d0c0e7a1d0c0e7a1d0c0e7a1d0c0e7a1";
    let cg_root = std::path::Path::new("/sys/fs/cgroup/unified");
    let cg = cg_root.join(format!("system.slice/docker-{id}.scope"));
    let in_cgroup = cg_root.join("cgroup.procs").exists()
        && std::fs::create_dir_all(&cg).is_ok()
        && std::fs::write(cg.join("cgroup.procs"), server.pid().to_string()).is_ok();

    // The forwarder: a real process named docker-proxy (python3 under that name) listening
    // on the host's loopback, with docker-proxy's arguments.
    let dir = tempfile::tempdir().expect("tempdir");
    let py = Command::new("python3")
        .args([
            "-c",
            "import os,sys; print(os.path.realpath(sys.executable))",
        ])
        .output()
        .expect("python3");
    let py = String::from_utf8_lossy(&py.stdout).trim().to_string();
    let proxy_exe = dir.path().join("docker-proxy");
    std::os::unix::fs::symlink(&py, &proxy_exe).expect("symlink");
    let target_port = server.port.to_string();
    let mut proxy = Command::new(&proxy_exe);
    proxy.args(["-c", LISTEN_ON, "127.0.0.1", "0"]).args([
        "-proto",
        "tcp",
        "-host-ip",
        "127.0.0.1",
        "-host-port",
        "0",
        "-container-ip",
        &ip,
        "-container-port",
        &target_port,
    ]);
    let proxy = Holder::spawn(proxy).expect("docker-proxy stand-in");
    let port = proxy.port.to_string();

    let out = netkit(&["who-owns", &port, "--json"]);
    let table = netkit(&["who-owns", &port]);
    drop(proxy);
    drop(server);
    if in_cgroup {
        let _ = std::fs::remove_dir(&cg);
        let _ = std::fs::remove_dir(cg_root.join("system.slice"));
    }
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = support::schema::validate_stdout("who-owns", &out);
    let o = &v["sockets"][0]["owners"][0];
    assert_eq!(o["command"], "docker-proxy", "{v}");
    let f = &o["forwards_to"];
    assert_eq!(f["tool"], "docker-proxy", "{o}");
    assert_eq!(f["target_addr"], ip.as_str());
    assert_eq!(f["target_port"], server_port(&target_port));
    let args: Vec<&str> = f["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        args.windows(2).any(|w| w == ["-container-ip", ip.as_str()]),
        "{args:?}"
    );
    assert_eq!(f["netns"]["name"], ns.0.as_str(), "{f}");
    assert_eq!(f["listener"]["command"], "python3", "{f}");
    if in_cgroup {
        assert_eq!(f["container"]["runtime"], "docker", "{f}");
        assert_eq!(f["container"]["id"], id);
    }
    let t = String::from_utf8_lossy(&table.stdout);
    let expect = if in_cgroup {
        format!("→ docker:{} {ip}:{target_port}", &id[..12])
    } else {
        format!("→ {} {ip}:{target_port}", ns.0)
    };
    assert!(t.contains(&expect), "{t}");
    let hint = String::from_utf8_lossy(&table.stderr);
    assert!(
        hint.contains(&format!("is an address of network namespace {}", ns.0))
            && hint.contains("that process serves port"),
        "{hint}"
    );
}

fn server_port(s: &str) -> u64 {
    s.parse().expect("port")
}
