//! Lab UDP pair (filled in by its issue).

use anyhow::bail;

use crate::cli::run::{UdpClientArgs, UdpServerArgs};
use crate::output::Format;

/// `netkit run udp-server`.
///
/// # Errors
/// Not implemented yet.
pub fn run_server_cli(_a: UdpServerArgs, _format: Format) -> anyhow::Result<i32> {
    bail!("run udp-server is not implemented yet")
}

/// `netkit run udp-client`.
///
/// # Errors
/// Not implemented yet.
pub fn run_client_cli(_a: UdpClientArgs, _format: Format) -> anyhow::Result<i32> {
    bail!("run udp-client is not implemented yet")
}
