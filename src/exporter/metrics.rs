//! The exposition: a [`Collection`] encoded by the official `prometheus-client` crate, in
//! the Prometheus text format (0.0.4) or OpenMetrics 1.0. netkit never formats a sample
//! line itself; names, HELP, TYPE, UNIT, label escaping and `# EOF` come from the crate.
//!
//! Every metric is listed in [`METRICS`] (name as exposed, type, help), which the README's
//! table, the alert rules and the dashboard are checked against.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::collect::{Collection, Destination, ProcessLabels};
use crate::inspect::{Family, Proto};

/// The two text formats a scraper can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`.
    Prometheus,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// Picks the format from an `Accept` header: OpenMetrics when the scraper ranks it at
    /// least as high as the Prometheus text format (Prometheus itself sends
    /// `application/openmetrics-text;version=1.0.0,...,text/plain;version=0.0.4;q=0.5,...`).
    ///
    /// ```
    /// use netkit::exporter::metrics::Format;
    /// assert_eq!(Format::negotiate(None), Format::Prometheus);
    /// assert_eq!(Format::negotiate(Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")), Format::OpenMetrics);
    /// assert_eq!(Format::negotiate(Some("text/plain, application/openmetrics-text;q=0.2")), Format::Prometheus);
    /// ```
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Prometheus;
        };
        let (mut om, mut text) = (0.0f64, 0.0f64);
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let mut q = 1.0f64;
            for p in parts {
                if let Some(v) = p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")) {
                    q = v.trim().parse().unwrap_or(0.0);
                }
            }
            match media.as_str() {
                "application/openmetrics-text" => om = om.max(q),
                "text/plain" | "text/*" | "*/*" => text = text.max(q),
                _ => {}
            }
        }
        if om > 0.0 && om >= text {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }
}

/// The exporter's own state, reported with every exposition.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ExporterStats {
    /// Collections run since start.
    pub collections: u64,
    /// Collections that failed since start.
    pub errors: u64,
    /// Whether the last collection failed.
    pub last_failed: bool,
    /// Connections turned away at the connection limit since start.
    pub rejected_connections: u64,
}

/// Name (as exposed), type and help of every metric.
pub const METRICS: &[(&str, &str, &str)] = &[
    (
        "netkit_sockets",
        "gauge",
        "Sockets on this host by protocol, address family and state",
    ),
    (
        "netkit_port_sockets",
        "gauge",
        "Sockets on each listening local port (and each --port) by protocol, family and state; ports beyond --max-ports are summed under port=\"other\"",
    ),
    (
        "netkit_listening_ports",
        "gauge",
        "Local ports with a listening socket (TCP LISTEN or bound UDP)",
    ),
    (
        "netkit_port_sockets_folded_ports",
        "gauge",
        "Listening ports summed under port=\"other\" because of --max-ports",
    ),
    (
        "netkit_listener_info",
        "info",
        "A listening socket and the process holding it",
    ),
    (
        "netkit_listener_accept_queue",
        "gauge",
        "Connections waiting to be accepted by a TCP listener (Recv-Q of the LISTEN socket)",
    ),
    (
        "netkit_listener_accept_backlog",
        "gauge",
        "Accept queue limit of a TCP listener: the effective listen() backlog (Send-Q of the LISTEN socket)",
    ),
    (
        "netkit_timewait_sockets",
        "gauge",
        "TIME_WAIT sockets by local port; ports beyond --max-ports are summed under port=\"other\"",
    ),
    (
        "netkit_timewait_remaining_seconds",
        "histogram",
        "Seconds left on the timers of TIME_WAIT sockets",
    ),
    (
        "netkit_bound_sockets",
        "gauge",
        "TCP sockets bound but not listening (bind() without listen() or connect()): they hold the port and cause EADDRINUSE",
    ),
    (
        "netkit_ephemeral_ports",
        "gauge",
        "Size of the ephemeral port range (net.ipv4.ip_local_port_range)",
    ),
    (
        "netkit_ephemeral_ports_used",
        "gauge",
        "Distinct local ports inside the ephemeral range held by any socket (bind(0) treats them as taken)",
    ),
    (
        "netkit_ephemeral_ports_in_use",
        "gauge",
        "Connections from ephemeral local ports by destination address and port; destinations beyond --max-destinations are summed under dst_addr=\"other\"",
    ),
    (
        "netkit_ephemeral_port_usage_ratio",
        "gauge",
        "Highest share of the ephemeral range held towards one destination address and port from one local address; at 1 connect() fails with EADDRNOTAVAIL",
    ),
    (
        "netkit_close_wait_sockets",
        "gauge",
        "CLOSE_WAIT sockets per owning process: the peer closed and the application has not",
    ),
    (
        "netkit_exporter_unreadable_processes",
        "gauge",
        "Processes whose file descriptors the exporter could not read, so their sockets have no owner labels",
    ),
    (
        "netkit_exporter_unreadable_namespaces",
        "gauge",
        "With --all-netns: network namespaces the exporter could not enter or read (entering needs CAP_SYS_ADMIN), so their sockets are not reported",
    ),
    (
        "netkit_exporter_scrape_duration_seconds",
        "gauge",
        "Time the last collection of the socket table took",
    ),
    (
        "netkit_exporter_collections_total",
        "counter",
        "Collections of the socket table since the exporter started (concurrent scrapes share one)",
    ),
    (
        "netkit_exporter_scrape_errors_total",
        "counter",
        "Collections that failed since the exporter started",
    ),
    (
        "netkit_exporter_last_scrape_error",
        "gauge",
        "1 when the last collection failed (the socket metrics are then absent), else 0",
    ),
    (
        "netkit_exporter_rejected_connections_total",
        "counter",
        "HTTP connections turned away at --max-connections",
    ),
    ("netkit_exporter_build_info", "info", "The netkit version"),
];

