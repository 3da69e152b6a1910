//! A commit into an existing output killed at each of its steps (`QBAT_INJECT_FAULT`'s
//! `exit-mid-commit=K` for a `--force` merge, `exit-mid-added=K` for `analyze`): the next
//! command that takes the directory's lock finishes it or undoes it, so that the directory is
//! exactly the complete old output or the complete new one (against copies of clean outputs
//! made here), a user's file beside them is left byte for byte, and a reader refuses the
//! directory meanwhile with how to finish it. Names planted under the commits' hidden names
//! (links, forged manifests) are refused, and nothing outside the directory is read or touched.

use crate::common::{bin, ok};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const CONFIG: &str = r#"
model = "bloch-charger"
[params]
wb = 1.0
j = 1.0
gamma = 0.05
[initial]
random = "bloch"
[time]
dt = 0.02
t_end = 1.0
samples = 11
[ensemble]
size = 40
seed = SEED
[output]
measures = ["capacity_b", "ergotropy_b", "concurrence"]
"#;

const NOTES: &[u8] = b"a user's notes, not qbat-gpu's\n";

/// A finished run of the config of seed 3 into `tmp/out` (its path).
fn finished_run(tmp: &Path) -> PathBuf {
    let out = tmp.join("out");
    ok(&mut run_into(&seed_3_config(tmp), &out));
    out
}

/// The config of seed 3 written as `tmp/c.toml`.
fn seed_3_config(tmp: &Path) -> PathBuf {
    let cfg = tmp.join("c.toml");
    std::fs::write(&cfg, CONFIG.replace("SEED", "3")).unwrap();
    cfg
}

/// A run of `cfg` into `out` on the CPU, without plots or verify.
fn run_into(cfg: &Path, out: &Path) -> std::process::Command {
    let mut c = bin();
    c.arg("run").arg(cfg).args(["--backend", "cpu", "--no-progress", "--verify", "0", "--no-plots", "--out"]).arg(out);
    c
}

/// Every entry of the flat directory `dir` with its bytes (a subdirectory as `name/` with its
/// names), the manifest with the identities a commit records afterwards left out (a copy of
/// an output, or a commit finished by another process, has none or others).
fn state(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut all = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        let bytes = match e.file_type().unwrap() {
            t if t.is_dir() => crate::common::listing(&e.path()).join("\n").into_bytes(),
            t if t.is_symlink() => std::fs::read_link(e.path()).unwrap().to_string_lossy().into_owned().into_bytes(),
            _ => std::fs::read(e.path()).unwrap(),
        };
        let bytes = match name.as_str() {
            ".qbat-manifest.json" => {
                let mut m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                for f in m["files"].as_array_mut().unwrap() {
                    f.as_object_mut().unwrap().remove("identity");
                }
                serde_json::to_vec(&m).unwrap()
            }
            _ => bytes,
        };
        all.insert(if e.file_type().unwrap().is_dir() { format!("{name}/") } else { name }, bytes);
    }
    all
}

/// A copy of the flat output `from` as `to`, with a user's file beside its files.
fn copy_with_notes(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
    std::fs::write(to.join("notes.txt"), NOTES).unwrap();
}

/// The outputs the tests start from: two runs' shards (`a`: csv series, `b`: another seed, an
/// npy series: other files), and each merged into a clean output (`old`, `new`).
struct Fixture {
    tmp: tempfile::TempDir,
    a: [PathBuf; 2],
    b: [PathBuf; 2],
    old: PathBuf,
    new: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let shards = |tag: &str, seed: &str, format: &str| {
        let cfg = tmp.path().join(format!("{tag}.toml"));
        std::fs::write(&cfg, CONFIG.replace("SEED", seed)).unwrap();
        [0, 1].map(|k| {
            let out = tmp.path().join(format!("{tag}{k}"));
            let args = ["--backend", "cpu", "--no-progress", "--verify", "0", "--no-plots", "--format", format, "--shard"];
            ok(bin().arg("run").arg(&cfg).args(args).arg(format!("{k}/2")).arg("--out").arg(&out));
            out
        })
    };
    let (a, b) = (shards("a", "1", "csv"), shards("b", "2", "npy"));
    let (old, new) = (tmp.path().join("old"), tmp.path().join("new"));
    ok(bin().arg("merge").args(&a).arg("--out").arg(&old).arg("--no-plots"));
    ok(bin().arg("merge").args(&b).arg("--out").arg(&new).arg("--no-plots"));
    // a merge's output is the same bytes every time: the clean outputs to compare with
    let again = tmp.path().join("again");
    ok(bin().arg("merge").args(&b).arg("--out").arg(&again).arg("--no-plots"));
    assert_eq!(state(&again), state(&new), "a merge gave other bytes the second time");
    Fixture { tmp, a, b, old, new }
}

