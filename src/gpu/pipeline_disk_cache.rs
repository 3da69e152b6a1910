//! The driver's compiled pipelines kept on disk between processes (wgpu's `PipelineCache`,
//! Vulkan only).
//!
//! A driver compiles a kernel the first time a process builds it. NVIDIA's driver keeps its
//! own cache per executable, so a new or copied binary (a new version, a job's private copy,
//! a fresh machine) paid about 10 s on an H200 before its first block. This cache is keyed by
//! the adapter (wgpu's `pipeline_cache_key`: vendor and device) and holds what the driver
//! returns, whatever the executable.
//!
//! The file is `<dir>/<key>.bin`, where `<dir>` is `$QBAT_PIPELINE_CACHE`, else
//! `$XDG_CACHE_HOME/qbat-gpu`, else `$HOME/.cache/qbat-gpu` (an absolute path; a relative one
//! means no cache); `QBAT_PIPELINE_CACHE=off` turns the cache off. The bytes are framed:
//! `MAGIC`, the length and the BLAKE3 hash of wgpu's data, then the data. wgpu checks only its
//! own header and the driver only its own, so a damaged file (a torn or unsynced write, a
//! flipped bit) is found here and never handed to the driver. The hash is not a signature: the
//! directory and the file must be the user's own and writable by no one else (on Unix), as a
//! user's compiled programs are; a directory qbat-gpu makes is private (0700). A file that is
//! missing, damaged, from another adapter, not a plain file or not the user's own leaves the
//! cache empty; one that cannot be written is not written. Neither is an error: the cache only
//! saves time. A file at that name without the frame was not written by qbat-gpu and is never
//! replaced.

use crate::plain_file::open_plain;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The frame's first bytes.
const MAGIC: &[u8; 8] = b"QBPIPEC1";
/// magic, length (u64 LE), BLAKE3 (32 bytes)
const FRAME: usize = 8 + 8 + 32;
/// A larger file is not read (the kernels' pipelines take a few MB).
const MAX_BYTES: u64 = 256 << 20;

pub(crate) struct PipelineDiskCache {
    cache: wgpu::PipelineCache,
    path: PathBuf,
    /// The hash of the data the file holds (None: none accepted): a build that changes
    /// nothing writes nothing, and data wgpu refused (after a driver update) is replaced.
    stored: Mutex<Option<blake3::Hash>>,
}

impl PipelineDiskCache {
    /// The adapter's cache, loaded from its file where that holds a valid frame; None where
    /// the device has no `PIPELINE_CACHE`, the adapter no key, or no directory is known.
    pub(crate) fn open(device: &wgpu::Device, adapter: &wgpu::AdapterInfo) -> Option<PipelineDiskCache> {
        if !device.features().contains(wgpu::Features::PIPELINE_CACHE) {
            return None;
        }
        let path = cache_dir()?.0.join(format!("{}.bin", wgpu::util::pipeline_cache_key(adapter)?));
        let data = private(path.parent()?).then(|| read_framed(&path)).flatten();
        // SAFETY: the data is what `get_data` returned for this adapter's key in an earlier
        // process, in a file and directory only this user can write, checked against its
        // BLAKE3 hash; wgpu checks its header (adapter, driver, ABI) and, with `fallback`,
        // makes an empty cache of data it does not accept.
        let cache = unsafe {
            device.create_pipeline_cache(&wgpu::PipelineCacheDescriptor { label: Some("qbat-gpu pipelines"), data: data.as_deref(), fallback: true })
        };
        // (what the cache holds now: the file's data, or an empty cache's where wgpu refused it)
        let stored = data.filter(|d| cache.get_data().as_deref() == Some(&d[..])).map(|d| blake3::hash(&d));
        Some(PipelineDiskCache { cache, path, stored: Mutex::new(stored) })
    }

    pub(crate) fn cache(&self) -> &wgpu::PipelineCache {
        &self.cache
    }

    /// Write the cache's data to the file where it differs from the file's (after a build).
    pub(crate) fn save(&self) {
        // (the data taken under the lock: two builds' saves never write an older one last)
        let Ok(mut stored) = self.stored.lock() else {
            return;
        };
        let Some(data) = self.cache.get_data() else {
            return;
        };
        let hash = blake3::hash(&data);
        if *stored != Some(hash) && store_framed(&self.path, &data).is_ok() {
            *stored = Some(hash);
        }
    }
}

