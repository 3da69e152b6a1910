//! Library error type. Every variant names the offending field and the reason.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum QbatError {
    /// A user input (config field, CLI option, state) is invalid.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The TOML could not be parsed: `file` is the config's path where the caller read it from a
    /// file (`in_config_file`), else `config`.
    #[error("{file}: {reason}")]
    Parse { file: String, reason: String },
    /// No usable GPU adapter, or the adapter lacks a feature.
    #[error("gpu: {0}")]
    Device(String),
    /// The device ran out of memory (or could not create a buffer): the run re-chunks smaller.
    #[error("gpu out of memory: {0}")]
    DeviceOutOfMemory(String),
    /// The device was lost mid-run: the run goes on on the CPU or stops resumable
    /// (`--on-device-loss`).
    #[error("gpu device lost: {0}")]
    DeviceLost(String),
    /// The run would not fit in memory.
    #[error("{field}: {reason}")]
    TooLarge { field: String, reason: String },
    #[error("i/o: {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A numerical failure found during a run (NaN, lost trace).
    #[error("numerics: {0}")]
    Numerics(String),
    /// A thread could not be started (a process or thread limit): see `threads`.
    #[error("threads: {0}")]
    Threads(String),
    /// The caller cancelled the run (`engine::Control::cancel`, Ctrl-C in Python).
    #[error("the run was cancelled")]
    Cancelled,
}

impl QbatError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        QbatError::Invalid { field: field.into(), reason: reason.into() }
    }
    /// A config's TOML syntax error.
    pub fn parse(reason: impl Into<String>) -> Self {
        QbatError::Parse { file: "config".into(), reason: reason.into() }
    }
    /// The error of a config read from the file `path`: a syntax error names the file.
    pub fn in_config_file(self, path: &std::path::Path) -> Self {
        match self {
            QbatError::Parse { reason, .. } => QbatError::Parse { file: path.display().to_string(), reason },
            e => e,
        }
    }
    /// An i/o failure on `path`.
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        QbatError::Io { path: path.display().to_string(), source }
    }
    /// The message with its causes (`i/o: out/run.json: No space left on device`): what an
    /// error wrapped into another's text must keep.
    pub fn with_causes(&self) -> String {
        let mut s = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            s += &format!(": {c}");
            cause = c.source();
        }
        s
    }
    /// Exit code for the CLI: 2 for bad input, a missing device or a thread that cannot be
    /// started (the environment's limit), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            QbatError::Invalid { .. }
            | QbatError::Parse { .. }
            | QbatError::Device(_)
            | QbatError::DeviceOutOfMemory(_)
            | QbatError::TooLarge { .. }
            | QbatError::Threads(_) => 2,
            QbatError::Io { .. } | QbatError::Numerics(_) | QbatError::DeviceLost(_) | QbatError::Cancelled => 1,
        }
    }
}

pub type Result<T> = std::result::Result<T, QbatError>;

/// A message in one line whatever the user's strings in it hold, shown as the user typed them:
/// - a control character (a newline in a key or a value) or a Unicode line or paragraph
///   separator (U+2028, U+2029, which terminals and editors may break at) is shown escaped,
///   never starting a line of its own;
/// - so is a bidirectional formatting character (U+202A..U+202E, U+2066..U+2069, U+200E,
///   U+200F, U+061C), which would make a terminal show the rest of the line reordered: a
///   directory named `run\u{202e}txt.` must not read as another name;
///
/// Its length is kept: a report's line that lists files is whole (`shown_line` bounds it).
pub fn one_line(message: &str) -> String {
    let breaks = |c: char| {
        c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
    };
    message.chars().flat_map(|c| if breaks(c) { c.escape_default().collect::<Vec<_>>() } else { vec![c] }).collect()
}

/// An error or a note as stderr shows it: `one_line`, then `bounded`, so that a user's value of
/// any length quoted in it (an option's, a scheduler variable's) is not echoed whole.
pub fn shown_line(message: &str) -> String {
    bounded(&one_line(message))
}

/// The longest error line shown whole: two paths of `PATH_MAX` bytes and their words fit.
pub const SHOWN_MESSAGE: usize = 10_000;

/// An error line as the CLI shows it: whole up to `SHOWN_MESSAGE` bytes, else its start and
/// its end with the bytes left out counted between, so that a value of megabytes a user gave
/// (a model name, a measure, an option's value) quoted in it is not echoed whole.
pub fn bounded(line: &str) -> String {
    if line.len() <= SHOWN_MESSAGE {
        return line.to_string();
    }
    let (mut head, mut tail) = (SHOWN_MESSAGE * 3 / 5, line.len() - SHOWN_MESSAGE / 5);
    while !line.is_char_boundary(head) {
        head -= 1;
    }
    while !line.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{} ... ({} bytes left out) ... {}", &line[..head], tail - head, &line[tail..])
}

/// A number as a message shows it: as Rust writes it where that is short (`4.5`, `-4`, `0.05`),
/// else in exponent form (`1e-300` rather than its 300 decimal places, `1e59` rather than 60
/// digits), so that a refusal stays a readable line.
pub fn shown(x: f64) -> String {
    let plain = x.to_string();
    if plain.len() <= 24 {
        plain
    } else {
        format!("{x:e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_escapes_breaks_and_reordering_and_shown_line_bounds_the_length() {
        assert_eq!(one_line("a\nb\u{2028}c"), "a\\nb\\u{2028}c");
        // each bidirectional formatting character, escaped as Rust writes it
        for c in
            ['\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{200e}', '\u{200f}', '\u{061c}']
        {
            let shown = one_line(&format!("run{c}txt"));
            assert_eq!(shown, format!("run\\u{{{:x}}}txt", c as u32), "{c:?}");
        }
        // letters of right-to-left scripts are text, not formatting: kept as they are
        assert_eq!(one_line("\u{5d0}\u{627}"), "\u{5d0}\u{627}");
        let long = "x".repeat(3 * SHOWN_MESSAGE);
        assert_eq!(one_line(&long), long);
        let shown = shown_line(&format!("{long}\u{202e}"));
        assert!(shown.len() < SHOWN_MESSAGE && shown.contains("bytes left out") && shown.ends_with("\\u{202e}"), "{}", shown.len());
        assert_eq!(shown_line(&"y".repeat(SHOWN_MESSAGE)), "y".repeat(SHOWN_MESSAGE));
    }
}
