//! `--out` paths a command cannot use (a file behind a trailing slash, a directory that cannot
//! be written, a path too long for the names qbat-gpu builds from it): refused before any
//! work, exit 2 naming `--out`, nothing left beside it.

use crate::common::{bin, listing, outcome_within};
use std::path::{Path, PathBuf};
use std::time::Duration;

const SMALL: &str = r#"
model = "bloch-charger"
[params]
wb = 1.0
j = 1.0
gamma = 0.05
[time]
dt = 0.01
t_end = 1.0
samples = 11
[ensemble]
size = 4
seed = 1
"#;

/// `run SMALL --out OUT` (then `extra`) on the CPU engine: (exit code, stderr).
fn run(dir: &Path, out: &Path, extra: &[&str]) -> (i32, String) {
    let cfg = crate::common::config(dir, SMALL);
    outcome_within(
        bin().arg("run").arg(cfg).args(["--backend", "cpu", "--no-progress", "--no-plots", "--verify", "0", "--out"]).arg(out).args(extra),
        Duration::from_secs(120),
    )
}

/// Exit 2, one line naming `--out`, no panic.
fn assert_refused((code, stderr): (i32, String), case: &str) {
    assert_eq!(code, 2, "{case}: exit {code}: {stderr}");
    assert!(stderr.starts_with("error: --out: ") && stderr.trim_end().lines().count() == 1, "{case}: {stderr}");
}

/// Two shards of the small run, `d/s0` and `d/s1`, for `merge`.
fn two_shards(d: &Path) -> Vec<PathBuf> {
    let shards: Vec<PathBuf> = (0..2).map(|k| d.join(format!("s{k}"))).collect();
    for (k, s) in shards.iter().enumerate() {
        let (code, stderr) = run(d, s, &["--shard", &format!("{k}/2")]);
        assert_eq!(code, 0, "{stderr}");
    }
    shards
}

/// `run`, `merge` of `shards` and `bench --scaling`, each into `d/name`, refused (`assert_refused`).
fn assert_every_writer_refuses(d: &Path, shards: &[PathBuf], name: &str) {
    let out = d.join(name);
    assert_refused(run(d, &out, &[]), &format!("run --out {name}"));
    let merge = bin().arg("merge").args(shards).arg("--out").arg(&out).arg("--no-plots").output().unwrap();
    assert_refused((merge.status.code().unwrap_or(-1), String::from_utf8_lossy(&merge.stderr).into()), &format!("merge --out {name}"));
    let bench = bin().args(["bench", "--backend", "cpu", "--scaling", "--scaling-max-members", "100", "--out"]).arg(&out).output().unwrap();
    assert_refused((bench.status.code().unwrap_or(-1), String::from_utf8_lossy(&bench.stderr).into()), &format!("bench --scaling --out {name}"));
}

/// The staging names qbat-gpu makes (`.NAME.partial...`) found in `dir`.
fn leftovers(dir: &Path) -> Vec<String> {
    listing(dir).into_iter().filter(|n| n.contains(".partial")).collect()
}

/// A file, a socket or a symbolic link loop spelled with a trailing slash is not a directory
/// (the lookup says ENOTDIR or ELOOP, not that nothing is there): run, merge and
/// `bench --scaling` refuse it before their work, and leave no staging directory.
#[cfg(unix)]
#[test]
fn a_non_directory_behind_a_trailing_slash_is_refused_before_the_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("userfile"), "hello\n").unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(d.join("sock")).unwrap();
    std::os::unix::fs::symlink("loopb", d.join("loopa")).unwrap();
    std::os::unix::fs::symlink("loopa", d.join("loopb")).unwrap();
    let shards = two_shards(d);
    let before = listing(d);
    for name in ["userfile/", "sock/", "loopa/", "userfile/x"] {
        assert_every_writer_refuses(d, &shards, name);
        assert_eq!(listing(d), before, "--out {name}: something was left beside it");
        assert_eq!(std::fs::read_to_string(d.join("userfile")).unwrap(), "hello\n");
    }
    assert!(leftovers(d).is_empty());
}

