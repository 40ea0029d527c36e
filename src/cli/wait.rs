//! Arguments of `netkit wait-listen`: wait until something accepts on the port(s), then run
//! a command (what wait-port and wait-for-it do).

use clap::{Args, ValueHint};

use super::port::{PortSet, PortSpec, parse_port_spec};

/// `netkit wait-listen PORT... [--timeout S] [--host H] [-- CMD ARGS]`.
#[derive(Debug, Args)]
#[command(after_help = "\
Exit status: 0 every port accepts (then CMD replaces netkit and its status is the result);
1 timed out (CMD is not run); 2 usage or resolver error; 126/127 CMD cannot be run / not found.

Each check is a TCP connect() that is closed at once: the server sees a connection that
sends nothing. Progress is shown on stderr when it is a terminal.")]
pub struct WaitListenArgs {
    /// Port(s) to wait for: `6000`, `localhost:6000`, `[::1]:6000`, `http`, `6000-6002`,
    /// `6000,6001`.
    #[arg(
        help = "Port(s) to wait for: 6000, localhost:6000, [::1]:6000, http, 6000-6002, 6000,6001"
    )]
    #[arg(value_name = "PORT", required = true, num_args = 1.., value_delimiter = ',', value_hint = ValueHint::Other, value_parser = parse_port_spec)]
    pub ports: Vec<PortSpec>,
    /// Give up after this many seconds (0: check once).
    #[arg(long, value_name = "S", default_value_t = 60.0, allow_negative_numbers = true, value_parser = seconds)]
    pub timeout: f64,
    /// Host to connect to for a PORT that names none; a name is tried on all its addresses
    /// (localhost: 127.0.0.1 and ::1).
    #[arg(long, value_name = "HOST", default_value = "localhost", value_hint = ValueHint::Hostname)]
    pub host: String,
    /// Command to run once every port accepts (after `--`).
    #[arg(last = true, value_name = "CMD", value_hint = ValueHint::CommandWithArguments)]
    pub cmd: Vec<std::ffi::OsString>,
    /// Wait inside this network namespace (the checks connect there, and CMD runs there).
    #[command(flatten)]
    pub ns: super::netns::OneNetnsArgs,
}

impl WaitListenArgs {
    /// The port arguments.
    pub fn port_set(&self) -> PortSet {
        PortSet(self.ports.clone())
    }
}

/// A number of seconds between 0 and 86400.
///
/// # Errors
/// Anything else, as one line.
pub fn seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=86_400.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "'{s}' is not a number of seconds between 0 and 86400"
        )),
    }
}