fn help(name: &str) -> &'static str {
    METRICS.iter().find(|m| m.0 == name).map_or("", |m| m.2)
}

/// Encodes one exposition (a failed collection leaves only the exporter's own metrics).
///
/// # Errors
/// Only a formatter error of the crate (writing to a `String` does not fail).
pub fn encode(
    collection: Option<Arc<Collection>>,
    stats: ExporterStats,
    format: Format,
) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Exposition { collection, stats }));
    let mut out = String::new();
    match format {
        Format::Prometheus => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?
        }
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry)?,
    }
    Ok(out)
}

/// A collector rather than registered metric objects: every scrape reports a fresh set of
/// series (a port that stopped listening must disappear, not keep its last value).
#[derive(Debug)]
struct Exposition {
    collection: Option<Arc<Collection>>,
    stats: ExporterStats,
}

fn proto(p: Proto) -> &'static str {
    match p {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    }
}

fn family(f: Family) -> &'static str {
    match f {
        Family::Inet => "inet",
        Family::Inet6 => "inet6",
    }
}

type Labels = Vec<(&'static str, String)>;

/// With `--all-netns`: the namespace labels of a collection's series, `netns` (the inode) and
/// `netns_name` where known.
fn netns_labels(l: &mut Labels, c: &Collection) {
    if let Some(n) = &c.netns {
        l.push(("netns", n.inode.to_string()));
        if !n.name.is_empty() {
            l.push(("netns_name", n.name.clone()));
        }
    }
}

/// The series of every collection (this namespace's and, with `--all-netns`, the others'),
/// each labelled with its namespace.
fn each<V>(
    all: &[&Collection],
    rows: impl Fn(&Collection) -> Vec<(Labels, V)>,
) -> Vec<(Labels, V)> {
    let mut out = Vec::new();
    for c in all {
        for (mut l, v) in rows(c) {
            netns_labels(&mut l, c);
            out.push((l, v));
        }
    }
    out
}

/// Owner labels, leaving out the unknown ones (an empty label is no label in Prometheus).
fn process_labels(l: &mut Labels, p: &ProcessLabels) {
    let mut put = |k: &'static str, v: String| {
        if !v.is_empty() {
            l.push((k, v));
        }
    };
    put("process", p.process.clone());
    put("pid", p.pid.map(|x| x.to_string()).unwrap_or_default());
    put("user", p.user.clone());
    put("unit", p.unit.clone());
    put("container", p.container.clone());
}

