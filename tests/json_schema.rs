//! Every command's REAL `--json` output, made against real sockets on loopback, validated
//! against `docs/schema/<command>.schema.json` and the vocabulary rules
//! (tests/support/schema.rs). Also: every command in `netkit --help` has a schema file, and the
//! harness itself rejects what the vocabulary forbids.

mod support;

use std::net::{TcpListener, UdpSocket};
use std::process::Command;

use serde_json::{Value, json};
use support::cli::netkit_output;
use support::listeners::{free_port, make_time_wait};
use support::python::{Py, PyHolder};
use support::schema::{schema_path, validate, validate_lines, validate_stdout, vocabulary};

/// Commands in `netkit --help` whose `--json` has no schema yet: each owner removes their
/// line when adding `docs/schema/<command>.schema.json` (the test fails while a listed
/// command has a file, so this list only shrinks).
const NOT_YET: &[&str] = &[];

/// Commands without JSON output at all, and why.
const NO_JSON: &[(&str, &str)] = &[
    ("completions", "prints a shell script"),
    (
        "exporter",
        "prints the Prometheus exposition format; --json is refused",
    ),
    ("help", "clap's help text"),
    ("run help", "clap's help text"),
];

fn json(args: &[&str]) -> (Value, i32, String) {
    let mut all = args.to_vec();
    all.push("--json");
    let out = netkit_output(&all);
    let command = if args[0] == "run" {
        format!("run {}", args[1])
    } else {
        args[0].to_string()
    };
    let v = validate_stdout(&command, &out);
    (
        v,
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn who_owns_listing_validates_with_listener_time_wait_udp_and_v6() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    make_time_wait(&l);
    let _u = UdpSocket::bind(("127.0.0.1", port)).unwrap();
    let (v, code, _) = json(&["who-owns", &port.to_string()]);
    assert_eq!(code, 0);
    let states: Vec<&str> = v["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["local_addr"] == "127.0.0.1")
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    for want in ["LISTEN", "TIME_WAIT", "UNCONN"] {
        assert!(states.contains(&want), "{want} missing in {v}");
    }
    let tw = v["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["state"] == "TIME_WAIT")
        .unwrap();
    assert_eq!(tw["listener"]["owner"]["pid"], std::process::id());
    assert_eq!(tw["listener"]["local_port"], port);

    let l6 = TcpListener::bind("[::1]:0").unwrap();
    let p6 = l6.local_addr().unwrap().port();
    let (v, code, _) = json(&["who-owns", &p6.to_string()]);
    assert_eq!(code, 0);
    // Other processes may hold the same number on other addresses: look at ours.
    let mine = v["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["local_addr"] == "::1")
        .unwrap_or_else(|| panic!("no ::1 socket in {v}"));
    assert_eq!(mine["family"], "inet6");
    assert_eq!(mine["owners"][0]["pid"], std::process::id());

    // Nothing found (exit 1) is still a valid object, with the note. A free port may be
    // taken by another program (on another loopback address, say) before netkit looks: a
    // fresh one is tried then (bounded).
    let (v, code) = (0..20)
        .map(|_| {
            let (v, code, _) = json(&["who-owns", &free_port().to_string()]);
            (v, code)
        })
        .find(|(_, code)| *code == 1)
        .expect("who-owns never exited 1 for a free port in 20 tries");
    assert_eq!(code, 1);
    assert_eq!(v["sockets"], json!([]));
}

#[test]
fn listening_and_inspect_validate_on_this_machine() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let _c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (v, code, _) = json(&["listening", "--port", &port]);
    assert_eq!(code, 0);
    assert_eq!(v["sockets"][0]["state"], "LISTEN");
    let (_, code, _) = json(&["listening"]);
    assert_eq!(code, 0);
    let (v, code, _) = json(&["inspect", "--port", &port]);
    assert_eq!(code, 0);
    assert!(
        v["sockets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["state"] == "ESTABLISHED" && s["remote_port"].is_u64())
    );
    // The whole table: every socket on the machine, whatever other tests hold right now.
    let (_, code, _) = json(&["inspect"]);
    assert_eq!(code, 0);
}

#[test]
fn timewait_summary_and_all_validate() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let ours = [make_time_wait(&l), make_time_wait(&l)];
    // A port from bind(0) may still carry an earlier socket's TIME_WAIT (another test's, or
    // another program's on 127.0.0.x): at least our two, and ours by their client ports.
    let (v, code, _) = json(&["timewait", "--port", &port]);
    assert_eq!(code, 0);
    assert!(v["total"].as_u64().unwrap_or(0) >= 2, "{v}");
    assert_eq!(
        v["ports"][0]["listener"]["owner"]["pid"],
        std::process::id()
    );
    let (v, code, _) = json(&["timewait", "--all", "--port", &port]);
    assert_eq!(code, 0);
    let remotes: Vec<u64> = v["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["remote_addr"] == "127.0.0.1")
        .filter_map(|s| s["remote_port"].as_u64())
        .collect();
    for c in ours {
        assert!(remotes.contains(&u64::from(c.port())), "{c} in {v}");
    }
    json(&["timewait"]);
    json(&["timewait", "--all"]);
}

#[test]
fn kill_report_validates_with_process_objects_and_split_holds() {
    let Some(py) = Py::start(PyHolder::Listen, false) else {
        return;
    };
    // Our address and protocol only: a bare port could also match, and signal, another
    // program's socket on a shared machine.
    let port = format!("127.0.0.1:{}", py.port);
    let (v, code, _) = json(&["who-owns", &port, "--tcp", "--kill", "--yes"]);
    assert_eq!(code, 0, "{v}");
    let t = &v["targets"][0];
    assert_eq!(t["pid"], py.pids[0]);
    assert!(t["command"].as_str().unwrap().starts_with("python"));
    assert!(t["cmdline"].as_str().unwrap().contains("python"));
    assert_eq!(
        t["holds"][0],
        json!({"proto": "tcp", "family": "inet", "state": "LISTEN",
               "local_addr": "127.0.0.1", "local_port": py.port})
    );
    assert_eq!(v["port_released"], true);
    // Nothing left to stop: exit 1, still a valid report.
    let (v, code, _) = json(&["who-owns", &port, "--tcp", "--kill", "--yes"]);
    assert_eq!(code, 1);
    assert_eq!(v["targets"], json!([]));
}

#[test]
fn free_port_and_wait_free_validate() {
    let (v, code, _) = json(&["free-port", "--count", "3"]);
    assert_eq!(code, 0);
    assert_eq!(v["ports"].as_array().unwrap().len(), 3);
    assert!(v["ranges"][0]["first"].is_u64());
    json(&["free-port", "--udp", "--range", "20000-20100"]);

    let l = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let (v, code, _) = json(&["wait-free", &port, "--timeout", "0.2"]);
    assert_eq!((code, &v["bindable"]), (1, &json!(false)));
    assert_eq!(v["errno"], "EADDRINUSE");
    drop(l);
    let (v, code, _) = json(&["wait-free", &port, "--timeout", "2"]);
    assert_eq!((code, &v["bindable"]), (0, &json!(true)));
}

/// The subcommands a `--help` lists (clap's "Commands:" block).
fn subcommands(args: &[&str]) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_netkit"))
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

#[test]
fn every_command_in_help_has_a_schema_file() {
    let mut commands = Vec::new();
    for c in subcommands(&[]) {
        let nested = subcommands(&[&c]);
        if nested.is_empty() {
            commands.push(c);
        } else {
            commands.extend(nested.into_iter().map(|n| format!("{c} {n}")));
        }
    }
    assert!(commands.iter().any(|c| c == "who-owns"), "{commands:?}");
    let mut missing = Vec::new();
    for c in &commands {
        if NO_JSON.iter().any(|(n, _)| n == c) {
            continue;
        }
        let has = schema_path(c).exists();
        if NOT_YET.contains(&c.as_str()) {
            assert!(
                !has,
                "{c:?} has {} now: remove it from NOT_YET in tests/json_schema.rs and validate its output here",
                schema_path(c).display()
            );
            eprintln!("not yet: no schema for `{c} --json`");
        } else if !has {
            missing.push(c.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "commands without docs/schema/<command>.schema.json: {missing:?}"
    );
    // Every schema file compiles (defs.schema.json is referenced by the others).
    for entry in std::fs::read_dir(support::schema::schema_dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if let Some(c) = name.strip_suffix(".schema.json")
            && c != "defs"
        {
            support::schema::validator(c);
        }
    }
}

#[test]
fn the_harness_rejects_what_the_vocabulary_forbids() {
    let bad = json!({
        "schema_version": 1, "command": "wait-free", "port": 1, "free": true,
        "waited_ms": 0, "errno": null, "notes": [],
        "listener": {"pid": 4, "command": "x"},
        "local": "127.0.0.1:6000", "peer_addr": "[::1]", "remote_port": 70000,
        "CamelKey": 1
    });
    let v = vocabulary("wait-free", &bad).join("\n");
    for want in [
        "$.free: use bindable",
        "$.listener: an object with a pid is a process",
        "$.local: use local_addr",
        "\"127.0.0.1:6000\" is an address:port string",
        "$.peer_addr",
        "$.remote_port",
        "$.CamelKey: key is not snake_case",
    ] {
        assert!(v.contains(want), "{want:?} not reported in:\n{v}");
    }
    assert!(!vocabulary("x", &json!({"schema_version": 1, "command": "y"})).is_empty());
    assert!(support::schema::is_endpoint("[::1]:80"));
    assert!(!support::schema::is_endpoint("2001:db8::1:80"));
    // The schema itself catches a missing field and a wrong type.
    let r = std::panic::catch_unwind(|| {
        validate(
            "wait-free",
            &json!({"schema_version": 1, "command": "wait-free", "port": "1",
                    "bindable": true, "waited_ms": 0, "errno": null}),
        )
    });
    let msg = r.unwrap_err();
    let msg = msg.downcast_ref::<String>().unwrap();
    assert!(msg.contains("notes") && msg.contains("\"1\""), "{msg}");
    // ... and through defs.schema.json: a socket with an unknown state and an old-style
    // listener (pid/command flattened) fails the who-owns schema.
    let sock = json!({"proto": "tcp", "family": "inet", "local_addr": "127.0.0.1",
        "local_port": 1, "remote_addr": null, "remote_port": null, "state": "OPEN",
        "uid": 0, "user": "root", "inode": 1, "owners": [], "expires_ms": null,
        "listener": {"pid": 1, "command": "x", "user": "root", "local_addr": "127.0.0.1",
                     "local_port": 1},
        "recv_q": 0, "send_q": 0});
    let listing = json!({"schema_version": 1, "command": "who-owns", "port": 1,
                         "sockets": [sock], "notes": []});
    let errors: Vec<String> = support::schema::validator("who-owns")
        .iter_errors(&listing)
        .map(|e| format!("{} {e}", e.instance_path()))
        .collect();
    let all = errors.join("\n");
    assert!(!errors.is_empty());
    assert!(all.contains("OPEN") || all.contains("oneOf"), "{all}");
    let ok = json!({"schema_version": 1, "command": "who-owns", "port": 1,
                    "sockets": [], "notes": []});
    assert!(support::schema::validator("who-owns").is_valid(&ok));
    let mut one = ok.clone();
    one["sockets"] = json!([listing["sockets"][0].clone()]);
    one["sockets"][0]["state"] = json!("LISTEN");
    assert!(
        !support::schema::validator("who-owns").is_valid(&one),
        "old listener shape"
    );
    one["sockets"][0]["listener"] = json!(null);
    assert!(
        support::schema::validator("who-owns").is_valid(&one),
        "{one}"
    );
}

/// Runs `netkit --json ARGS` in the background until it prints a line with `"event":
/// "listening"`, lets `act` talk to it (given the listening port), then SIGTERMs it and
/// returns everything it printed.
fn lab_events(args: &[&str], act: impl FnOnce(u16)) -> Vec<u8> {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_netkit"))
        .arg("--json")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut r = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    r.read_line(&mut first).unwrap();
    let v: Value = serde_json::from_str(&first).unwrap();
    let port = v["local_port"].as_u64().unwrap() as u16;
    act(port);
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut r, &mut rest).unwrap();
    let _ = child.wait();
    let mut all = first.into_bytes();
    all.extend(rest);
    all
}

#[test]
fn lab_server_and_client_events_validate() {
    use std::io::{Read, Write};
    let out = lab_events(
        &["run", "server", "127.0.0.1", "-p", "0", "--protocol", "zen"],
        |port| {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"Beautiful is better than?").unwrap();
            let mut b = [0u8; 5];
            s.read_exact(&mut b).unwrap();
            s.write_all(b"Simple is").unwrap(); // cut by the close: an error event
        },
    );
    let events = validate_lines("run server", &out);
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "listening",
            "accepted",
            "closed",
            "shutting_down",
            "stopped"
        ]
    );
    assert_eq!(events[2]["reason"], "error");

    let srv = lab_events(&["run", "server", "127.0.0.1", "-p", "0"], |port| {
        let to = format!("127.0.0.1:{port}");
        let out = netkit_output(&[
            "run", "client", "--direct", "--server", &to, "--count", "2", "--json",
        ]);
        assert_eq!(out.status.code(), Some(0));
        let lines = validate_lines("run client", &out.stdout);
        assert_eq!(lines.len(), 3, "connected + 2 replies");
    });
    validate_lines("run server", &srv);
}

#[test]
fn proxy_events_validate_in_json_and_relay_mode() {
    use std::io::{Read, Write};
    let talk = |port: u16, req: &[u8]| {
        // One read: the reply comes in one piece, and the proxy may keep the connection
        // open for another request (JSON framing needs no EOF).
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        s.write_all(req).unwrap();
        let mut reply = [0u8; 512];
        let n = s.read(&mut reply).unwrap_or(0);
        String::from_utf8_lossy(&reply[..n]).into_owned()
    };
    let srv = lab_events(&["run", "server", "127.0.0.1", "-p", "0"], |sp| {
        let px = lab_events(&["run", "proxy", "--listen", "127.0.0.1:0"], |pp| {
            let ok = format!(r#"{{"server_ip":"127.0.0.1","server_port":{sp},"message":"hi"}}"#);
            assert_eq!(talk(pp, ok.as_bytes()), "DONE");
            assert!(talk(pp, b"garbage").starts_with("Error, bad request"));
            let blocked = r#"{"server_ip":"127.0.0.1","server_port":7777,"message":"hi"}"#;
            assert_eq!(talk(pp, blocked.as_bytes()), "Error, not allowed address");
        });
        let events = validate_lines("run proxy", &px);
        let mut outcomes: Vec<&str> = events
            .iter()
            .filter(|e| e["event"] == "request")
            .map(|e| e["outcome"].as_str().unwrap())
            .collect();
        // Each connection's event is printed after its reply was sent, by whichever of the
        // proxy's threads served it: the next client can be logged first (1 run in 6).
        outcomes.sort_unstable();
        assert_eq!(outcomes, ["bad_request", "blocked", "forwarded"]);
        let fwd = events.iter().find(|e| e["outcome"] == "forwarded").unwrap();
        assert_eq!(fwd["target_port"], sp);
        assert_eq!(fwd["client_addr"], "127.0.0.1");

        let relay_to = format!("127.0.0.1:{sp}");
        let rl = lab_events(
            &[
                "run",
                "proxy",
                "--listen",
                "127.0.0.1:0",
                "--relay",
                &relay_to,
            ],
            |pp| assert_eq!(talk(pp, b"ping"), "DONE"),
        );
        let events = validate_lines("run proxy", &rl);
        assert_eq!(events[0]["relay_to_port"], sp);
        assert!(events.iter().any(|e| e["event"] == "relay" && e["up"] == 4));
    });
    validate_lines("run server", &srv);
}

#[test]
fn a_bind_failure_event_carries_the_envelope() {
    // A taken port: the server's listen fails with EADDRINUSE and says why as one JSON line.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let p = taken.local_addr().unwrap().port().to_string();
    for (cmd, args) in [
        (
            "run server",
            vec![
                "run",
                "server",
                "127.0.0.1",
                "-p",
                p.as_str(),
                "--no-reuseaddr",
            ],
        ),
        ("run proxy", vec!["run", "proxy", "--listen", "127.0.0.1:0"]),
    ] {
        let args: Vec<String> = args
            .into_iter()
            .map(|a| {
                if a == "127.0.0.1:0" {
                    format!("127.0.0.1:{p}")
                } else {
                    a.to_string()
                }
            })
            .collect();
        let a: Vec<&str> = std::iter::once("--json")
            .chain(args.iter().map(String::as_str))
            .collect();
        let out = netkit_output(&a);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {out:?}");
        let events = validate_lines(cmd, &out.stdout);
        let e = events
            .iter()
            .find(|e| e["event"] == "error")
            .expect("an error event");
        assert_eq!(e["errno_name"], "EADDRINUSE", "{e}");
        assert_eq!(
            e["local_port"].as_u64(),
            Some(u64::from(taken.local_addr().unwrap().port()))
        );
    }
}

#[test]
fn udp_pair_events_validate() {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = port.to_string();
    let out = lab_events(&["run", "udp-server", "-p", &p], |_| {
        let c = netkit_output(&[
            "run",
            "udp-client",
            "-p",
            "0",
            "--to",
            &format!("127.0.0.1:{p}"),
            "--json",
        ]);
        assert_eq!(c.status.code(), Some(0));
        validate_lines("run udp-client", &c.stdout);
    });
    let events = validate_lines("run udp-server", &out);
    assert!(events.iter().any(|e| e["event"] == "received"));
}

#[test]
fn load_report_validates() {
    let out = lab_events(&["run", "server", "127.0.0.1", "-p", "0"], |port| {
        let to = format!("127.0.0.1:{port}");
        let (v, code, _) = json(&[
            "load",
            &to,
            "--protocol",
            "lab",
            "--new-conn",
            "--requests",
            "20",
        ]);
        assert_eq!(code, 0);
        assert_eq!(v["ok"], 20);
        let dead = format!("127.0.0.1:{}", free_port());
        let (v, code, _) = json(&["load", &dead, "--requests", "3"]);
        assert_eq!(code, 1);
        assert_eq!(v["latency_ms"], Value::Null);
    });
    validate_lines("run server", &out);
}

#[test]
fn explain_bind_connect_and_error_validate() {
    // Bind mode, with a listener, a TIME_WAIT and the holder's flags read through pidfd.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    make_time_wait(&l);
    let p = port.to_string();
    let (v, code, _) = json(&["explain", &p, "--addr", "127.0.0.1", "--reuseaddr"]);
    assert_eq!(code, 1);
    assert_eq!(v["mode"], "bind");
    assert!(!v["causes"].as_array().unwrap().is_empty());
    // A bindable port, and an address that is not local.
    // (A free port may be taken by another program before netkit looks: bounded retries.)
    let (v, code) = (0..20)
        .map(|_| {
            let (v, code, _) = json(&["explain", &free_port().to_string()]);
            (v, code)
        })
        .find(|(_, code)| *code == 0)
        .expect("explain never found a free port bindable in 20 tries");
    assert_eq!((code, &v["bindable"]), (0, &Value::Bool(true)));
    let (_, code, _) = json(&["explain", "0", "--addr", "192.0.2.1"]);
    assert_eq!(code, 1);
    // Connect mode: connected, and refused.
    let (v, code, _) = json(&["explain", "--connect", &format!("127.0.0.1:{port}")]);
    assert_eq!((code, &v["connected"]), (0, &Value::Bool(true)));
    let (v, code, _) = json(&["explain", "--connect", &format!("[::1]:{port}")]);
    assert_eq!((code, &v["mode"]), (1, &Value::from("connect")));
    // --error: decoded with a live explanation, and not recognised.
    let text = format!("OSError: [Errno 98] Address already in use: ('127.0.0.1', {port})");
    let (v, _, _) = json(&["explain", "--error", &text]);
    assert_eq!(v["decoded"]["errno"], "EADDRINUSE");
    assert!(v["explanation"].is_object(), "{v}");
    let (v, code, _) = json(&["explain", "--error", "all is well"]);
    assert_eq!((code, &v["decoded"]), (1, &Value::Null));
}
