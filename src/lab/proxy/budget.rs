//! The proxy's request-buffer budget: every connection may hold [`FREE_PER_CONN`] bytes of
//! buffer without asking (an ordinary lab request fits), and grows past that only against a
//! budget shared by all connections and serving threads (`--buffer-budget`). A connection
//! whose request would take the budget past its limit gets `Error, busy` and is closed, so
//! a thousand clients sending unfinished maximum-size requests cannot take the proxy's memory
//! with them. Buffers shrink back after each request.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Buffer bytes a connection holds without charge.
pub const FREE_PER_CONN: usize = 4096;

/// Default `--buffer-budget`: 64 MiB.
pub const DEFAULT_BUDGET: usize = 64 << 20;

/// The shared budget.
#[derive(Debug)]
pub struct BufferBudget {
    limit: usize,
    used: AtomicUsize,
}

impl BufferBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> BufferBudget {
        BufferBudget {
            limit,
            used: AtomicUsize::new(0),
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
        self.used.fetch_sub(n, Ordering::AcqRel);
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
}