/// Strips the suffixes prometheus-client adds back on (`_total`, `_info`, the unit).
fn base(name: &str) -> &str {
    name.strip_suffix("_total")
        .or_else(|| name.strip_suffix("_info"))
        .or_else(|| name.strip_suffix("_seconds"))
        .unwrap_or(name)
}

/// A gauge family from (labels, value) pairs.
fn gauges<V: prometheus_client::encoding::EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    name: &'static str,
    unit: Option<&Unit>,
    rows: impl IntoIterator<Item = (Labels, V)>,
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(base(name), help(name), unit, MetricType::Gauge)?;
    for (labels, v) in rows {
        m.encode_family(&labels)?.encode_gauge(&v)?;
    }
    Ok(())
}

fn counter(enc: &mut DescriptorEncoder, name: &'static str, v: u64) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(base(name), help(name), None, MetricType::Counter)?;
    m.encode_counter::<NoLabelSet, _, u64>(&v, None)
}

impl Collector for Exposition {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let seconds = Unit::Seconds;
        if let Some(c) = &self.collection {
            let c = c.as_ref();
            let all: Vec<&Collection> = std::iter::once(c).chain(c.namespaces.iter()).collect();
            gauges(
                &mut enc,
                "netkit_sockets",
                None,
                each(&all, |c| {
                    c.sockets
                        .iter()
                        .map(|(&(p, f, s), &n)| {
                            (
                                vec![
                                    ("proto", proto(p).to_string()),
                                    ("family", family(f).to_string()),
                                    ("state", s.name().to_string()),
                                ],
                                n,
                            )
                        })
                        .collect()
                }),
            )?;
            gauges(
                &mut enc,
                "netkit_port_sockets",
                None,
                each(&all, |c| {
                    c.port_sockets
                        .iter()
                        .map(|(&(p, f, port, s), &n)| {
                            (
                                vec![
                                    ("proto", proto(p).to_string()),
                                    ("family", family(f).to_string()),
                                    ("port", port.to_string()),
                                    ("state", s.name().to_string()),
                                ],
                                n,
                            )
                        })
                        .collect()
                }),
            )?;
            let per_proto = |m: &std::collections::BTreeMap<Proto, u64>| -> Vec<(Labels, u64)> {
                [Proto::Tcp, Proto::Udp]
                    .into_iter()
                    .map(|p| {
                        (
                            vec![("proto", proto(p).to_string())],
                            m.get(&p).copied().unwrap_or(0),
                        )
                    })
                    .collect::<Vec<_>>()
            };
            gauges(
                &mut enc,
                "netkit_listening_ports",
                None,
                each(&all, |c| per_proto(&c.listening_ports)),
            )?;
            gauges(
                &mut enc,
                "netkit_port_sockets_folded_ports",
                None,
                each(&all, |c| per_proto(&c.folded_ports)),
            )?;

            // Listeners: one info series per distinct label set (SO_REUSEPORT groups of one
            // process are one series); queues summed per (proto, family, addr, port).
            let mut info = std::collections::BTreeSet::new();
            let mut queues: std::collections::BTreeMap<Labels, (u64, u64)> = Default::default();
            for (c, l) in all
                .iter()
                .flat_map(|c| c.listeners.iter().map(move |l| (c, l)))
            {
                let mut labels: Labels = vec![
                    ("proto", proto(l.proto).to_string()),
                    ("family", family(l.family).to_string()),
                    ("addr", l.addr.to_string()),
                    ("port", l.port.to_string()),
                ];
                netns_labels(&mut labels, c);
                if l.proto == Proto::Tcp {
                    let q = queues.entry(labels.clone()).or_default();
                    q.0 += u64::from(l.accept_queue);
                    q.1 += u64::from(l.backlog);
                }
                process_labels(&mut labels, &l.owner);
                info.insert(labels);
            }
            {
                let name = "netkit_listener_info";
                let mut m =
                    enc.encode_descriptor(base(name), help(name), None, MetricType::Info)?;
                for labels in &info {
                    m.encode_family(labels)?.encode_info(&Labels::new())?;
                }
            }
            gauges(
                &mut enc,
                "netkit_listener_accept_queue",
                None,
                queues.iter().map(|(l, q)| (l.clone(), q.0)),
            )?;
            gauges(
                &mut enc,
                "netkit_listener_accept_backlog",
                None,
                queues.iter().map(|(l, q)| (l.clone(), q.1)),
            )?;

            gauges(
                &mut enc,
                "netkit_timewait_sockets",
                None,
                each(&all, |c| {
                    c.timewait
                        .iter()
                        .map(|(port, &n)| (vec![("port", port.to_string())], n))
                        .collect()
                }),
            )?;
            {
                let name = "netkit_timewait_remaining_seconds";
                let mut m = enc.encode_descriptor(
                    base(name),
                    help(name),
                    Some(&seconds),
                    MetricType::Histogram,
                )?;
                for c in &all {
                    let h = &c.timewait_left;
                    if c.netns.is_none() {
                        m.encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets, None)?;
                    } else {
                        let mut l = Labels::new();
                        netns_labels(&mut l, c);
                        m.encode_family(&l)?
                            .encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets, None)?;
                    }
                }
            }
            gauges(
                &mut enc,
                "netkit_bound_sockets",
                None,
                each(&all, |c| {
                    c.bound
                        .iter()
                        .map(|(&(f, port), &n)| {
                            (
                                vec![
                                    ("proto", "tcp".to_string()),
                                    ("family", family(f).to_string()),
                                    ("port", port.to_string()),
                                ],
                                n,
                            )
                        })
                        .collect()
                }),
            )?;
            gauges(
                &mut enc,
                "netkit_ephemeral_ports",
                None,
                each(&all, |c| vec![(Labels::new(), c.ephemeral_size())]),
            )?;
            gauges(
                &mut enc,
                "netkit_ephemeral_ports_used",
                None,
                each(&all, |c| per_proto(&c.ephemeral_used)),
            )?;
            gauges(
                &mut enc,
                "netkit_ephemeral_ports_in_use",
                None,
                each(&all, |c| {
                    c.destinations
                        .iter()
                        .map(|(&(p, d), &n)| {
                            let (addr, port) = match d {
                                Destination::Peer(a, p) => (a.to_string(), p.to_string()),
                                Destination::Other => ("other".to_string(), "other".to_string()),
                            };
                            (
                                vec![
                                    ("proto", proto(p).to_string()),
                                    ("dst_addr", addr),
                                    ("dst_port", port),
                                ],
                                n,
                            )
                        })
                        .collect()
                }),
            )?;
            gauges(
                &mut enc,
                "netkit_ephemeral_port_usage_ratio",
                None,
                each(&all, |c| vec![(Labels::new(), c.usage_ratio)]),
            )?;
            gauges(
                &mut enc,
                "netkit_close_wait_sockets",
                None,
                each(&all, |c| {
                    c.close_wait
                        .iter()
                        .map(|(p, &n)| {
                            let mut l = Labels::new();
                            process_labels(&mut l, p);
                            (l, n)
                        })
                        .collect()
                }),
            )?;
            gauges(
                &mut enc,
                "netkit_exporter_unreadable_processes",
                None,
                [(Labels::new(), c.unreadable_processes as u64)],
            )?;
            gauges(
                &mut enc,
                "netkit_exporter_unreadable_namespaces",
                None,
                [(Labels::new(), c.unreadable_namespaces as u64)],
            )?;
            let name = "netkit_exporter_scrape_duration_seconds";
            let mut m =
                enc.encode_descriptor(base(name), help(name), Some(&seconds), MetricType::Gauge)?;
            m.encode_gauge(&c.duration_s)?;
        }
        counter(
            &mut enc,
            "netkit_exporter_collections_total",
            self.stats.collections,
        )?;
        counter(
            &mut enc,
            "netkit_exporter_scrape_errors_total",
            self.stats.errors,
        )?;
        gauges(
            &mut enc,
            "netkit_exporter_last_scrape_error",
            None,
            [(Labels::new(), u64::from(self.stats.last_failed))],
        )?;
        counter(
            &mut enc,
            "netkit_exporter_rejected_connections_total",
            self.stats.rejected_connections,
        )?;
        let name = "netkit_exporter_build_info";
        let mut m = enc.encode_descriptor(base(name), help(name), None, MetricType::Info)?;
        m.encode_info(&[("version", env!("CARGO_PKG_VERSION"))])?;
        Ok(())
    }
}
