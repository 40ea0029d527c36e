//! Which systemd unit or container a process belongs to, from `/proc/<pid>/cgroup`.
//!
//! People think of the owner of port 8080 as "the `web` container" or "nginx.service", not as
//! PID 4242. The kernel records that in the process's cgroup path, whose shape each runtime
//! chooses (captured examples in `fixtures/cgroup/`):
//!
//! | runtime | cgroup path (v2, or the v1 `name=systemd` / controller line) |
//! |---|---|
//! | Docker, systemd driver | `/system.slice/docker-<id>.scope` |
//! | Docker, cgroupfs driver | `/docker/<id>` |
//! | Podman | `.../machine.slice/libpod-<id>.scope/container`, `libpod-conmon-<id>.scope` |
//! | containerd (CRI) | `.../kubepods-...-pod<uid>.slice/cri-containerd-<id>.scope`, or v1's `...slice:cri-containerd:<id>` |
//! | CRI-O | `.../crio-<id>.scope`, `crio-conmon-<id>.scope` |
//! | Kubernetes, cgroupfs driver | `/kubepods/<qos>/pod<uid>/<id>` |
//! | LXC | `/lxc/<name>` (v1), `/lxc.payload.<name>` and `/lxc.monitor.<name>` (LXC ≥ 4) |
//! | systemd-nspawn | `/machine.slice/machine-<name>.scope` |
//! | systemd services | `/system.slice/nginx.service`, `/user.slice/user-1000.slice/user@1000.service/app.slice/app.service` |
//!
//! Parsing is pure ([`parse`]); [`of_pid`] reads the file and [`container_name`] looks up a
//! container's name in the runtime's on-disk state (no daemon API; root only in practice).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

/// The container runtime that made a cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// Docker (moby): `docker-<id>.scope` or `/docker/<id>`.
    Docker,
    /// Podman: `libpod-<id>.scope`.
    Podman,
    /// containerd's CRI plugin: `cri-containerd-<id>.scope`.
    Containerd,
    /// CRI-O: `crio-<id>.scope`.
    #[serde(rename = "cri-o")]
    CriO,
    /// A Kubernetes container whose runtime the path does not name (cgroupfs driver).
    Kubernetes,
    /// LXC / Incus / LXD: `lxc.payload.<name>` or `/lxc/<name>`.
    Lxc,
    /// systemd-nspawn / machinectl: `machine-<name>.scope`.
    Nspawn,
}

impl Runtime {
    /// The name people type (`docker`, `podman`, `cri-o`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Podman => "podman",
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Kubernetes => "kubernetes",
            Runtime::Lxc => "lxc",
            Runtime::Nspawn => "nspawn",
        }
    }
}

/// A container a process runs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Container {
    /// Which runtime made it.
    pub runtime: Runtime,
    /// The full id as the runtime names it (64 hex digits for OCI runtimes, the name for LXC).
    pub id: String,
    /// The name, where it could be read without a daemon API (see [`container_name`]).
    pub name: Option<String>,
    /// The Kubernetes pod UID, when the container belongs to a pod.
    pub pod_uid: Option<String>,
    /// True for the runtime's monitor process (`libpod-conmon-`, `crio-conmon-`,
    /// `lxc.monitor.`) rather than the container's own processes.
    pub monitor: bool,
}

impl Container {
    /// The id as `docker ps` shows it: the first 12 characters of a hex id, a name as is.
    pub fn short_id(&self) -> &str {
        if is_hex_id(&self.id) {
            &self.id[..12]
        } else {
            &self.id
        }
    }

    /// `docker:0123456789ab (web)`, `lxc:c1`, `podman:cf21d19260ac (conmon)`.
    pub fn label(&self) -> String {
        let mut s = format!("{}:{}", self.runtime.as_str(), self.short_id());
        match (&self.name, self.monitor) {
            (Some(n), false) if n != self.short_id() => s.push_str(&format!(" ({n})")),
            (Some(n), true) if n != self.short_id() => s.push_str(&format!(" ({n}, monitor)")),
            (_, true) => s.push_str(" (monitor)"),
            _ => {}
        }
        s
    }
}

