//! `NETKIT_TRACE=1`: phase timings and walk counters on stderr, for profiling at scale
//! (scripts/bench-inspect); `NETKIT_TRACE=rss` adds the peak RSS so far (`VmHWM`) to each
//! line. Off by default; costs one environment lookup per run.

use std::sync::OnceLock;
use std::time::Instant;

/// When tracing started, and whether lines carry the peak RSS.
fn start() -> &'static Option<(Instant, bool)> {
    static START: OnceLock<Option<(Instant, bool)>> = OnceLock::new();
    START.get_or_init(|| std::env::var_os("NETKIT_TRACE").map(|v| (Instant::now(), v == "rss")))
}

/// `VmHWM` of /proc/self/status, in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// True when `NETKIT_TRACE` is set.
pub fn on() -> bool {
    start().is_some()
}

/// Prints `what` with the milliseconds since the first trace call, when tracing is on.
pub fn note(what: &str) {
    if let Some((t0, rss)) = start() {
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        match rss.then(peak_rss_kib).flatten() {
            Some(kib) => eprintln!("trace {ms:>8.2} ms  {what}  [peak RSS {kib} KiB]"),
            None => eprintln!("trace {ms:>8.2} ms  {what}"),
        }
    }
}
