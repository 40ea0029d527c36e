//! The report every socket-listing command prints: one row per socket.

use serde::Serialize;

use crate::inspect::{SocketEntry, fmt_endpoint};
use crate::output::{Block, Report, Rows, fmt_ms};

/// A list of sockets with hints.
#[derive(Debug, Serialize)]
pub struct SocketsReport {
    /// The command that made it (`who-owns`, `listening`, `inspect`, `timewait`).
    pub command: &'static str,
    /// The port asked about, where one was.
    pub port: Option<u16>,
    /// The sockets.
    pub sockets: Vec<SocketEntry>,
    /// Hints.
    pub notes: Vec<String>,
    /// Show the command-line column (who-owns).
    #[serde(skip)]
    pub cmdline_column: bool,
}

/// The owner cell: `1234/python3,1240/python3`, `kernel (no owner)` for TIME_WAIT and orphans
/// with the port's listener, `?` when the owner could not be seen.
pub fn owner_cell(s: &SocketEntry) -> String {
    if s.is_ownerless() {
        return match &s.listener {
            Some(l) => format!(
                "none (kernel-held; port listener {}/{})",
                l.pid.map_or("?".to_string(), |p| p.to_string()),
                l.command.as_deref().unwrap_or("?"),
            ),
            None => "none (kernel-held)".to_string(),
        };
    }
    if s.owners.is_empty() {
        return "?".to_string();
    }
    s.owners
        .iter()
        .map(|o| format!("{}/{}", o.pid, o.command))
        .collect::<Vec<_>>()
        .join(",")
}

/// The column names of a socket table.
pub fn header(cmdline_column: bool) -> Vec<String> {
    let mut h = vec![
        "PROTO",
        "STATE",
        "LOCAL",
        "REMOTE",
        "USER",
        "PID/COMMAND",
        "TIMER",
    ];
    if cmdline_column {
        h.push("CMDLINE");
    }
    h.into_iter().map(String::from).collect()
}

/// The cells of one socket's row.
pub fn cells(s: &SocketEntry, cmdline_column: bool) -> Vec<String> {
    let six = if s.family == crate::inspect::Family::Inet6 {
        "6"
    } else {
        ""
    };
    let mut r = vec![
        format!("{}{six}", s.proto),
        s.state.to_string(),
        fmt_endpoint(s.local_addr, s.local_port),
        s.remote(),
        s.user.as_deref().unwrap_or("-").to_string(),
        owner_cell(s),
        s.expires_ms.map_or("-".to_string(), fmt_ms),
    ];
    if cmdline_column {
        let mut lines: Vec<&str> = s.owners.iter().map(|o| o.cmdline.as_str()).collect();
        lines.dedup();
        r.push(lines.join(" | "));
    }
    r
}

impl Rows for SocketsReport {
    fn header(&self) -> Vec<String> {
        header(self.cmdline_column)
    }
    fn len(&self) -> usize {
        self.sockets.len()
    }
    fn row(&self, i: usize) -> Vec<String> {
        cells(&self.sockets[i], self.cmdline_column)
    }
}

impl Report for SocketsReport {
    fn human(&self) -> Vec<Block> {
        Vec::new()
    }

    fn rows(&self) -> Option<&dyn Rows> {
        (!self.sockets.is_empty()).then_some(self as &dyn Rows)
    }

    fn notes(&self) -> Vec<String> {
        with_empty_note(
            &self.notes,
            self.sockets.is_empty(),
            self.command,
            self.port,
        )
    }
}

/// The notes of a listing, plus what "nothing found" means when it is empty.
pub fn with_empty_note(
    notes: &[String],
    empty: bool,
    command: &str,
    port: Option<u16>,
) -> Vec<String> {
    let mut notes = notes.to_vec();
    if empty {
        notes.push(match port {
            Some(p) if command == "who-owns" => {
                format!("nothing holds local port {p} (TCP or UDP, IPv4 or IPv6, any state)")
            }
            _ => "no matching sockets".to_string(),
        });
    }
    notes
}
