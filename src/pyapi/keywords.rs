//! The library's messages name an option as the CLI takes it (`--force`, `--backend cpu`,
//! `--shard K/N`); a Python caller gave it as a keyword (`force=True`, `backend="cpu"`,
//! `shard=(k, n)`). The bindings name it so, from the one table here, where they raise the
//! library's error (`keyword_error`) and where they relay its notes and warnings
//! (`keyword_message`); the CLI's messages are left as they are.
//!
//! A flag is translated where it starts a word (not inside a path such as `/runs/--out`). A
//! path the caller gave to the call (an output or shard directory) is the caller's text
//! wherever the call's messages show it, and is copied as it is (`keyword_message_keeping`,
//! `shown_paths`): one named `/runs/x --force` keeps its ` --force`, and an error whose field
//! is the directory `--my-dir` names it so, not `my_dir`.

use crate::error::{QbatError, Result};
use crate::study::Shard;
use std::path::Path;

/// How a flag's value is written as its keyword's.
#[derive(Clone, Copy)]
enum Value {
    /// A switch: `--force` is `force=True`.
    Switch,
    /// One of these names: `--backend cpu` is `backend="cpu"`.
    Name(&'static [&'static str]),
    /// A whole number: `--verify 8` is `verify=8`.
    Integer,
    /// `true` or `false`: `--series false` is `series=False`.
    Bool,
    /// `K/N`: `--shard K/N` is `shard=(k, n)`.
    Shard,
    /// A value of the caller's own (a path, an adapter's name): the keyword alone.
    Own,
}

/// The CLI's flags that are keywords of `qb.run`, `qb.study`, `qb.merge` or `Result.save`.
/// (`--auto-fock` is the CLI's alone: Python's `auto_fock` is always off.)
const FLAGS: [(&str, &str, Value); 16] = [
    ("--adapter", "adapter", Value::Own),
    ("--allow-mixed-backends", "allow_mixed_backends", Value::Switch),
    ("--backend", "backend", Value::Name(&["auto", "gpu", "cpu", "reference"])),
    ("--block-members", "block_members", Value::Integer),
    ("--devices", "devices", Value::Own),
    ("--ensemble", "ensemble", Value::Integer),
    ("--force", "force", Value::Switch),
    ("--format", "format", Value::Name(&["csv", "npy"])),
    ("--on-device-loss", "on_device_loss", Value::Name(&["cpu", "stop"])),
    ("--out", "out", Value::Own),
    ("--precision", "precision", Value::Name(&["f32", "f64"])),
    ("--resume", "resume", Value::Switch),
    ("--save-states", "save_states", Value::Name(&["reduced", "full"])),
    ("--series", "series", Value::Bool),
    ("--shard", "shard", Value::Shard),
    ("--verify", "verify", Value::Integer),
];

/// Phrases whose keywords read otherwise than flag by flag, tried first.
const PHRASES: [(&str, &str); 12] = [
    // a shard is `(k, n)`, not the CLI's `K/N`
    ("K of K/N", "k of (k, n)"),
    ("N of K/N", "n of (k, n)"),
    // `--resume DIR` names the output directory, which Python gives as `out`
    ("with --resume ", "with resume=True, out="),
    ("--backend auto or cpu", "backend=\"auto\" or \"cpu\""),
    ("--backend cpu --allow-mixed-backends", "backend=\"cpu\", allow_mixed_backends=True"),
    // (the CLI's bare `--save-states` saves the reduced state)
    ("--save-states (the reduced state)", "save_states=\"reduced\""),
    // `qb.run` has no shard: a run split in shards is `qb.study`'s
    ("split the run with --shard K/N", "split the run with qb.study(..., shard=(k, n))"),
    // a choice that Python does not have is no advice to its caller
    (", or --auto-fock", ""),
    // a flag whose value is the caller's own, named at the end of the advice
    ("with --adapter", "with adapter=\"NAME\""),
    ("another --out", "another out directory"),
    // the CLI's listings are functions of the package
    ("`qbat-gpu measures` lists them", "qb.measures_list() lists them"),
    ("`qbat-gpu models` lists them", "qb.models() lists them"),
];

