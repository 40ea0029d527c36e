//! The inventory commands' JSON (who-owns, listening, timewait, inspect) as test-side serde
//! types, and a key-presence check for what serde's `Option` cannot tell.

use serde::Deserialize;

/// `who-owns`, `listening`, `inspect`, `timewait --all` JSON.
#[derive(Debug, Deserialize)]
pub struct SocketsJson {
    pub command: String,
    pub port: Option<u16>,
    pub sockets: Vec<SockJson>,
    pub notes: Vec<String>,
}

/// One socket in JSON.
#[derive(Debug, Clone, Deserialize)]
pub struct SockJson {
    pub proto: String,
    pub family: String,
    pub local_addr: String,
    pub local_port: u16,
    pub remote_addr: Option<String>,
    pub remote_port: Option<u16>,
    pub state: String,
    pub uid: Option<u32>,
    pub user: Option<String>,
    pub inode: u64,
    pub owners: Vec<OwnerJson>,
    pub expires_ms: Option<u64>,
    pub listener: Option<ListenerJson>,
}

impl SocketsJson {
    /// Keeps the sockets whose local address is `addr`: other processes on this machine may
    /// hold the same port number on other loopback addresses (another test's 127.0.0.5:P
    /// client, say), and exact counts are about ours.
    pub fn only(mut self, addr: &str) -> SocketsJson {
        self.sockets.retain(|s| s.local_addr == addr);
        self
    }
}

impl SockJson {
    /// The PIDs of the owners.
    pub fn pids(&self) -> Vec<u32> {
        self.owners.iter().map(|o| o.pid).collect()
    }
}

/// An owner in JSON.
#[derive(Debug, Clone, Deserialize)]
pub struct OwnerJson {
    pub pid: u32,
    pub command: String,
    pub cmdline: Option<String>,
}

/// A listener reference in JSON: its socket, user and owning process (null when unseen).
#[derive(Debug, Clone, Deserialize)]
pub struct ListenerJson {
    pub local_addr: String,
    pub local_port: u16,
    pub user: Option<String>,
    pub owner: Option<OwnerJson>,
}

impl ListenerJson {
    /// The owner's PID.
    pub fn pid(&self) -> Option<u32> {
        self.owner.as_ref().map(|o| o.pid)
    }
}

/// `timewait` summary JSON.
#[derive(Debug, Deserialize)]
pub struct TimewaitJson {
    pub command: String,
    pub total: usize,
    pub ports: Vec<PortJson>,
    pub notes: Vec<String>,
}

/// One `ports` entry.
#[derive(Debug, Deserialize)]
pub struct PortJson {
    pub local_addr: String,
    pub local_port: u16,
    pub count: usize,
    pub min_expires_ms: u64,
    pub max_expires_ms: u64,
    pub listener: Option<ListenerJson>,
}

/// Checks that every key is present in a JSON object, even where the value is null (serde
/// treats a missing `Option` field as `None`, so presence is checked here).
pub fn assert_keys(v: &serde_json::Value, keys: &[&str]) {
    let obj = v.as_object().expect("a JSON object");
    for k in keys {
        assert!(obj.contains_key(*k), "key {k:?} missing in {v}");
    }
}

/// The keys every socket object carries (README schema).
pub const SOCKET_KEYS: &[&str] = &[
    "proto",
    "family",
    "local_addr",
    "local_port",
    "remote_addr",
    "remote_port",
    "state",
    "uid",
    "user",
    "inode",
    "owners",
    "expires_ms",
];
