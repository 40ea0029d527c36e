//! Lab client (filled in by its issue).

use anyhow::bail;

use crate::cli::run::ClientArgs;
use crate::output::Format;

/// `netkit run client`: runs until stopped and returns the exit code.
///
/// # Errors
/// Not implemented yet.
pub fn run_cli(_a: ClientArgs, _format: Format) -> anyhow::Result<i32> {
    bail!("run client is not implemented yet")
}
