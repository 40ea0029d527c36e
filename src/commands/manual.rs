//! The parts of the man pages clap does not know: EXIT STATUS, EXAMPLES and SEE ALSO per
//! page, and docs/BIND-RULES.md as netkit-bind-rules(7) (a small Markdown → roff rendering:
//! headings, paragraphs, lists, code blocks, and tables as one tagged paragraph per row), so
//! the rules that messages cite ("BIND-RULES.md rule 7") resolve on an installed system.

/// docs/BIND-RULES.md, compiled in so the page is generated from the file it documents.
pub const BIND_RULES_MD: &str = include_str!("../../docs/BIND-RULES.md");

/// Escapes text for roff: backslashes, leading dots/quotes, and ASCII hyphens.
fn esc(s: &str) -> String {
    let t = s.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

/// Inline Markdown (`code`, **bold**, *em*) → roff fonts, escaped.
fn inline(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (marker, open, close) = if rest.starts_with('`') {
            ("`", "\\fB", "\\fR")
        } else if rest.starts_with("**") {
            ("**", "\\fB", "\\fR")
        } else if rest.starts_with('*') && !rest.starts_with("* ") {
            ("*", "\\fI", "\\fR")
        } else {
            let next = rest.find(['`', '*']).unwrap_or(rest.len()).max(1);
            out.push_str(&esc(&rest[..next]).replace("\\&", ""));
            rest = &rest[next..];
            continue;
        };
        match rest[marker.len()..].find(marker) {
            Some(end) => {
                out.push_str(open);
                out.push_str(&esc(&rest[marker.len()..marker.len() + end]).replace("\\&", ""));
                out.push_str(close);
                rest = &rest[marker.len() * 2 + end..];
            }
            None => {
                out.push_str(&esc(marker));
                rest = &rest[marker.len()..];
            }
        }
    }
    if out.starts_with('.') || out.starts_with('\'') {
        format!("\\&{out}")
    } else {
        out
    }
}

fn cells(line: &str) -> Vec<String> {
    let t = line.trim().trim_start_matches('|').trim_end_matches('|');
    t.split(" | ").map(|c| c.trim().to_string()).collect()
}

/// Renders Markdown as a man page `name(section)`.
pub fn markdown_to_man(md: &str, name: &str, section: &str, title: &str) -> String {
    let mut out = format!(
        ".TH {} {section} \"\" \"netkit {}\" \"netkit manual\"\n.SH NAME\n{} \\- {}\n",
        name.to_ascii_uppercase(),
        env!("CARGO_PKG_VERSION"),
        esc(name),
        esc(title)
    );
    let mut lines = md.lines().peekable();
    let mut header: Option<Vec<String>> = None;
    let mut in_code = false;
    let mut para = false;
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            out.push_str(if in_code { ".PP\n.nf\n" } else { ".fi\n" });
            continue;
        }
        if in_code {
            out.push_str(&esc(line));
            out.push('\n');
            continue;
        }
        let t = line.trim();
        if t.is_empty() {
            header = None;
            para = false;
            continue;
        }
        if let Some(h) = t.strip_prefix("# ") {
            // The document title is the NAME line already; keep it as the first paragraph.
            out.push_str(&format!(".PP\n\\fB{}\\fR\n", inline(h)));
            para = false;
        } else if let Some(h) = t.strip_prefix("## ") {
            out.push_str(&format!(".SH \"{}\"\n", inline(h).to_ascii_uppercase()));
            para = false;
        } else if let Some(h) = t.strip_prefix("### ").or_else(|| t.strip_prefix("#### ")) {
            out.push_str(&format!(".SS \"{}\"\n", inline(h)));
            para = false;
        } else if t.starts_with('|') {
            if t.chars().all(|ch| matches!(ch, '|' | '-' | ':' | ' ')) {
                continue;
            }
            let row = cells(t);
            match &header {
                None => header = Some(row),
                Some(h) => {
                    out.push_str(&format!(".TP\n\\fB{}\\fR\n", inline(&row[0])));
                    for (i, c) in row.iter().enumerate().skip(1) {
                        let label = h.get(i).map(String::as_str).unwrap_or("");
                        if i > 1 {
                            out.push_str(".br\n");
                        }
                        out.push_str(&format!("\\fI{}:\\fR {}\n", inline(label), inline(c)));
                    }
                }
            }
            para = false;
        } else if let Some(item) = t
            .strip_prefix("- ")
            .or_else(|| t.strip_prefix("* "))
            .or_else(|| {
                t.split_once(". ")
                    .filter(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
                    .map(|(_, r)| r)
            })
        {
            out.push_str(&format!(".IP \\(bu 2\n{}\n", inline(item)));
            para = true;
        } else {
            if !para {
                out.push_str(".PP\n");
                para = true;
            }
            out.push_str(&inline(t));
            out.push('\n');
        }
        let _ = lines.peek();
    }
    if in_code {
        out.push_str(".fi\n");
    }
    out.push_str(".SH \"SEE ALSO\"\n\\fBnetkit\\fR(1), \\fBnetkit\\-explain\\fR(1), \\fBsocket\\fR(7), \\fBtcp\\fR(7), \\fBip\\fR(7), \\fBss\\fR(8)\n");
    out
}