/// What a process's cgroup says about who runs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Attribution {
    /// The systemd unit: `nginx.service`, `session-3.scope`, or for a user's service manager
    /// the path below it, `user@1000.service/app.slice/app.service`. `None` inside a container
    /// (the container is the answer) and for processes outside any unit.
    pub unit: Option<String>,
    /// The container, when the path is one a runtime makes.
    pub container: Option<Container>,
}

impl Attribution {
    /// The `UNIT/CONTAINER` cell: the container's label, else the unit, else `-`.
    pub fn label(&self) -> String {
        match (&self.container, &self.unit) {
            (Some(c), _) => c.label(),
            (None, Some(u)) => u.clone(),
            (None, None) => "-".to_string(),
        }
    }

    /// True when neither a unit nor a container was found.
    pub fn is_empty(&self) -> bool {
        self.unit.is_none() && self.container.is_none()
    }
}

/// Attribution from the text of a `/proc/<pid>/cgroup` file (v1, v2 or hybrid).
///
/// Every line's path is examined; a container found on any line wins (on v1 hosts some
/// controllers show `/` while others carry the container's path), then the unit of the v2
/// line, then that of the `name=systemd` line, then any other controller's.
pub fn parse(text: &str) -> Attribution {
    let mut paths: Vec<(u8, &str)> = Vec::new();
    for line in text.lines() {
        // hierarchy-ID:controller-list:cgroup-path; the path may itself contain ':'
        // (the v1 systemd driver's `pod<uid>.slice:cri-containerd:<id>`).
        let mut parts = line.splitn(3, ':');
        let (Some(_id), Some(ctrl), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let rank = match ctrl {
            "" => 0,
            "name=systemd" => 1,
            _ => 2,
        };
        paths.push((rank, path.trim_end()));
    }
    paths.sort_by_key(|(rank, _)| *rank);
    let container = paths.iter().find_map(|(_, p)| container_of(p));
    let unit = if container.is_some() {
        None
    } else {
        paths.iter().find_map(|(_, p)| unit_of(p))
    };
    Attribution { unit, container }
}

/// Reads and parses `/proc/<pid>/cgroup`.
///
/// # Errors
/// The file's read error (the process exited, or `/proc` is mounted with `hidepid`).
pub fn of_pid(pid: u32) -> io::Result<Attribution> {
    of_path(&Path::new("/proc").join(pid.to_string()).join("cgroup"))
}

/// [`of_pid`] for a file path (tests and other `/proc` mounts).
///
/// # Errors
/// The file's read error.
pub fn of_path(path: &Path) -> io::Result<Attribution> {
    Ok(parse(&fs::read_to_string(path)?))
}

/// [`of_pid`], then the container's name from the runtime's on-disk state where readable.
pub fn resolve(pid: u32) -> Option<Attribution> {
    let mut a = of_pid(pid).ok()?;
    if let Some(c) = a.container.as_mut() {
        c.name = container_name(c, Path::new("/"));
    }
    Some(a)
}

/// Names the unit or container of every owner `owners` yields, reading `/proc/PID/cgroup`
/// (and the runtime's state) once per distinct process, and for a port forwarder where it
/// forwards ([`super::forwarder::Resolver`]); each owner is replaced by one shared,
/// attributed copy. Returns true when any owner has a unit, container or forwarding.
pub fn attribute<'a>(owners: impl IntoIterator<Item = &'a mut Arc<super::Owner>>) -> bool {
    let mut done: HashMap<u32, Arc<super::Owner>> = HashMap::new();
    let mut forwarders = super::forwarder::Resolver::default();
    let mut any = false;
    for o in owners {
        let new = done.entry(o.pid).or_insert_with(|| {
            let mut owner = super::Owner::clone(o);
            if let Some(a) = resolve(o.pid) {
                owner.unit = a.unit;
                owner.container = a.container;
            }
            // A port forwarder (docker-proxy, ...): the container it forwards to.
            if super::forwarder::is_forwarder_name(&owner.command) {
                owner.forwards_to = forwarders.resolve(o.pid).map(Box::new);
            }
            Arc::new(owner)
        });
        any |= new.unit.is_some() || new.container.is_some() || new.forwards_to.is_some();
        *o = new.clone();
    }
    any
}

