//! `netkit exporter`: the socket inventory as Prometheus metrics.
//!
//! [`collect`] reads the kernel's socket table once per scrape (sock_diag, folded as it
//! arrives) and resolves owners only for the sockets a metric names; [`metrics`] encodes the
//! result with the official `prometheus-client` crate; [`server`] serves it over HTTP with
//! one collection at a time and bounded connections; [`textfile`] writes it atomically for
//! node_exporter's textfile collector.

pub mod collect;
pub mod metrics;
pub mod server;
pub mod textfile;
