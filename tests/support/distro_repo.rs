//! A real RPM distribution repo made from the builder image's own Debian userland
//! (tests/support/debian_distro.py), for installroot mode: no RPM distribution is reachable
//! from this machine, and stub rpms have no binaries to build with.
//!
//! Made once per image and generator version under `target/tmp/debian-image-distro/` (10–20
//! s), then reused by every test and test binary; a file lock keeps concurrent test processes
//! from making it twice, and a new one replaces the old.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const GENERATOR: &str = include_str!("debian_distro.py");

/// The repo: rpms and repodata with the comps groups `build` and `srpm-build`.
pub struct DistroRepo {
    /// The directory to serve or mount (holds `repodata/`).
    pub dir: PathBuf,
    /// The names of the rpms in it.
    pub packages: Vec<String>,
}

/// The repo for `image`, made on first use.
pub fn distro_repo(image: &str) -> &'static DistroRepo {
    static REPO: OnceLock<DistroRepo> = OnceLock::new();
    REPO.get_or_init(|| make(image))
}

fn image_id(image: &str) -> String {
    let output = Command::new("podman")
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .output()
        .expect("podman");
    assert!(
        output.status.success(),
        "{image} is missing; run scripts/build-image.sh: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn make(image: &str) -> DistroRepo {
    let mut hasher = std::hash::DefaultHasher::new();
    GENERATOR.hash(&mut hasher);
    let id = image_id(image);
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("debian-image-distro");
    std::fs::create_dir_all(&base).unwrap();
    let dir = base.join(format!("{}-{:016x}", &id[..16], hasher.finish()));
    let lock = std::fs::File::create(base.join(".lock")).unwrap();
    lock.lock().unwrap();
    if !dir.join("repo/repodata/repomd.xml").is_file() {
        let started = std::time::Instant::now();
        // Under the lock nobody else is making one: any scratch dir is an interrupted run's.
        for entry in std::fs::read_dir(&base).unwrap().flatten() {
            if entry.file_name().to_string_lossy().starts_with(".making-") {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let scratch = base.join(format!(".making-{}", std::process::id()));
        std::fs::create_dir_all(&scratch).unwrap();
        let generator = scratch.join("debian_distro.py");
        std::fs::write(&generator, GENERATOR).unwrap();
        let output = Command::new("podman")
            .args(["run", "--rm", "--pull=never", "--network=none"])
            .arg("-v")
            .arg(format!("{}:/out", scratch.display()))
            .args([image, "python3", "/out/debian_distro.py", "/out"])
            .output()
            .expect("podman");
        assert!(
            output.status.success(),
            "making the distribution repo from {image} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&scratch, &dir).unwrap();
        // Repos of older images or generator versions are 300 MB each and never used again.
        for entry in std::fs::read_dir(&base).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && entry.path() != dir {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        eprintln!(
            "made the distribution repo {} in {:.1} s",
            dir.display(),
            started.elapsed().as_secs_f64()
        );
    }
    let packages = std::fs::read_to_string(dir.join("packages.txt"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let _ = lock.unlock();
    DistroRepo {
        dir: dir.join("repo"),
        packages,
    }
}

// Each including test uses a different part of it.
#[allow(dead_code)]
impl DistroRepo {
    /// The comps groups the repo was made with (`build`, `srpm-build`): each group's id and
    /// package names, read back from the generator's comps.xml, for a Koji tag's groups.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let comps = self
            .dir
            .parent()
            .expect("the repo dir is in the generator's out dir")
            .join("comps.xml");
        let text =
            std::fs::read_to_string(&comps).unwrap_or_else(|e| panic!("{}: {e}", comps.display()));
        let between = |text: &str, open: &str, close: &str| -> Vec<String> {
            text.split(open)
                .skip(1)
                .filter_map(|rest| rest.split_once(close).map(|(v, _)| v.to_owned()))
                .collect()
        };
        between(&text, "<group>", "</group>")
            .iter()
            .map(|group| {
                let id = between(group, "<id>", "</id>").remove(0);
                let packages = between(group, "<packagereq type=\"mandatory\">", "</packagereq>");
                (id, packages)
            })
            .collect()
    }

    /// The rpm files in the repo.
    pub fn rpm_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "rpm"))
            .collect();
        files.sort();
        files
    }
}
