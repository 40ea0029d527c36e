//! Exposure findings: development servers listening on a wildcard address, and specific
//! binds that shadow a wildcard socket on the same port (rules 4a, U2/U3: the most specific
//! socket gets the traffic, whatever the bind order).

use serde_json::json;

use super::{Finding, Flags, Host, Severity, holder, owners};
use crate::inspect::{Family, Proto, SockState, SocketEntry, addrs_overlap};

/// Why a command line looks like a development server, and whether it is a debugger (a
/// debugger or notebook port runs code for whoever connects).
fn dev_server(cmdline: &str) -> Option<(&'static str, bool)> {
    let toks: Vec<&str> = cmdline
        .split_whitespace()
        .map(|t| t.rsplit('/').next().unwrap_or(t))
        .collect();
    let has = |w: &str| toks.iter().any(|t| t.eq_ignore_ascii_case(w));
    let pair = |a: &str, b: &[&str]| {
        toks.windows(2)
            .any(|p| p[0].eq_ignore_ascii_case(a) && b.iter().any(|x| p[1] == *x))
    };
    if toks.iter().any(|t| t.starts_with("--inspect")) {
        return Some(("--inspect (Node.js inspector)", true));
    }
    for (w, why, dbg) in [
        ("debugpy", "debugpy (Python debugger)", true),
        ("jupyter", "jupyter", true),
        ("jupyter-lab", "jupyter", true),
        ("jupyter-notebook", "jupyter", true),
        ("runserver", "runserver (Django development server)", false),
        ("http.server", "http.server (Python's test server)", false),
        ("SimpleHTTPServer", "SimpleHTTPServer", false),
        ("nodemon", "nodemon", false),
        ("webpack-dev-server", "webpack-dev-server", false),
        ("vite", "vite", false),
        ("live-server", "live-server", false),
        ("browser-sync", "browser-sync", false),
        ("--reload", "--reload (hot reload)", false),
        ("--hot", "--hot (hot reload)", false),
        ("--debug", "--debug", false),
    ] {
        if has(w) {
            return Some((why, dbg));
        }
    }
    for (a, b, why) in [
        ("flask", &["run"][..], "flask run"),
        ("next", &["dev"][..], "next dev"),
        ("nuxt", &["dev"][..], "nuxt dev"),
        ("ng", &["serve"][..], "ng serve"),
        ("webpack", &["serve"][..], "webpack serve"),
        ("hugo", &["server", "serve"][..], "hugo server"),
        ("jekyll", &["serve", "s"][..], "jekyll serve"),
        ("rails", &["server", "s"][..], "rails server"),
        ("php", &["-S"][..], "php -S"),
        ("gatsby", &["develop"][..], "gatsby develop"),
        ("npm", &["run"][..], "npm run"),
    ] {
        if pair(a, b) {
            if a == "npm" && !(has("dev") || has("start") || has("serve")) {
                continue;
            }
            return Some((why, false));
        }
    }
    None
}

/// Wildcard TCP listeners whose command line suggests a development server.
pub fn dev_servers(sockets: &[SocketEntry]) -> Vec<Finding> {
    sockets
        .iter()
        .filter(|s| s.proto == Proto::Tcp && s.state == SockState::Listen)
        .filter(|s| s.local_addr.is_unspecified())
        .filter_map(|s| {
            let (why, debugger) = s.owners.iter().find_map(|o| dev_server(&o.cmdline))?;
            Some(Finding {
                rule: None,
                kind: "dev_server_on_wildcard",
                severity: if debugger { Severity::High } else { Severity::Warn },
                message: format!(
                    "{} listens on every address of the host ({}, command line matches {why}){}",
                    s.local(),
                    owners(s),
                    if debugger {
                        ": a debugger or notebook port runs code for whoever connects"
                    } else {
                        ": a development server is reachable from the network"
                    }
                ),
                fix: "Bind it to 127.0.0.1 (or ::1) — e.g. `--bind 127.0.0.1`, `--host 127.0.0.1`, `--inspect=127.0.0.1:9229` — or put a firewall rule in front of it.".into(),
                evidence: vec![s.clone()],
                details: json!({ "matched": why, "debugger": debugger }),
            })
        })
        .collect()
}

/// True when the wildcard `w` covers `s`'s address (IPv6 `[::]` covers IPv4 when dual-stack).
fn covers(w: &SocketEntry, s: &SocketEntry, flags: &Flags, host: &Host) -> bool {
    let dual = w.family == Family::Inet6
        && !flags
            .of(w)
            .and_then(|f| f.v6only)
            .unwrap_or(host.bindv6only);
    addrs_overlap(w.local_addr, dual, s.local_addr, false)
}

/// Specific-address sockets that take the traffic of a wildcard socket on the same port.
pub fn shadowed_wildcards(sockets: &[SocketEntry], flags: &Flags, host: &Host) -> Vec<Finding> {
    let binder = |s: &&SocketEntry| match s.proto {
        Proto::Tcp => s.state == SockState::Listen,
        Proto::Udp => s.state == SockState::Unconn,
    };
    let wild: Vec<&SocketEntry> = sockets
        .iter()
        .filter(binder)
        .filter(|s| s.local_addr.is_unspecified())
        .collect();
    let mut out = Vec::new();
    for w in wild {
        for s in sockets.iter().filter(binder) {
            if s.inode == w.inode
                || s.proto != w.proto
                || s.local_port != w.local_port
                || s.local_addr.is_unspecified()
                || !covers(w, s, flags, host)
            {
                continue;
            }
            let other_user = s.uid != w.uid;
            let (what, rule) = match s.proto {
                Proto::Tcp => ("connections", "4a"),
                Proto::Udp => ("datagrams", "U2"),
            };
            out.push(Finding {
                rule: Some(rule),
                kind: "shadowed_wildcard",
                severity: if other_user { Severity::High } else { Severity::Warn },
                message: format!(
                    "{} {} ({}, {}) shadows the wildcard {} ({}, {}): {what} to {} go to the specific socket only, whichever bound first (BIND-RULES.md rule {rule}){}",
                    s.proto,
                    s.local(),
                    holder(s),
                    owners(s),
                    w.local(),
                    holder(w),
                    owners(w),
                    s.local(),
                    if other_user {
                        "; the specific socket belongs to another user"
                    } else {
                        ""
                    }
                ),
                fix: "If the specific socket is not part of the service, stop it; otherwise bind one socket per address, or only the wildcard, and drop SO_REUSEADDR/SO_REUSEPORT where sharing is not meant.".into(),
                evidence: vec![s.clone(), w.clone()],
                details: json!({ "other_user": other_user }),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_server_command_lines() {
        assert_eq!(
            dev_server("python3 manage.py runserver 0.0.0.0:8000"),
            Some(("runserver (Django development server)", false))
        );
        assert!(dev_server("node --inspect=0.0.0.0:9229 app.js").unwrap().1);
        assert_eq!(
            dev_server("/usr/bin/python3 -m http.server 8000").map(|x| x.0),
            Some("http.server (Python's test server)")
        );
        assert_eq!(dev_server("npm run dev").map(|x| x.0), Some("npm run"));
        assert_eq!(dev_server("npm run build"), None);
        assert_eq!(dev_server("nginx: worker process"), None);
        assert_eq!(dev_server("/usr/sbin/invite-server"), None);
    }
}