/// `$QBAT_PIPELINE_CACHE` (None when "off"), else the user's cache directory; with the
/// variable that set it.
fn cache_dir() -> Option<(PathBuf, &'static str)> {
    let nonempty = |name: &'static str| std::env::var_os(name).filter(|v| !v.is_empty()).map(|v| (PathBuf::from(v), name));
    match nonempty("QBAT_PIPELINE_CACHE") {
        Some((dir, _)) if dir.as_os_str() == "off" => None,
        Some(dir) => Some(dir),
        None => nonempty("XDG_CACHE_HOME").or_else(|| nonempty("HOME").map(|(h, name)| (h.join(".cache"), name))).map(|(d, name)| (d.join("qbat-gpu"), name)),
    }
    .filter(|(d, _)| d.is_absolute())
}

/// Refuse a new (missing or empty) output directory `out` (the option `field`) that is the
/// cache's directory or holds it, and a staging directory that holds it: the cache, written as
/// the run builds its kernels, would put a folder of its own into a directory that must stay
/// the run's until the commit, which then refused it after the whole run. (An existing output
/// replaced with `--force` keeps a folder that is not its own, as any other.)
pub fn check_cache_outside(out: &Path, staging: Option<&Path>, field: &str) -> crate::error::Result<()> {
    let Some((cache, variable)) = cache_dir() else {
        return Ok(());
    };
    let Some(cache_at) = through_links(&cache) else {
        return Ok(());
    };
    let new = std::fs::read_dir(out).map_or(true, |mut d| d.next().is_none());
    for dir in [new.then_some(out), staging].into_iter().flatten() {
        if through_links(dir).is_some_and(|at| cache_at.starts_with(at)) {
            return Err(crate::error::QbatError::invalid(
                field,
                format!(
                    "{} holds the pipeline cache's directory {} (from {variable}), which the GPU's kernels would write into before the commit; set QBAT_PIPELINE_CACHE to a directory elsewhere",
                    dir.display(),
                    cache.display()
                ),
            ));
        }
    }
    Ok(())
}

/// `path` as the file system resolves it where parts of it do not exist yet: its longest
/// existing start made canonical (links followed), the rest joined on.
fn through_links(path: &Path) -> Option<PathBuf> {
    let absolute = if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir().ok()?.join(path) };
    let existing = absolute.ancestors().find(|a| std::fs::canonicalize(a).is_ok())?;
    let rest = absolute.strip_prefix(existing).ok()?;
    Some(std::fs::canonicalize(existing).ok()?.join(rest))
}

/// Is `path` (a directory or file) this user's own and writable by no one else? (Not a link;
/// always where the platform has no owners.)
fn private(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|meta| !meta.file_type().is_symlink() && owned_alone(&meta))
}

/// Owned by this user (the effective one) and writable by no one else.
fn owned_alone(meta: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        // SAFETY: geteuid has no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() };
        meta.uid() == uid && meta.permissions().mode() & 0o022 == 0
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        true
    }
}

/// The data of a framed file, or None (missing, too large, damaged, not framed, not a plain
/// file of this user's).
fn read_framed(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let file = open_plain(path).ok()?;
    // (the file opened, not the path looked up again)
    let meta = file.metadata().ok()?;
    if !meta.is_file() || !owned_alone(&meta) {
        return None;
    }
    let mut bytes = vec![];
    file.take(MAX_BYTES + 1).read_to_end(&mut bytes).ok()?;
    unframe(&bytes).map(<[u8]>::to_vec)
}

fn frame(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME + data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    out.extend_from_slice(blake3::hash(data).as_bytes());
    out.extend_from_slice(data);
    out
}

fn unframe(bytes: &[u8]) -> Option<&[u8]> {
    if bytes.len() < FRAME || bytes.len() as u64 > MAX_BYTES || &bytes[..8] != MAGIC {
        return None;
    }
    let len = u64::from_le_bytes(bytes[8..16].try_into().ok()?);
    let data = &bytes[FRAME..];
    (len == data.len() as u64 && blake3::hash(data).as_bytes() == &bytes[16..FRAME]).then_some(data)
}

