//! The HTTP side: `/metrics`, `/` and `/healthz` over hyper's HTTP/1 server on tokio.
//!
//! What a client can make the exporter hold is bounded, with a policy at each bound:
//! - **one collection at a time**: scrapes that arrive while a collection runs wait for it
//!   and share its result ([`Exporter::scrape`]); the collection runs in its own task, so a
//!   scraper that disconnects does not let a second one start beside it;
//! - **connections**: at most `max_connections` are served; the next ones get a `503` with
//!   `Retry-After` and are closed (at most as many rejections in flight again, the rest are
//!   closed at once);
//! - **time**: a request's headers must arrive within `header_timeout` (hyper's
//!   `header_read_timeout`, which also bounds an idle keep-alive connection), and a connection
//!   lives at most `connection_lifetime`, which also ends a client that never reads.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ACCEPT, ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::collect::Collection;
use super::metrics::{self, ExporterStats, Format};

/// A collection function: reads the socket table (blocking), or says why it could not.
pub type CollectFn = Arc<dyn Fn() -> Result<Collection, String> + Send + Sync>;

/// Bounds of the HTTP server.
#[derive(Debug, Clone, Copy)]
pub struct ServerConfig {
    /// Connections served at once.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (also the keep-alive idle limit).
    pub header_timeout: Duration,
    /// The longest a connection is kept, whatever it does.
    pub connection_lifetime: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_connections: 64,
            header_timeout: Duration::from_secs(10),
            connection_lifetime: Duration::from_secs(120),
        }
    }
}

/// One finished collection, with its encodings made on first use.
#[derive(Debug)]
pub struct Scrape {
    finished: Instant,
    collection: Option<Arc<Collection>>,
    /// Why the collection failed, if it did.
    pub error: Option<String>,
    stats: ExporterStats,
    text: OnceLock<Bytes>,
    openmetrics: OnceLock<Bytes>,
}

impl Scrape {
    /// The exposition in `format` (encoded once per scrape and format).
    ///
    /// # Errors
    /// A formatter error of the encoder.
    pub fn body(&self, format: Format) -> Result<Bytes, std::fmt::Error> {
        let cell = match format {
            Format::Prometheus => &self.text,
            Format::OpenMetrics => &self.openmetrics,
        };
        if let Some(b) = cell.get() {
            return Ok(b.clone());
        }
        let s = metrics::encode(self.collection.clone(), self.stats, format)?;
        Ok(cell.get_or_init(|| Bytes::from(s)).clone())
    }
}

/// The exporter: the collection function and what concurrent scrapes share.
pub struct Exporter {
    collect: CollectFn,
    last: Arc<tokio::sync::Mutex<Option<Arc<Scrape>>>>,
    stats: Mutex<ExporterStats>,
    rejected: AtomicU64,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter").finish_non_exhaustive()
    }
}

impl Exporter {
    /// An exporter around `collect`.
    pub fn new(collect: CollectFn) -> Arc<Exporter> {
        Arc::new(Exporter {
            collect,
            last: Arc::new(tokio::sync::Mutex::new(None)),
            stats: Mutex::new(ExporterStats::default()),
            rejected: AtomicU64::new(0),
        })
    }

    /// Runs one collection now (blocking) and records it in the exporter's counters.
    pub fn collect_blocking(&self) -> Scrape {
        let result = (self.collect)();
        let mut st = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        st.collections += 1;
        st.last_failed = result.is_err();
        if result.is_err() {
            st.errors += 1;
        }
        st.rejected_connections = self.rejected.load(Ordering::Relaxed);
        let stats = *st;
        drop(st);
        let (collection, error) = match result {
            Ok(c) => (Some(Arc::new(c)), None),
            Err(e) => (None, Some(e)),
        };
        Scrape {
            finished: Instant::now(),
            collection,
            error,
            stats,
            text: OnceLock::new(),
            openmetrics: OnceLock::new(),
        }
    }

    /// A scrape at least as fresh as this call: the result of a collection that finished
    /// after the call began (one already running is joined), or a new one. Never runs two
    /// collections at once.
    pub async fn scrape(self: &Arc<Self>) -> Arc<Scrape> {
        let arrived = Instant::now();
        let guard = self.last.clone().lock_owned().await;
        if let Some(s) = guard.as_ref()
            && s.finished >= arrived
        {
            return s.clone();
        }
        // The collection owns the lock in its own task: if this scraper goes away, the
        // next one still waits for it instead of starting a second collection.
        let me = self.clone();
        let task = tokio::spawn(async move {
            let mut guard = guard;
            let worker = me.clone();
            let scrape = match tokio::task::spawn_blocking(move || worker.collect_blocking()).await
            {
                Ok(s) => Arc::new(s),
                Err(e) => Arc::new(me.failed(format!("collection task failed: {e}"))),
            };
            *guard = Some(scrape.clone());
            scrape
        });
        match task.await {
            Ok(s) => s,
            Err(e) => Arc::new(self.failed(format!("collection task failed: {e}"))),
        }
    }

