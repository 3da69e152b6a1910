//! `bench`'s outputs and options: `--scaling --out` written as a qbat-gpu output (checked before
//! the curves run, a user's files never replaced, never written through a link, never waited on
//! as a FIFO), `--json` never waited on, `--members` named when a config cannot hold it; and
//! dicke's `--auto-fock` with a photon number beyond every cutoff.

use crate::common::{bin, run_config_text, wait_within};
use std::path::Path;

/// The smallest scaling curve on the CPU (100 members, then the n_fock curve).
const SCALING: [&str; 6] = ["bench", "--scaling", "--backend", "cpu", "--scaling-max-members", "100"];

/// (exit code, stdout, stderr) of the binary with `args` in `cwd`, killed after 60 s (exit -1).
fn qbat(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    let mut child = bin().current_dir(cwd).args(args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let read = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = read(Box::new(child.stdout.take().unwrap()));
    let err = read(Box::new(child.stderr.take().unwrap()));
    let status = wait_within(&mut child, std::time::Duration::from_secs(60));
    (status.and_then(|s| s.code()).unwrap_or(-1), out.join().unwrap(), err.join().unwrap())
}

/// A refusal before any work: exit 2, one line naming `name`, no curve or job run.
fn assert_refused(got: (i32, String, String), name: &str, case: &str) {
    let (code, stdout, stderr) = got;
    assert_eq!(code, 2, "{case}: exit {code}\nstdout: {stdout}\nstderr: {stderr}");
    assert!(stderr.contains(name) && stderr.trim_end().lines().count() == 1, "{case}: one line naming {name}: {stderr}");
    assert!(!stderr.contains("panicked"), "{case}: {stderr}");
    assert!(!stdout.contains("scaling ") && !stdout.contains("job "), "{case}: work ran before the refusal: {stdout}");
}

/// No staging directory of an output left beside the outputs in `dir`.
fn assert_no_staging(dir: &Path) {
    let left: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).filter(|n| n.contains(".partial-")).collect();
    assert!(left.is_empty(), "staging left behind: {left:?}");
}

#[test]
fn scaling_out_with_a_users_files_is_refused_before_the_curves() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // a user's scaling.csv, and a link from a plot's name to a file outside the directory
    let mine = d.join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("scaling.csv"), "my precious data\n").unwrap();
    std::fs::write(d.join("victim.txt"), "victim\n").unwrap();
    std::os::unix::fs::symlink(d.join("victim.txt"), mine.join("scaling_n_fock.svg")).unwrap();
    assert_refused(qbat(d, &[&SCALING[..], &["--out", "mine"]].concat()), "--out", "a user's files");
    assert_eq!(std::fs::read_to_string(mine.join("scaling.csv")).unwrap(), "my precious data\n");
    assert_eq!(std::fs::read_to_string(d.join("victim.txt")).unwrap(), "victim\n");
    // a FIFO at scaling.csv: refused, not waited on
    let ff = d.join("ff");
    std::fs::create_dir(&ff).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(ff.join("scaling.csv")).status().unwrap().success());
    assert_refused(qbat(d, &[&SCALING[..], &["--out", "ff"]].concat()), "--out", "a FIFO");
    // a regular file as --out: exit 2 before the work, the file kept
    std::fs::write(d.join("afile"), "x\n").unwrap();
    assert_refused(qbat(d, &[&SCALING[..], &["--out", "afile"]].concat()), "--out", "a file");
    assert_eq!(std::fs::read_to_string(d.join("afile")).unwrap(), "x\n");
    // the output of another qbat-gpu command (its manifest lists other files): not replaced
    let other = d.join("other");
    std::fs::create_dir(&other).unwrap();
    let run = b"{}\n";
    std::fs::write(other.join("run.json"), run).unwrap();
    let manifest = serde_json::json!({"files": [{"name": "run.json", "bytes": run.len(), "blake3": blake3::hash(run).to_hex().to_string()}]});
    std::fs::write(other.join(".qbat-manifest.json"), serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    assert_refused(qbat(d, &[&SCALING[..], &["--out", "other"]].concat()), "--out", "another command's output");
    assert_eq!(std::fs::read(other.join("run.json")).unwrap(), run);
    assert_no_staging(d);
}

