//! `bench --json FILE`: the file the figures go to, checked before the jobs run and again
//! before the figures are written. Only an empty file or an earlier bench's figures are
//! replaced: a user's file, a FIFO, a device, the command's own standard output, a folder
//! that is missing, read-only or removed, and a name too long for the atomic write beside it
//! are refused (exit 2, naming `--json`).

use qbat_gpu::error::{QbatError, Result};

/// The longest `--json` file name: 255 bytes less the 8 of its atomic write's `.NAME.XXXXXX`.
const MAX_JSON_NAME: usize = 247;

/// `--json PATH` must name a file that can be written: refused before any job runs when it
/// is a directory, or its folder does not exist or cannot be written into.
pub(super) fn check_json_path(path: &std::path::Path) -> Result<()> {
    let shown = path.display();
    if path.as_os_str().is_empty() || path.is_dir() || path.as_os_str().to_string_lossy().ends_with(std::path::MAIN_SEPARATOR) {
        return Err(QbatError::invalid("--json", format!("{shown} is a directory; give a file name, e.g. {}", path.join("bench.json").display())));
    }
    let parent = qbat_gpu::output::parent_of(path);
    if !parent.is_dir() {
        return Err(QbatError::invalid("--json", format!("{shown}: the folder {} does not exist", parent.display())));
    }
    // the atomic write's name beside it, `.NAME.XXXXXX`, must fit a file name (255 bytes): the
    // name as written and the one a link leads to, in bytes (the write keeps NAME's bytes)
    let target = std::fs::canonicalize(path).ok();
    let too_long = |p: &std::path::Path| p.file_name().is_some_and(|n| n.len() > MAX_JSON_NAME);
    if too_long(path) || target.as_deref().is_some_and(too_long) {
        return Err(QbatError::invalid(
            "--json",
            format!("its file name is longer than the {MAX_JSON_NAME} bytes that leave room for the name qbat-gpu writes it under first"),
        ));
    }
    // an existing name must be a file to replace (through a link, the file it leads to): a
    // FIFO or a device there is refused before the work
    if std::fs::symlink_metadata(path).is_ok() {
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() && is_standard_stream(&m) => {
                // (`--json /dev/stdout > f`, or `--json f > f`: the report goes into the file,
                // which the figures' atomic write then replaces, report and all)
                return Err(QbatError::invalid(
                    "--json",
                    format!("{shown} is where this command's report goes (its standard output or error); name another file"),
                ));
            }
            Ok(m) if m.is_file() => {}
            Ok(_) => return Err(QbatError::invalid("--json", format!("{shown} exists and is not a regular file"))),
            Err(e) => return Err(QbatError::invalid("--json", format!("{shown} is a link that cannot be followed ({e})"))),
        }
        // and one qbat-gpu wrote (an earlier bench's figures) or an empty one: a user's file is
        // never replaced
        if !is_bench_json(path) {
            return Err(QbatError::invalid("--json", format!("{shown} exists and is not a qbat-gpu bench file; name another file, or remove it first")));
        }
    }
    // the folder the figures are written into (through a link, its file's), which must take
    // the atomic write's new entry: a read-only one was found only after the jobs (exit 1)
    let target = target.unwrap_or_else(|| path.to_path_buf());
    qbat_gpu::output::out_path::writable_inside(qbat_gpu::output::parent_of(&target), "--json")
}

/// Whether `file` is the file this process's standard output or error writes to.
fn is_standard_stream(file: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        use std::os::unix::fs::MetadataExt;
        let same = |fd: std::os::fd::BorrowedFd<'_>| {
            let stream = fd.try_clone_to_owned().ok().map(std::fs::File::from).and_then(|f| f.metadata().ok());
            stream.is_some_and(|m| m.dev() == file.dev() && m.ino() == file.ino())
        };
        same(std::io::stdout().as_fd()) || same(std::io::stderr().as_fd())
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        false
    }
}

/// Whether the file at `path` is empty, or the figures `bench --json` writes: a JSON list of
/// jobs, each with its job name, members and backends.
fn is_bench_json(path: &std::path::Path) -> bool {
    let Ok(text) = qbat_gpu::output::read_text_bounded(path, qbat_gpu::output::SMALL_FILE_LIMIT) else {
        return false;
    };
    if text.is_empty() {
        return true;
    }
    let Ok(serde_json::Value::Array(jobs)) = serde_json::from_str::<serde_json::Value>(&text) else {
        return false;
    };
    jobs.iter().all(|j| j["job"].is_string() && j["members"].is_u64() && j["backends"].is_array())
}
