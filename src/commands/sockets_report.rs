//! The report every socket-listing command prints: one row per socket.

use serde::Serialize;

use crate::inspect::SocketEntry;
use crate::output::{Block, Report, Rows, fmt_ms};

/// A list of sockets with hints.
#[derive(Debug, Serialize)]
pub struct SocketsReport {
    /// The command that made it (`who-owns`, `listening`, `inspect`, `timewait`); JSON puts
    /// it first, with `schema_version` ([`Report::command`]).
    #[serde(skip)]
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
    /// The optional columns, worked out from the rows on first use.
    #[serde(skip)]
    pub cols: std::sync::OnceLock<Columns>,
}

/// Which optional columns a socket table has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Columns {
    /// CMDLINE (last, the first to be cut on a narrow terminal).
    pub cmdline: bool,
    /// UNIT/CONTAINER: some owner runs in a systemd unit or a container.
    pub placement: bool,
    /// NETNS: the rows come from several network namespaces.
    pub netns: bool,
}

impl Columns {
    /// The columns `sockets` need: UNIT/CONTAINER when any owner has one, NETNS when any row
    /// carries a namespace.
    pub fn for_rows(sockets: &[SocketEntry], cmdline: bool) -> Columns {
        Columns {
            cmdline,
            placement: sockets.iter().any(|s| {
                s.owners
                    .iter()
                    .any(|o| o.unit.is_some() || o.container.is_some() || o.forwards_to.is_some())
            }),
            netns: sockets.iter().any(|s| s.netns.is_some()),
        }
    }
}

/// The owner cell: `1234/python3,1240/python3`, `kernel (no owner)` for TIME_WAIT and orphans
/// with the port's listener, `(accept queue of PID N)` for a connection no process accepted
/// yet, `?` when the owner could not be seen.
pub fn owner_cell(s: &SocketEntry) -> String {
    let mut out = String::new();
    write_owner_cell(s, &mut out);
    out
}

/// Writes the owner cell into `out`.
fn write_owner_cell(s: &SocketEntry, out: &mut String) {
    use std::fmt::Write as _;
    if s.is_ownerless() {
        match &s.listener {
            Some(l) => {
                out.push_str("none (kernel-held; port listener ");
                match l.pid {
                    Some(p) => {
                        let _ = write!(out, "{p}");
                    }
                    None => out.push('?'),
                }
                out.push('/');
                out.push_str(l.command.as_deref().unwrap_or("?"));
                out.push(')');
            }
            None => out.push_str("none (kernel-held)"),
        }
        return;
    }
    if s.owners.is_empty() {
        match (&s.listener, super::filters::awaits_accept(s)) {
            (Some(l), true) => match l.pid {
                Some(p) => {
                    let _ = write!(out, "(accept queue of PID {p})");
                }
                None => out.push_str("(accept queue of a listener)"),
            },
            _ => out.push('?'),
        }
        return;
    }
    for (i, o) in s.owners.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{}/{}", o.pid, o.command);
    }
}

/// The column names of a socket table.
pub fn header(cmdline_column: bool) -> Vec<String> {
    header_with(Columns {
        cmdline: cmdline_column,
        ..Columns::default()
    })
}

/// The column names of a socket table with the optional columns `c`.
pub fn header_with(c: Columns) -> Vec<String> {
    let mut h = vec![
        "PROTO",
        "STATE",
        "LOCAL",
        "REMOTE",
        "USER",
        "PID/COMMAND",
        "TIMER",
    ];
    if c.placement {
        h.push("UNIT/CONTAINER");
    }
    if c.netns {
        h.push("NETNS");
    }
    if c.cmdline {
        h.push("CMDLINE");
    }
    h.into_iter().map(String::from).collect()
}

/// The cells of one socket's row.
pub fn cells(s: &SocketEntry, cmdline_column: bool) -> Vec<String> {
    let mut out = Vec::new();
    cells_into(s, cmdline_column, &mut out);
    out
}

/// Writes the cells of one socket's row into `out`, reusing its strings: a 100,000-row
/// table is formatted twice (widths, then lines) without allocating per cell.
pub fn cells_into(s: &SocketEntry, cmdline_column: bool, out: &mut Vec<String>) {
    cells_with(
        s,
        Columns {
            cmdline: cmdline_column,
            ..Columns::default()
        },
        out,
    )
}

/// [`cells_into`] with the optional columns `c`.
pub fn cells_with(s: &SocketEntry, c: Columns, out: &mut Vec<String>) {
    use std::fmt::Write as _;
    let n = 7 + usize::from(c.placement) + usize::from(c.netns) + usize::from(c.cmdline);
    out.resize_with(n, String::new);
    out.truncate(n);
    for c in out.iter_mut() {
        c.clear();
    }
    let _ = write!(out[0], "{}", s.proto);
    if s.family == crate::inspect::Family::Inet6 {
        out[0].push('6');
    }
    out[1].push_str(s.state.name());
    write_endpoint(&mut out[2], s.local_addr, s.local_port);
    match (s.remote_addr, s.remote_port) {
        (Some(a), Some(p)) => write_endpoint(&mut out[3], a, p),
        _ => out[3].push_str("*:*"),
    }
    out[4].push_str(s.user.as_deref().unwrap_or("-"));
    write_owner_cell(s, &mut out[5]);
    match s.expires_ms {
        Some(ms) => out[6].push_str(&fmt_ms(ms)),
        None => out[6].push('-'),
    }
    let mut i = 7;
    if c.placement {
        let mut cells: Vec<String> = s.owners.iter().map(|o| o.placement()).collect();
        cells.dedup();
        if cells.is_empty() {
            out[i].push('-');
        } else {
            out[i].push_str(&cells.join(","));
        }
        i += 1;
    }
    if c.netns {
        match &s.netns {
            Some(n) => out[i].push_str(&n.label()),
            None => out[i].push('-'),
        }
        i += 1;
    }
    if c.cmdline {
        let mut lines: Vec<&str> = s.owners.iter().map(|o| o.cmdline.as_str()).collect();
        lines.dedup();
        out[i].push_str(&lines.join(" | "));
    }
}

/// `addr:port`, IPv6 in brackets, written into `out`.
fn write_endpoint(out: &mut String, addr: std::net::IpAddr, port: u16) {
    use std::fmt::Write as _;
    let _ = match addr {
        std::net::IpAddr::V4(a) => write!(out, "{a}:{port}"),
        std::net::IpAddr::V6(a) => write!(out, "[{a}]:{port}"),
    };
}

impl SocketsReport {
    fn columns(&self) -> Columns {
        *self
            .cols
            .get_or_init(|| Columns::for_rows(&self.sockets, self.cmdline_column))
    }
}

impl Rows for SocketsReport {
    fn header(&self) -> Vec<String> {
        header_with(self.columns())
    }
    fn len(&self) -> usize {
        self.sockets.len()
    }
    fn row(&self, i: usize) -> Vec<String> {
        let mut out = Vec::new();
        cells_with(&self.sockets[i], self.columns(), &mut out);
        out
    }
    fn row_into(&self, i: usize, out: &mut Vec<String>) {
        cells_with(&self.sockets[i], self.columns(), out)
    }
}

impl Report for SocketsReport {
    fn human(&self) -> Vec<Block> {
        Vec::new()
    }

    fn command(&self) -> Option<&'static str> {
        Some(self.command)
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
    _port: Option<u16>,
) -> Vec<String> {
    let mut notes = notes.to_vec();
    // who-owns says what it searched itself (several ports, protocol suffixes).
    if empty && command != "who-owns" {
        notes.push("no matching sockets".to_string());
    }
    notes
}
