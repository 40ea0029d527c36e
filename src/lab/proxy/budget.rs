//! The proxy's request-buffer budget: every connection may hold [`FREE_PER_CONN`] bytes of
//! buffer without asking (an ordinary lab request fits), and grows past that only against a
//! budget shared by all connections and serving threads (`--buffer-budget`). A connection
//! whose request would take the budget past its limit gets `Error, busy` and is closed, so
//! a thousand clients sending unfinished maximum-size requests cannot take the proxy's memory
//! with them. The decoded message and the server's reply are charged to the same lease while
//! they live (a reply the budget cannot cover is dropped: `Error, busy`). Buffers shrink back
//! after each request. The first refusal of an episode is reported once
//! ([`BufferBudget::refused`] returns true), re-armed when usage falls below half the limit.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Buffer bytes a connection holds without charge.
pub const FREE_PER_CONN: usize = 4096;

/// Default `--buffer-budget`: 64 MiB.
pub const DEFAULT_BUDGET: usize = 64 << 20;

/// The shared budget.
#[derive(Debug)]
pub struct BufferBudget {
    limit: usize,
    used: AtomicUsize,
    refusals: AtomicU64,
    spent: AtomicBool,
}

impl BufferBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> BufferBudget {
        BufferBudget {
            limit,
            used: AtomicUsize::new(0),
            refusals: AtomicU64::new(0),
            spent: AtomicBool::new(false),
        }
    }

    /// The limit in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes charged now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Counts a request refused for want of budget; true for the first one of an episode
    /// (the caller logs it even with `--quiet`, as the connection cap is).
    pub fn refused(&self) -> bool {
        self.refusals.fetch_add(1, Ordering::Relaxed);
        !self.spent.swap(true, Ordering::Relaxed)
    }

    /// Requests refused for want of budget so far.
    pub fn refusals(&self) -> u64 {
        self.refusals.load(Ordering::Relaxed)
    }

    /// An empty lease for one connection.
    pub fn lease(&self) -> Lease<'_> {
        Lease {
            budget: self,
            held: 0,
        }
    }

    fn try_take(&self, n: usize) -> bool {
        let mut cur = self.used.load(Ordering::Relaxed);
        loop {
            let Some(next) = cur.checked_add(n).filter(|&v| v <= self.limit) else {
                return false;
            };
            match self
                .used
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    fn give_back(&self, n: usize) {
        let before = self.used.fetch_sub(n, Ordering::AcqRel);
        if before - n < self.limit / 2 && self.spent.load(Ordering::Relaxed) {
            self.spent.store(false, Ordering::Relaxed);
        }
    }
}

/// One connection's share of the budget; returned when dropped.
#[derive(Debug)]
pub struct Lease<'a> {
    budget: &'a BufferBudget,
    held: usize,
}

impl Lease<'_> {
    /// Makes the lease cover a buffer of `capacity` bytes (the first [`FREE_PER_CONN`] are
    /// free). False, with nothing changed, when the budget cannot cover it.
    pub fn cover(&mut self, capacity: usize) -> bool {
        let want = capacity.saturating_sub(FREE_PER_CONN);
        if want > self.held {
            if !self.budget.try_take(want - self.held) {
                return false;
            }
        } else {
            self.budget.give_back(self.held - want);
        }
        self.held = want;
        true
    }

    /// Bytes charged to this lease.
    pub fn held(&self) -> usize {
        self.held
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.budget.give_back(self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_share_the_limit_and_give_back() {
        let b = BufferBudget::new(10_000);
        let mut a = b.lease();
        let mut c = b.lease();
        assert!(a.cover(FREE_PER_CONN), "the free part costs nothing");
        assert_eq!(b.used(), 0);
        assert!(a.cover(FREE_PER_CONN + 8_000));
        assert!(!c.cover(FREE_PER_CONN + 3_000), "over the shared limit");
        assert_eq!(c.held(), 0);
        assert!(a.cover(1000), "shrinking returns the bytes");
        assert!(c.cover(FREE_PER_CONN + 3_000));
        drop(c);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn the_first_refusal_of_an_episode_is_reported_once() {
        let b = BufferBudget::new(10_000);
        let mut a = b.lease();
        assert!(a.cover(FREE_PER_CONN + 9_000));
        assert!(b.refused(), "first refusal reported");
        assert!(!b.refused(), "the same episode is not reported again");
        assert!(a.cover(FREE_PER_CONN + 6_000));
        assert!(!b.refused(), "still over half the limit: same episode");
        assert!(a.cover(FREE_PER_CONN + 1_000));
        assert!(b.refused(), "below half the limit the report is re-armed");
        assert_eq!(b.refusals(), 4);
    }
}