fn is_hex_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `prefix<64 hex>.scope` → the id.
fn scoped_id<'a>(seg: &'a str, prefix: &str) -> Option<&'a str> {
    let id = seg.strip_prefix(prefix)?.strip_suffix(".scope")?;
    is_hex_id(id).then_some(id)
}

/// `pod0125ec2f_b64a_...` inside a slice name, or `pod9a18ffb8-8513-...` as a segment → the UID
/// with dashes (systemd escapes `-` in slice names as `_`).
fn pod_uid(path: &str) -> Option<String> {
    for seg in path.split(['/', ':']) {
        let seg = seg.strip_suffix(".slice").unwrap_or(seg);
        if let Some(i) = seg.rfind("pod") {
            let uid = &seg[i + 3..];
            let uid = uid.replace('_', "-");
            let b = uid.as_bytes();
            // A UUID (`8-4-4-4-12`), or 32 hex digits (static pods' config hash).
            let uuid = b.len() == 36
                && b.iter().enumerate().all(|(i, c)| match i {
                    8 | 13 | 18 | 23 => *c == b'-',
                    _ => c.is_ascii_hexdigit(),
                });
            let hash = b.len() == 32 && b.iter().all(u8::is_ascii_hexdigit);
            if uuid || hash {
                return Some(uid);
            }
        }
    }
    None
}

fn container_of(path: &str) -> Option<Container> {
    let in_k8s = path.contains("kubepods");
    let make = |runtime, id: &str, monitor| Container {
        runtime,
        id: id.to_string(),
        name: None,
        pod_uid: if in_k8s { pod_uid(path) } else { None },
        monitor,
    };
    // The v1 systemd driver writes `<slice>:cri-containerd:<id>` (and `:crio:`, `:docker:`).
    let mut colon = path.rsplitn(3, ':');
    if let (Some(id), Some(kind), Some(_)) = (colon.next(), colon.next(), colon.next())
        && is_hex_id(id)
    {
        let runtime = match kind {
            "cri-containerd" => Some(Runtime::Containerd),
            "crio" => Some(Runtime::CriO),
            "docker" => Some(Runtime::Docker),
            _ => None,
        };
        if let Some(r) = runtime {
            return Some(make(r, id, false));
        }
    }
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // The deepest match wins: nested Docker (`/docker/<a>/docker/<b>`) is container b.
    for (i, seg) in segs.iter().enumerate().rev() {
        let scoped = [
            ("docker-", Runtime::Docker, false),
            ("libpod-conmon-", Runtime::Podman, true),
            ("libpod-", Runtime::Podman, false),
            ("cri-containerd-", Runtime::Containerd, false),
            ("crio-conmon-", Runtime::CriO, true),
            ("crio-", Runtime::CriO, false),
        ];
        for (prefix, runtime, monitor) in scoped {
            if let Some(id) = scoped_id(seg, prefix) {
                return Some(make(runtime, id, monitor));
            }
        }
        if is_hex_id(seg) && i > 0 {
            let parent = segs[i - 1];
            if parent == "docker" {
                return Some(make(Runtime::Docker, seg, false));
            }
            if parent.starts_with("pod") && segs.contains(&"kubepods") {
                return Some(make(Runtime::Kubernetes, seg, false));
            }
        }
        if let Some(name) = seg.strip_prefix("lxc.payload.") {
            return Some(named(make(Runtime::Lxc, name, false)));
        }
        if let Some(name) = seg.strip_prefix("lxc.monitor.") {
            return Some(named(make(Runtime::Lxc, name, true)));
        }
        if i > 0 && segs[i - 1] == "lxc" && i == 1 {
            return Some(named(make(Runtime::Lxc, seg, false)));
        }
        if let Some(name) = seg
            .strip_prefix("machine-")
            .and_then(|s| s.strip_suffix(".scope"))
            && i > 0
            && segs[i - 1] == "machine.slice"
            && !name.is_empty()
        {
            let name = unescape_unit(name);
            return Some(named(make(Runtime::Nspawn, &name, false)));
        }
    }
    None
}

/// LXC and nspawn ids are names.
fn named(mut c: Container) -> Container {
    c.name = Some(c.id.clone());
    c
}

/// systemd's unit-name escaping: `\x2d` → `-`.
fn unescape_unit(s: &str) -> String {
    s.replace("\\x2d", "-")
}

