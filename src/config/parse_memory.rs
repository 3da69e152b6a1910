//! The memory that parsing a config's TOML text takes, counted before it is parsed.
//!
//! The toml crate holds a text's tokens and events (24 bytes each), then the spanned document,
//! then the `Table`: up to about 550 bytes a byte of text for dotted keys (each part of
//! `a.b.c = 1` is a table of its own), so a 4 MiB text can take 2.3 GB, and an allocation
//! that fails aborts the process. Here the text's events are counted with the same crate's
//! push parser (nothing is built), and the parse is refused, naming the config, where their
//! cost cannot fit in the available memory.

use super::available_memory::{available_memory, size_need, size_text};
use super::deep_key::MAX_KEY_PARTS;
use crate::error::{QbatError, Result};
use toml_parser::parser::{parse_document, EventReceiver, RecursionGuard};
use toml_parser::{ErrorSink, Source, Span};

/// Bytes the parse takes at most per slot of its token vector (24-byte tokens, half as much
/// again), per token (its event, likewise), per event of each kind and per byte of text (its
/// strings' copies). Fitted to the peak RSS over 4 MiB texts made of one construct each
/// (dotted keys of 8 and 79 parts, bare and quoted, headers plain and dotted, arrays of
/// tables, inline tables empty, filled, and nested to depth 78, arrays empty, of numbers and
/// nested, numbers, strings, escapes, keys, comments, blank lines), fitted costs with half as
/// much again. A key part is a table of its own where a dot follows it; a table given a key
/// allocates its map (about 1 kB).
const PER_TOKEN_SLOT: f64 = 36.0;
const PER_TOKEN: f64 = 36.0;
const PER_KEY_PART: f64 = 250.0;
const PER_KEY_DOT: f64 = 1700.0;
const PER_TABLE: f64 = 400.0;
const PER_FILLED_TABLE: f64 = 1700.0;
const PER_ARRAY: f64 = 450.0;
const PER_SCALAR: f64 = 250.0;
const PER_BYTE: f64 = 4.0;
/// A key's part past the parser's limit: no table, but its place in the key's path (40 bytes,
/// doubled) and its events, which the parser still builds before it stops.
const PER_EXCESS_KEY_PART: f64 = 120.0;

/// The parser's nesting limit, as the toml crate's (a deeper text is its error to name).
const MAX_DEPTH: u32 = 80;

/// The slots of the toml crate's token vector for `tokens` tokens of a `bytes`-byte text: it
/// reserves 2/7 of a slot a byte, and doubles its capacity while the tokens do not fit.
fn token_slots(bytes: u64, tokens: u64) -> f64 {
    let mut slots = ((bytes / 7) * 2).max(1);
    while slots < tokens {
        slots *= 2;
    }
    slots as f64
}

/// Events of a TOML text that cost memory when it is parsed.
#[derive(Debug, Default)]
pub struct ParseCounts {
    pub tokens: u64,
    pub key_parts: u64,
    pub key_dots: u64,
    pub tables: u64,
    /// inline tables given a key (an empty table's map allocates nothing)
    pub filled_tables: u64,
    pub arrays: u64,
    pub scalars: u64,
    pub bytes: u64,
    /// the dots of the key being read: past the parser's limit on a key's parts it stops with
    /// an error of its own (`deep_key`), so no more are counted
    dots_in_key: usize,
    after_dot: bool,
    /// key parts past the parser's limit (`PER_EXCESS_KEY_PART`)
    pub excess_key_parts: u64,
    /// the open inline tables and arrays, innermost last: for an inline table, whether it was
    /// given a key yet
    open: Vec<Option<bool>>,
}

impl ParseCounts {
    /// Count a text's events (a text with syntax errors is counted as far as the parser goes:
    /// the toml crate names its error after the check). None where its tokens cannot be held.
    pub fn of(text: &str) -> Option<ParseCounts> {
        let source = Source::new(text);
        let n = source.lex().count();
        // (the parser takes a slice: held once, the toml crate's own parse holds two such)
        let mut tokens = Vec::new();
        tokens.try_reserve_exact(n).ok()?;
        tokens.extend(source.lex());
        let mut counts = ParseCounts { tokens: n as u64, bytes: text.len() as u64, ..ParseCounts::default() };
        let mut guard = RecursionGuard::new(&mut counts, MAX_DEPTH);
        parse_document(&tokens, &mut guard, &mut ());
        Some(counts)
    }

    /// Bytes the toml crate's parse of the text takes at its peak, at most.
    pub fn parse_bytes(&self) -> f64 {
        PER_TOKEN_SLOT * token_slots(self.bytes, self.tokens)
            + PER_TOKEN * self.tokens as f64
            + PER_KEY_PART * self.key_parts as f64
            + PER_KEY_DOT * self.key_dots as f64
            + PER_TABLE * self.tables as f64
            + PER_FILLED_TABLE * self.filled_tables as f64
            + PER_ARRAY * self.arrays as f64
            + PER_SCALAR * self.scalars as f64
            + PER_BYTE * self.bytes as f64
            + PER_EXCESS_KEY_PART * self.excess_key_parts as f64
    }
}