/// Advice that names the CLI's `analyze` of the output directory, the path between copied as
/// it is: (before the path, after it) as the CLI says it -> as a Python caller reads it. The
/// package has no analysis of its own: its caller is sent to the CLI, or to a write of the
/// output again with `force=True` (which finishes a commit cut short first).
const AROUND_PATH: [(&str, &str, &str, &str); 2] = [
    (
        "run `qbat-gpu analyze ",
        "`, or the run again with --force, to finish it",
        "finish it with the CLI's `qbat-gpu analyze ",
        "` (qbat_gpu has no analyze), or write it again with force=True (qb.study, qb.merge or Result.save into it)",
    ),
    (
        "run `qbat-gpu analyze ",
        "` where more is left, or with a lower --max-members",
        "run the CLI's `qbat-gpu analyze ",
        "` (qbat_gpu has no analyze) where more is left, or with a lower --max-members",
    ),
];

/// Whether `c` continues a word or a path (a flag is translated only where one starts).
fn in_word(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '-' | '_' | '/' | '.' | '~' | '\\')
}

/// The keyword of the flag that starts `text`, with its value where the message gives one:
/// (bytes of `text` taken, the keyword's text).
fn flag_at(text: &str) -> Option<(usize, String)> {
    let (flag, keyword, value) = FLAGS.iter().find(|(flag, _, _)| text.starts_with(flag) && !text[flag.len()..].starts_with(in_word))?;
    // the value: the word after one space, up to a space, a punctuation mark or a quote
    let word = match text[flag.len()..].strip_prefix(' ') {
        Some(w) => &w[..w.find(|c: char| c.is_whitespace() || ",;:()`'\"".contains(c)).unwrap_or(w.len())],
        None => "",
    };
    let valued = match value {
        Value::Name(names) if names.contains(&word) => Some(format!("\"{word}\"")),
        Value::Integer if !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit()) => Some(word.to_string()),
        Value::Bool if word == "true" || word == "false" => Some(if word == "true" { "True" } else { "False" }.to_string()),
        Value::Shard => {
            word.split_once('/').filter(|(k, n)| !k.is_empty() && !n.is_empty()).map(|(k, n)| format!("({}, {})", k.to_lowercase(), n.to_lowercase()))
        }
        _ => None,
    };
    Some(match (valued, value) {
        (Some(v), _) => (flag.len() + 1 + word.len(), format!("{keyword}={v}")),
        (None, Value::Switch) => (flag.len(), format!("{keyword}=True")),
        (None, _) => (flag.len(), keyword.to_string()),
    })
}

/// A library message with each CLI flag it names written as the Python keyword
/// (`pass --force without --resume` -> `pass force=True without resume=True`).
pub fn keyword_message(text: &str) -> String {
    keyword_message_keeping(text, &[])
}

