//! `--watch [SECS]`: print a report again and again until Ctrl-C, like `watch ss` or
//! `lsof -r`. On a terminal each frame clears the screen and starts at the top with a title
//! line; piped, frames are appended, each after a `--- TIMESTAMP netkit ARGS` line (JSON
//! mode: one object per line, each with a `ts`), so a log keeps every frame. SIGINT ends
//! the loop after the current frame and netkit exits 0.

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use super::Format;

/// Set by the SIGINT handler.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Catches SIGINT (Ctrl-C) so the loop can end cleanly.
fn catch_sigint() -> io::Result<()> {
    // SAFETY: a zeroed sigaction with a handler that only stores to an atomic, which is
    // async-signal-safe; sigemptyset initialises the mask before use.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The interval of `--watch SECS`, checked: at least 0.1 s, at most a day.
///
/// # Errors
/// A non-finite or out-of-range number, as a message for the user.
pub fn interval(secs: f64) -> Result<Duration, String> {
    if secs.is_finite() && (0.1..=86_400.0).contains(&secs) {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(format!(
            "--watch takes seconds between 0.1 and 86400, got {secs}"
        ))
    }
}

/// Runs `frame` every `every` until SIGINT; `frame` prints one report to netkit's stdout.
/// `title` is what the user typed after `netkit`.
///
/// # Errors
/// The first error of `frame`, or of writing the frame headers (a closed stdout included,
/// which `main` turns into a silent exit 0).
pub fn run<E: From<io::Error>>(
    every: Duration,
    format: Format,
    title: &str,
    mut frame: impl FnMut() -> Result<(), E>,
) -> Result<(), E> {
    catch_sigint()?;
    let tty = io::stdout().is_terminal();
    super::json::stamp_frames(true);
    while !STOP.load(Ordering::SeqCst) {
        let started = Instant::now();
        let ts = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        {
            let mut out = super::stdout();
            match (tty, format) {
                (true, Format::Table) => write!(
                    out,
                    "\x1b[H\x1b[2JEvery {:.1}s: netkit {title}    {ts}\n\n",
                    every.as_secs_f64()
                )?,
                (false, Format::Table) => writeln!(out, "--- {ts} netkit {title}")?,
                (_, Format::Json) => {}
            }
            out.flush()?;
        }
        frame()?;
        if format == Format::Table && !tty {
            let mut out = super::stdout();
            writeln!(out)?;
            out.flush()?;
        }
        let next = started + every;
        while !STOP.load(Ordering::SeqCst) && Instant::now() < next {
            std::thread::sleep(
                next.saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(50)),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn intervals_are_bounded() {
        assert!(super::interval(2.0).is_ok());
        assert!(super::interval(0.05).is_err());
        assert!(super::interval(f64::NAN).is_err());
        assert!(super::interval(1e9).is_err());
    }
}