/// `state` of `dir` where it must be `reference` with the user's file beside it.
fn expect(dir: &Path, reference: &Path, what: &str) {
    let mut want = state(reference);
    want.insert("notes.txt".into(), NOTES.to_vec());
    let got = state(dir);
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{what}: the files differ");
    for (name, bytes) in &want {
        assert!(got[name] == *bytes, "{what}: {name} differs");
    }
}

/// `c` with the fault `fault`: killed by it (137), or done (0) where K is past the commit's
/// last step. Whether it was killed.
fn killed(c: &mut std::process::Command, fault: &str) -> bool {
    let o = c.env("QBAT_INJECT_FAULT", fault).output().unwrap();
    match o.status.code() {
        Some(137) => true,
        Some(0) => false,
        code => panic!("{fault}: exit {code:?}: {}", String::from_utf8_lossy(&o.stderr)),
    }
}

/// A command that takes DIR's lock, then refuses its option before anything else: it
/// finishes or undoes a commit cut short there, and changes nothing else. Its stderr.
fn recover_only(dir: &Path) -> String {
    let o = bin().arg("analyze").arg(dir).args(["--max-members", "0"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert!(errors.len() == 1 && errors[0].contains("--max-members"), "{stderr}");
    stderr
}

/// A reader (a merge of DIR) refuses it, naming it and how to finish its commit.
fn reader_refuses(dir: &Path, other: &Path, elsewhere: &Path) {
    let o = bin().arg("merge").arg(dir).arg(other).arg("--out").arg(elsewhere).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cut short") && stderr.contains("qbat-gpu analyze") && stderr.contains(&dir.display().to_string()), "{stderr}");
    assert!(!elsewhere.exists());
}

/// A `--force` merge over an output, killed after each of its steps (each new file put in
/// under a hidden name, the manifest's last; each old file removed; each renamed into place):
/// the next command undoes it where the manifest was not yet in (the old output, exactly),
/// else finishes it (the new output, exactly); the user's file stays. A `--force` merge and
/// an `analyze` after the kill do the same, then their own work.
#[test]
fn a_force_commit_killed_at_any_step_is_finished_or_undone() {
    let f = fixture();
    let new_files = qbat_gpu::output::manifest::Manifest::read(&f.new).unwrap().unwrap().files.len() as u64;
    // the analyses of the clean outputs, for the analyze after a kill
    let analyzed = [&f.old, &f.new].map(|d| {
        let to = f.tmp.path().join(format!("{}-analyzed", d.file_name().unwrap().to_string_lossy()));
        copy_with_notes(d, &to);
        std::fs::remove_file(to.join("notes.txt")).unwrap();
        ok(bin().arg("analyze").arg(&to).arg("--no-plots"));
        to
    });
    let force = |dir: &Path| {
        let mut c = bin();
        c.arg("merge").args(&f.b).arg("--out").arg(dir).args(["--force", "--no-plots"]);
        c
    };
    let old_files = qbat_gpu::output::manifest::Manifest::read(&f.old).unwrap().unwrap().files.len() as u64;
    // the files placed, the old ones removed, the renames
    let steps = 2 * (new_files + 1) + old_files;
    let mut k = 0;
    loop {
        let fault = format!("exit-mid-commit={k}");
        let dir = f.tmp.path().join(format!("k{k}"));
        copy_with_notes(&f.old, &dir);
        if !killed(&mut force(&dir), &fault) {
            break;
        }
        // the manifest is in once the whole new set is: from there on, the new output (after
        // the last step, with nothing left to do)
        let finished = k > new_files;
        let (reference, what) = if finished { (&f.new, "new") } else { (&f.old, "old") };
        let note = match finished {
            _ if k == 0 || k == steps => None,
            true => Some("note: finished the interrupted commit into"),
            false => Some("note: undid the interrupted commit into"),
        };
        if finished && k < steps {
            reader_refuses(&dir, &f.b[1], &f.tmp.path().join("nowhere"));
        }
        let said = recover_only(&dir);
        assert_eq!(said.contains("note:"), note.is_some(), "{fault}: {said}");
        assert!(note.is_none_or(|n| said.contains(n)), "{fault}: {said}");
        expect(&dir, reference, &format!("{fault}, then the next command ({what})"));
        // the commands a user would run next
        let dir = f.tmp.path().join(format!("k{k}-next"));
        copy_with_notes(&f.old, &dir);
        assert!(killed(&mut force(&dir), &fault));
        if k % 2 == 0 {
            ok(&mut force(&dir));
            expect(&dir, &f.new, &format!("{fault}, then the merge again"));
        } else {
            let said = ok(bin().arg("analyze").arg(&dir).arg("--no-plots"));
            assert!(note.is_none_or(|n| said.contains(n)), "{fault}: {said}");
            expect(&dir, &analyzed[finished as usize], &format!("{fault}, then analyze"));
        }
        k += 1;
    }
    assert_eq!(k, steps + 1, "the commit took another count of steps");
}

/// `analyze` replacing an earlier analysis, killed after each of its steps (its manifest
/// written aside; each old file renamed aside and each new one into place; the manifest last):
/// the next command removes what it left where its manifest was not yet written (the output
/// as it was), else finishes its moves (the output with the new analysis); a reader refuses
/// it meanwhile; the user's file stays.
#[test]
fn an_analyze_killed_at_any_step_is_finished_or_undone() {
    // the manifest aside; analysis.csv's old one aside and it in; the new pair's png and svg
    // in; the manifest
    const STEPS: u64 = 6;
    let f = fixture();
    // the output with an analysis, and with the one the killed analyze writes
    let before = f.tmp.path().join("before");
    copy_with_notes(&f.old, &before);
    std::fs::remove_file(before.join("notes.txt")).unwrap();
    ok(bin().arg("analyze").arg(&before));
    let pairs = ["--pairs", "ergotropy_b:concurrence"];
    let after = f.tmp.path().join("after");
    copy_with_notes(&before, &after);
    std::fs::remove_file(after.join("notes.txt")).unwrap();
    ok(bin().arg("analyze").arg(&after).args(pairs));
    let mut k = 0;
    loop {
        let fault = format!("exit-mid-added={k}");
        let dir = f.tmp.path().join(format!("k{k}"));
        copy_with_notes(&before, &dir);
        let analyze = |dir: &Path| {
            let mut c = bin();
            c.arg("analyze").arg(dir).args(pairs);
            c
        };
        if !killed(&mut analyze(&dir), &fault) {
            break;
        }
        // its manifest aside marks the whole set written; after its last step (the manifest
        // in place) only the directory aside is left, with the old files in it
        let finished = k >= 1;
        let marked = finished && k < STEPS;
        if marked {
            reader_refuses(&dir, &f.a[1], &f.tmp.path().join("nowhere"));
        }
        let said = recover_only(&dir);
        let note = match marked {
            true => "note: finished the interrupted analyze of",
            false => "note: removed the files an interrupted analyze of",
        };
        assert!(said.contains(note), "{fault}: {said}");
        expect(&dir, if finished { &after } else { &before }, &format!("{fault}, then the next command"));
        // the commands a user would run next: the analysis again, or a --force merge over it
        let dir = f.tmp.path().join(format!("k{k}-next"));
        copy_with_notes(&before, &dir);
        assert!(killed(&mut analyze(&dir), &fault));
        if k % 2 == 0 {
            assert!(ok(&mut analyze(&dir)).contains(note));
            expect(&dir, &after, &format!("{fault}, then analyze again"));
        } else {
            let said = ok(bin().arg("merge").args(&f.b).arg("--out").arg(&dir).args(["--force", "--no-plots"]));
            assert!(said.contains(note), "{fault}: {said}");
            expect(&dir, &f.new, &format!("{fault}, then a --force merge"));
        }
        k += 1;
    }
    assert_eq!(k, STEPS + 1, "the commit took another count of steps");
}

/// What is planted under the commits' hidden names (links out of the directory, a forged
/// manifest naming a file elsewhere, a file that is not what its manifest says) is refused
/// with one line naming it (exit 2), by the commands that would finish or undo a commit;
/// nothing outside the directory is read through it or touched, and the directory is left
/// as it was.
#[cfg(unix)]
#[test]
fn what_is_planted_under_the_hidden_names_is_refused() {
    use std::os::unix::fs::symlink;
    let f = fixture();
    let outside = f.tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), b"secret").unwrap();
    let forged = |files: serde_json::Value| serde_json::to_vec(&serde_json::json!({ "files": files })).unwrap();
    let run_json = std::fs::read(f.old.join("run.json")).unwrap();
    let listed = serde_json::json!([{"name": "run.json", "bytes": run_json.len(), "blake3": blake3::hash(b"other").to_hex().to_string()}]);
    std::fs::write(outside.join(".qbat-manifest.json"), forged(listed.clone())).unwrap();
    let outside_before = state(&outside);
    type Plant<'a> = Box<dyn Fn(&Path) + 'a>;
    let cases: Vec<(&str, &str, Plant)> = vec![
        (
            "an incoming link",
            ".run.json.incoming-77",
            Box::new(|d: &Path| symlink(f.tmp.path().join("outside/secret.txt"), d.join(".run.json.incoming-77")).unwrap()),
        ),
        (
            "an incoming manifest that is a link",
            "..qbat-manifest.json.incoming-77",
            Box::new(|d: &Path| symlink(f.tmp.path().join("outside/.qbat-manifest.json"), d.join("..qbat-manifest.json.incoming-77")).unwrap()),
        ),
        (
            "an incoming manifest naming a file elsewhere",
            "..qbat-manifest.json.incoming-77",
            Box::new(move |d: &Path| {
                std::fs::write(
                    d.join("..qbat-manifest.json.incoming-77"),
                    forged(serde_json::json!([{"name": "../outside/secret.txt", "bytes": 6, "blake3": "00"}])),
                )
                .unwrap()
            }),
        ),
        (
            "an incoming file not as its manifest lists it",
            ".run.json.incoming-77",
            Box::new(move |d: &Path| {
                std::fs::write(d.join("..qbat-manifest.json.incoming-77"), forged(listed.clone())).unwrap();
                std::fs::write(d.join(".run.json.incoming-77"), b"planted").unwrap();
            }),
        ),
        (
            "an added directory that is a link",
            ".qbat-added-7-0",
            Box::new(|d: &Path| symlink(f.tmp.path().join("outside"), d.join(".qbat-added-7-0")).unwrap()),
        ),
        (
            "a link in an added directory",
            ".qbat-added-7-0/analysis.csv",
            Box::new(|d: &Path| {
                std::fs::create_dir(d.join(".qbat-added-7-0")).unwrap();
                symlink(f.tmp.path().join("outside/secret.txt"), d.join(".qbat-added-7-0/analysis.csv")).unwrap();
            }),
        ),
        ("a directory in an added directory", ".qbat-added-7-0/plots", Box::new(|d: &Path| std::fs::create_dir_all(d.join(".qbat-added-7-0/plots")).unwrap())),
        (
            "an added file not as its manifest lists it",
            ".qbat-added-7-0/run.json",
            Box::new(|d: &Path| {
                std::fs::create_dir(d.join(".qbat-added-7-0")).unwrap();
                std::fs::copy(f.tmp.path().join("outside/.qbat-manifest.json"), d.join(".qbat-added-7-0/.qbat-manifest.json")).unwrap();
                std::fs::write(d.join(".qbat-added-7-0/run.json"), b"planted").unwrap();
            }),
        ),
    ];
    for (i, (what, named, plant)) in cases.iter().enumerate() {
        let dir = f.tmp.path().join(format!("planted{i}"));
        copy_with_notes(&f.old, &dir);
        plant(&dir);
        let planted = state(&dir);
        for next in ["analyze", "merge"] {
            let mut c = bin();
            match next {
                "analyze" => c.arg("analyze").arg(&dir),
                _ => c.arg("merge").args(&f.b).arg("--out").arg(&dir).args(["--force", "--no-plots"]),
            };
            let o = c.output().unwrap();
            let stderr = String::from_utf8_lossy(&o.stderr);
            let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
            assert_eq!(o.status.code(), Some(2), "{what}, {next}: {stderr}");
            assert!(errors.len() == 1 && errors[0].contains(&dir.join(named).display().to_string()), "{what}, {next}: {stderr}");
            assert!(!stderr.contains("panicked"), "{what}, {next}: {stderr}");
            assert!(state(&dir) == planted, "{what}, {next}: the directory changed");
            assert!(state(&outside) == outside_before, "{what}, {next}: something outside changed");
        }
    }
}