#[test]
fn scaling_rerun_into_the_default_out_replaces_its_own_files() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let out = d.join("bench-scaling");
    for pass in 0..2 {
        let (code, stdout, stderr) = qbat(d, &SCALING);
        assert_eq!(code, 0, "pass {pass}: exit {code}\nstdout: {stdout}\nstderr: {stderr}");
        let csv = std::fs::read_to_string(out.join("scaling.csv")).unwrap();
        assert!(csv.starts_with("curve,backend,x,member_steps_per_s,wall_s\n") && csv.lines().count() > 1, "pass {pass}: {csv}");
        assert!(std::fs::read_to_string(out.join("scaling_members.svg")).unwrap().contains("<svg"), "pass {pass}");
        assert!(std::fs::read_to_string(out.join("scaling_n_fock.svg")).unwrap().contains("<svg"), "pass {pass}");
        // written as a qbat-gpu output: its manifest lists the three files
        let m: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join(".qbat-manifest.json")).unwrap()).unwrap();
        let mut names: Vec<&str> = m["files"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["scaling.csv", "scaling_members.svg", "scaling_n_fock.svg"], "pass {pass}");
        assert_no_staging(d);
    }
    // a file of the user's put beside the output: kept by the re-run, which replaces only
    // the files its manifest lists
    std::fs::write(out.join("notes.txt"), "mine\n").unwrap();
    let (code, stdout, stderr) = qbat(d, &SCALING);
    assert_eq!(code, 0, "beside: exit {code}\nstdout: {stdout}\nstderr: {stderr}");
    assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "mine\n");
    // a listed file the user edited is no longer qbat-gpu's: refused before the curves, kept
    let edited = format!("{}my own row\n", std::fs::read_to_string(out.join("scaling.csv")).unwrap());
    std::fs::write(out.join("scaling.csv"), &edited).unwrap();
    assert_refused(qbat(d, &SCALING), "scaling.csv", "an edited scaling.csv");
    assert_eq!(std::fs::read_to_string(out.join("scaling.csv")).unwrap(), edited);
    assert_no_staging(d);
}

#[test]
fn bench_json_fifo_is_refused_before_the_jobs() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    assert!(std::process::Command::new("mkfifo").arg(d.join("j.fifo")).status().unwrap().success());
    let got = qbat(d, &["bench", "bloch-1k", "--backend", "cpu", "--members", "10", "--repeat", "1", "--json", "j.fifo"]);
    assert_refused(got, "--json", "a FIFO as --json");
}

/// `--json` replaces an earlier bench's figures, or an empty file, but never a user's file.
#[test]
fn bench_json_replaces_only_its_own_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let bench = |json: &str| qbat(d, &["bench", "bloch-1k", "--backend", "cpu", "--members", "10", "--repeat", "1", "--json", json]);
    for (name, text) in [("notes.json", "my notes\n"), ("list.json", "[1, 2]"), ("other.json", "[{\"job\": \"mine\"}]")] {
        std::fs::write(d.join(name), text).unwrap();
        assert_refused(bench(name), "--json", &format!("a user's {name}"));
        assert_eq!(std::fs::read_to_string(d.join(name)).unwrap(), text, "{name} was changed");
    }
    // an empty file, then the figures it holds, replaced
    std::fs::write(d.join("figures.json"), "").unwrap();
    for round in 0..2 {
        let (code, _, stderr) = bench("figures.json");
        assert_eq!(code, 0, "round {round}: {stderr}");
        let figures: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.join("figures.json")).unwrap()).unwrap();
        assert_eq!(figures[0]["job"], "bloch-1k", "round {round}");
    }
}

