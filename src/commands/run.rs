//! `netkit run COMPONENT`: hands each component its arguments.

use anyhow::bail;

use crate::cli::run::{Component, RunArgs};
use crate::output::Format;

/// Runs a lab component until it is stopped; returns its exit code.
///
/// # Errors
/// Start-up failures (bind, bad arguments), printed by `main` as one line.
pub fn run(a: RunArgs, _format: Format) -> anyhow::Result<i32> {
    match a.component {
        Component::Server(_) => bail!("run server is not implemented yet"),
        Component::Client(_) => bail!("run client is not implemented yet"),
        Component::Proxy(_) => bail!("run proxy is not implemented yet"),
        Component::UdpServer(_) => bail!("run udp-server is not implemented yet"),
        Component::UdpClient(_) => bail!("run udp-client is not implemented yet"),
    }
}
