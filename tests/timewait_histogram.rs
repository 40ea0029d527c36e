//! `netkit timewait`'s expiry histogram (issue 9) against the kernel's own TIME_WAIT timers:
//! two waves of real TIME_WAIT sockets on loopback, made ~10.5 s apart so they land in two
//! different 10-second buckets, counted by netkit and by `ss -o` in the same moment.

mod support;

use std::net::TcpListener;
use std::time::Duration;

use serde::Deserialize;
use support::cli::*;
use support::have;
use support::listeners::*;
use support::ss::*;

#[derive(Debug, Deserialize, PartialEq, Eq, Clone, Copy)]
struct BucketJson {
    seconds_left_from: u64,
    seconds_left_to: u64,
    count: usize,
}

#[derive(Debug, Deserialize)]
struct HistJson {
    total: usize,
    expiry_buckets: Vec<BucketJson>,
}

/// Ten-second buckets of time left, as the kernel's timers fall.
fn buckets_of(timers: &[u64]) -> [usize; 6] {
    let mut b = [0; 6];
    for &t in timers {
        b[((t / 10_000) as usize).min(5)] += 1;
    }
    b
}

#[test]
fn histogram_counts_match_the_kernels_timers() {
    if !have("ss") {
        eprintln!("skipped: ss (iproute2) is not installed");
        return;
    }
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let p = port.to_string();
    for _ in 0..3 {
        make_time_wait(&l);
    }
    // The first wave's timers fall below 50 s while the second wave's start near 60 s.
    std::thread::sleep(Duration::from_millis(10_500));
    for _ in 0..2 {
        make_time_wait(&l);
    }

    // A bucket boundary may pass between the two readings: take a moment when the kernel's
    // timers fall into the same buckets just before and just after netkit's reading.
    let mut checked = None;
    for _ in 0..5 {
        let before = buckets_of(&ss_timewait_ms_where(&format!("sport = :{port}")));
        let (r, code) = netkit_json::<HistJson>(&["timewait", "--port", &p]);
        let after = buckets_of(&ss_timewait_ms_where(&format!("sport = :{port}")));
        if before != after {
            continue;
        }
        assert_eq!(code, 0);
        let got: Vec<usize> = r.expiry_buckets.iter().map(|b| b.count).collect();
        assert_eq!(got, before.to_vec(), "netkit vs the kernel's timers");
        assert_eq!(r.total, got.iter().sum::<usize>());
        checked = Some(r);
        break;
    }
    let r = checked.expect("the kernel's timers stood still across one netkit run");
    let bounds: Vec<(u64, u64)> = r
        .expiry_buckets
        .iter()
        .map(|b| (b.seconds_left_from, b.seconds_left_to))
        .collect();
    assert_eq!(
        bounds,
        vec![(0, 10), (10, 20), (20, 30), (30, 40), (40, 50), (50, 60)]
    );
    // The waves made here: three older sockets in 40-50 s, two fresh ones in 50-60 s.
    assert!(r.expiry_buckets[4].count >= 3, "{r:?}");
    assert!(r.expiry_buckets[5].count >= 2, "{r:?}");

    // The table shows the histogram above the per-port rows.
    let out = netkit_output(&["timewait", "--port", &p]);
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let head = lines
        .iter()
        .position(|l| l.starts_with("EXPIRES IN"))
        .unwrap_or_else(|| panic!("histogram header in:\n{text}"));
    let row = lines
        .iter()
        .position(|l| l.contains(&format!("127.0.0.1:{port}")))
        .unwrap_or_else(|| panic!("summary row in:\n{text}"));
    assert!(head < row, "histogram above the rows:\n{text}");
    let bar = |range: &str| {
        lines[head..row]
            .iter()
            .find(|l| l.trim_start().starts_with(range))
            .unwrap_or_else(|| panic!("{range} line in:\n{text}"))
            .to_string()
    };
    let wave = bar("50-60s");
    assert!(wave.contains('#'), "{wave}");
    let empty = bar("20-30s");
    assert!(
        !empty.contains('#') && empty.split_whitespace().nth(1) == Some("0"),
        "{empty}"
    );
}
