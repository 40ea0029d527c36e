//! How a listing is shown, beyond `--json`/`--wide`: `--pids` (like `lsof -t`) and
//! `--watch [SECS]` (like `watch ss`). Flattened into the inventory commands' arguments.

use clap::Args;

/// `--pids` and `--watch` (who-owns, listening, inspect).
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct View {
    /// Print only the PIDs of the processes holding the sockets, one per line, each once
    /// (like `lsof -t`): `kill $(netkit who-owns 6000 --pids)`.
    #[arg(long)]
    pub pids: bool,
    #[command(flatten)]
    pub watch: Watch,
}

/// `--watch [SECS]` (also timewait).
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct Watch {
    /// Print again every SECS seconds (default 2) until Ctrl-C: redrawn in place on a
    /// terminal, appended with a timestamp line when piped.
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "2")]
    pub watch: Option<f64>,
}
