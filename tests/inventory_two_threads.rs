//! A long listing is sorted and laid out by two threads (`inspect` sorts beside the owner
//! lookup from 2,048 rows; the table writer splits its work from 4,096 rows). On real
//! TIME_WAIT sockets the output must be byte for byte what one thread writes (`taskset -c 0`:
//! one core, so netkit uses one thread), and a reader that leaves after the first line
//! (`| head -n1`) must still get exit 0 and no error.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::cli::*;
use support::host::have;
use support::listeners::*;
use support::ss::ss_timewait_ms_where;

/// More rows than both thresholds (the writer's is 4,096).
const TIME_WAITS: usize = 4_600;

/// At most this many connections are made to reach [`TIME_WAITS`]: on loopback a new
/// connection may take over an old TIME_WAIT's four-tuple (`tcp_tw_reuse` = 2, the default,
/// allows it for loopback), so some connections leave none.
const MAX_CONNECTIONS: usize = 3 * TIME_WAITS;

/// The table with each TIME_WAIT's timer (the last column, which ticks between two runs)
/// masked.
fn masked(table: &str) -> String {
    table
        .lines()
        .map(|l| match l.rsplit_once("  ") {
            Some((head, last)) if l.contains("TIME_WAIT") => {
                assert!(
                    last.ends_with('s') || last.trim() == "expiring",
                    "timer cell {last:?} in {l:?}"
                );
                format!("{head}  T")
            }
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The table `netkit ARGS` prints (one core: under `taskset -c 0`), and its trace lines.
fn run(args: &[&str], one_core: bool) -> (String, String) {
    let mut cmd = if one_core {
        let mut c = Command::new("taskset");
        c.args(["-c", "0", netkit_bin()]);
        c
    } else {
        Command::new(netkit_bin())
    };
    let out = cmd
        .args(args)
        .env("NETKIT_TRACE", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run netkit");
    assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
    (
        String::from_utf8(out.stdout).expect("utf-8 table"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn two_threads_write_what_one_writes_and_stop_for_a_closed_reader() {
    if !have("taskset") {
        eprintln!("SKIP: taskset (util-linux) is not installed: no one-thread reference");
        return;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores < 2 {
        eprintln!("SKIP: one core here: netkit uses one thread, nothing to compare");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let filter = format!("sport = :{port}");
    let mut made = 0;
    while made < MAX_CONNECTIONS {
        for _ in 0..TIME_WAITS / 4 {
            make_time_wait(&listener);
        }
        made += TIME_WAITS / 4;
        if ss_timewait_ms_where(&filter).len() >= TIME_WAITS {
            break;
        }
    }
    // A connection this process owns (its accepted end is on the port), so that the owner
    // lookup has work besides.
    let a = TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    let (b, _) = listener.accept().expect("accept");
    let p = port.to_string();
    let args = ["inspect", "--tcp", "--port", p.as_str()];

    let (two, trace) = run(&args, false);
    let (one, one_trace) = run(&args, true);
    // The runs took the paths compared (the trace says where the rows were sorted).
    assert!(trace.contains("rows sorted (beside the owners)"), "{trace}");
    assert!(!one_trace.contains("beside the owners"), "{one_trace}");
    // What the kernel holds (ss), read after netkit's run: no TIME_WAIT of this port expires
    // within the test (they last 60 s) and no new one is made.
    let held = ss_timewait_ms_where(&filter).len();
    assert!(
        held >= TIME_WAITS,
        "{held} TIME_WAITs after {made} connections"
    );
    let rows = two.lines().filter(|l| l.contains("TIME_WAIT")).count();
    assert_eq!(rows, held, "TIME_WAIT rows of port {port}: netkit vs ss");
    assert!(
        two.lines().any(|l| l.contains("ESTABLISHED")),
        "{}",
        two.lines().take(5).collect::<Vec<_>>().join("\n")
    );
    assert_eq!(two.lines().count(), one.lines().count());
    let (m2, m1) = (masked(&two), masked(&one));
    if m2 != m1 {
        let at = m2.lines().zip(m1.lines()).position(|(x, y)| x != y);
        panic!(
            "two threads and one differ at line {at:?}: {:?} vs {:?}",
            at.and_then(|i| m2.lines().nth(i)),
            at.and_then(|i| m1.lines().nth(i))
        );
    }

    // `| head -n1`: the reader leaves after the header; both writer threads stop.
    let mut child = netkit_cmd()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn netkit");
    let mut first = String::new();
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    reader.read_line(&mut first).expect("first line");
    assert!(first.starts_with("PROTO"), "{first:?}");
    drop(reader);
    // Bounded: a writer that kept going after its reader left would hang here.
    let status = support::proc::wait_exit(&mut child, Duration::from_secs(20));
    if status.is_none() {
        let _ = child.kill();
    }
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "exit after a closed reader"
    );
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("stderr");
    assert!(
        !err.contains("netkit:"),
        "an error for a closed reader: {err}"
    );
    drop((a, b));
}