/// `d/rodir`, mode 555 and owned by the user the commands run as (`nobody` under root, which
/// `as_user` runs them as).
#[cfg(target_os = "linux")]
fn read_only_dir(d: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let rodir = d.join("rodir");
    std::fs::create_dir(&rodir).unwrap();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(&rodir, Some(65534), Some(65534)).unwrap();
    }
    std::fs::set_permissions(&rodir, std::fs::Permissions::from_mode(0o555)).unwrap();
    rodir
}

/// An existing `--out` that cannot be written into (mode 555 as an ordinary user, a read-only
/// mount) is refused before the run (exit 2 naming `--out`), not at the commit after it with
/// exit 1 and a `.NAME.partial` left; `analyze` of an output on a read-only mount is refused
/// before its work, naming the directory. Root ignores mode bits, so as root the mode-555 run
/// is made as `nobody` through `setpriv`; the mount is made in a mount namespace of its own
/// (`unshare -rm`). Each part is skipped, with a note, where that cannot be done here.
#[cfg(target_os = "linux")]
#[test]
fn an_out_directory_that_cannot_be_written_into_is_refused_before_the_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // mode 555, owned by the user who runs it
    read_only_dir(d);
    let script = r#"exec "$0" run "$1" --backend cpu --no-progress --no-plots --verify 0 --out rodir"#;
    if let Some(mut c) = as_user(d, script) {
        let o = c.output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_refused((o.status.code().unwrap_or(-1), stderr.clone()), "--out a mode-555 directory");
        assert!(stderr.contains("cannot write in"), "{stderr}");
        assert!(leftovers(d).is_empty(), "{:?}", listing(d));
    }
    let binary = env!("CARGO_BIN_EXE_qbat-gpu");
    let cfg = crate::common::config(d, SMALL);
    let args = ["run", cfg.to_str().unwrap(), "--backend", "cpu", "--no-progress", "--no-plots", "--verify", "0", "--out"];
    let outcome = |c: &mut std::process::Command| {
        let o = c.env("XDG_RUNTIME_DIR", d).env_remove("QBAT_INJECT_FAULT").output().unwrap();
        (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    // a read-only mount: a new --out, and an output analysed there
    if !std::process::Command::new("unshare").args(["-rm", "true"]).status().is_ok_and(|s| s.success()) {
        eprintln!("note: no unprivileged mount namespace here (unshare -rm); the read-only mount was not tried");
        return;
    }
    let (mp, done) = (d.join("mp"), d.join("done"));
    std::fs::create_dir(&mp).unwrap();
    let (code, stderr) = run(d, &done, &[]);
    assert_eq!(code, 0, "{stderr}");
    let before = crate::common::listing(&done);
    let in_ro_mount = |source: Option<&Path>, cmd: &mut std::process::Command| {
        let script = match source {
            None => r#"mount -t tmpfs -o ro none "$1" && shift && exec "$@""#,
            Some(_) => r#"mount --bind "$0" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@""#,
        };
        let mut c = std::process::Command::new("unshare");
        c.args(["-rm", "sh", "-c", script]).arg(source.unwrap_or(Path::new("sh"))).arg(&mp).arg(cmd.get_program()).args(cmd.get_args());
        outcome(&mut c)
    };
    let mut c = std::process::Command::new(binary);
    c.args(args).arg(&mp);
    let (code, stderr) = in_ro_mount(None, &mut c);
    assert_refused((code, stderr.clone()), "--out a read-only mount");
    assert!(stderr.contains("cannot write in"), "{stderr}");
    assert!(leftovers(d).is_empty(), "{:?}", listing(d));
    let mut c = std::process::Command::new(binary);
    c.arg("analyze").arg(&mp);
    let (code, stderr) = in_ro_mount(Some(&done), &mut c);
    assert_eq!(code, 2, "analyze on a read-only mount: {stderr}");
    assert!(stderr.starts_with(&format!("error: {}: cannot write in", mp.display())) && stderr.trim_end().lines().count() == 1, "{stderr}");
    assert_eq!(crate::common::listing(&done), before);
}

/// A new directory `name_len` bytes long whose absolute path is `total` bytes, in directories
/// made under `root`; returns (its parent, it).
fn deep_out(root: &Path, total: usize, name_len: usize) -> (PathBuf, PathBuf) {
    std::fs::create_dir(root).unwrap();
    let mut d = std::fs::canonicalize(root).unwrap();
    while d.as_os_str().len() + name_len + 203 < total {
        d.push("d".repeat(100));
    }
    d.push("p".repeat(total - d.as_os_str().len() - 2 - name_len));
    std::fs::create_dir_all(&d).unwrap();
    let out = d.join("f".repeat(name_len));
    assert_eq!(out.as_os_str().len(), total);
    (d, out)
}

/// A long absolute `--out` (its name within the 215-byte limit, the path under PATH_MAX) is
/// refused before the run where the names qbat-gpu builds from it would pass PATH_MAX (4095
/// bytes): it ran, then failed at the commit with exit 1, and left a `.NAME.partial` (one
/// `.NAME.partial.new-PID` more each time, for a longer name). The longest path accepted runs
/// to the end, its output whole, and nothing left beside it.
#[cfg(target_os = "linux")]
#[test]
fn an_out_path_too_long_for_the_names_built_from_it_is_refused_before_the_run() {
    let limit = qbat_gpu::output::out_path::PATH_MAX - qbat_gpu::output::out_path::PATH_ROOM;
    let dir = tempfile::tempdir().unwrap();
    for (k, (total, name_len)) in [(4054, 180), (4054, 200), (limit + 1, 180)].into_iter().enumerate() {
        let (parent, out) = deep_out(&dir.path().join(format!("r{k}")), total, name_len);
        let (code, stderr) = run(dir.path(), &out, &[]);
        assert_refused((code, stderr.clone()), &format!("a {total}-byte --out"));
        assert!(stderr.contains(&format!("{total} bytes")), "{stderr}");
        assert!(listing(&parent).is_empty(), "{total} bytes: {:?}", listing(&parent));
    }
    let (parent, out) = deep_out(&dir.path().join("ok"), limit, 180);
    let (code, stderr) = run(dir.path(), &out, &[]);
    assert_eq!(code, 0, "a {limit}-byte --out: {stderr}");
    qbat_gpu::output::manifest::Manifest::read(&out).unwrap().unwrap().verify(&out).unwrap();
    assert_eq!(listing(&parent), vec!["f".repeat(180)]);
}

/// `sh -c script` as an ordinary user: as `nobody` through `setpriv` where this is root (which
/// ignores mode bits), with `$0` a copy of the binary in `d` (made world-readable, with
/// SMALL as `$1`); None, with a note, where another user cannot run it here.
#[cfg(target_os = "linux")]
fn as_user(d: &Path, script: &str) -> Option<std::process::Command> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
    let cfg = crate::common::config(d, SMALL);
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let binary = d.join("qbat-gpu");
    std::fs::copy(env!("CARGO_BIN_EXE_qbat-gpu"), &binary).unwrap();
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).unwrap();
    let shell = |script: &str| {
        let mut c = match unsafe { libc::geteuid() } == 0 {
            true => {
                let mut c = std::process::Command::new("setpriv");
                c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", "sh"]);
                c
            }
            false => std::process::Command::new("sh"),
        };
        c.arg("-c").arg(script).arg(&binary).arg(&cfg).current_dir(d).env("XDG_RUNTIME_DIR", d).env_remove("QBAT_INJECT_FAULT");
        c
    };
    if !shell("exec \"$0\" --version").output().is_ok_and(|o| o.status.success()) {
        eprintln!("note: cannot run the binary as another user here; skipped");
        return None;
    }
    Some(shell(script))
}

