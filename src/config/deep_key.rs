//! A dotted key of more parts than the TOML parser takes: its error ("recursion limit") comes
//! without a span, so its line is found here, by a scan of the text (the parser's own limit
//! keeps its stack small however many parts: measured in tests/messages.rs).

/// The most parts a dotted key (or table header) may have: the toml crate refuses a key whose
/// path before its last part is 80 parts long or more.
pub const MAX_KEY_PARTS: usize = 80;

/// The longest key a message shows whole; a longer one is cut, with `...`.
const SHOWN_KEY: usize = 100;

/// The first line (1-based) holding a dotted key of more than `max` parts, with its number of
/// parts: bare or quoted parts joined by `.` (spaces and tabs around the dots), outside strings
/// and comments. A key's parts are on one line; values hold no such chain (a float is two
/// parts at most).
pub fn deep_key_line(text: &str, max: usize) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    let (mut i, mut line) = (0, 1);
    let (mut parts, mut after_dot) = (0usize, false);
    let mut deep: Option<usize> = None;
    while i < b.len() {
        let part_end = match b[i] {
            b'"' | b'\'' => Some(string_end(b, i, &mut line)),
            c if is_bare(c) => Some(i + b[i..].iter().take_while(|&&c| is_bare(c)).count()),
            _ => None,
        };
        if let Some(end) = part_end {
            if let (Some(at), false) = (deep, after_dot) {
                return Some((at, parts));
            }
            parts = if after_dot { parts + 1 } else { 1 };
            after_dot = false;
            if parts > max && deep.is_none() {
                deep = Some(line);
            }
            i = end;
            continue;
        }
        match b[i] {
            b'.' if parts > 0 && !after_dot => after_dot = true,
            b' ' | b'\t' => {}
            _ => {
                if let Some(at) = deep {
                    return Some((at, parts));
                }
                if b[i] == b'#' {
                    i += b[i..].iter().take_while(|&&c| c != b'\n').count();
                    continue;
                }
                line += usize::from(b[i] == b'\n');
                (parts, after_dot) = (0, false);
            }
        }
        i += 1;
    }
    deep.map(|at| (at, parts))
}

/// A bare key's character.
fn is_bare(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

/// The end of the string opening at `b[start]` (a quote): past its closing quote, or at the end
/// of its line where it has none (of the text, for a multi-line one); the newlines it holds
/// counted into `line`.
fn string_end(b: &[u8], start: usize, line: &mut usize) -> usize {
    let q = b[start];
    let escapes = q == b'"';
    let multi = b[start..].starts_with(&[q, q, q]);
    let mut i = start + if multi { 3 } else { 1 };
    while i < b.len() {
        match b[i] {
            b'\\' if escapes => {
                // (an escaped newline in a multi-line string is still a line)
                *line += usize::from(b.get(i + 1) == Some(&b'\n'));
                i += 2;
                continue;
            }
            b'\n' if !multi => return i,
            b'\n' => *line += 1,
            c if c == q && !multi => return i + 1,
            c if c == q && b[i..].starts_with(&[q, q, q]) => {
                // (up to two quotes of the content may come before the closing three)
                let run = b[i..].iter().take_while(|&&c| c == q).count().min(5);
                return i + run;
            }
            _ => {}
        }
        i += 1;
    }
    b.len()
}

/// `key` as a message shows it: whole up to `SHOWN_KEY` bytes, else its start and `...`.
pub fn shortened(key: &str) -> String {
    if key.len() <= SHOWN_KEY {
        return key.to_string();
    }
    let mut cut = SHOWN_KEY - 3;
    while !key.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &key[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_of_the_first_deep_key_is_found_outside_strings_and_comments() {
        let deep = format!("x{}", ".a".repeat(90));
        // in a string, a multi-line string and a comment: not a key
        let text = format!("a = \"{deep}\"\nb = \"\"\"\n{deep}\n\"\"\"\n# {deep}\nc = '''{deep}'''\n{deep} = 1\n");
        assert_eq!(deep_key_line(&text, MAX_KEY_PARTS), Some((7, 91)));
        // spaces around the dots, quoted parts, a header; 80 parts is within the limit
        let spaced = (0..81).map(|k| if k % 2 == 0 { "\"p.q\"".to_string() } else { "b".into() }).collect::<Vec<_>>().join(" . ");
        assert_eq!(deep_key_line(&format!("v = 1.5\n[{spaced}]\n"), MAX_KEY_PARTS), Some((2, 81)));
        let ok = format!("x{} = 1\n", ".a".repeat(79));
        assert_eq!(deep_key_line(&ok, MAX_KEY_PARTS), None);
        // an escaped quote does not end a string
        assert_eq!(deep_key_line(&format!("s = \"\\\" {deep}\"\n"), MAX_KEY_PARTS), None);
    }

    #[test]
    fn a_long_key_is_shown_cut() {
        assert_eq!(shortened("params.j"), "params.j");
        let long = "é".repeat(80);
        let shown = shortened(&long);
        assert!(shown.len() <= SHOWN_KEY && shown.ends_with("...") && long.starts_with(shown.trim_end_matches('.')), "{shown}");
    }
}
