//! The proxy's hostname resolver, built so that a silent DNS server cannot jam it.
//!
//! - IP literals never get here (the policy parses them); `localhost` and `*.localhost`
//!   are loopback (RFC 6761 §6.3), and names in `/etc/hosts` (re-read when its mtime
//!   changes, parsed by hickory-resolver's `Hosts`) are answered at once, on the calling
//!   task: no lookup slot, no thread.
//! - Other names go to DNS through hickory-resolver, an async stub resolver reading
//!   `/etc/resolv.conf`: a lookup is a future, so dropping it (the request's deadline, the
//!   client going away, the proxy draining) cancels it, and no thread stays pinned in
//!   `getaddrinfo(3)` (the blocking pool it used to run on has 512 threads, and 600 lookups
//!   for names nobody answered took them all, `localhost` included).
//! - At most [`MAX_LOOKUPS`] DNS lookups run at once, and [`MAX_QUEUED`] more may wait
//!   for a slot; past that a request is refused at once with `resolver busy`.
//!
//! Unlike getaddrinfo, NSS modules (mdns, systemd-resolved's nss module, LDAP) are not
//! consulted; names they alone know do not resolve here.

use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use hickory_resolver::proto::op::Query;
use hickory_resolver::proto::rr::{Name, RecordType};
use hickory_resolver::{Hosts, TokioResolver};
use tokio::sync::Semaphore;

/// DNS lookups in flight at once (all serving threads together).
pub const MAX_LOOKUPS: usize = 32;
/// Lookups that may wait for a slot; more are refused with `resolver busy`.
pub const MAX_QUEUED: usize = 128;

/// Why a name did not resolve (the text after `Error, server unreachable: `).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// Every lookup slot and queue place is taken.
    Busy,
    /// DNS answered with an error, or no address.
    Failed(String),
}

/// The shared part: lookup slots and the /etc/hosts cache. Each serving thread builds its
/// own hickory resolver on first use (its background work then runs on that thread's
/// runtime).
#[derive(Debug)]
pub struct NameResolver {
    size: usize,
    slots: Semaphore,
    waiting: AtomicUsize,
    hosts: Mutex<Option<(Option<SystemTime>, Arc<Hosts>)>>,
}

impl Default for NameResolver {
    fn default() -> Self {
        NameResolver::new(MAX_LOOKUPS)
    }
}

thread_local! {
    static DNS: std::cell::OnceCell<Result<TokioResolver, String>> = const { std::cell::OnceCell::new() };
}

fn hosts_mtime() -> Option<SystemTime> {
    std::fs::metadata(Path::new("/etc/hosts"))
        .and_then(|m| m.modified())
        .ok()
}

/// Occupies one place (running or queued) until dropped.
struct Place<'a>(&'a AtomicUsize);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl NameResolver {
    /// A resolver with `slots` concurrent DNS lookups (and [`MAX_QUEUED`] waiting).
    pub fn new(slots: usize) -> NameResolver {
        NameResolver {
            size: slots.max(1),
            slots: Semaphore::new(slots.max(1)),
            waiting: AtomicUsize::new(0),
            hosts: Mutex::new(None),
        }
    }

    /// Addresses for `name` (lower case, no trailing dot) from `localhost` rules or
    /// /etc/hosts, without DNS; `None` when neither knows it.
    pub fn static_lookup(&self, name: &str) -> Option<Vec<IpAddr>> {
        if name == "localhost" || name.ends_with(".localhost") {
            return Some(vec![
                IpAddr::from([127, 0, 0, 1]),
                IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ]);
        }
        let hosts = self.hosts();
        let fqdn = Name::from_ascii(format!("{name}.")).ok()?;
        let mut out = Vec::new();
        for t in [RecordType::A, RecordType::AAAA] {
            if let Some(l) = hosts.lookup_static_host(&Query::query(fqdn.clone(), t)) {
                out.extend(l.answers().iter().filter_map(|r| r.data.ip_addr()));
            }
        }
        (!out.is_empty()).then_some(out)
    }

    fn hosts(&self) -> Arc<Hosts> {
        let mtime = hosts_mtime();
        let mut cached = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        match &*cached {
            Some((m, h)) if *m == mtime => h.clone(),
            _ => {
                let h = Arc::new(Hosts::from_system().unwrap_or_default());
                *cached = Some((mtime, h.clone()));
                h
            }
        }
    }

    /// Resolves `name`: /etc/hosts first, then DNS within the lookup bound. Cancelled by
    /// dropping the future.
    ///
    /// # Errors
    /// [`LookupError::Busy`] at once when every slot and queue place is taken;
    /// [`LookupError::Failed`] when DNS has no address for it.
    pub async fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, LookupError> {
        if let Some(found) = self.static_lookup(name) {
            return Ok(found);
        }
        let limit = self.slots_total();
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= limit {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(LookupError::Busy);
        }
        let _place = Place(&self.waiting);
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| LookupError::Failed("resolver closed".into()))?;
        let dns = DNS.with(|d| {
            d.get_or_init(|| {
                TokioResolver::builder_tokio()
                    .and_then(|b| b.build())
                    .map_err(|e| format!("no DNS configuration: {e}"))
            })
            .clone()
        });
        let dns = dns.map_err(LookupError::Failed)?;
        // The trailing dot: the name is absolute (no search domains, as the policy
        // already canonicalised it).
        match dns.lookup_ip(format!("{name}.")).await {
            Ok(l) => {
                let v: Vec<IpAddr> = l.iter().collect();
                if v.is_empty() {
                    Err(LookupError::Failed(format!("{name} has no address")))
                } else {
                    Ok(v)
                }
            }
            Err(e) => Err(LookupError::Failed(format!("cannot resolve {name}: {e}"))),
        }
    }

    /// Places in all: running plus queued.
    fn slots_total(&self) -> usize {
        self.size + MAX_QUEUED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_names_are_loopback_without_dns() {
        let r = NameResolver::default();
        for n in ["localhost", "db.localhost"] {
            let v = r.static_lookup(n).unwrap();
            assert!(v.iter().all(IpAddr::is_loopback), "{n}: {v:?}");
        }
        assert_eq!(r.static_lookup("no-such-name.invalid"), None);
    }

    #[tokio::test]
    async fn excess_lookups_are_refused_at_once() {
        let r = NameResolver::new(1);
        // Take every place by hand: the next lookup is refused without waiting.
        r.waiting.store(r.slots_total(), Ordering::SeqCst);
        assert_eq!(
            r.lookup("no-such-name.invalid").await,
            Err(LookupError::Busy)
        );
        r.waiting.store(0, Ordering::SeqCst);
        // Static names need no place at all.
        r.waiting.store(r.slots_total(), Ordering::SeqCst);
        assert!(r.lookup("localhost").await.is_ok());
    }
}