/// Under `umask 0777` the directories qbat-gpu makes for itself get owner rwx (they came out
/// mode 000: the run failed with exit 1 and left an empty mode-000
/// `.NAME.partial.new-PID.gone-PID` for good), and a run and an analysis of it finish; the
/// umask's word on group and others stands (the output is no one else's).
#[cfg(target_os = "linux")]
#[test]
fn a_run_under_umask_0777_finishes_and_leaves_nothing_else() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let script = r#"umask 0777 && "$0" run "$1" --backend cpu --no-progress --no-plots --verify 0 --out um && exec "$0" analyze um --no-plots"#;
    let Some(mut c) = as_user(d, script) else { return };
    let o = c.output().unwrap();
    assert!(o.status.success(), "exit {:?}: {}", o.status.code(), String::from_utf8_lossy(&o.stderr));
    let out = d.join("um");
    qbat_gpu::output::manifest::Manifest::read(&out).unwrap().unwrap().verify(&out).unwrap();
    assert!(out.join("analysis.csv").is_file());
    assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(listing(d), ["c.toml", "qbat-gpu", "um"]);
}

/// A parent one may write in but not read (mode -wx, a drop box): the run finishes, exit 0, its
/// output whole. (The directory's sync after the commit needs to open it for reading; it failed
/// the run with exit 1 after the output was in place, and advised a resume that was refused.)
#[cfg(target_os = "linux")]
#[test]
fn a_run_into_a_parent_that_cannot_be_read_finishes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let drop_box = d.join("box");
    std::fs::create_dir(&drop_box).unwrap();
    let script = r#"chmod 0333 box && "$0" run "$1" --backend cpu --no-progress --no-plots --verify 0 --out box/out; code=$?; chmod 0755 box; exit $code"#;
    let Some(mut c) = as_user(d, script) else { return };
    // (the box is the user's: as nobody, made by root, it is handed over first)
    std::fs::set_permissions(&drop_box, std::fs::Permissions::from_mode(0o777)).unwrap();
    if unsafe { libc::geteuid() } == 0 {
        assert!(std::process::Command::new("chown").args(["65534:65534"]).arg(&drop_box).status().unwrap().success());
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "exit {:?}: {}", o.status.code(), String::from_utf8_lossy(&o.stderr));
    let out = drop_box.join("out");
    qbat_gpu::output::manifest::Manifest::read(&out).unwrap().unwrap().verify(&out).unwrap();
    assert_eq!(listing(&drop_box), ["out"]);
}

