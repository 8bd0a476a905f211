//! Records the git revision for `koji-adjutant version`. From a tarball without `.git`, the
//! revision comes from `KOJI_ADJUTANT_GIT_REV` if the packager sets it, else "unknown".

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=KOJI_ADJUTANT_GIT_REV");
    let revision = std::env::var("KOJI_ADJUTANT_GIT_REV")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| {
            let rev = git(&["rev-parse", "--short=12", "HEAD"])?;
            // Rebuild when HEAD moves, so the revision never goes stale.
            for path in ["HEAD", "packed-refs"] {
                if let Some(p) = git(&["rev-parse", "--path-format=absolute", "--git-path", path]) {
                    println!("cargo:rerun-if-changed={p}");
                }
            }
            if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"])
                && let Some(p) = git(&[
                    "rev-parse",
                    "--path-format=absolute",
                    "--git-path",
                    &head_ref,
                ])
            {
                println!("cargo:rerun-if-changed={p}");
            }
            Some(rev)
        })
        .unwrap_or_else(|| "unknown".to_string());
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    println!("cargo:rustc-env=KOJI_ADJUTANT_GIT_REV={revision}");
    println!("cargo:rustc-env=KOJI_ADJUTANT_VERSION_LINE={version} (git {revision})");
}
