//! A real single-file bind mount (`docker run -v ./acme.json:/data/acme.json` in
//! miniature), undone on drop. Needs root, as on CI.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `mount --bind FILE TARGET`, unmounted on drop.
#[derive(Debug)]
pub struct BindMount {
    target: PathBuf,
}

impl BindMount {
    /// Bind-mounts `host` onto `target` (both files). `None` when mounting is not allowed
    /// here (not root) and this is not CI; on CI (`CI=true`) that is a failure.
    pub fn file(host: &Path, target: &Path) -> Option<Self> {
        let mounted = Command::new("mount")
            .arg("--bind")
            .arg(host)
            .arg(target)
            .status();
        match mounted {
            Ok(status) if status.success() => Some(Self {
                target: target.to_path_buf(),
            }),
            other => {
                let ci = std::env::var("CI").is_ok_and(|v| v == "true");
                assert!(!ci, "mount --bind is needed on CI (run as root): {other:?}");
                eprintln!("skipped locally: mount --bind failed ({other:?}); run as root");
                None
            }
        }
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.target).status();
    }
}
