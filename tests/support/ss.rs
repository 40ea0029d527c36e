//! `ss` (iproute2) readings: the outside view the tests compare netkit against.

use std::process::Command;

/// Parses the time of an `ss -o` timer field as iproute2 6.1 prints it (BIND-RULES.md §4):
/// `Xmin`, `Ysec`, `S.mmmms` (S.mmm **seconds**, a formatting quirk), `NNNms`, empty = 0.
pub fn ss_timer_ms(t: &str) -> Option<u64> {
    let mut rest = t.trim();
    let mut ms = 0u64;
    if let Some(i) = rest.find("min") {
        ms += rest[..i].parse::<u64>().ok()? * 60_000;
        rest = &rest[i + 3..];
    }
    if rest.is_empty() {
        return Some(ms);
    }
    if let Some(s) = rest.strip_suffix("sec") {
        return Some(ms + s.parse::<u64>().ok()? * 1000);
    }
    let body = rest.strip_suffix("ms")?;
    match body.split_once('.') {
        Some((s, frac)) if frac.len() == 3 => {
            Some(ms + s.parse::<u64>().ok()? * 1000 + frac.parse::<u64>().ok()?)
        }
        Some(_) => None,
        None => Some(ms + body.parse::<u64>().ok()?),
    }
}

/// The TIME_WAIT timers `ss -tan -o state time-wait FILTER` shows, in ms (`FILTER` in ss's
/// syntax: `src 127.0.0.1:PORT`, `sport = :PORT`).
pub fn ss_timewait_ms_where(filter: &str) -> Vec<u64> {
    let out = Command::new("ss")
        .args(["-tan", "-o", "state", "time-wait"])
        .arg(filter)
        .output()
        .expect("run ss");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let i = l.find("timer:(timewait,")?;
            let rest = &l[i + "timer:(timewait,".len()..];
            ss_timer_ms(&rest[..rest.find(',')?])
        })
        .collect()
}

/// The TIME_WAIT timers for local `addr:port`, in ms.
pub fn ss_timewait_ms(addr: &str, port: u16) -> Vec<u64> {
    ss_timewait_ms_where(&format!("src {addr}:{port}"))
}

/// `ss -tinmo` for the established connection whose local port is `sport` and peer port is
/// `dport`: the outside view, as one line.
pub fn ss_conn(sport: u16, dport: u16) -> String {
    let o = Command::new("ss")
        .args(["-tinmoH", "state", "established"])
        .arg(format!("( sport = :{sport} and dport = :{dport} )"))
        .output()
        .expect("run ss");
    String::from_utf8_lossy(&o.stdout).replace('\n', " ")
}

/// Seconds left on the `timer:(keepalive,T,N)` of an `ss -o` line (same formats as
/// [`ss_timer_ms`]: `1min14sec`, `29sec`, `8.980ms` = 8.98 s, `676ms`).
pub fn keepalive_timer_s(ss: &str) -> Option<f64> {
    let t = ss.split("timer:(keepalive,").nth(1)?.split(',').next()?;
    ss_timer_ms(t).map(|ms| ms as f64 / 1000.0)
}

/// Unanswered keepalive probes: the third field of `timer:(keepalive,T,N)`.
pub fn keepalive_probes(ss: &str) -> Option<u32> {
    let t = ss.split("timer:(keepalive,").nth(1)?.split(')').next()?;
    t.split(',').nth(1)?.parse().ok()
}

/// The `skmem:(...,tbN,...)` / `rbN` values of an `ss -m` line: (sndbuf, rcvbuf).
pub fn skmem_bufs(ss: &str) -> (Option<u64>, Option<u64>) {
    let sk = ss.split("skmem:(").nth(1).and_then(|s| s.split(')').next());
    let field =
        |p: &str| sk.and_then(|s| s.split(',').find_map(|f| f.strip_prefix(p)?.parse().ok()));
    (field("tb"), field("rb"))
}

/// The accept queue (Recv-Q of `ss -ltn`) of the TCP listener on local `addr:port`: the
/// connections the kernel completed that the program has not accept()ed yet.
pub fn ss_accept_queue(addr: &str, port: u16) -> Option<u32> {
    let o = Command::new("ss")
        .args(["-ltnH", "src", &format!("{addr}:{port}")])
        .output()
        .ok()?;
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
