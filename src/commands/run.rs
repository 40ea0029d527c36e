//! `netkit run COMPONENT`: hands each component its arguments.

use crate::cli::run::{Component, RunArgs};
use crate::lab;
use crate::output::Format;

/// Runs a lab component until it is stopped; returns its exit code.
///
/// # Errors
/// Start-up failures (bind, bad arguments), printed by `main` as one line.
pub fn run(a: RunArgs, format: Format) -> anyhow::Result<i32> {
    match a.component {
        Component::Server(a) => lab::server::run_cli(a, format),
        Component::Client(a) => lab::client::run_cli(a, format),
        Component::Proxy(a) => lab::proxy::run_cli(a, format),
        Component::UdpServer(a) => lab::udp::run_server_cli(a, format),
        Component::UdpClient(a) => lab::udp::run_client_cli(a, format),
    }
}
