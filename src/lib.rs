//! netkit: who holds a port, why bind() fails, and lab sockets to practise on.
//!
//! Layers (see ARCHITECTURE.md): [`cli`] (clap types) → [`commands`] (glue) → [`inspect`]
//! (what the kernel says), [`explain`] (why), [`lab`] (server, client, proxy), [`sockopt`]
//! (the only socket2 user) → [`output`] (tables and JSON).

pub mod audit;
pub mod cli;
pub mod commands;
pub mod errno;
pub mod exit;
pub mod explain;
pub mod exporter;
pub mod ifaddrs;
pub mod inspect;
pub mod lab;
pub mod output;
pub mod retune;
pub mod sockopt;

/// The cores this process may run on (`available_parallelism`, 1 when unknown), asked once:
/// the call reads the cgroup's CPU quota and costs ~27 µs.
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
