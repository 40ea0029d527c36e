//! Where a process runs, from `/proc/<pid>/cgroup`: its systemd unit and its container.
//!
//! cgroup v2 has one line `0::/PATH`; v1 has one line per hierarchy, of which the
//! `name=systemd` (or the first) one carries the same path. systemd puts services in
//! `.../NAME.service` and scopes in `.../NAME.scope`; container runtimes name their scopes
//! `docker-ID.scope`, `cri-containerd-ID.scope`, `crio-ID.scope`, `libpod-ID.scope`, or
//! (cgroupfs driver) a directory `/docker/ID`, `/kubepods/.../ID`.

/// What a cgroup path says about a process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// The systemd unit (`nginx.service`, `session-3.scope`), when there is one.
    pub unit: Option<String>,
    /// The container id, shortened to 12 hex digits as `docker ps` shows it.
    pub container: Option<String>,
}

/// Parses the contents of `/proc/<pid>/cgroup`.
///
/// ```
/// use netkit::exporter::cgroup::parse;
/// let p = parse("0::/system.slice/nginx.service\n");
/// assert_eq!(p.unit.as_deref(), Some("nginx.service"));
/// assert_eq!(p.container, None);
/// ```
pub fn parse(text: &str) -> Placement {
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .or_else(|| {
            text.lines()
                .find(|l| l.contains(":name=systemd:"))
                .and_then(|l| l.splitn(3, ':').nth(2))
        })
        .or_else(|| text.lines().next().and_then(|l| l.splitn(3, ':').nth(2)))
        .unwrap_or("");
    let mut out = Placement::default();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    for (i, seg) in segs.iter().enumerate() {
        if let Some(id) = container_id(seg, segs.get(i.wrapping_sub(1)).copied()) {
            out.container = Some(id);
        }
    }
    // The innermost unit (a service inside a user slice, or the container's scope).
    out.unit = segs
        .iter()
        .rev()
        .find(|s| s.ends_with(".service") || s.ends_with(".scope"))
        .map(|s| s.to_string());
    out
}

fn container_id(seg: &str, parent: Option<&str>) -> Option<String> {
    let stem = seg.strip_suffix(".scope").unwrap_or(seg);
    for prefix in ["docker-", "cri-containerd-", "crio-", "libpod-"] {
        if let Some(id) = stem.strip_prefix(prefix)
            && is_id(id)
        {
            return Some(id[..12].to_string());
        }
    }
    // cgroupfs driver: /docker/<id>, /kubepods/.../<id>, /lxc.payload.<name>.
    if is_id(seg)
        && matches!(parent, Some(p) if p == "docker" || p.starts_with("pod") || p.starts_with("kubepods"))
    {
        return Some(seg[..12].to_string());
    }
    seg.strip_prefix("lxc.payload.").map(str::to_string)
}

fn is_id(s: &str) -> bool {
    s.len() >= 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f1d2c3b4a5968778695a4b3c2d1e0f0123456789abcdef0123456789abcdef0";

    #[test]
    fn systemd_services_and_user_scopes() {
        let p = parse("0::/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service\n");
        assert_eq!(p.unit.as_deref(), Some("foo.service"));
        let p = parse("0::/user.slice/user-1000.slice/session-3.scope\n");
        assert_eq!(p.unit.as_deref(), Some("session-3.scope"));
        assert_eq!(parse("0::/\n"), Placement::default());
        assert_eq!(parse(""), Placement::default());
    }

    #[test]
    fn containers_from_the_common_runtimes() {
        for text in [
            format!("0::/system.slice/docker-{ID}.scope\n"),
            format!(
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-{ID}.scope\n"
            ),
            format!("0::/machine.slice/libpod-{ID}.scope/container\n"),
            format!("12:pids:/docker/{ID}\n1:name=systemd:/docker/{ID}\n"),
        ] {
            let p = parse(&text);
            assert_eq!(p.container.as_deref(), Some(&ID[..12]), "{text}");
        }
        let p = parse(&format!("0::/system.slice/docker-{ID}.scope\n"));
        assert_eq!(p.unit, Some(format!("docker-{ID}.scope")));
        let p = parse("0::/lxc.payload.web1/system.slice/nginx.service\n");
        assert_eq!(p.container.as_deref(), Some("web1"));
        assert_eq!(p.unit.as_deref(), Some("nginx.service"));
    }

    #[test]
    fn v1_prefers_the_systemd_hierarchy() {
        let text = "11:memory:/user.slice\n1:name=systemd:/system.slice/ssh.service\n";
        assert_eq!(parse(text).unit.as_deref(), Some("ssh.service"));
    }
}
