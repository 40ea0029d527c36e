//! Lab server (filled in by its issue).

use anyhow::bail;

use crate::cli::run::ServerArgs;
use crate::output::Format;

/// `netkit run server`: runs until stopped and returns the exit code.
///
/// # Errors
/// Not implemented yet.
pub fn run_cli(_a: ServerArgs, _format: Format) -> anyhow::Result<i32> {
    bail!("run server is not implemented yet")
}