/// Files under names no commit writes are a user's, left as they are: a process id or count
/// with a leading zero (`.run.json.incoming-077`, `.qbat-added-07-0`, `.qbat-added-7-01`;
/// qbat-gpu writes its numbers without one).
#[test]
fn files_under_names_no_commit_writes_are_not_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let out = finished_run(tmp.path());
    for planted in [".run.json.incoming-077", "..qbat-manifest.json.incoming-077", ".qbat-added-07-0/notes.txt", ".qbat-added-7-01/notes.txt"] {
        let dir = tmp.path().join("leading-zero");
        let _ = std::fs::remove_dir_all(&dir);
        copy_with_notes(&out, &dir);
        let path = dir.join(planted);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, NOTES).unwrap();
        let before = state(&dir);
        let said = recover_only(&dir);
        assert!(!said.contains("note:"), "{planted}: {said}");
        assert!(state(&dir) == before, "{planted}: the directory changed");
        assert_eq!(std::fs::read(&path).unwrap(), NOTES, "{planted}");
    }
}

/// Beside a commit whose manifest is in (so that every file it put in is listed there), a
/// hidden file of its process that the manifest does not list is a user's: refused, naming
/// it, and nothing is changed.
#[test]
fn a_file_the_finished_commit_does_not_list_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, stray) = stray_beside_a_finished_commit(tmp.path());
    let before = state(&dir);
    let o = bin().arg("analyze").arg(&dir).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(errors.len() == 1 && errors[0].contains(&stray.display().to_string()), "{stderr}");
    assert!(state(&dir) == before, "the directory changed: {stderr}");
}