fn unit_of(path: &str) -> Option<String> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // A user's service manager: name the unit relative to it, as `systemctl --user` does, but
    // keep `user@1000.service/` so the user is visible.
    if let Some(i) = segs
        .iter()
        .position(|s| s.starts_with("user@") && s.ends_with(".service"))
    {
        let below = &segs[i + 1..];
        let deepest = below
            .iter()
            .rposition(|s| s.ends_with(".service") || s.ends_with(".scope"));
        return Some(match deepest {
            Some(j) if below[j] != "init.scope" => {
                let mut parts = vec![segs[i]];
                parts.extend_from_slice(&below[..=j]);
                parts.join("/")
            }
            _ => segs[i].to_string(),
        });
    }
    segs.iter()
        .rev()
        .find(|s| s.ends_with(".service") || s.ends_with(".scope"))
        .map(|s| unescape_unit(s))
}

/// The container's name from the runtime's on-disk state below `root` (`/` on a live host),
/// without asking a daemon:
///
/// - Docker: `var/lib/docker/containers/<id>/config.v2.json`, field `Name` (`/web` → `web`);
/// - Podman (root): `var/lib/containers/storage/overlay-containers/containers.json`, the
///   entry whose `id` matches, its first `names` entry; rootless stores are per user and
///   not searched;
/// - CRI-O: `var/lib/containers/storage/overlay-containers/<id>/userdata/config.json`,
///   annotation `io.kubernetes.container.name` (with `io.kubernetes.pod.name`);
/// - containerd (CRI): `run/containerd/io.containerd.runtime.v2.task/k8s.io/<id>/config.json`,
///   annotations `io.kubernetes.cri.container-name` and `io.kubernetes.cri.sandbox-name`.
///
/// Those files are readable by root only; otherwise, and for ids the runtime does not know,
/// the answer is `None` and the short id is all netkit shows.
pub fn container_name(c: &Container, root: &Path) -> Option<String> {
    match c.runtime {
        Runtime::Lxc | Runtime::Nspawn => Some(c.id.clone()),
        Runtime::Docker => {
            let p = root.join(format!("var/lib/docker/containers/{}/config.v2.json", c.id));
            let v = read_json(&p)?;
            let name = v.get("Name")?.as_str()?;
            Some(name.trim_start_matches('/').to_string())
        }
        Runtime::Podman => {
            let p = root.join("var/lib/containers/storage/overlay-containers/containers.json");
            let v = read_json(&p)?;
            v.as_array()?
                .iter()
                .find(|e| e.get("id").and_then(|i| i.as_str()) == Some(c.id.as_str()))?
                .get("names")?
                .as_array()?
                .first()?
                .as_str()
                .map(str::to_string)
        }
        Runtime::CriO => {
            let p = root.join(format!(
                "var/lib/containers/storage/overlay-containers/{}/userdata/config.json",
                c.id
            ));
            k8s_name(
                &read_json(&p)?,
                "io.kubernetes.container.name",
                "io.kubernetes.pod.name",
            )
        }
        Runtime::Containerd | Runtime::Kubernetes => {
            let p: PathBuf = root.join(format!(
                "run/containerd/io.containerd.runtime.v2.task/k8s.io/{}/config.json",
                c.id
            ));
            k8s_name(
                &read_json(&p)?,
                "io.kubernetes.cri.container-name",
                "io.kubernetes.cri.sandbox-name",
            )
        }
    }
}

fn read_json(p: &Path) -> Option<serde_json::Value> {
    // These files are small (a few KiB to a few MiB for a podman store); refuse anything huge.
    let meta = fs::metadata(p).ok()?;
    if meta.len() > 64 * 1024 * 1024 {
        return None;
    }
    serde_json::from_slice(&fs::read(p).ok()?).ok()
}