impl EventReceiver for ParseCounts {
    fn std_table_open(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        self.tables += 1;
    }
    fn array_table_open(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        self.tables += 1;
    }
    fn inline_table_open(&mut self, _span: Span, _error: &mut dyn ErrorSink) -> bool {
        self.tables += 1;
        self.open.push(Some(false));
        true
    }
    fn inline_table_close(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        self.open.pop();
    }
    fn array_open(&mut self, _span: Span, _error: &mut dyn ErrorSink) -> bool {
        self.arrays += 1;
        self.open.push(None);
        true
    }
    fn array_close(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        self.open.pop();
    }
    fn simple_key(&mut self, _span: Span, _kind: Option<toml_parser::decoder::Encoding>, _error: &mut dyn ErrorSink) {
        if !std::mem::take(&mut self.after_dot) {
            self.dots_in_key = 0;
        }
        if self.dots_in_key >= MAX_KEY_PARTS {
            self.excess_key_parts += 1;
            return;
        }
        self.key_parts += 1;
        if let Some(Some(filled @ false)) = self.open.last_mut() {
            *filled = true;
            self.filled_tables += 1;
        }
    }
    fn key_sep(&mut self, _span: Span, _error: &mut dyn ErrorSink) {
        self.after_dot = true;
        self.dots_in_key += 1;
        if self.dots_in_key < MAX_KEY_PARTS {
            self.key_dots += 1;
        }
    }
    fn scalar(&mut self, _span: Span, _kind: Option<toml_parser::decoder::Encoding>, _error: &mut dyn ErrorSink) {
        self.scalars += 1;
    }
}

/// Refuse a text whose parse cannot fit in the available memory (exit 2 naming the config),
/// before the toml crate's parse would abort the process. The estimate is an upper bound, and
/// the parse's memory is given back before the run takes any: it is checked against all that
/// is available, not the run's share.
pub fn check_parse_memory(text: &str) -> Result<()> {
    // (a text too small to matter is not counted: under 64 KiB it takes at most about 40 MiB)
    if text.len() < 1 << 16 {
        return Ok(());
    }
    let avail = available_memory();
    // (tokens that cannot be held are at most one a byte)
    let need =
        ParseCounts::of(text).unwrap_or_else(|| ParseCounts { tokens: text.len() as u64, bytes: text.len() as u64, ..ParseCounts::default() }).parse_bytes();
    if need <= avail.bytes {
        return Ok(());
    }
    let raise = avail.limit.ulimit().map(|flag| format!(", or raise the limit ({flag})")).unwrap_or_default();
    // (a parse error: the CLI names the config's file)
    Err(QbatError::parse(
        format!(
            "parsing its TOML text ({} bytes) needs about {}, more than the {} available{}; give fewer tables and dotted keys, sweep with a linspace or uniform axis, or split the points across runs{raise}",
            text.len(),
            size_need(need),
            size_text(avail.bytes),
            avail.under()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_kind_of_event() {
        // key parts a, b, t, c, d, e, x, y, z (dots after a and d); tables [t], {x = 1}, {}; arrays [1, [2]]; scalars 1, 2, 3, 4, 1.5
        let text = "a.b = 1\n[t]\nc = [1, [2]]\n\"d\".'e' = { x = 1.5 }\ny = {}\nz = \"s\" # 7\n";
        let c = ParseCounts::of(text).unwrap();
        assert_eq!((c.key_parts, c.key_dots), (9, 2), "{c:?}");
        assert_eq!((c.tables, c.filled_tables, c.arrays, c.scalars), (3, 1, 2, 5), "{c:?}");
        assert_eq!(c.bytes, text.len() as u64);
        // a key's parts past the parser's limit are not counted: it stops there
        let long = ParseCounts::of(&format!("{} = 1\nb.c = 2\n", vec!["a"; 200].join("."))).unwrap();
        assert_eq!((long.key_parts, long.key_dots, long.excess_key_parts), (MAX_KEY_PARTS as u64 + 2, MAX_KEY_PARTS as u64, 120), "{long:?}");
    }

    #[test]
    fn a_dotted_key_costs_more_than_the_same_bytes_of_numbers() {
        let dotted: String = (0..1000).map(|i| format!("k{i}.a.b.c.d = 1\n")).collect();
        let numbers = format!("v = [{}]\n", vec!["1.25"; dotted.len() / 5].join(","));
        let (d, n) = (ParseCounts::of(&dotted).unwrap().parse_bytes(), ParseCounts::of(&numbers).unwrap().parse_bytes());
        assert!(d > 4.0 * n, "{d} {n}");
    }
}