    fn failed(&self, error: String) -> Scrape {
        let mut st = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        st.errors += 1;
        st.last_failed = true;
        Scrape {
            finished: Instant::now(),
            collection: None,
            error: Some(error),
            stats: *st,
            text: OnceLock::new(),
            openmetrics: OnceLock::new(),
        }
    }
}

/// The one-line index page.
pub const INDEX: &str = "<html><head><title>netkit exporter</title></head><body>netkit exporter: metrics at <a href=\"/metrics\">/metrics</a>, health at <a href=\"/healthz\">/healthz</a></body></html>\n";

fn text(status: StatusCode, body: impl Into<Bytes>, ctype: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

async fn handle(req: Request<Incoming>, ex: Arc<Exporter>) -> Response<Full<Bytes>> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    let path = req.uri().path();
    let known = matches!(path, "/" | "/metrics" | "/healthz");
    if !known {
        return text(StatusCode::NOT_FOUND, "not found: try /metrics\n", PLAIN);
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n", PLAIN);
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match path {
        "/" => text(StatusCode::OK, INDEX, "text/html; charset=utf-8"),
        "/healthz" => text(StatusCode::OK, "ok\n", PLAIN),
        _ => {
            let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
            let format = Format::negotiate(accept);
            let scrape = ex.scrape().await;
            match scrape.body(format) {
                Ok(b) => text(StatusCode::OK, b, format.content_type()),
                Err(_) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "encoding the metrics failed\n",
                    PLAIN,
                ),
            }
        }
    }
}

/// The body of the reply at the connection limit.
const BUSY_BODY: &str = "netkit exporter: too many connections now\n";

/// The raw reply at the connection limit: nothing has been read from this client, and
/// hyper would hold the connection until the request arrived.
fn busy_reply() -> Vec<u8> {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BUSY_BODY}",
        BUSY_BODY.len()
    )
    .into_bytes()
}

async fn reject(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(&busy_reply()).await?;
        stream.shutdown().await?;
        // Read what the client sent, so the close is a FIN and not a reset that could
        // destroy the reply before the client reads it.
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, io::Error>(())
    })
    .await;
}

/// Serves until `shutdown` resolves.
///
/// # Errors
/// Never for a single bad connection; only when the listener itself fails for good.
pub async fn serve(
    listener: TcpListener,
    exporter: Arc<Exporter>,
    cfg: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(cfg.max_connections.max(1)));
    let rejecting = Arc::new(Semaphore::new(cfg.max_connections.max(1)));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_timeout)
        .max_buf_size(64 * 1024)
        .keep_alive(true);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            r = listener.accept() => r,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                // EMFILE/ENFILE/ECONNABORTED: wait a little and go on serving the others.
                eprintln!("netkit exporter: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            exporter.rejected.fetch_add(1, Ordering::Relaxed);
            if let Ok(p) = rejecting.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    reject(stream).await;
                    drop(p);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let ex = exporter.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let ex = ex.clone();
                async move { Ok::<_, Infallible>(handle(req, ex).await) }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            // Errors of one connection (garbage, a reset, a timeout) end only that one.
            let _ = tokio::time::timeout(cfg.connection_lifetime, conn).await;
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_scrapes_share_one_collection_and_never_overlap() {
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let (r, p, c) = (running.clone(), peak.clone(), calls.clone());
        let ex = Exporter::new(Arc::new(move || {
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            c.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100));
            r.fetch_sub(1, Ordering::SeqCst);
            Ok(Collection::default())
        }));
        let mut tasks = Vec::new();
        for i in 0..50 {
            let e = ex.clone();
            tasks.push(tokio::spawn(async move {
                let s = e.scrape().await;
                (i, s.stats.collections)
            }));
            if i % 10 == 0 {
                // Some scrapers go away mid-collection: the next must not start a second one.
                let ex = ex.clone();
                let h = tokio::spawn(async move { ex.scrape().await });
                tokio::time::sleep(Duration::from_millis(5)).await;
                h.abort();
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 1, "two collections overlapped");
        let n = calls.load(Ordering::SeqCst);
        assert!(
            n < 50,
            "{n} collections for 50 concurrent scrapes: nothing was shared"
        );
    }

    #[test]
    fn the_busy_reply_is_well_formed() {
        let r = String::from_utf8(busy_reply()).unwrap();
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{head}"
        );
    }

    #[tokio::test]
    async fn a_failed_collection_is_reported_not_fatal() {
        let ex = Exporter::new(Arc::new(|| Err("netlink refused".to_string())));
        let s = ex.scrape().await;
        assert_eq!(s.error.as_deref(), Some("netlink refused"));
        let body = String::from_utf8(s.body(Format::Prometheus).unwrap().to_vec()).unwrap();
        assert!(
            body.contains("netkit_exporter_scrape_errors_total 1"),
            "{body}"
        );
        assert!(
            body.contains("netkit_exporter_last_scrape_error 1"),
            "{body}"
        );
        assert!(!body.contains("netkit_sockets"), "{body}");
    }
}
