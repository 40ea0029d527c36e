//! `NETKIT_TRACE=1`: phase timings and walk counters on stderr, for profiling at scale
//! (scripts/bench-inspect). Off by default; costs one environment lookup per run.

use std::sync::OnceLock;
use std::time::Instant;

fn start() -> &'static Option<Instant> {
    static START: OnceLock<Option<Instant>> = OnceLock::new();
    START.get_or_init(|| std::env::var_os("NETKIT_TRACE").map(|_| Instant::now()))
}

/// True when `NETKIT_TRACE` is set.
pub fn on() -> bool {
    start().is_some()
}

/// Prints `what` with the milliseconds since the first trace call, when tracing is on.
pub fn note(what: &str) {
    if let Some(t0) = start() {
        eprintln!(
            "trace {:>8.2} ms  {what}",
            t0.elapsed().as_secs_f64() * 1000.0
        );
    }
}