#[test]
fn bench_members_beyond_a_config_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for members in ["9223372036854775808", "18446744073709551615"] {
        for job in ["bloch-1k", "dicke-1k"] {
            let got = qbat(d, &["bench", job, "--backend", "cpu", "--repeat", "1", "--members", members]);
            assert!(!got.2.contains("line "), "{job} --members {members}: names a line of the generated config: {}", got.2);
            assert_refused(got, "--members", &format!("{job} --members {members}"));
            // --print-config prints no config that `run` would refuse to read
            let got = qbat(d, &["bench", job, "--members", members, "--print-config"]);
            assert!(got.1.is_empty(), "{job} --members {members} --print-config printed: {}", got.1);
            assert_refused(got, "--members", &format!("{job} --members {members} --print-config"));
        }
    }
    // beyond the ensemble's and the sweep's limits: still --members, not the config's field
    for (job, members) in [("bloch-1k", "2000000000"), ("cavity-100", "20000000")] {
        let got = qbat(d, &["bench", job, "--backend", "cpu", "--repeat", "1", "--members", members]);
        assert!(got.2.starts_with("error: --members"), "{job} --members {members}: {}", got.2);
        assert_refused(got, "--members", &format!("{job} --members {members}"));
    }
}

#[test]
fn dicke_auto_fock_names_a_photon_number_beyond_every_cutoff() {
    let base = "model = \"dicke\"\n[params]\nn_cells = 2\nphotons = PHOTONS\n[time]\ndt = 0.01\nt_end = 0.1\nsamples = 2\n";
    for (photons, shown) in [("1e60", "1e60"), ("{ values = [0, 1e30] }", "1e30"), ("1e19", "1e19")] {
        let text = base.replace("PHOTONS", photons);
        // the library: no overflow (a panic where overflow checks are on), the value quoted
        let e = qbat_gpu::config::parse_plan(&text, &qbat_gpu::config::Overrides { auto_fock: true, ..Default::default() }).expect_err("refused");
        assert_eq!(e.exit_code(), 2, "{photons}: {e}");
        let msg = e.to_string();
        assert!(msg.starts_with("params.photons:") && msg.contains(&format!("= {shown} + 2 + 2")), "{photons}: {msg}");
        assert!(!msg.contains("18446744073709551615") && !msg.contains("got n_fock"), "{photons}: wrapped numbers: {msg}");
        // the CLI: exit 2, one line, nothing left behind
        let r = run_config_text(&text, &["--auto-fock"]);
        assert_eq!(r.code, 2, "{photons}: {}", r.stderr);
        assert!(
            r.stderr.contains("params.photons") && r.stderr.contains(&format!("= {shown} + 2 + 2")) && r.stderr.trim_end().lines().count() == 1,
            "{photons}: {}",
            r.stderr
        );
        assert!(!r.left_behind, "{photons}: output left behind");
    }
    // below the largest dimension but beyond the cutoff 2 cells allow (533): photons named, not
    // the n_fock the user never set; the largest that fits is run
    let auto = qbat_gpu::config::Overrides { auto_fock: true, ..Default::default() };
    let e = qbat_gpu::config::parse_plan(&base.replace("PHOTONS", "800"), &auto).expect_err("refused");
    assert!(e.to_string().starts_with("params.photons:") && e.to_string().contains("533"), "{e}");
    let plan = qbat_gpu::config::parse_plan(&base.replace("PHOTONS", "529").replace("dt = 0.01", "dt = 0.001"), &auto).unwrap();
    assert_eq!(plan.n_fock(), Some(533));
}

