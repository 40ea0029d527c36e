//! Tables fit the terminal (tty width, `COLUMNS` when set), every row stays one line, long
//! cells end in `…`; `-w/--wide` shows everything; piped output is never cut; explain's
//! paragraphs and the hints wrap at word boundaries. Runs netkit on a real pseudo-terminal.

mod support;

use std::collections::HashSet;
use std::net::TcpListener;

use support::cli::netkit_output;
use support::listeners::make_time_wait;
use support::python::{Py, PyHolder};
use support::tty::on_tty;
use unicode_width::UnicodeWidthStr;

#[test]
fn who_owns_on_an_80_column_terminal_clips_the_command_line() {
    let Some(py) = Py::start(PyHolder::Listen, false) else {
        return;
    };
    let port = py.port.to_string();
    // Our address only: other programs' sockets (a TIME_WAIT on 127.0.0.7) may share the number.
    let q = format!("127.0.0.1:{port}");
    let piped = netkit_output(&["who-owns", &q]);
    let piped = String::from_utf8_lossy(&piped.stdout).into_owned();
    let full_row = piped.lines().find(|l| l.contains("LISTEN")).unwrap();
    assert!(
        full_row.width() > 200,
        "the holder's cmdline is long: {full_row}"
    );
    assert!(
        full_row.contains("sys.stdin.read()"),
        "piped output is never cut"
    );

    let tty = on_tty(&["who-owns", &q], 80, &[]);
    assert_eq!(tty.code, Some(0), "{}", tty.text);
    assert!(tty.widest() <= 80, "{}", tty.text);
    let rows: Vec<&str> = tty
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("tcp"))
        .collect();
    assert_eq!(rows.len(), 1, "one line per socket: {}", tty.text);
    let row = rows[0];
    assert!(row.ends_with('…'), "{row}");
    // The columns before CMDLINE are intact: the PID and the local address are all there.
    assert!(row.contains(&format!("{}/python", py.pids[0])), "{row}");
    assert!(row.contains(&format!("127.0.0.1:{port}")), "{row}");
    assert!(tty.text.starts_with("PROTO"), "{}", tty.text);

    // --wide (and -w): nothing cut even on the terminal.
    for flag in ["--wide", "-w"] {
        let wide = on_tty(&["who-owns", &q, flag], 80, &[]);
        assert!(wide.text.contains("sys.stdin.read()"), "{}", wide.text);
        assert!(wide.widest() > 200);
    }
    // COLUMNS wins over the terminal's size, as for ls and ps.
    let c = on_tty(&["who-owns", &q], 60, &[("COLUMNS", "120")]);
    assert!(c.widest() <= 120 && c.widest() > 60, "{}", c.text);
    // Piped output ignores COLUMNS: grep sees full rows.
    let out = support::cli::netkit_cmd()
        .args(["who-owns", &q])
        .env("COLUMNS", "40")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("sys.stdin.read()"));
}

#[test]
fn a_narrow_terminal_takes_from_the_owner_column_after_the_command_line() {
    let Some(py) = Py::start(PyHolder::ForkedListen, false) else {
        return;
    };
    let port = py.port.to_string();
    let q = format!("127.0.0.1:{port}");
    // PROTO..TIMER (41) + gaps (14) + CMDLINE at its header width (7) leave the two-owner
    // cell (25+ columns) less than it needs at 80: it is cut after the command line.
    let tty = on_tty(&["who-owns", &q], 80, &[]);
    assert!(tty.widest() <= 80, "{}", tty.text);
    let row = tty
        .lines()
        .into_iter()
        .find(|l| l.contains("LISTEN"))
        .unwrap_or_else(|| panic!("no LISTEN row: {}", tty.text))
        .to_string();
    let both = format!("{}/python3,{}/python3", py.pids[0], py.pids[1]);
    assert!(row.contains(&format!("{}/python3,", py.pids[0])), "{row}");
    assert!(!row.contains(&both), "the owner cell is cut: {row}");
    assert!(
        row.contains(&format!("127.0.0.1:{port}")),
        "the address is intact: {row}"
    );
    assert!(row.ends_with('…'), "{row}");
    // At 30 columns even the headers do not fit: lines are cut, still one per row.
    let tty = on_tty(&["who-owns", &q], 30, &[]);
    assert!(tty.widest() <= 30, "{}", tty.text);
    assert_eq!(
        tty.lines().iter().filter(|l| l.starts_with("tcp")).count(),
        1,
        "{}",
        tty.text
    );
}

