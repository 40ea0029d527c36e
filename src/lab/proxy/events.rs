//! What the proxy prints: the seed's lines in table format (`Proxy received: ...`,
//! `Server IP: ...`, `response send to Client`), one JSON object per line with `--json`.
//! Each event is written with one `write` so lines of concurrent requests never interleave.

use std::io::Write;
use std::net::SocketAddr;

use serde::Serialize;

use crate::lab::jsonproto::printable;
use crate::output::{self, Format};
use crate::sockopt::Applied;

/// How a JSON-mode request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Forwarded; the server's reply was relayed.
    Forwarded,
    /// Refused by the blocklist.
    Blocked,
    /// Refused: outside loopback and the allow list.
    NotAllowed,
    /// The request did not parse or failed a check.
    BadRequest,
    /// The target could not be reached or did not answer.
    Unreachable,
    /// Refused: the buffer budget (`--buffer-budget`) is spent.
    Busy,
    /// No whole first request within `--first-request-timeout`.
    FirstRequestTimeout,
}

/// One JSON-mode request, as printed.
#[derive(Debug, Clone, Serialize)]
pub struct RequestEvent {
    /// Always `request`.
    pub event: &'static str,
    /// The client's address.
    pub client: SocketAddr,
    /// The request text as received (lossy UTF-8, at most 4 KiB shown).
    pub received: String,
    /// `server_ip` as sent, when the request parsed.
    pub server_ip: Option<String>,
    /// `server_port`, when the request parsed.
    pub server_port: Option<u16>,
    /// `message`, when the request parsed.
    pub message: Option<String>,
    /// The address checked and connected to (or refused).
    pub target: Option<SocketAddr>,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it was refused or failed, for the log.
    pub detail: Option<String>,
    /// The reply sent to the client.
    pub response: String,
    /// Whether the reply reached the client.
    pub delivered: bool,
}

/// A relay-mode connection, as printed.
#[derive(Debug, Clone, Serialize)]
pub struct RelayEvent {
    /// Always `relay`.
    pub event: &'static str,
    /// The client's address.
    pub client: SocketAddr,
    /// `closed`, `idle`, `error`, `denied` or `unreachable`.
    pub outcome: &'static str,
    /// Bytes client → upstream.
    pub up: u64,
    /// Bytes upstream → client.
    pub down: u64,
    /// Error or refusal reason.
    pub detail: Option<String>,
}

/// Start-up line.
#[derive(Debug, Clone, Serialize)]
pub struct ListeningEvent {
    /// Always `listening`.
    pub event: &'static str,
    /// Always `tcp` (the same fields as the server's listening event).
    pub proto: &'static str,
    /// Bound address.
    pub addr: SocketAddr,
    /// `json` or `relay`.
    pub mode: &'static str,
    /// Relay target.
    pub relay_to: Option<SocketAddr>,
    /// Options as the kernel reports them on the listener.
    pub options: Applied,
}

/// Final line after draining.
#[derive(Debug, Clone, Serialize)]
pub struct StoppedEvent {
    /// Always `stopped`.
    pub event: &'static str,
    /// Connections accepted in total.
    pub accepted: u64,
    /// Connections still open when the drain time ran out (cut).
    pub aborted: u64,
    /// Connections closed to make room for newcomers (the idlest at the cap, or a client's
    /// own idlest at its per-client limit).
    pub evicted: u64,
    /// Newcomers closed at once (over the per-client limit with every connection busy).
    pub refused: u64,
}

/// Logged once each time every connection slot is taken (re-armed when one is free).
#[derive(Debug, Clone, Serialize)]
pub struct CapacityEvent {
    /// Always `at_capacity`.
    pub event: &'static str,
    /// `--max-conns`.
    pub max_conns: usize,
    /// `--max-conns-per-client`.
    pub max_conns_per_client: usize,
    /// `--first-request-timeout`, seconds.
    pub first_request_timeout_s: f64,
    /// What happens to newcomers: always `evict_idlest`.
    pub policy: &'static str,
    /// Connections evicted so far.
    pub evicted: u64,
}

impl CapacityEvent {
    /// The event for `adm` now.
    pub fn new(adm: &crate::lab::admission::Admission) -> CapacityEvent {
        let l = adm.limits();
        CapacityEvent {
            event: "at_capacity",
            max_conns: l.max_conns,
            max_conns_per_client: l.per_client,
            first_request_timeout_s: l.first_request.as_secs_f64(),
            policy: "evict_idlest",
            evicted: adm.counts().evicted,
        }
    }
}

/// Logged once each time the shared buffer budget refuses a request (re-armed when less than
/// half of it is held): printed even with `--quiet`, like [`CapacityEvent`].
#[derive(Debug, Clone, Serialize)]
pub struct BudgetEvent {
    /// Always `budget_spent`.
    pub event: &'static str,
    /// `--buffer-budget`, bytes.
    pub buffer_budget: usize,
    /// Bytes held when the request was refused.
    pub used: usize,
    /// What could not be covered: `request` (the client's bytes, or its decoded message) or
    /// `reply` (the server's reply).
    pub direction: &'static str,
    /// Requests refused for want of budget so far (this one included).
    pub refused: u64,
}

/// The address fields of the proxy's events and the role each is named by in JSON
/// (`client` → `client_addr`/`client_port`; the listening address is `local_*`).
const ADDRESS_FIELDS: &[(&str, &str)] = &[
    ("client", "client"),
    ("target", "target"),
    ("addr", "local"),
    ("relay_to", "relay_to"),
];

