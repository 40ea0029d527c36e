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