/// A `--force` run into an output with a commit cut short there finishes or undoes it before
/// its own work, so that what stands in the way (here a file of the dead commit's hidden names
/// that its manifest does not list) is said before any member is integrated: nothing is
/// staged beside the output, nothing printed on stdout, the directory unchanged.
#[test]
fn a_force_run_says_what_a_commit_cut_short_left_before_its_work() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, stray) = stray_beside_a_finished_commit(tmp.path());
    let before = state(&dir);
    let o = run_into(&seed_3_config(tmp.path()), &dir).arg("--force").output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(errors.len() == 1 && errors[0].contains(&stray.display().to_string()), "{stderr}");
    assert!(o.stdout.is_empty(), "the run worked before it refused: {}", String::from_utf8_lossy(&o.stdout));
    assert!(!tmp.path().join(".stray.partial").exists(), "the run staged its work before it refused");
    assert!(state(&dir) == before, "the directory changed: {stderr}");
}

/// A finished run copied to `tmp/stray` with a user's file, and there a commit of process 77
/// whose manifest is in (the old one again: nothing to change) beside a file of that process's
/// hidden names that its manifest does not list: the directory and that file.
fn stray_beside_a_finished_commit(tmp: &Path) -> (PathBuf, PathBuf) {
    let out = finished_run(tmp);
    let dir = tmp.join("stray");
    copy_with_notes(&out, &dir);
    std::fs::copy(dir.join(".qbat-manifest.json"), dir.join("..qbat-manifest.json.incoming-77")).unwrap();
    let stray = dir.join(".notes.txt.incoming-77");
    std::fs::write(&stray, NOTES).unwrap();
    (dir, stray)
}