/// The check that an existing `--out` takes new entries makes none: a refused run and a refused
/// `analyze` of a user's directory leave it as it was, its modification time too. (The check
/// made and removed a hidden directory of `analyze`'s names, which another process's recovery
/// took for a dead analysis's, and which changed a directory the command then refused.)
#[test]
fn the_write_check_of_an_existing_out_makes_nothing_there() {
    let dir = tempfile::tempdir().unwrap();
    let mine = dir.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "a user's notes\n").unwrap();
    let stamp = || std::fs::metadata(&mine).unwrap().modified().unwrap();
    let before = stamp();
    std::thread::sleep(Duration::from_millis(20));
    assert_refused(run(dir.path(), &mine, &[]), "a user's directory without --force");
    let o = bin().arg("analyze").arg(&mine).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(listing(&mine), ["notes.txt"]);
    assert_eq!(stamp(), before, "the refused commands changed the directory");
}

/// A resume whose existing `--out` cannot be written into (mode 555 as an ordinary user) is
/// refused before any block runs (exit 2, one line naming `--out`), its checkpoint left byte
/// for byte, and resumes to the end once the directory is writable again. (It integrated the
/// remaining blocks and failed only at the commit, with exit 1.)
#[cfg(target_os = "linux")]
#[test]
fn a_resume_into_an_out_that_cannot_be_written_into_is_refused_before_the_work() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("out");
    std::fs::create_dir(&out).unwrap();
    let run_script = r#"exec "$0" run b.toml --backend cpu --no-progress --no-plots --block-members 10 --out out"#;
    let Some(mut first) = as_user(d, run_script) else { return };
    let cfg = crate::common::config(d, crate::integrity::BLOCH);
    std::fs::rename(&cfg, d.join("b.toml")).unwrap();
    std::fs::set_permissions(d.join("b.toml"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let owner = |p: &Path| {
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
        }
    };
    owner(&out);
    let staging = d.join(".out.partial");
    let mut child = first.env("QBAT_INJECT_FAULT", "slow-blocks=250").stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    crate::common::kill_after_blocks(&mut child, &staging, 2);
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o555)).unwrap();
    let kept = crate::resume_staging::snapshot(&staging);
    let resume_script = r#"exec "$0" run b.toml --backend cpu --no-progress --no-plots --block-members 10 --resume out"#;
    let o = as_user(d, resume_script).unwrap().output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_refused((o.status.code().unwrap_or(-1), stderr.clone()), "--resume into a mode-555 --out");
    assert!(stderr.contains("cannot write in"), "{stderr}");
    assert_eq!(crate::resume_staging::snapshot(&staging), kept, "the refused resume changed the checkpoint");
    assert!(listing(&out).is_empty());
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = as_user(d, resume_script).unwrap().output().unwrap();
    assert!(o.status.success(), "exit {:?}: {}", o.status.code(), String::from_utf8_lossy(&o.stderr));
    qbat_gpu::output::manifest::Manifest::read(&out).unwrap().unwrap().verify(&out).unwrap();
    assert!(leftovers(d).is_empty(), "{:?}", listing(d));
}