/// `keyword_message`, with the caller's paths (`kept`: their forms, `shown_paths`) copied as
/// they are where a word starts with one of them or with one of their parent directories.
///
/// A path that reads as a flag and nothing else (a directory named `--force`) is the flag
/// where the message advises it: it is the path only at the message's start, after `out=` (the
/// CLI's `--resume DIR`), or followed by more of its path (`--force/run.json`).
pub fn keyword_message_keeping(text: &str, kept: &[String]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut word_starts = true;
    while let Some(c) = rest.chars().next() {
        let path = if word_starts { kept_len(rest, kept) } else { 0 };
        if path > 0 {
            let (shown, after) = rest.split_at(path);
            let a_flag = flag_at(shown).is_some_and(|(taken, _)| taken == path);
            if !a_flag || out.is_empty() || out.ends_with("out=") || after.starts_with(in_word) {
                // (a path that no translation would change is copied up to its last word
                // start, where a flag may begin that the path's end does not end)
                let copied =
                    if keyword_message(shown) != shown { path } else { shown.char_indices().rfind(|&(_, c)| !in_word(c)).map_or(0, |(i, c)| i + c.len_utf8()) };
                if copied > 0 {
                    out += &rest[..copied];
                    word_starts = !rest[..copied].ends_with(in_word);
                    rest = &rest[copied..];
                    continue;
                }
            }
        }
        // (the advice's end is its message's last: a path may hold anything before it)
        let around = AROUND_PATH.iter().find_map(|(before, after, py_before, py_after)| {
            let path = rest.strip_prefix(before).filter(|_| word_starts)?;
            path.rfind(after).map(|end| (before.len() + end + after.len(), format!("{py_before}{}{py_after}", &path[..end])))
        });
        if let Some((taken, advice)) = around {
            out += &advice;
            rest = &rest[taken..];
            word_starts = !advice.ends_with(in_word);
            continue;
        }
        // a name quoted where a word starts ('--force' as a measure's name, a device's) is
        // the caller's text: copied as it is, up to its closing quote
        if word_starts && c == '\'' {
            if let Some(end) = rest[1..].find('\'') {
                out += &rest[..end + 2];
                rest = &rest[end + 2..];
                word_starts = false;
                continue;
            }
        }
        // (a phrase that starts with a punctuation mark may follow a word)
        let phrase = PHRASES.iter().find(|(cli, _)| {
            (word_starts || !cli.starts_with(in_word)) && rest.starts_with(cli) && (cli.ends_with(' ') || !rest[cli.len()..].starts_with(in_word))
        });
        let found = phrase.map(|(cli, py)| (cli.len(), py.to_string())).or_else(|| if word_starts { flag_at(rest) } else { None });
        if let Some((taken, keyword)) = found {
            out += &keyword;
            rest = &rest[taken..];
            word_starts = !keyword.ends_with(in_word);
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
        word_starts = !in_word(c);
    }
    out
}

/// An option's field as the Python caller named it: `--save-states` is `save_states`. A field
/// that is not a flag's name (a path, `--my-dir/run.json`) is left as it is.
pub fn keyword_field(field: &str) -> String {
    match FLAGS.iter().find(|(flag, _, _)| *flag == field) {
        Some((_, keyword, _)) => keyword.to_string(),
        None => match field.strip_prefix("--").filter(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')) {
            Some(flag) => flag.replace('-', "_"),
            None => field.to_string(),
        },
    }
}

/// The bytes of `text` that start with one of `kept` (`shown_paths`) or one of its parent
/// directories (the form up to a `/` of it), the longest: 0 where none does. Each form is read
/// once, up to where it and `text` part: no parent is spelled out.
fn kept_len(text: &str, kept: &[String]) -> usize {
    let longest = kept.iter().map(|form| {
        let (t, f) = (text.as_bytes(), form.as_bytes());
        let same = t.iter().zip(f).take_while(|(a, b)| a == b).count();
        if same == f.len() {
            return same;
        }
        // (a parent: the form up to a `/` where the two are still the same; not the root)
        f[..=same].iter().rposition(|&b| b == b'/').unwrap_or(0)
    });
    longest.max().unwrap_or(0)
}

/// The texts under which the library's messages show `paths` (the caller's): each as given,
/// as its components spell it (`x/.` is `x`: what `out_path` advises), resolved (itself or, not
/// there yet, its parent), and the staging name beside each (`.NAME.partial...`); those only
/// that may read otherwise as keywords (a plain `/tmp/o` reads the same either way). Their
/// parent directories are not listed: `keyword_message_keeping` finds them in these. At most
/// six texts a path, each no longer than the path resolved, and a canonicalize or two: worked
/// out once, at a call's start.
pub fn shown_paths(paths: &[&Path]) -> Vec<String> {
    let mut shown: Vec<String> = vec![];
    for path in paths {
        let plain: std::path::PathBuf = path.components().collect();
        let resolved = std::fs::canonicalize(path).ok().or_else(|| {
            let name = path.file_name()?;
            std::fs::canonicalize(crate::output::parent_of(path)).ok().map(|dir| dir.join(name))
        });
        for p in [*path, plain.as_path()].into_iter().chain(resolved.as_deref()) {
            let staging = p.file_name().map(|_| crate::output::parent_of(p).join(crate::output::name_beside(p, ".", "", ".partial")));
            for text in std::iter::once(p).chain(staging.as_deref()).map(|a| a.display().to_string()) {
                if may_read_otherwise(&text) && !shown.contains(&text) {
                    shown.push(text);
                }
            }
        }
    }
    shown
}

/// Whether `form` or one of its parents may be changed by `keyword_message`, or as a field by
/// `keyword_field` (a plain path is not): each `/` read as a word's end, where it is one only
/// at the end of a parent.
fn may_read_otherwise(form: &str) -> bool {
    let words = form.replace('/', " ");
    let first = form.split('/').next().unwrap_or_default();
    keyword_message(&words) != words || keyword_field(first) != first
}

/// Shard `k` of `n` as Python's `shard=(k, n)` gives it: a refusal names `shard` and shows the
/// pair as the caller wrote it, not the CLI's `K/N`.
pub fn shard(k: usize, n: usize) -> Result<Shard> {
    Shard::checked(k, n, &format!("({k}, {n})")).map_err(|why| QbatError::invalid("shard", why))
}

/// The library's error as a Python caller reads it: its field (`keyword_field`) and its
/// message (`keyword_message`) name keywords, not flags. A config's syntax error and an i/o
/// error's path are the caller's text, left as they are.
pub fn keyword_error(e: QbatError) -> QbatError {
    keyword_error_keeping(e, &[])
}

/// `keyword_error`, with `kept` (`shown_paths`) as they are in its field and message: a field
/// that is a caller's path (or a parent of one) is named as given, unless it is a flag's name.
pub fn keyword_error_keeping(e: QbatError, kept: &[String]) -> QbatError {
    let is_path = |f: &str| !f.is_empty() && kept_len(f, kept) == f.len() && !FLAGS.iter().any(|(flag, _, _)| *flag == f);
    let field = |f: String| if is_path(&f) { f } else { keyword_field(&f) };
    let message = |m: String| keyword_message_keeping(&m, kept);
    match e {
        QbatError::Invalid { field: f, reason } => QbatError::Invalid { field: field(f), reason: message(reason) },
        QbatError::TooLarge { field: f, reason } => QbatError::TooLarge { field: field(f), reason: message(reason) },
        QbatError::Device(s) => QbatError::Device(message(s)),
        QbatError::DeviceOutOfMemory(s) => QbatError::DeviceOutOfMemory(message(s)),
        QbatError::DeviceLost(s) => QbatError::DeviceLost(message(s)),
        QbatError::Numerics(s) => QbatError::Numerics(message(s)),
        QbatError::Threads(s) => QbatError::Threads(message(s)),
        e @ (QbatError::Parse { .. } | QbatError::Io { .. } | QbatError::Cancelled) => e,
    }
}

/// `e` with the field `from` named `to` (`qb.merge`'s shard directories are `dirs`, the CLI's
/// `DIR`).
pub fn renamed_field(e: QbatError, from: &str, to: &str) -> QbatError {
    let name = |field: String| if field == from { to.to_string() } else { field };
    match e {
        QbatError::Invalid { field, reason } => QbatError::Invalid { field: name(field), reason },
        QbatError::TooLarge { field, reason } => QbatError::TooLarge { field: name(field), reason },
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The library's messages that name flags, as a Python caller reads them.
    #[test]
    fn flags_are_named_as_keywords() {
        let cases = [
            (
                "/tmp/o exists and is not empty; choose a new directory, or pass --force to replace the qbat-gpu files in it",
                "/tmp/o exists and is not empty; choose a new directory, or pass force=True to replace the qbat-gpu files in it",
            ),
            (
                "/tmp/o has an interrupted run (/tmp/.o.partial); continue it with --resume /tmp/o, or pass --force to start over",
                "/tmp/o has an interrupted run (/tmp/.o.partial); continue it with resume=True, out=/tmp/o, or pass force=True to start over",
            ),
            (
                "x; continue with --resume /tmp/o (add --backend cpu --allow-mixed-backends to finish on the CPU)",
                "x; continue with resume=True, out=/tmp/o (add backend=\"cpu\", allow_mixed_backends=True to finish on the CPU)",
            ),
            (
                "differs from this one in 'format'; pass --force without --resume to start over",
                "differs from this one in 'format'; pass force=True without resume=True to start over",
            ),
            (
                "the interrupted run uses blocks of 5 members, not 3; leave --block-members out (or give 5) to resume it",
                "the interrupted run uses blocks of 5 members, not 3; leave block_members out (or give 5) to resume it",
            ),
            (
                "the interrupted run verifies 8 members, not 3; give --verify 8 to resume it",
                "the interrupted run verifies 8 members, not 3; give verify=8 to resume it",
            ),
            (
                "the interrupted run was started with --backend cpu, not reference; resume it with the same, or add --allow-mixed-backends to finish it",
                "the interrupted run was started with backend=\"cpu\", not reference; resume it with the same, or add allow_mixed_backends=True to finish it",
            ),
            (
                "resumed with --backend reference after --backend cpu (--allow-mixed-backends): see run.json engines",
                "resumed with backend=\"reference\" after backend=\"cpu\" (allow_mixed_backends=True): see run.json engines",
            ),
            (
                "the dicke GPU kernel keeps no states on the host; run with --backend cpu to save them",
                "the dicke GPU kernel keeps no states on the host; run with backend=\"cpu\" to save them",
            ),
            (
                "full cavity states are not kept by the GPU cavity engine; use --save-states (the reduced state), or --backend cpu for the full one",
                "full cavity states are not kept by the GPU cavity engine; use save_states=\"reduced\", or backend=\"cpu\" for the full one",
            ),
            (
                "1e39 beyond the range of the f32 GPU kernels; run with --precision f64 (where the adapter has it) or --backend cpu",
                "1e39 beyond the range of the f32 GPU kernels; run with precision=\"f64\" (where the adapter has it) or backend=\"cpu\"",
            ),
            (
                "use fewer points, or split the run with --shard K/N (a shard builds only its members' points)",
                "use fewer points, or split the run with qb.study(..., shard=(k, n)) (a shard builds only its members' points)",
            ),
            (
                "a member costs about 256 B, or --backend auto or cpu (the GPU host's copies)",
                "a member costs about 256 B, or backend=\"auto\" or \"cpu\" (the GPU host's copies)",
            ),
            (
                "use n_fock >= 28 (from the largest photon number reached, 4.00), or --auto-fock",
                "use n_fock >= 28 (from the largest photon number reached, 4.00)",
            ),
            ("note: --adapter nope ignored: --backend cpu does not use a GPU", "note: adapter nope ignored: backend=\"cpu\" does not use a GPU"),
            ("note: --devices ignored: the run is not on the GPU", "note: devices ignored: the run is not on the GPU"),
            ("(--verify's check of dt; above 1e-4 of its scale)", "(verify's check of dt; above 1e-4 of its scale)"),
            ("/tmp/o is not the output of a --shard run", "/tmp/o is not the output of a shard run"),
            ("use fewer sample times, or --series false (no analysis)", "use fewer sample times, or series=False (no analysis)"),
            (
                "no usable GPU adapter (--adapter: no adapter name contains 'x'); running on the CPU engine",
                "no usable GPU adapter (adapter: no adapter name contains 'x'); running on the CPU engine",
            ),
            (
                "the only GPU adapter is software; running on the CPU engine (--backend gpu runs it)",
                "the only GPU adapter is software; running on the CPU engine (backend=\"gpu\" runs it)",
            ),
            ("no GPU adapter found (backends: vulkan); use --backend cpu", "no GPU adapter found (backends: vulkan); use backend=\"cpu\""),
            ("adapter 'x' has no SHADER_F64; use --precision f32", "adapter 'x' has no SHADER_F64; use precision=\"f32\""),
            ("the shard index K of K/N must be in 0..2 (0-based), got 3", "the shard index k of (k, n) must be in 0..2 (0-based), got 3"),
            ("the shard count N of K/N must be at least 1, got 0/0", "the shard count n of (k, n) must be at least 1, got 0/0"),
            ("x (y); use --backend cpu, or name an adapter with --adapter", "x (y); use backend=\"cpu\", or name an adapter with adapter=\"NAME\""),
            ("using adapter A (name another with --adapter)", "using adapter A (name another with adapter=\"NAME\")"),
            ("not in the manifest); move it away, or choose another --out", "not in the manifest); move it away, or choose another out directory"),
            ("unknown measure 'x'; `qbat-gpu measures` lists them", "unknown measure 'x'; qb.measures_list() lists them"),
            ("missing; `qbat-gpu models` lists them", "missing; qb.models() lists them"),
            // an apostrophe inside a word opens no quote
            ("the run's --force, 'a' and --verify 3", "the run's force=True, 'a' and verify=3"),
        ];
        for (cli, py) in cases {
            assert_eq!(keyword_message(cli), py, "{cli}");
        }
    }

    #[test]
    fn a_flag_inside_a_word_or_a_path_and_a_cli_only_flag_are_left() {
        for text in [
            "unknown measure '--force'",
            "device '--backend cpu' not found",
            "/runs/--force/x",
            "a--force",
            "--forced",
            "--auto-fock sets n_fock = 4",
            "--max-members",
            "run `qbat-gpu analyze /o`",
            "--out-dir",
        ] {
            assert_eq!(keyword_message(text), text);
        }
        // a value that is not one the keyword takes is left after it
        assert_eq!(keyword_message("--backend {}"), "backend {}");
        assert_eq!(keyword_message("the `--shard K/N` runs"), "the `shard=(k, n)` runs");
        // a flag at the end, and after an opening bracket or a quote
        assert_eq!(keyword_message("kept for --resume"), "kept for resume=True");
        assert_eq!(keyword_message("(--force)"), "(force=True)");
        assert_eq!(keyword_message("see `--out`"), "see `out`");
    }

    #[test]
    fn fields_and_errors_name_keywords() {
        assert_eq!(keyword_field("--save-states"), "save_states");
        assert_eq!(keyword_field("--block-members"), "block_members");
        assert_eq!(keyword_field("--max-members"), "max_members");
        assert_eq!(keyword_field("params.j"), "params.j");
        assert_eq!(keyword_field("time.dt"), "time.dt");
        let e = keyword_error(QbatError::invalid("--out", "exists; pass --force to replace it"));
        assert_eq!(e.to_string(), "out: exists; pass force=True to replace it");
        let e = keyword_error(QbatError::Device("no GPU adapter found; use --backend cpu".into()));
        assert_eq!(e.to_string(), "gpu: no GPU adapter found; use backend=\"cpu\"");
        // a config's syntax error is the caller's text
        let e = keyword_error(QbatError::parse("expected `=` near --force"));
        assert_eq!(e.to_string(), "config: expected `=` near --force");
        let e = renamed_field(QbatError::invalid("DIR", "is not the output of a --shard run"), "DIR", "dirs");
        assert_eq!(e.to_string(), "dirs: is not the output of a --shard run");
        // a field that is a path is the caller's
        assert_eq!(keyword_field("--my-dir/run.json"), "--my-dir/run.json");
        assert_eq!(keyword_field("--"), "--");
    }

    #[test]
    fn a_shard_refused_shows_the_pair_as_given() {
        assert_eq!(shard(0, 0).unwrap_err().to_string(), "shard: the shard count N of K/N must be at least 1, got (0, 0)");
        let e = keyword_error(shard(0, 0).unwrap_err());
        assert_eq!(e.to_string(), "shard: the shard count n of (k, n) must be at least 1, got (0, 0)");
        assert_eq!(keyword_error(shard(3, 2).unwrap_err()).to_string(), "shard: the shard index k of (k, n) must be in 0..2 (0-based), got 3");
        assert_eq!(shard(1, 2).unwrap(), Shard { index: 1, count: 2 });
        // the CLI's own words stay
        assert_eq!("0/0".parse::<Shard>().unwrap_err(), "the shard count N of K/N must be at least 1, got 0/0");
    }

    #[test]
    fn the_cli_analyze_advice_names_what_python_has() {
        let cut = "/o x: holds a commit that was cut short (process 7): run `qbat-gpu analyze /o x`, or the run again with --force, to finish it";
        assert_eq!(
            keyword_message(cut),
            "/o x: holds a commit that was cut short (process 7): finish it with the CLI's `qbat-gpu analyze /o x` (qbat_gpu has no analyze), or write it again with force=True (qb.study, qb.merge or Result.save into it)"
        );
        let short =
            "not computed: need 2 MiB; run `qbat-gpu analyze /a --force` where more is left, or with a lower --max-members; or raise the limit (ulimit -v)";
        assert_eq!(
            keyword_message(short),
            "not computed: need 2 MiB; run the CLI's `qbat-gpu analyze /a --force` (qbat_gpu has no analyze) where more is left, or with a lower --max-members; or raise the limit (ulimit -v)"
        );
    }

    #[test]
    fn the_caller_paths_are_kept_as_given() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a --force b").join("y --resume");
        let kept = shown_paths(&[&out]);
        let (parent, staging) = (out.parent().unwrap().display().to_string(), dir.path().join("a --force b/.y --resume.partial").display().to_string());
        for text in [
            format!("the parent directory {parent} does not exist"),
            format!("{} exists and is not empty; choose a new directory, or pass force=True to replace", out.display()),
            format!("{staging}-12-0 is in the way; continue it with resume=True, out={}", out.display()),
            format!("cannot read {}/run.json", out.display()),
        ] {
            let cli = text.replace("force=True", "--force").replace("resume=True, out=", "--resume ");
            assert_eq!(keyword_message_keeping(&cli, &kept), text);
        }
        // a path that holds no flag is not kept (it reads the same either way)
        assert!(shown_paths(&[Path::new("/tmp/plain")]).is_empty());
        // a path field is the caller's
        let e = keyword_error_keeping(QbatError::invalid(out.display().to_string(), "x --force y"), &kept);
        assert_eq!(e.to_string(), format!("{}: x force=True y", out.display()));
    }
    #[test]
    fn a_path_field_is_the_callers_even_where_it_reads_the_same() {
        // `--my-dir` holds no flag a message translates, but as a field it reads as one
        let kept = shown_paths(&[Path::new("--my-dir")]);
        let cut = "holds a commit that was cut short (process 7): run `qbat-gpu analyze --my-dir`, or the run again with --force, to finish it";
        let e = keyword_error_keeping(QbatError::invalid("--my-dir", cut), &kept);
        assert!(e.to_string().starts_with("--my-dir: holds a commit"), "{e}");
        assert!(e.to_string().contains("`qbat-gpu analyze --my-dir` (qbat_gpu has no analyze), or write it again with force=True"), "{e}");
        // a parent of the caller's path too; a flag's own field is still the keyword
        let kept = shown_paths(&[Path::new("--my-dir/sub")]);
        assert_eq!(keyword_error_keeping(QbatError::invalid("--my-dir", "x"), &kept).to_string(), "--my-dir: x");
        assert_eq!(keyword_error_keeping(QbatError::invalid("--out", "x"), &kept).to_string(), "out: x");
        assert_eq!(keyword_error_keeping(QbatError::invalid("--other-dir", "x"), &kept).to_string(), "other_dir: x");
    }

    /// A path whose last non-word character takes more than one byte (an arrow, a no-break
    /// space) is copied to that character's end: the cut fell inside it (a panic).
    #[test]
    fn a_path_ending_in_a_wide_character_is_cut_on_a_character() {
        for path in ["/runs/--force/a\u{2192}b", "/runs/--force x\u{a0}", "/runs/--force \u{2192}", "--force/r\u{2192}"] {
            let kept = shown_paths(&[Path::new(path)]);
            let cli = format!("{path} exists and is not empty; choose a new directory, or pass --force to replace the qbat-gpu files in it");
            let got = keyword_message_keeping(&cli, &kept);
            assert_eq!(
                got,
                format!("{path} exists and is not empty; choose a new directory, or pass force=True to replace the qbat-gpu files in it"),
                "{path:?}"
            );
        }
    }

    #[test]
    fn a_path_as_the_library_respells_it_is_kept() {
        // `out_path` advises the path as its components spell it
        let kept = shown_paths(&[Path::new("x --force/.")]);
        let cli = "x --force/. does not exist, and a new directory cannot be named through '.': give it as x --force";
        assert_eq!(keyword_message_keeping(cli, &kept), cli);
        let kept = shown_paths(&[Path::new("a//b --resume/./c --force/")]);
        let cli = "a/b --resume/c --force is in the way; pass --force";
        assert_eq!(keyword_message_keeping(cli, &kept), "a/b --resume/c --force is in the way; pass force=True");
    }

    #[test]
    fn a_path_named_as_a_flag_is_the_flag_where_the_message_advises_it() {
        let kept = shown_paths(&[Path::new("--force")]);
        let cli = "--force exists and is not empty; choose a new directory, or pass --force to replace the qbat-gpu files in it";
        assert_eq!(
            keyword_message_keeping(cli, &kept),
            "--force exists and is not empty; choose a new directory, or pass force=True to replace the qbat-gpu files in it"
        );
        let cli = "--force has an interrupted run (./.--force.partial); continue it with --resume --force, or pass --force to start over";
        assert_eq!(
            keyword_message_keeping(cli, &kept),
            "--force has an interrupted run (./.--force.partial); continue it with resume=True, out=--force, or pass force=True to start over"
        );
        assert_eq!(keyword_message_keeping("cannot read --force/run.json", &kept), "cannot read --force/run.json");
        // a path that reads the same either way ends where a flag may begin
        let kept = vec!["-".to_string()];
        assert_eq!(keyword_message_keeping("- or --force", &kept), "- or force=True");
        assert_eq!(keyword_message_keeping("--force", &kept), "force=True");
    }

    /// A deep path costs its length, not its length times its depth: a few forms, each read
    /// once, and no parent spelled out.
    #[test]
    fn a_deep_path_costs_its_length() {
        let deep = format!("{}x --force", "a/".repeat(8000));
        let forms = shown_paths(&[Path::new(&deep)]);
        assert!(!forms.is_empty() && forms.len() <= 6, "{}", forms.len());
        let cwd = std::env::current_dir().unwrap().display().to_string().len();
        assert!(forms.iter().all(|f| f.len() <= deep.len() + cwd + 20), "{:?}", forms.iter().map(String::len).collect::<Vec<_>>());
        let parent = &deep[..deep.len() - 10];
        let cli = format!("the parent directory {parent} does not exist; {deep} holds --force; {deep}/run.json");
        let py = format!("the parent directory {parent} does not exist; {deep} holds force=True; {deep}/run.json");
        let t0 = std::time::Instant::now();
        assert_eq!(keyword_message_keeping(&cli, &forms), py);
        // (generous: linear work is well under a millisecond; the quadratic was seconds)
        assert!(t0.elapsed() < std::time::Duration::from_secs(1), "{:?}", t0.elapsed());
    }
}