/// `bench --scaling`, which replaces only its own outputs, refuses a run's output with a
/// finished commit cut short in it and changes nothing there: the commit is left for a command
/// that writes into the directory (it was finished first, then the directory refused).
#[test]
fn a_refused_bench_leaves_a_commit_cut_short_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let out = finished_run(tmp.path());
    std::fs::copy(out.join(".qbat-manifest.json"), out.join("..qbat-manifest.json.incoming-77")).unwrap();
    let before = state(&out);
    let o = bin().args(["bench", "--scaling", "--scaling-max-members", "100", "--backend", "cpu", "--out"]).arg(&out).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("note: finished") && state(&out) == before, "the refused bench changed the directory: {stderr}");
}

/// A directory without a manifest is no qbat-gpu output: a file there under a commit's hidden
/// name is a user's, unless the directory holds nothing else (a commit into an empty directory
/// cut short). A `--force` run into it, and `analyze` of it, refuse it, naming it, and leave
/// every file as it was; in an otherwise empty directory the same file is undone.
#[test]
fn hidden_names_in_a_directory_that_is_no_output_are_not_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = seed_3_config(tmp.path());
    let dir = tmp.path().join("mine");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), NOTES).unwrap();
    let planted = dir.join(".data.csv.incoming-123");
    std::fs::write(&planted, NOTES).unwrap();
    let before = state(&dir);
    let run = || run_into(&cfg, &dir).arg("--force").output().unwrap();
    for o in [run(), bin().arg("analyze").arg(&dir).output().unwrap()] {
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{stderr}");
        assert!(!stderr.contains("note: undid"), "{stderr}");
        assert!(state(&dir) == before, "the directory changed: {stderr}");
    }
    // alone in its directory, it is what a commit into the empty directory left: undone
    std::fs::remove_file(dir.join("notes.txt")).unwrap();
    let o = run();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("note: undid the interrupted commit"), "{stderr}");
    assert!(!planted.exists() && dir.join("run.json").is_file());
}

/// What Python's `qb.open` reads (`pyapi::verified_files`) waits for a commit into the output
/// that is still going on (its hidden files there, its lock held), and then reads the output
/// it committed: it took the live commit's files for one cut short, and refused the output.
#[test]
fn an_open_waits_for_a_commit_going_on() {
    let tmp = tempfile::tempdir().unwrap();
    let out = finished_run(tmp.path());
    let want = qbat_gpu::pyapi::verified_files(&out).unwrap();
    // a commit of this process under way: the lock held, its files in under their hidden names
    let commit = qbat_gpu::output::lock_dir(&out, qbat_gpu::output::WriteCancel::now()).unwrap().unwrap();
    let marker = out.join(format!("..qbat-manifest.json.incoming-{}", std::process::id()));
    std::fs::copy(out.join(".qbat-manifest.json"), &marker).unwrap();
    let open = std::thread::spawn({
        let out = out.clone();
        move || qbat_gpu::pyapi::verified_files(&out)
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!open.is_finished(), "the open did not wait for the commit: {:?}", open.join().unwrap());
    std::fs::remove_file(&marker).unwrap();
    drop(commit);
    assert_eq!(open.join().unwrap().unwrap(), want);
}
