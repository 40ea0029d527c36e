//! `netkit free-port`: ports bindable now, each checked by a real trial bind
//! ([`crate::explain::freeport`]); `--prefer`, `--exclude`, `--both` (TCP and UDP at once).

use anyhow::{Context, bail};
use serde::Serialize;

use super::emit_found;
use crate::cli::explain::FreePortArgs;
use crate::cli::port::PortSet;
use crate::explain::freeport;
use crate::inspect::{Proto, sysctl};
use crate::output::{Block, Format, Report};

/// What `netkit free-port` prints.
#[derive(Debug, Serialize)]
pub struct FreePortReport {
    /// Bindable ports, each checked by a trial bind.
    pub ports: Vec<u16>,
    /// `tcp`, `udp`, or `both` (bindable for TCP and for UDP).
    pub proto: &'static str,
    /// The ranges searched, JSON `[{"first": A, "last": B}]`.
    #[serde(serialize_with = "ranges_as_objects")]
    pub ranges: Vec<(u16, u16)>,
    /// Hints.
    pub notes: Vec<String>,
}

impl Report for FreePortReport {
    fn human(&self) -> Vec<Block> {
        self.ports
            .iter()
            .map(|p| Block::Line(p.to_string()))
            .collect()
    }
    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }
    fn command(&self) -> Option<&'static str> {
        Some("free-port")
    }
}

/// Port ranges as `{"first", "last"}` objects rather than bare pairs.
fn ranges_as_objects<S: serde::Serializer>(r: &[(u16, u16)], s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Range {
        first: u16,
        last: u16,
    }
    s.collect_seq(r.iter().map(|&(first, last)| Range { first, last }))
}

/// True when `port` is bindable for every protocol asked.
fn bindable(protos: &[Proto], port: u16) -> bool {
    protos.iter().all(|&p| freeport::is_free(p, port))
}

/// `netkit free-port`.
///
/// # Errors
/// A malformed `--range` or `--count`.
pub fn run(a: &FreePortArgs, f: Format) -> anyhow::Result<i32> {
    if a.count == 0 || a.count > 10_000 {
        bail!("--count must be between 1 and 10000");
    }
    let (protos, proto_name): (Vec<Proto>, &'static str) = if a.both {
        (vec![Proto::Tcp, Proto::Udp], "both")
    } else if a.udp {
        (vec![Proto::Udp], "udp")
    } else {
        (vec![Proto::Tcp], "tcp")
    };
    let exclude = PortSet(a.exclude.clone());
    let mut notes = Vec::new();
    let ranges = match &a.range {
        Some(r) => vec![freeport::parse_range(r).with_context(|| {
            format!("--range must be A-B with 1 <= A <= B <= 65535, got {r:?}")
        })?],
        None => {
            let eph = sysctl::ephemeral_range();
            let start = sysctl::unprivileged_port_start();
            notes.push(format!(
                "searched outside net.ipv4.ip_local_port_range ({}-{}), where outgoing connections pick their source ports (BIND-RULES.md rule 11), and from ip_unprivileged_port_start ({start}) up; use --range A-B to choose",
                eph.0, eph.1
            ));
            freeport::default_ranges(start, eph)
        }
    };
    let mut ports = Vec::new();
    if let Some(p) = a.prefer {
        if !exclude.is_empty() && exclude.has_port(p) {
            notes.push(format!("--prefer {p} is also in --exclude: not used"));
        } else if bindable(&protos, p) {
            ports.push(p);
        } else {
            notes.push(format!(
                "preferred port {p} is not bindable now (see `netkit who-owns {p}`); printed another"
            ));
        }
    }
    // The search: the kernel-checked finder, over the ranges minus what is excluded or
    // already chosen; --both re-checks each candidate for the other protocol.
    let mut seed = freeport::seed();
    let mut rounds = 0;
    while ports.len() < a.count && rounds < 64 {
        rounds += 1;
        let want = a.count - ports.len();
        let found = freeport::find(protos[0], &ranges, want + 8, seed);
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let before = ports.len();
        for p in found {
            if ports.len() == a.count {
                break;
            }
            if ports.contains(&p) || (!exclude.is_empty() && exclude.has_port(p)) {
                continue;
            }
            if protos.len() > 1 && !bindable(&protos[1..], p) {
                continue;
            }
            ports.push(p);
        }
        if ports.len() == before && rounds > 4 {
            break;
        }
    }
    if ports.len() < a.count {
        notes.push(format!(
            "found only {} bindable port(s) of {} asked",
            ports.len(),
            a.count
        ));
    }
    let found = ports.len() == a.count;
    let r = FreePortReport {
        ports,
        proto: proto_name,
        ranges,
        notes,
    };
    emit_found(&r, f, found)
}
