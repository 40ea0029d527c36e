//! Container and unit attribution on real cgroups: the test makes cgroups named the way Docker,
//! Podman, Kubernetes (containerd) and systemd name theirs, in this host's cgroup v2 (`unified`)
//! and v1 (`name=systemd`) hierarchies, moves a process into each, and reads it back through
//! `/proc/PID/cgroup` as netkit does.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use netkit::inspect::cgroup::{self, Runtime};

const ID: &str = "4f2c1ab7de5590e1c3b3a3b1f0a2c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5";

/// A cgroup the test created, removed (after its process is moved back out) on drop.
struct Cg {
    dir: PathBuf,
    root: PathBuf,
}

impl Cg {
    fn new(root: &Path, rel: &str) -> Option<Cg> {
        let dir = root.join(rel);
        fs::create_dir_all(&dir).ok()?;
        Some(Cg {
            dir,
            root: root.to_path_buf(),
        })
    }

    fn adopt(&self, pid: u32) -> bool {
        fs::write(self.dir.join("cgroup.procs"), pid.to_string()).is_ok()
    }
}

impl Drop for Cg {
    fn drop(&mut self) {
        // Move anything left back to the root, then remove the leaf and the parents we made.
        if let Ok(procs) = fs::read_to_string(self.dir.join("cgroup.procs")) {
            for p in procs.lines() {
                let _ = fs::write(self.root.join("cgroup.procs"), p);
            }
        }
        let mut d = self.dir.clone();
        while d != self.root && fs::remove_dir(&d).is_ok() {
            if !d.pop() {
                break;
            }
        }
    }
}

fn sleeper() -> Child {
    Command::new("sleep")
        .arg("30")
        .stdin(Stdio::null())
        .spawn()
        .expect("sleep runs")
}

fn writable(root: &str) -> Option<PathBuf> {
    let p = PathBuf::from(root);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !p.join("cgroup.procs").exists() {
        return None;
    }
    Some(p)
}

fn check(root: &Path, rel: &str, expect: impl Fn(&cgroup::Attribution)) {
    let Some(cg) = Cg::new(root, rel) else {
        eprintln!(
            "skipped {rel}: cannot create a cgroup under {}",
            root.display()
        );
        return;
    };
    let mut child = sleeper();
    assert!(cg.adopt(child.id()), "moving into {}", cg.dir.display());
    let a = cgroup::of_pid(child.id()).expect("reading /proc/PID/cgroup");
    let _ = child.kill();
    let _ = child.wait();
    expect(&a);
}

#[test]
fn runtimes_and_units_are_recognised_on_real_cgroups() {
    let roots: Vec<PathBuf> = [
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup/systemd",
        "/sys/fs/cgroup",
    ]
    .iter()
    .filter_map(|r| writable(r))
    .collect();
    if roots.is_empty() {
        eprintln!(
            "skipped: needs root and a writable cgroup hierarchy (v2 unified or v1 name=systemd)"
        );
        return;
    }
    for root in &roots {
        check(root, &format!("system.slice/docker-{ID}.scope"), |a| {
            let c = a.container.as_ref().expect("docker");
            assert_eq!((c.runtime, c.id.as_str()), (Runtime::Docker, ID));
        });
        check(root, &format!("docker/{ID}"), |a| {
            let c = a.container.as_ref().expect("docker cgroupfs");
            assert_eq!(c.runtime, Runtime::Docker);
        });
        check(
            root,
            &format!("machine.slice/libpod-{ID}.scope/container"),
            |a| {
                let c = a.container.as_ref().expect("podman");
                assert_eq!(c.runtime, Runtime::Podman);
                assert_eq!(c.short_id(), &ID[..12]);
            },
        );
        let pod = "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0125ec2f_b64a_4868_8f5b_94b56cbab864.slice";
        check(root, &format!("{pod}/cri-containerd-{ID}.scope"), |a| {
            let c = a.container.as_ref().expect("k8s");
            assert_eq!(c.runtime, Runtime::Containerd);
            assert_eq!(
                c.pod_uid.as_deref(),
                Some("0125ec2f-b64a-4868-8f5b-94b56cbab864")
            );
        });
        check(root, "system.slice/nk-netns-test.service", |a| {
            assert_eq!(a.container, None);
            assert_eq!(a.unit.as_deref(), Some("nk-netns-test.service"));
        });
    }
}