/// (command line, what it shows) examples of a page.
fn examples(page: &str) -> &'static [(&'static str, &'static str)] {
    match page {
        "netkit" => &[
            (
                "netkit who-owns 6000",
                "Who holds local port 6000, in any state, with every owning process.",
            ),
            (
                "netkit explain 8888 --reuseaddr",
                "Why a server with SO_REUSEADDR cannot bind 8888, and what fixes it.",
            ),
            (
                "netkit wait-free 8888 && ./server",
                "Start the server as soon as the port can be bound.",
            ),
            (
                "netkit wait-listen 5432 -- ./migrate",
                "Run ./migrate once something accepts on port 5432.",
            ),
        ],
        "netkit-who-owns" => &[
            (
                "netkit who-owns 6000",
                "Every socket on local port 6000 and its processes.",
            ),
            (
                "netkit who-owns 6000/udp 127.0.0.1:8080",
                "The UDP sockets of 6000 and whatever holds 127.0.0.1:8080 (a wildcard listener included).",
            ),
            (
                "netkit who-owns ssh,http -l",
                "The listeners of the ports /etc/services names ssh and http.",
            ),
            (
                "netkit who-owns 6000-6010 --kill --yes",
                "Stop every process listening on 6000 to 6010; exit 0 when the ports are let go.",
            ),
        ],
        "netkit-listening" => &[
            (
                "netkit listening",
                "Every LISTEN, bound-only (BOUND) and bound UDP socket, with owners.",
            ),
            (
                "netkit listening --port 8000-8100 --user www-data",
                "Those of one user on a range of ports.",
            ),
        ],
        "netkit-timewait" => &[
            (
                "netkit timewait",
                "TIME_WAIT counts per local address:port, soonest and latest expiry.",
            ),
            (
                "netkit timewait --port 6000 --all",
                "Every TIME_WAIT on port 6000 with its timer.",
            ),
        ],
        "netkit-inspect" => &[
            (
                "netkit inspect -t --state established",
                "Established TCP connections, like ss -tnp state established.",
            ),
            (
                "netkit inspect --state connected --dport 5432",
                "Connections to a remote port 5432 (ss dport).",
            ),
            (
                "netkit inspect -l --pid 1234",
                "What process 1234 listens on.",
            ),
        ],
        "netkit-explain" => &[
            (
                "netkit explain 8888",
                "A trial bind of 0.0.0.0:8888 and every cause that blocks it, with fixes.",
            ),
            (
                "netkit explain 8888 --addr ::1 --reuseport",
                "The same with the program's own address and options.",
            ),
            (
                "netkit explain --error 'OSError: [Errno 98] Address already in use'",
                "Decode a pasted error and explain its port.",
            ),
        ],
        "netkit-wait-free" => &[
            (
                "netkit wait-free 8888 && ./server",
                "Wait (90 s at most) until 8888 can be bound, then start the server.",
            ),
            (
                "netkit wait-free 8000,8001/udp --timeout 30",
                "Wait for two ports, one of them UDP.",
            ),
        ],
        "netkit-wait-listen" => &[
            (
                "netkit wait-listen 5432 -- ./migrate",
                "Run ./migrate once localhost:5432 accepts; exit 1 after 60 s without running it.",
            ),
            (
                "netkit wait-listen db:5432 cache:6379 --timeout 120",
                "Wait for two services.",
            ),
        ],
        "netkit-free-port" => &[
            (
                "netkit free-port",
                "One port that can be bound now, outside the ephemeral range.",
            ),
            (
                "netkit free-port --both -n 3 --exclude 8000-8999",
                "Three ports bindable for TCP and UDP, none in 8000-8999.",
            ),
            (
                "netkit free-port --prefer 8080",
                "8080 when it is bindable, another port otherwise.",
            ),
        ],
        "netkit-sockopt" => &[
            (
                "netkit sockopt 1234 --port 8080",
                "SO_REUSEADDR, SO_REUSEPORT, keepalive, buffers, TCP_NODELAY, TCP_USER_TIMEOUT and SO_LINGER of process 1234's sockets on 8080.",
            ),
            (
                "netkit sockopt 1234 --port 8080 --set keepidle=30 --set user-timeout=20000",
                "Change them live on the listener and its connections; prints before -> after as the kernel reports them.",
            ),
        ],
        "netkit-audit" => &[
            (
                "sudo netkit audit",
                "Every finding on this host, most severe first: the claim, the fix and the sockets.",
            ),
            (
                "netkit audit --fail-on high --json",
                "For CI: exit 1 only for high findings; the report as one JSON object.",
            ),
            (
                "sudo netkit audit --all-netns",
                "Every network namespace (containers too), each finding tagged with its namespace.",
            ),
        ],
        "netkit-completions" => &[(
            "netkit completions bash > /etc/bash_completion.d/netkit",
            "Install bash completions.",
        )],
        _ => &[],
    }
}

