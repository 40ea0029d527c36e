//! `netkit exporter`: serve, print once, or write a textfile.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::{ERROR, FOUND};
use crate::cli::exporter::ExporterArgs;
use crate::exporter::collect::{self, Options};
use crate::exporter::metrics::Format;
use crate::exporter::server::{self, Exporter, ServerConfig};
use crate::exporter::textfile;
use crate::output::Format as OutputFormat;

fn options(a: &ExporterArgs) -> Options {
    Options {
        ports: a.ports.clone(),
        max_ports: a.max_ports,
        max_destinations: a.max_destinations,
        all_netns: a.all_netns,
    }
}

fn exporter(a: &ExporterArgs) -> Arc<Exporter> {
    let opts = options(a);
    Exporter::new(Arc::new(move || {
        collect::collect(&opts).map_err(|e| {
            let cause = std::error::Error::source(&e)
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            format!("{e}{cause}")
        })
    }))
}

/// Runs the exporter in the mode the flags ask for; returns the exit code.
///
/// # Errors
/// Start-up failures (the address cannot be bound, the textfile cannot be written), `--json`.
pub fn run(a: &ExporterArgs, format: OutputFormat) -> anyhow::Result<i32> {
    if format == OutputFormat::Json {
        anyhow::bail!(
            "the exporter prints the Prometheus text format (or OpenMetrics with --openmetrics), not JSON; drop --json"
        );
    }
    let ex = exporter(a);
    if a.once {
        let s = ex.collect_blocking();
        let format = if a.openmetrics {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        };
        let body = s.body(format).context("encoding the metrics")?;
        std::io::stdout().lock().write_all(&body)?;
        if let Some(e) = &s.error {
            eprintln!("netkit exporter: collection failed: {e}");
            return Ok(ERROR);
        }
        return Ok(FOUND);
    }
    if let Some(path) = &a.textfile {
        return write_textfiles(&ex, path, a.interval);
    }
    serve(a, ex)
}

fn write_textfiles(
    ex: &Arc<Exporter>,
    path: &std::path::Path,
    interval: Option<u64>,
) -> anyhow::Result<i32> {
    loop {
        let s = ex.collect_blocking();
        let body = s.body(Format::Prometheus).context("encoding the metrics")?;
        textfile::write_atomic(path, &body)
            .with_context(|| format!("writing {}", path.display()))?;
        if let Some(e) = &s.error {
            eprintln!("netkit exporter: collection failed: {e}");
            if interval.is_none() {
                return Ok(ERROR);
            }
        }
        match interval {
            Some(secs) => std::thread::sleep(Duration::from_secs(secs)),
            None => return Ok(FOUND),
        }
    }
}

fn serve(a: &ExporterArgs, ex: Arc<Exporter>) -> anyhow::Result<i32> {
    let cfg = ServerConfig {
        max_connections: usize::try_from(a.max_connections).unwrap_or(usize::MAX),
        header_timeout: Duration::from_secs(a.header_timeout),
        ..ServerConfig::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Collections never overlap (server::Exporter::scrape), so one blocking thread is
        // enough, and fewer threads keep fewer malloc arenas (steady RSS over many scrapes).
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(a.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (try `netkit explain {}`)",
                    a.listen,
                    a.listen.port()
                )
            })?;
        let local = listener.local_addr().context("reading the bound address")?;
        eprintln!("netkit exporter: serving http://{local}/metrics");
        let mut stop =
            crate::lab::shutdown::on_signals(false).context("installing signal handlers")?;
        server::serve(listener, ex, cfg, async move { stop.requested().await })
            .await
            .context("serving")?;
        eprintln!("netkit exporter: stopped");
        Ok(FOUND)
    })
}