/// `pod/container` from an OCI config's annotations.
fn k8s_name(v: &serde_json::Value, container_key: &str, pod_key: &str) -> Option<String> {
    let ann = v.get("annotations")?;
    let c = ann.get(container_key)?.as_str()?;
    Some(match ann.get(pod_key).and_then(|p| p.as_str()) {
        Some(pod) => format!("{pod}/{c}"),
        None => c.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Attribution {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/cgroup")
            .join(name);
        of_path(&p).expect("fixture exists")
    }

    fn container(name: &str) -> Container {
        fixture(name).container.expect("a container")
    }

    #[test]
    fn docker_systemd_driver_scope_is_recognised() {
        let c = container("docker_systemd_v1_fedora.txt");
        assert_eq!(c.runtime, Runtime::Docker);
        assert_eq!(
            c.id,
            "b33dda97580e721a69fa81742190341f858ea809ec4a9d74a8cfd411b0ee7c26"
        );
        assert_eq!(c.short_id(), "b33dda97580e");
        assert_eq!(c.label(), "docker:b33dda97580e");
        assert!(!c.monitor);
    }

    #[test]
    fn docker_cgroupfs_driver_wins_over_the_hosts_v2_line() {
        // The `0::` line shows containerd.service (a hybrid host's unified hierarchy was not
        // delegated), the v1 lines carry /docker/<id>: the container is the answer.
        let a = fixture("docker_cgroupfs_v1_hybrid.txt");
        let c = a.container.expect("container");
        assert_eq!(c.runtime, Runtime::Docker);
        assert!(c.id.starts_with("2403ccfe427f"));
        assert_eq!(a.unit, None);
    }

    #[test]
    fn docker_daemon_is_a_service_not_a_container() {
        let a = fixture("docker_daemon_v1_centos7.txt");
        assert_eq!(a.container, None);
        assert_eq!(a.unit.as_deref(), Some("docker.service"));
        assert_eq!(a.label(), "docker.service");
    }

    #[test]
    fn podman_container_below_a_user_manager() {
        let c = container("podman_root_v2_fedora38.txt");
        assert_eq!(c.runtime, Runtime::Podman);
        assert!(c.id.starts_with("cf21d19260ac"));
        assert_eq!(c.pod_uid, None);
    }

    #[test]
    fn podman_unshare_is_a_user_scope() {
        let a = fixture("podman_unshare_v2_ubuntu20.txt");
        assert_eq!(a.container, None);
        assert_eq!(
            a.unit.as_deref(),
            Some("user@1000.service/user.slice/podman-6696.scope")
        );
    }

    #[test]
    fn containerd_v1_colon_form_with_pod_uid() {
        let c = container("k8s_containerd_systemd_v1.txt");
        assert_eq!(c.runtime, Runtime::Containerd);
        assert!(c.id.starts_with("ee4b20e90ac7"));
        assert_eq!(
            c.pod_uid.as_deref(),
            Some("0125ec2f-b64a-4868-8f5b-94b56cbab864")
        );
    }

    #[test]
    fn kubernetes_with_docker_runtime() {
        let c = container("k8s_docker_systemd_v1.txt");
        assert_eq!(c.runtime, Runtime::Docker);
        assert_eq!(
            c.pod_uid.as_deref(),
            Some("7d4424e6-bb13-42f4-a47a-45a4828bf54d")
        );
    }

    #[test]
    fn kubernetes_cgroupfs_driver() {
        let c = container("k8s_cgroupfs_v1_mountinfo.txt");
        assert_eq!(c.runtime, Runtime::Kubernetes);
        assert!(c.id.starts_with("d28e0087cf8f"));
        assert_eq!(
            c.pod_uid.as_deref(),
            Some("9a18ffb8-8513-11e7-b26e-7e29fbe2a5a3")
        );
    }

    #[test]
    fn crio_and_kind_on_cgroup_v2() {
        let c = container("k8s_crio_v2_systemd.txt");
        assert_eq!(c.runtime, Runtime::CriO);
        assert_eq!(
            c.pod_uid.as_deref(),
            Some("207aaad1-659f-4db8-88e0-46e0cdcc3004")
        );
        let c = container("k8s_containerd_v2_kind.txt");
        assert_eq!(c.runtime, Runtime::Containerd);
        assert!(c.id.starts_with("a09bc17f5aa2"));
        assert_eq!(
            c.pod_uid.as_deref(),
            Some("1e597579-417e-482f-bf65-5fe170c3aebd")
        );
    }

    #[test]
    fn this_host_root_shell_has_neither() {
        let a = fixture("this_host_v1_hybrid_root.txt");
        assert!(a.is_empty(), "{a:?}");
        assert_eq!(a.label(), "-");
    }

    #[test]
    fn monitors_lxc_nspawn_and_services() {
        let a = parse(
            "0::/machine.slice/libpod-conmon-cf21d19260ace8544fe8b769fc2638bf2c0873dfbfff0b6253f0569b26a1d5eb.scope\n",
        );
        let c = a.container.expect("conmon");
        assert!(c.monitor);
        assert_eq!(c.label(), "podman:cf21d19260ac (monitor)");
        let c = parse("0::/lxc.payload.c1/system.slice/sshd.service\n")
            .container
            .expect("lxc");
        assert_eq!((c.runtime, c.id.as_str()), (Runtime::Lxc, "c1"));
        assert_eq!(c.label(), "lxc:c1");
        let c = parse("4:memory:/lxc/web01\n").container.expect("lxc v1");
        assert_eq!(c.id, "web01");
        let c = parse("0::/machine.slice/machine-deb\\x2dtest.scope/payload\n")
            .container
            .expect("nspawn");
        assert_eq!((c.runtime, c.id.as_str()), (Runtime::Nspawn, "deb-test"));
        let a = parse("0::/system.slice/nginx.service\n");
        assert_eq!(a.unit.as_deref(), Some("nginx.service"));
        let a =
            parse("0::/user.slice/user-1000.slice/user@1000.service/app.slice/app-web.service\n");
        assert_eq!(
            a.unit.as_deref(),
            Some("user@1000.service/app.slice/app-web.service")
        );
        let a = parse("0::/user.slice/user-1000.slice/user@1000.service/init.scope\n");
        assert_eq!(a.unit.as_deref(), Some("user@1000.service"));
        let a = parse("0::/user.slice/user-1000.slice/session-3.scope\n");
        assert_eq!(a.unit.as_deref(), Some("session-3.scope"));
        // Nested Docker: the inner container.
        let inner = "9e2b3c4b7c6b0e0f7d3b24e0a8a1d2a5c1f3e9b8d7c6a5b4f3e2d1c0b9a8f7e6";
        let outer = "1f7ea9cf9bd3d6dc9dd3b0c5a7bb0d8b2b1cfa5e2c55b11dfa1c0b3ae96dd4f1";
        let c = parse(&format!("5:cpu,cpuacct:/docker/{outer}/docker/{inner}\n"))
            .container
            .expect("nested");
        assert_eq!(c.id, inner);
    }

    #[test]
    fn malformed_lines_are_ignored_not_fatal() {
        for junk in [
            "",
            "\n\n",
            "garbage",
            "0:",
            "::::",
            "0::/docker-zz.scope",
            "1:x:/docker/abc",
        ] {
            let a = parse(junk);
            assert!(a.container.is_none(), "{junk:?} gave {a:?}");
        }
    }

    #[test]
    fn names_come_from_the_runtimes_on_disk_state() {
        let root = tempfile::tempdir().expect("tempdir");
        let id = "b33dda97580e721a69fa81742190341f858ea809ec4a9d74a8cfd411b0ee7c26";
        let dir = root.path().join(format!("var/lib/docker/containers/{id}"));
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join("config.v2.json"), br#"{"ID":"x","Name":"/web"}"#).expect("write");
        let mut c = container("docker_systemd_v1_fedora.txt");
        assert_eq!(container_name(&c, root.path()).as_deref(), Some("web"));
        c.name = Some("web".into());
        assert_eq!(c.label(), "docker:b33dda97580e (web)");

        let podman = root
            .path()
            .join("var/lib/containers/storage/overlay-containers");
        fs::create_dir_all(&podman).expect("mkdir");
        let pid = "cf21d19260ace8544fe8b769fc2638bf2c0873dfbfff0b6253f0569b26a1d5eb";
        fs::write(
            podman.join("containers.json"),
            format!(r#"[{{"id":"{pid}","names":["test"]}}]"#),
        )
        .expect("write");
        let c = container("podman_root_v2_fedora38.txt");
        assert_eq!(container_name(&c, root.path()).as_deref(), Some("test"));

        let unknown = Container {
            runtime: Runtime::CriO,
            id: id.into(),
            name: None,
            pod_uid: None,
            monitor: false,
        };
        assert_eq!(container_name(&unknown, root.path()), None);
    }
}