/// What the exit status means on a page.
fn exit_status(page: &str) -> &'static str {
    match page {
        "netkit-who-owns" => {
            "0 a socket was found (with --kill: every signalled process let go of the port). 1 nothing holds the port (with --kill: nothing to stop, or the prompt was declined). 3 with --kill: signalled, but a process still holds the port after 5 s. 2 an error, one line on stderr."
        }
        "netkit-explain" => {
            "0 the port can be bound with those options. 1 it cannot (the causes are printed). 2 an error."
        }
        "netkit-wait-free" => {
            "0 every port can be bound. 1 timed out. 2 an error that waiting cannot fix (EACCES, EINVAL) or a usage error."
        }
        "netkit-wait-listen" => {
            "0 every port accepts (with CMD: netkit is replaced by CMD, whose status is the result). 1 timed out, CMD not run. 2 a usage or resolver error. 126 CMD cannot be run, 127 CMD not found."
        }
        "netkit-free-port" => {
            "0 as many ports as asked were found. 1 fewer were found. 2 an error."
        }
        "netkit-audit" => {
            "0 no finding (at or above --fail-on). 1 findings. 2 an error (the socket table or a --netns namespace could not be read)."
        }
        "netkit-completions" => {
            "0 the script was written (also when its reader closed the pipe early). 2 an error."
        }
        p if p.starts_with("netkit-run") => {
            "0 a clean shutdown (Ctrl-C, SIGTERM) or, for clients, every reply as expected. 1 a client got a refusal or error reply. 2 an error (bind, connect, usage)."
        }
        _ => {
            "0 found / answered. 1 nothing to report (no matching socket). 2 an error: one line on stderr, `netkit: reason`, and for usage errors at most one `try:` line. A closed stdout (`| head`) exits 0 silently."
        }
    }
}

/// EXIT STATUS, EXAMPLES and SEE ALSO for the page `page` (`netkit-who-owns`), as roff.
pub fn extra_sections(page: &str) -> String {
    let mut out = format!(".SH \"EXIT STATUS\"\n{}\n", inline(exit_status(page)));
    let ex = examples(page);
    if !ex.is_empty() {
        out.push_str(".SH EXAMPLES\n");
        for (cmd, what) in ex {
            out.push_str(&format!(".TP\n\\fB{}\\fR\n{}\n", esc(cmd), inline(what)));
        }
    }
    let mut see = vec!["ss(8)", "lsof(8)", "fuser(1)", "netkit-bind-rules(7)"];
    if page != "netkit" {
        see.insert(0, "netkit(1)");
    }
    if page.starts_with("netkit-run") {
        see.extend(["socket(7)", "tcp(7)"]);
    }
    out.push_str(".SH \"SEE ALSO\"\n");
    let refs: Vec<String> = see
        .iter()
        .map(|r| {
            let (n, s) = r.split_once('(').unwrap_or((r, ""));
            format!("\\fB{}\\fR({}", esc(n), s)
        })
        .collect();
    out.push_str(&refs.join(", "));
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_renders_headings_tables_and_code() {
        let md = "# Title\n\nSome `code` and **bold**.\n\n## Rules\n\n| # | Cond | errno |\n|---|---|---|\n| 1 | LISTEN on *P* | EADDRINUSE |\n\n```\n.dotted line\n```\n- item -x\n";
        let roff = markdown_to_man(md, "netkit-bind-rules", "7", "rules");
        assert!(roff.starts_with(".TH NETKIT-BIND-RULES 7 "), "{roff}");
        assert!(
            roff.contains("Some \\fBcode\\fR and \\fBbold\\fR."),
            "{roff}"
        );
        assert!(roff.contains(".SH \"RULES\""), "{roff}");
        assert!(roff.contains(".TP\n\\fB1\\fR\n\\fICond:\\fR LISTEN on \\fIP\\fR\n.br\n\\fIerrno:\\fR EADDRINUSE\n"), "{roff}");
        assert!(roff.contains(".nf\n\\&.dotted line\n.fi\n"), "{roff}");
        assert!(roff.contains(".IP \\(bu 2\nitem \\-x\n"), "{roff}");
    }

    #[test]
    fn every_page_gets_exit_status_and_see_also() {
        let s = extra_sections("netkit-who-owns");
        assert!(s.contains(".SH \"EXIT STATUS\"") && s.contains("3 with \\-\\-kill"));
        assert!(
            s.contains("\\fBss\\fR(8), \\fBlsof\\fR(8), \\fBfuser\\fR(1)"),
            "{s}"
        );
        assert!(s.contains(".SH EXAMPLES"));
    }
}