/// `--json` naming the file the report goes to (`--json /dev/stdout > f`, `--json f > f`) is
/// refused before the jobs: the figures' atomic write replaced that file, and the report in it
/// was lost.
#[test]
fn bench_json_into_its_own_report_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for (case, json) in [("/dev/stdout", "/dev/stdout"), ("the same file", "report.txt")] {
        let report = d.join("report.txt");
        let _ = std::fs::remove_file(&report);
        let out = std::fs::File::create(&report).unwrap();
        let mut child = bin()
            .current_dir(d)
            .args(["bench", "bloch-1k", "--backend", "cpu", "--members", "10", "--repeat", "1", "--json", json])
            .stdout(out)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        let status = wait_within(&mut child, std::time::Duration::from_secs(60)).expect("bench still running");
        let stdout = std::fs::read_to_string(&report).unwrap();
        assert_refused((status.code().unwrap_or(-1), stdout, stderr), "--json", case);
    }
}

/// `--json` names that cannot take the figures are refused before any job, not after them
/// (exit 1): a file name too long for its atomic write's `.NAME.XXXXXX` beside it, and a name
/// in a working directory another process removed.
#[test]
fn bench_json_names_that_cannot_be_written_are_refused_before_the_jobs() {
    let dir = tempfile::tempdir().unwrap();
    // (250 bytes: a valid name, 258 with the write's prefix and suffix)
    let long = format!("{}.json", "a".repeat(245));
    std::fs::write(dir.path().join(&long), b"").expect("a 250-byte name is a valid file name");
    std::fs::remove_file(dir.path().join(&long)).unwrap();
    assert_refused(qbat(dir.path(), &["bench", "bloch-1k", "--backend", "cpu", "--members", "10", "--json", &long]), "--json", "a 250-byte name");
    assert!(!dir.path().join(&long).exists());
    // (247 bytes, 40 of them not UTF-8: the write keeps them as they are, and it fits; counted
    // as the lossy text, 327 bytes, it was refused)
    {
        use std::os::unix::ffi::OsStrExt;
        let name = [vec![b'b'; 202], vec![0xff; 40], b".json".to_vec()].concat();
        let name = std::ffi::OsStr::from_bytes(&name);
        let o = bin()
            .current_dir(dir.path())
            .args(["bench", "bloch-1k", "--backend", "cpu", "--members", "10", "--repeat", "1", "--json"])
            .arg(name)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let figures: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join(name)).unwrap()).unwrap();
        assert!(figures.is_object() || figures.is_array(), "{figures}");
    }
    let gone = dir.path().join("gone");
    std::fs::create_dir(&gone).unwrap();
    // (the shell enters it and removes it, then runs the command there, as `bin()` sets it up)
    let exe = env!("CARGO_BIN_EXE_qbat-gpu");
    let mut child = std::process::Command::new("sh");
    child.current_dir(dir.path()).env("XDG_RUNTIME_DIR", std::env::temp_dir()).env("QBAT_PIPELINE_CACHE", "off").env_remove("QBAT_INJECT_FAULT");
    child.arg("-c").arg(format!("cd gone && rmdir ../gone && exec '{exe}' bench bloch-1k --backend cpu --members 10 --json x.json"));
    let o = child.output().unwrap();
    assert_refused(
        (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stdout).into(), String::from_utf8_lossy(&o.stderr).into()),
        "--json",
        "a removed working directory",
    );
}

/// `--print-config` prints one job's config: several (or the default pair) would print keys
/// twice over, which `run` then refuses (it printed them one after the other).
#[test]
fn print_config_of_several_jobs_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["bench", "--print-config"][..], &["bench", "bloch-1k", "cavity-100", "--print-config"]] {
        let (code, stdout, stderr) = qbat(dir.path(), args);
        assert!(code == 2 && stdout.is_empty() && stderr.contains("--print-config") && stderr.contains("one job"), "{args:?}: {code} {stderr}");
    }
    let (code, stdout, _) = qbat(dir.path(), &["bench", "bloch-1k", "--print-config"]);
    assert_eq!(code, 0);
    std::fs::write(dir.path().join("job.toml"), stdout).unwrap();
    qbat_gpu::config::parse_plan(&std::fs::read_to_string(dir.path().join("job.toml")).unwrap(), &Default::default()).expect("the one job's config");
}