/// `bench --json FILE` in a folder that cannot be written into (mode 555 as an ordinary user)
/// is refused before the jobs run (exit 2 naming `--json`), not after them with exit 1.
#[cfg(target_os = "linux")]
#[test]
fn a_bench_json_in_a_folder_that_cannot_be_written_into_is_refused_before_the_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rodir = read_only_dir(d);
    let script = r#"exec "$0" bench bloch-1k --backend cpu --members 2 --repeat 1 --json rodir/bench.json"#;
    let Some(mut c) = as_user(d, script) else { return };
    let o = c.output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("error: --json: cannot write in") && stderr.trim_end().lines().count() == 1, "{stderr}");
    assert!(o.stdout.is_empty(), "a job ran: {}", String::from_utf8_lossy(&o.stdout));
    assert!(listing(&rodir).is_empty());
}

/// A new `--out` spelled with a last component `.` (`new/.`, `new/./`) names nothing the
/// system can rename an output to: run, merge and `bench --scaling` did the whole work and
/// failed at the commit (exit 1, a staging directory left); refused before it now. An
/// existing directory so spelled is used as before.
#[cfg(unix)]
#[test]
fn a_new_out_spelled_through_a_dot_is_refused_before_the_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let shards = two_shards(d);
    let before = listing(d);
    for name in ["new/.", "new/./"] {
        assert_every_writer_refuses(d, &shards, name);
        assert_eq!(listing(d), before, "--out {name}: something was left beside it");
    }
    std::fs::create_dir(d.join("there")).unwrap();
    let (code, stderr) = run(d, &d.join("there/."), &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(d.join("there/run.json").is_file());
}