#[test]
fn inventory_tables_fit_80_columns() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    make_time_wait(&l);
    let p = l.local_addr().unwrap().port().to_string();
    for args in [
        vec!["listening"],
        vec!["inspect"],
        vec!["timewait"],
        vec!["timewait", "--all"],
        vec!["inspect", "--port", &p],
        vec!["who-owns", &p],
    ] {
        let t = on_tty(&args, 80, &[]);
        assert!(t.widest() <= 80, "{args:?}:\n{}", t.text);
    }
}

/// Words of `text`, without the clipped ones (`…`), digits masked (explain suggests a free
/// port that differs from run to run).
fn words(text: &str) -> HashSet<String> {
    text.split_whitespace()
        .filter(|w| !w.contains('…'))
        .map(|w| {
            // A run of digits becomes one `#`: the suggested free port may have 4 digits in
            // one run and 5 in the next.
            let mut out = String::new();
            for c in w.chars() {
                if !c.is_ascii_digit() {
                    out.push(c);
                } else if !out.ends_with('#') {
                    out.push('#');
                }
            }
            out
        })
        .collect()
}

#[test]
fn explain_paragraphs_wrap_at_word_boundaries_with_a_hanging_indent() {
    let Some(py) = Py::start(PyHolder::ForkedListen, false) else {
        return;
    };
    let port = py.port.to_string();
    let piped = netkit_output(&["explain", &port]);
    let piped_text = format!(
        "{}{}",
        String::from_utf8_lossy(&piped.stdout),
        String::from_utf8_lossy(&piped.stderr)
    );
    assert!(
        piped_text.lines().any(|l| l.width() > 80),
        "explain has long paragraphs piped: {piped_text}"
    );
    let tty = on_tty(&["explain", &port], 80, &[]);
    assert_eq!(tty.code, piped.status.code());
    assert!(tty.widest() <= 80, "{}", tty.text);
    // No word was broken: every word on the terminal is a word of the piped output.
    let all = words(&piped_text);
    for w in words(&tty.text) {
        assert!(all.contains(&w), "{w:?} is a broken word:\n{}", tty.text);
    }
    // The numbered causes hang: a line after "1. ..." that continues it starts with 3 spaces.
    let lines = tty.lines();
    let i = lines
        .iter()
        .position(|l| l.starts_with("1. "))
        .expect("a cause");
    assert!(
        lines[i + 1].starts_with("   ") && !lines[i + 1].starts_with("    "),
        "{}",
        tty.text
    );
    // The fix lines hang under their text ("   fix: " is 8 columns).
    let j = lines
        .iter()
        .position(|l| l.starts_with("   fix: "))
        .expect("a fix line");
    assert!(
        lines[j + 1].starts_with("        ") && !lines[j + 1].starts_with("         "),
        "{}",
        tty.text
    );
}

#[test]
fn hints_on_a_terminal_wrap_too() {
    let port = format!("127.0.0.1:{}", support::listeners::free_port());
    let t = on_tty(&["who-owns", &port], 40, &[]);
    assert_eq!(t.code, Some(1));
    let lines = t.lines();
    assert!(lines[0].starts_with("hint: nothing holds"), "{}", t.text);
    assert!(
        lines.len() >= 2 && lines[1].starts_with("      "),
        "{}",
        t.text
    );
    assert!(t.widest() <= 40);
}