/// One event as the project's JSON vocabulary has it: `schema_version`, `command`
/// (`"run proxy"`), `ts`, then the event's fields with every socket address split into
/// `<role>_addr` + `<role>_port` (null when there is none).
pub fn envelope(event: serde_json::Value, ts: &str) -> serde_json::Value {
    use serde_json::{Value, json};
    let mut out = serde_json::Map::new();
    out.insert("schema_version".into(), json!(1));
    out.insert("command".into(), json!("run proxy"));
    out.insert("ts".into(), json!(ts));
    let Value::Object(fields) = event else {
        return Value::Object(out);
    };
    for (k, v) in fields {
        match ADDRESS_FIELDS.iter().find(|(name, _)| *name == k) {
            Some((_, role)) => {
                let parsed = v.as_str().and_then(|s| s.parse::<SocketAddr>().ok());
                let (addr, port) = match parsed {
                    Some(a) => (json!(a.ip().to_string()), json!(a.port())),
                    None => (Value::Null, Value::Null),
                };
                out.insert(format!("{role}_addr"), addr);
                out.insert(format!("{role}_port"), port);
            }
            None => {
                out.insert(k, v);
            }
        }
    }
    Value::Object(out)
}

/// Where events go.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    /// Table (seed lines) or JSON lines.
    pub format: Format,
    /// Skip per-request lines.
    pub quiet: bool,
}

impl Printer {
    fn write(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        // A closed stdout must not stop the proxy; the request was served regardless.
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    fn json<T: Serialize>(&self, v: &T) {
        let Ok(value) = serde_json::to_value(v) else {
            return;
        };
        let ts = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        let mut buf = Vec::new();
        if output::json::line(&envelope(value, &ts), &mut buf).is_ok() {
            self.write(&String::from_utf8_lossy(&buf));
        }
    }

    /// The start-up lines.
    pub fn listening(&self, e: &ListeningEvent) {
        match self.format {
            Format::Json => self.json(e),
            Format::Table => {
                let head = match e.relay_to {
                    Some(to) => format!("Proxy relaying {} -> {to}\n", e.addr),
                    None => format!("Proxy Server listening on {}\n", e.addr),
                };
                self.write(&format!("{head}socket options: {}\n", e.options));
            }
        }
    }

    /// One request.
    pub fn request(&self, e: &RequestEvent) {
        if self.quiet {
            return;
        }
        if self.format == Format::Json {
            return self.json(e);
        }
        let mut s = format!("Proxy received: {}\n", e.received);
        if let (Some(ip), Some(port), Some(msg)) = (&e.server_ip, e.server_port, &e.message) {
            s += &format!(
                "Server IP: {}\nServer Port: {port}\nMessage: {}\n",
                printable(ip),
                printable(msg)
            );
        }
        if let Some(d) = &e.detail {
            let to = e.target.map(|t| format!("{t}: ")).unwrap_or_default();
            let label = if e.outcome == Outcome::Unreachable {
                "failed"
            } else {
                "refused"
            };
            s += &format!("{label}: {to}{d}\n");
        }
        s += &format!("response: {}\n", printable(&e.response));
        s += if e.delivered {
            "response send to Client\n"
        } else {
            "response not delivered: client gone\n"
        };
        self.write(&s);
    }

    /// One relay connection.
    pub fn relay(&self, e: &RelayEvent) {
        if self.quiet && e.outcome != "error" {
            return;
        }
        match self.format {
            Format::Json => self.json(e),
            Format::Table => {
                let d = e
                    .detail
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default();
                self.write(&format!(
                    "relay {} {}{d} ({} bytes up, {} bytes down)\n",
                    e.client, e.outcome, e.up, e.down
                ));
            }
        }
    }

    /// The final line.
    pub fn stopped(&self, e: &StoppedEvent) {
        match self.format {
            Format::Json => self.json(e),
            Format::Table => self.write(&format!(
                "Proxy stopped: {} connection(s) served, {} cut at the drain deadline, {} evicted for newcomers\n",
                e.accepted, e.aborted, e.evicted
            )),
        }
    }

    /// The buffer budget refused a request (printed even with --quiet, once per episode).
    pub fn budget(&self, e: &BudgetEvent) {
        match self.format {
            Format::Json => self.json(e),
            Format::Table => self.write(&format!(
                "Proxy buffer budget spent: {} of {} bytes held (--buffer-budget) when a {} needed more; \
                 such requests get 'Error, busy' until buffers are freed ({} so far)\n",
                e.used, e.buffer_budget, e.direction, e.refused
            )),
        }
    }

    /// Every connection slot is taken (printed even with --quiet: the operator must know).
    pub fn capacity(&self, e: &CapacityEvent) {
        match self.format {
            Format::Json => self.json(e),
            Format::Table => self.write(&format!(
                "Proxy at capacity: {} connections open (--max-conns); each newcomer now closes the connection idle longest \
                 (at most {} per client address, first request within {}s)\n",
                e.max_conns, e.max_conns_per_client, e.first_request_timeout_s
            )),
        }
    }
}

/// Shortens what a client sent for the log (lossy UTF-8, control characters escaped).
pub fn shown(bytes: &[u8]) -> String {
    const MAX: usize = 4096;
    let cut = &bytes[..bytes.len().min(MAX)];
    let mut s = printable(&String::from_utf8_lossy(cut));
    if bytes.len() > MAX {
        s += &format!("... ({} bytes)", bytes.len());
    }
    s
}