/// `QBAT_PIPELINE_CACHE` set inside the run's new `--out` (by its name, or through a link), or
/// inside its staging directory: the GPU's kernels wrote the cache there as they were built,
/// and the commit refused the directory after the whole run. Refused before the work now, by
/// `run` and `bench --scaling`, on any backend, naming the variable that set it; a cache beside
/// `--out` is taken, and so is one inside an existing output that `--force` replaces.
#[cfg(unix)]
#[test]
fn a_pipeline_cache_inside_a_new_out_is_refused_before_the_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = crate::common::config(d, SMALL);
    std::os::unix::fs::symlink(d, d.join("link")).unwrap();
    let out = d.join("o");
    let run = |cache: &Path, extra: &[&str]| {
        let mut c = bin();
        c.arg("run").arg(&cfg).args(["--backend", "cpu", "--no-progress", "--no-plots", "--out"]).arg(&out).args(extra).env("QBAT_PIPELINE_CACHE", cache);
        outcome_within(&mut c, Duration::from_secs(120))
    };
    for cache in [out.clone(), out.join("pipelines"), d.join("link/o/deeper/pipelines")] {
        let mut bench = bin();
        bench.args(["bench", "--backend", "cpu", "--scaling", "--scaling-max-members", "100", "--out"]).arg(&out).env("QBAT_PIPELINE_CACHE", &cache);
        for (what, (code, stderr)) in [("run", run(&cache, &[])), ("bench --scaling", outcome_within(&mut bench, Duration::from_secs(120)))] {
            assert_refused((code, stderr.clone()), &format!("{what}, cache {}", cache.display()));
            assert!(stderr.contains("(from QBAT_PIPELINE_CACHE)"), "{stderr}");
            assert!(!out.exists() && leftovers(d).is_empty(), "{what}: {:?}", listing(d));
        }
    }
    // inside the run's staging directory
    let (code, stderr) = run(&d.join(".o.partial/pipelines"), &[]);
    assert_refused((code, stderr.clone()), "a cache inside .o.partial");
    assert!(!out.exists() && leftovers(d).is_empty(), "{:?}", listing(d));
    // the user's cache directory, from HOME
    let home = d.join("h");
    std::fs::create_dir(&home).unwrap();
    let o = bin()
        .arg("run")
        .arg(&cfg)
        .args(["--backend", "cpu", "--no-progress", "--no-plots", "--out"])
        .arg(home.join(".cache"))
        .env_remove("QBAT_PIPELINE_CACHE")
        .env_remove("XDG_CACHE_HOME")
        .env("HOME", &home)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_refused((o.status.code().unwrap_or(-1), stderr.to_string()), "HOME's cache");
    assert!(stderr.contains("qbat-gpu (from HOME)"), "{stderr}");
    // beside it, the run goes ahead; an existing output replaced with --force keeps the cache
    let (code, stderr) = run(&d.join("cache"), &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(out.join("run.json").is_file());
    std::fs::create_dir(out.join("pipelines")).unwrap();
    let (code, stderr) = run(&out.join("pipelines"), &["--force"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(out.join("pipelines").is_dir() && out.join("run.json").is_file());
}

/// The default output of `run CONFIG` is `<CONFIG stem>-out` with the stem's bytes as they are:
/// two configs whose names differ only in bytes that are not UTF-8 wrote one `a\u{FFFD}-out`,
/// the second replacing the first without a word.
#[test]
fn configs_whose_names_differ_in_bytes_that_are_not_utf8_get_their_own_outputs() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let text = "model = \"bloch-charger\"\n[time]\ndt = 0.01\nt_end = 0.1\nsamples = 3\n[ensemble]\nsize = 2\n";
    for (byte, size) in [(0xffu8, 2), (0xfe, 3)] {
        let bytes = [b'a', byte, b'.', b't', b'o', b'm', b'l'];
        let name = std::ffi::OsStr::from_bytes(&bytes);
        std::fs::write(dir.path().join(name), text.replace("size = 2", &format!("size = {size}"))).unwrap();
        let o = bin().current_dir(dir.path()).arg("run").arg(name).args(["--backend", "cpu", "--no-progress", "--no-plots", "--verify", "0"]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    for (byte, size) in [(0xffu8, 2), (0xfe, 3)] {
        let bytes = [b'a', byte, b'-', b'o', b'u', b't'];
        let out = dir.path().join(std::ffi::OsStr::from_bytes(&bytes));
        let run: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
        assert_eq!(run["members"], size, "{}", out.display());
    }
}

/// The staging directory beside an output is named from the output's name byte for byte: the
/// runs into `a\xff-out` and `a\xfe-out` shared one `.a\u{FFFD}-out.partial`, so a run of the
/// second was refused for the first's interrupted run, and with `--force` discarded it.
#[test]
fn outputs_whose_names_differ_in_bytes_that_are_not_utf8_get_their_own_staging() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "model = \"bloch-charger\"\n[time]\ndt = 0.01\nt_end = 1.0\nsamples = 11\n[ensemble]\nsize = 60\n").unwrap();
    let named = |bytes: &[u8]| dir.path().join(std::ffi::OsStr::from_bytes(bytes));
    let run = |out: &Path, extra: &[&str]| {
        let mut c = bin();
        c.arg("run")
            .arg(&cfg)
            .args(["--backend", "cpu", "--no-progress", "--no-plots", "--verify", "0", "--block-members", "10", "--out"])
            .arg(out)
            .args(extra);
        c
    };
    // the first run, killed once two blocks are checkpointed
    let (first, first_staging) = (named(b"a\xff-out"), named(b".a\xff-out.partial"));
    let mut child =
        run(&first, &[]).env("QBAT_INJECT_FAULT", "slow-blocks=250").stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    crate::common::kill_after_blocks(&mut child, &first_staging, 2);
    // the second, into a name that differs in its one byte that is not UTF-8 (`--force`
    // replaces its own output's interrupted run, and only that)
    let second = named(b"a\xfe-out");
    let o = run(&second, &["--force"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(first_staging.join("checkpoint.json").is_file(), "the first run's staging directory went");
    let o = run(&first, &["--resume"]).arg(&first).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (out, resumed) in [(&first, true), (&second, false)] {
        let run: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
        assert_eq!(run["members"], 60, "{}", out.display());
        assert_eq!(run["notes"].to_string().contains("resumed from the checkpoint"), resumed, "{}", run["notes"]);
    }
}