/// Write `data` framed to `path` through a temporary file renamed over it, unless a file there
/// does not start with the frame's magic (not ours: left alone) or is not a plain file.
fn store_framed(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let refused = |why: &str| Err(std::io::Error::other(format!("{}: {why}", path.display())));
    let dir = path.parent().ok_or_else(|| std::io::Error::other("no directory"))?;
    if !dir.exists() {
        // Each missing folder made for this user alone (0700, as XDG asks of a cache), its
        // mode set after the umask took its bits: under umask 0777 they came out 000, and the
        // cache could never be written.
        let missing: Vec<&Path> = dir.ancestors().take_while(|d| std::fs::symlink_metadata(d).is_err()).collect();
        for d in missing.into_iter().rev() {
            match std::fs::create_dir(d) {
                Ok(()) => {
                    #[cfg(unix)]
                    std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
                }
                // (made meanwhile by another process: judged below, as any other)
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
    }
    if !private(dir) {
        return refused("the directory is not this user's alone");
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.is_file() => return refused("not a plain file"),
        Ok(_) => {
            use std::io::Read;
            let mut magic = [0u8; 8];
            let ours = open_plain(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == MAGIC;
            if !ours {
                return refused("not a qbat-gpu pipeline cache");
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // (not synced: a torn file fails its hash and is compiled again)
    let mut tmp = tempfile::Builder::new().prefix(".qbat-pipelines.").tempfile_in(dir)?;
    // (readable by this user whatever the umask: under 0777 it came out mode 000)
    #[cfg(unix)]
    tmp.as_file().set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    tmp.write_all(&frame(data))?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Under umask 0777 the folders made for the cache are still 0700 and the file 0600 (they
    /// came out mode 000: nothing could be stored, nor read back by its user). The umask is the process's: the
    /// test runs itself again in a child process under it, alone.
    #[cfg(unix)]
    #[test]
    fn the_cache_is_written_under_umask_0777() {
        use std::os::unix::fs::PermissionsExt;
        use std::os::unix::process::CommandExt;
        const CHILD: &str = "QBAT_TEST_UMASK_CHILD";
        if let Some(root) = std::env::var_os(CHILD) {
            let path = PathBuf::from(root).join("cache").join("qbat-gpu").join("key.bin");
            store_framed(&path, b"data").unwrap();
            for d in [path.parent().unwrap(), path.parent().unwrap().parent().unwrap()] {
                assert_eq!(std::fs::metadata(d).unwrap().permissions().mode() & 0o777, 0o700, "{}", d.display());
            }
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(read_framed(&path).as_deref(), Some(&b"data"[..]));
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new(std::env::current_exe().unwrap());
        child.args(["--exact", "gpu::pipeline_disk_cache::tests::the_cache_is_written_under_umask_0777", "--test-threads", "1"]).env(CHILD, dir.path());
        // SAFETY: umask is async-signal-safe and has no preconditions.
        unsafe {
            child.pre_exec(|| {
                libc::umask(0o777);
                Ok(())
            });
        }
        let o = child.output().unwrap();
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success() && stdout.contains("1 passed"), "{stdout}{}", String::from_utf8_lossy(&o.stderr));
    }

    /// A framed file gives its data back; any flipped byte, a cut, an extension or another
    /// magic gives none.
    #[test]
    fn a_framed_file_is_read_back_and_any_damage_refused() {
        let data: Vec<u8> = (0..5000u32).map(|k| (k * 7 + k / 13) as u8).collect();
        let framed = frame(&data);
        assert_eq!(unframe(&framed), Some(&data[..]));
        for at in [0, 9, 20, FRAME, FRAME + 1234, framed.len() - 1] {
            let mut bad = framed.clone();
            bad[at] ^= 0x10;
            assert_eq!(unframe(&bad), None, "byte {at} flipped");
        }
        assert_eq!(unframe(&framed[..framed.len() - 1]), None);
        assert_eq!(unframe(&[framed.as_slice(), b"x"].concat()), None);
        assert_eq!(unframe(&framed[..FRAME - 1]), None);
    }

    /// The file is written and replaced when it is ours, and a file of that name that is not
    /// ours (no magic, a directory) is left as it was.
    #[test]
    fn the_file_is_replaced_only_when_qbat_gpu_wrote_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("key.bin");
        store_framed(&path, b"first").unwrap();
        assert_eq!(read_framed(&path).as_deref(), Some(&b"first"[..]));
        store_framed(&path, b"second, longer").unwrap();
        assert_eq!(read_framed(&path).as_deref(), Some(&b"second, longer"[..]));
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");

        let foreign = dir.path().join("foreign.bin");
        std::fs::write(&foreign, b"someone else's file").unwrap();
        assert!(store_framed(&foreign, b"data").is_err());
        assert_eq!(std::fs::read(&foreign).unwrap(), b"someone else's file");
        assert_eq!(read_framed(&foreign), None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // a FIFO is not waited on; a file others can write is not read
            let fifo = dir.path().join("fifo.bin");
            assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
            assert_eq!(read_framed(&fifo), None);
            assert!(store_framed(&fifo, b"data").is_err());
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
            assert_eq!(read_framed(&path), None);
            // nor written into a directory others can write
            let shared = dir.path().join("shared");
            std::fs::create_dir(&shared).unwrap();
            std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
            assert!(store_framed(&shared.join("key.bin"), b"data").is_err());
            assert!(!shared.join("key.bin").exists());
            let made = std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777;
            assert_eq!(made, 0o700, "the directory made for the cache is private");
        }
        let a_dir = dir.path().join("a-dir.bin");
        std::fs::create_dir(&a_dir).unwrap();
        assert!(store_framed(&a_dir, b"data").is_err() && a_dir.is_dir());
        assert_eq!(read_framed(&a_dir), None);
    }
}
