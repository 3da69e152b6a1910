//! A usable `XDG_RUNTIME_DIR` before the adapters are probed. Without one, Mesa's Vulkan
//! drivers print `error: XDG_RUNTIME_DIR is invalid or not set in the environment.` once per
//! probe (batch jobs, containers and `ssh host cmd` often have none), which reads like a
//! failure of the run. qbat-gpu draws nothing on screen, so a private directory will do.

use std::path::{Path, PathBuf};

/// Is `dir` a directory this process may use as its runtime directory: absolute, a real
/// directory (not a link), and on Unix owned by this user with no access for others?
pub fn usable_runtime_dir(dir: &Path) -> bool {
    if !dir.is_absolute() {
        return false;
    }
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return false;
    };
    if !meta.is_dir() {
        return false;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        if let Some(uid) = current_uid() {
            if meta.uid() != uid {
                return false;
            }
        }
        if meta.permissions().mode() & 0o077 != 0 {
            return false;
        }
    }
    true
}

/// This process's user id (the owner of /proc/self), where the system says.
#[cfg(unix)]
fn current_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// The per-process directory `private_runtime_dir` made where the per-user one was not
/// usable, with the id of the process that made it: removed at the end of that process
/// (`remove_own`), as each run left one behind. (A child forked from it, a Python
/// `os.fork()`'s that exits through `atexit`, holds a copy: not its to remove.)
static OWN: std::sync::Mutex<Option<(PathBuf, u32)>> = std::sync::Mutex::new(None);

/// Make (or reuse) a private directory (mode 0700) under `base`; None when none can be made.
pub fn private_runtime_dir(base: &Path) -> Option<PathBuf> {
    #[cfg(unix)]
    let tag = current_uid().map(|u| u.to_string()).unwrap_or_else(|| std::process::id().to_string());
    #[cfg(not(unix))]
    let tag = std::process::id().to_string();
    // The per-user name first (reused across runs); if someone else holds it, a per-process one.
    for (k, name) in [format!("qbat-gpu-runtime-{tag}"), format!("qbat-gpu-runtime-{tag}-{}", std::process::id())].into_iter().enumerate() {
        let dir = base.join(name);
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        let made = match builder.create(&dir) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(_) => continue,
        };
        if usable_runtime_dir(&dir) {
            // (only one this process made: a per-process name of another PID namespace, or of
            // a process before this one with the same PID, is not this process's to remove)
            if k == 1 && made {
                *OWN.lock().unwrap_or_else(|e| e.into_inner()) = Some((dir.clone(), std::process::id()));
            }
            return Some(dir);
        }
    }
    None
}

/// Set `XDG_RUNTIME_DIR` to a private directory under the temp dir when it is unset or not
/// usable. Call it first thing in `main` (the Python extension: at its module's import),
/// before any thread starts: it changes the environment of the process.
pub fn ensure_runtime_dir() {
    let current = std::env::var_os("XDG_RUNTIME_DIR");
    if current.as_deref().is_some_and(|d| usable_runtime_dir(Path::new(d))) {
        return;
    }
    // (a TMPDIR that is missing or not writable: /tmp)
    let made = private_runtime_dir(&std::env::temp_dir()).or_else(|| private_runtime_dir(Path::new("/tmp")));
    if let Some(dir) = made {
        std::env::set_var("XDG_RUNTIME_DIR", dir);
    }
}

/// Remove the per-process runtime directory where this process made one: at its end
/// (`main`'s return, or a signal that ends it), when the drivers are done with it.
pub fn remove_own() {
    let mut own = OWN.lock().unwrap_or_else(|e| e.into_inner());
    if own.as_ref().is_some_and(|(_, pid)| *pid == std::process::id()) {
        if let Some((dir, _)) = own.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
