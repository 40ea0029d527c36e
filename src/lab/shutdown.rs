//! SIGINT/SIGTERM handling shared by the lab components: the first signal asks for a graceful
//! stop (stop accepting, drain in-flight requests), a second one exits at once.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// A handle that resolves when shutdown was requested.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// A handle that can be triggered by hand (tests) through the returned sender.
    pub fn manual() -> (watch::Sender<bool>, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (tx, Shutdown { rx })
    }

    /// True once shutdown was requested.
    pub fn is_requested(&self) -> bool {
        *self.rx.borrow()
    }

    /// Waits until shutdown is requested (returns at once if it already was).
    pub async fn requested(&mut self) {
        // An error means the sender is gone, which only happens at process exit.
        let _ = self.rx.wait_for(|v| *v).await;
    }
}

/// Installs the signal handlers and returns the handle. The first SIGINT/SIGTERM triggers
/// it (and, with `announce`, says so on stderr, for components that print no status line of
/// their own); the second exits the process with status 130 without draining.
///
/// # Errors
/// When the signal handlers cannot be installed (must be called inside a tokio runtime).
pub fn on_signals(announce: bool) -> std::io::Result<Shutdown> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut seen = 0;
        loop {
            tokio::select! {
                _ = int.recv() => {},
                _ = term.recv() => {},
            }
            seen += 1;
            if seen == 1 {
                if announce {
                    eprintln!(
                        "shutting down: no new connections; in-flight work may finish (signal again to exit now)"
                    );
                }
                let _ = tx.send(true);
            } else {
                eprintln!("second signal: exiting now");
                std::process::exit(130);
            }
        }
    });
    Ok(Shutdown { rx })
}
