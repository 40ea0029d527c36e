//! The library entry point `lab::proxy::serve` (mini-redis style): an already-bound listener
//! on port 0, a manual shutdown handle, and the drain summary.

mod support;

use std::sync::Arc;
use std::time::Duration;

use netkit::lab::proxy::{self, ProxyConfig};
use netkit::lab::shutdown::Shutdown;
use support::proxy::{DoneServer, lab_request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test]
async fn serve_on_port_0_answers_then_drains_on_manual_shutdown() {
    let srv = DoneServer::start();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, shutdown) = Shutdown::manual();
    let cfg = Arc::new(ProxyConfig::lab_defaults());
    let server = tokio::spawn(proxy::serve(listener, cfg, shutdown));

    let mut c = TcpStream::connect(addr).await.unwrap();
    let req = lab_request("127.0.0.1", srv.port(), "tgmr");
    c.write_all(req.as_bytes()).await.unwrap();
    let mut buf = [0u8; 64];
    let n = c.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"DONE");

    // The client is idle between requests: shutdown closes it and serve returns.
    tx.send(true).unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("serve did not return")
        .unwrap();
    assert_eq!((summary.accepted, summary.aborted), (1, 0));
    assert_eq!(c.read(&mut buf).await.unwrap(), 0, "idle client closed");
    assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
}

#[tokio::test]
async fn blocked_target_is_refused_by_the_library_too() {
    let srv = DoneServer::start();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_tx, shutdown) = Shutdown::manual();
    let mut cfg = ProxyConfig::lab_defaults();
    cfg.policy
        .block
        .push(format!("127.1:{}", srv.port()).parse().unwrap());
    tokio::spawn(proxy::serve(listener, Arc::new(cfg), shutdown));
    let mut c = TcpStream::connect(addr).await.unwrap();
    let req = lab_request("::ffff:127.0.0.1", srv.port(), "x");
    c.write_all(req.as_bytes()).await.unwrap();
    let mut buf = [0u8; 64];
    let n = c.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"Error, not allowed address");
    assert_eq!(srv.conns(), 0);
}
