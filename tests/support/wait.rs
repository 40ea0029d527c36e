//! Waiting for something to happen: always polled, always with a deadline (never one sleep
//! that hopes the machine was quick enough).

use std::time::{Duration, Instant};

/// Polls `f` every 20 ms until it returns `Some` or `limit` passes (`f` runs at least once,
/// and once more at the deadline).
pub fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `f` until it is true (true) or `limit` passes (false).
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    poll(limit, || f().then_some(())).is_some()
}
