//! A run's series files read back (series.npy + series.json, or series.csv), one member's
//! block at a time with bounded memory, for `analyze` and the plots.

use crate::error::{QbatError, Result};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

mod seen_ids;
use seen_ids::SeenIds;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeriesFormat {
    Csv,
    Npy,
}

enum Source {
    /// The data after the npy header: f64, little-endian unless `big_endian`; `bytes` holds
    /// one member's.
    Npy { data: BufReader<std::fs::File>, big_endian: bool, bytes: Vec<u8> },
    Csv {
        rows: csv::StringRecordsIntoIter<BufReader<std::fs::File>>,
        line: u64,
        /// the member ids read so far (a member listed twice would be counted twice)
        seen: SeenIds,
    },
}

/// A run's series, read one member's block (times x measures, row-major) at a time.
pub struct SeriesReader {
    pub format: SeriesFormat,
    pub path: PathBuf,
    pub members_total: usize,
    pub times: Vec<f64>,
    pub measures: Vec<String>,
    /// Member ids in file order when known up front (npy: from series.json).
    ids: Option<Vec<u64>>,
    next_index: usize,
    source: Source,
}

/// The longest npy header read (numpy's own reader stops at 10,000 bytes).
const MAX_NPY_HEADER: usize = 1 << 16;
/// The deepest nesting of brackets in a header read: a dict of a shape tuple is 2, a
/// structured dtype's list of tuples 3 (npyz's parser takes time exponential in the depth).
const MAX_NPY_NESTING: usize = 3;

/// The magic, version, length and header of an npy file, read from `data` (left at the first
/// data byte) and checked before npyz parses them: a damaged length or a deeply nested header
/// is refused, naming the file.
fn read_npy_header(npy: &Path, data: &mut impl Read) -> Result<Vec<u8>> {
    let cut = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => bad(npy, "the file ends inside its npy header"),
        _ => QbatError::io(npy, e),
    };
    let mut header = vec![0u8; 8];
    data.read_exact(&mut header).map_err(cut)?;
    if &header[..6] != super::states::MAGIC {
        return Err(bad(npy, "not an npy file (it does not start with \\x93NUMPY)"));
    }
    let width = match header[6] {
        1 => 2,
        2 | 3 => 4,
        v => return Err(bad(npy, format!("npy format version {v}.{} is not one qbat-gpu reads (1 to 3)", header[7]))),
    };
    let mut len = [0u8; 4];
    data.read_exact(&mut len[..width]).map_err(cut)?;
    header.extend_from_slice(&len[..width]);
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_NPY_HEADER {
        return Err(bad(npy, format!("its npy header claims {len} bytes; at most {MAX_NPY_HEADER} are read")));
    }
    let start = header.len();
    header.resize(start + len, 0);
    data.read_exact(&mut header[start..]).map_err(cut)?;
    let mut depth = 0usize;
    for &c in &header[start..] {
        match c {
            b'[' | b'(' | b'{' => depth += 1,
            b']' | b')' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > MAX_NPY_NESTING {
            return Err(bad(npy, format!("its npy header nests brackets deeper than {MAX_NPY_NESTING}: not a header of f64 data")));
        }
    }
    Ok(header)
}

/// The axes a run writes: distinct member ids, and sample times that are finite and strictly
/// increasing, as `[time]` requires them, or the steady state's single t = inf (null). A
/// series.json made or edited by hand is refused otherwise (its rows would be analysed under
/// times or ids they do not have).
fn check_axes(path: &Path, ids: &[u64], times: &[f64]) -> Result<()> {
    // (a single time has no pair: the steady state's inf passes, NaN and -inf do not)
    if let [t] = times {
        if t.is_nan() || *t == f64::NEG_INFINITY {
            return Err(bad(path, format!("sample time {t} is not a time")));
        }
    } else if let Some(w) = times.windows(2).position(|w| !(w[0].is_finite() && w[1].is_finite() && w[0] < w[1])) {
        // (series.json writes an infinite time as null; series.csv as inf, its time text
        // beyond f64 refused as it is parsed)
        let json = path.extension().is_some_and(|e| e == "json");
        let shown = |t: f64| if t.is_infinite() && json { "null".to_string() } else { t.to_string() };
        return Err(bad(
            path,
            format!("sample times must be finite and strictly increasing: times[{w}] = {} then times[{}] = {}", shown(times[w]), w + 1, shown(times[w + 1])),
        ));
    }
    // (a run lists its ids increasing: sorted only when they are not)
    if ids.windows(2).all(|w| w[0] < w[1]) {
        return Ok(());
    }
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(bad(path, format!("member {} is listed twice in \"members\"", w[0])));
    }
    Ok(())
}

fn bad(path: &Path, reason: impl Into<String>) -> QbatError {
    QbatError::invalid(path.display().to_string(), reason)
}

/// serde_json writes a non-finite float as null; the only non-finite sample time a run writes
/// is the steady state's t = inf.
fn json_time(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Null => Some(f64::INFINITY),
        v => v.as_f64(),
    }
}

impl SeriesReader {
    /// Open DIR's series (series.npy + series.json, or series.csv); None when the run wrote none.
    pub fn open(dir: &Path) -> Result<Option<SeriesReader>> {
        let npy = dir.join("series.npy");
        let csv_path = dir.join("series.csv");
        for p in [&npy, &csv_path] {
            // a symbolic link to a device (/dev/zero) is not a series: never read it
            if p.exists() && !std::fs::metadata(p).is_ok_and(|m| m.is_file()) {
                return Err(QbatError::invalid(p.display().to_string(), "is not a regular file"));
            }
        }
        // The run's own series, where a run's manifest (one listing run.json; `analyze` of a
        // series made by hand lists only its own files) is there: a series of another format
        // put beside it later is not read in its place, nor one beside a run that wrote none.
        let listed = super::manifest::Manifest::read(dir)?.filter(|m| m.contains("run.json")).map(|m| (m.contains("series.npy"), m.contains("series.csv")));
        if let Some((npy_listed, csv_listed)) = listed {
            for (was_listed, p) in [(npy_listed, &npy), (csv_listed, &csv_path)] {
                // (a listed series gone is not a run that wrote none)
                if was_listed && std::fs::symlink_metadata(p).is_err() {
                    return Err(QbatError::invalid(
                        p.display().to_string(),
                        "is listed in the run's manifest but missing: the run's series was moved or removed",
                    ));
                }
                if !npy_listed && !csv_listed && p.is_file() {
                    return Err(QbatError::invalid(
                        p.display().to_string(),
                        "is not in the run's manifest (the run wrote no series): qbat-gpu reads only the series its run wrote",
                    ));
                }
            }
        }
        let (npy_ok, csv_ok) = listed.unwrap_or((true, true));
        if npy_ok && npy.is_file() {
            Self::open_npy(dir, &npy).map(Some)
        } else if csv_ok && csv_path.is_file() {
            Self::open_csv(&csv_path).map(Some)
        } else {
            Ok(None)
        }
    }

    fn open_npy(dir: &Path, npy: &Path) -> Result<SeriesReader> {
        let axes_path = dir.join("series.json");
        let text = super::read_text_bounded(&axes_path, axes_limit(npy)?)?;
        let axes: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(&axes_path, format!("not JSON: {e}")))?;
        let list = |k: &str| axes[k].as_array().cloned().ok_or_else(|| bad(&axes_path, format!("no \"{k}\" list")));
        let ids: Vec<u64> = list("members")?.iter().map(|v| v.as_u64().ok_or_else(|| bad(&axes_path, "member ids must be integers"))).collect::<Result<_>>()?;
        let times: Vec<f64> = list("times")?.iter().map(|v| json_time(v).ok_or_else(|| bad(&axes_path, "times must be numbers"))).collect::<Result<_>>()?;
        if times.is_empty() {
            return Err(bad(&axes_path, "\"times\" is empty: a series has at least one sample time"));
        }
        check_axes(&axes_path, &ids, &times)?;
        let measures: Vec<String> =
            list("measures")?.iter().map(|v| v.as_str().map(String::from).ok_or_else(|| bad(&axes_path, "measures must be names"))).collect::<Result<_>>()?;
        distinct_measures(&axes_path, &measures)?;
        let (file, _) = crate::plain_file::open_followed_regular(npy)?;
        let mut data = BufReader::with_capacity(1 << 20, file);
        let header = read_npy_header(npy, &mut data)?;
        let npy_file = npyz::NpyFile::new(&header[..]).map_err(|e| {
            // its first line only: npyz quotes the whole header
            let why: String = e.to_string().lines().next().unwrap_or_default().chars().take(200).collect();
            bad(npy, format!("not a readable npy file: {why}"))
        })?;
        let shape = npy_file.shape().to_vec();
        if npy_file.order() != npyz::Order::C {
            return Err(bad(npy, "expected C (row-major) order"));
        }
        let want = [ids.len() as u64, times.len() as u64, measures.len() as u64];
        if shape != want {
            return Err(bad(npy, format!("shape {shape:?} does not match series.json's axes {want:?}")));
        }
        let big_endian = match npy_file.dtype().descr().as_str() {
            "'<f8'" => false,
            "'>f8'" => true,
            other => return Err(bad(npy, format!("expected f64 data ('<f8' or '>f8'), found dtype {other}"))),
        };
        // A member's bytes are allocated before they are read: a header that claims more
        // data than the file holds is refused here.
        let data_bytes = shape.iter().try_fold(8u64, |acc, &d| acc.checked_mul(d));
        let file_bytes = std::fs::metadata(npy).map_err(|e| QbatError::io(npy, e))?.len();
        // (numpy's format: the data follows the header exactly, with nothing after it)
        let after_header = file_bytes.checked_sub(header.len() as u64);
        match data_bytes.zip(after_header) {
            Some((b, held)) if b == held => {}
            Some((b, held)) if b < held => {
                return Err(bad(npy, format!("{file_bytes} bytes, but the header's shape {shape:?} needs {}: bytes after the data", b + header.len() as u64)))
            }
            // (more data than the file holds past its header, a shape whose size overflows, or
            // a file shorter than its header)
            _ => return Err(bad(npy, "the file ends before its shape says")),
        }
        Ok(SeriesReader {
            format: SeriesFormat::Npy,
            path: npy.into(),
            members_total: ids.len(),
            times,
            measures,
            ids: Some(ids),
            next_index: 0,
            source: Source::Npy { data, big_endian, bytes: vec![] },
        })
    }

    fn open_csv(path: &Path) -> Result<SeriesReader> {
        // Rows per member come from the first member's rows; the member count from the line count.
        let lines = count_lines(path)?;
        let (file, _) = crate::plain_file::open_followed_regular(path)?;
        let mut rdr = csv::ReaderBuilder::new().has_headers(true).from_reader(BufReader::with_capacity(1 << 20, file));
        let header = rdr.headers().map_err(|e| bad(path, format!("header: {e}")))?.clone();
        if header.len() < 3 || &header[0] != "member" || &header[1] != "t" {
            return Err(bad(path, "expected the columns member,t,<measure>..."));
        }
        let measures: Vec<String> = header.iter().skip(2).map(String::from).collect();
        distinct_measures(path, &measures)?;
        let mut rows = rdr.into_records();
        let mut times = vec![];
        let mut first_id = None;
        let mut line = 1u64;
        for rec in rows.by_ref() {
            line += 1;
            let rec = rec.map_err(|e| bad(path, format!("line {line}: {e}")))?;
            let id = parse_u64(path, line, &rec, 0)?;
            if first_id.is_some_and(|f| f != id) {
                break;
            }
            first_id = Some(id);
            let t = parse_f64(path, line, &rec, 1)?;
            if t.is_infinite() && !matches!(rec[1].trim().trim_start_matches(['+', '-']).to_ascii_lowercase().as_str(), "inf" | "infinity") {
                return Err(bad(path, format!("line {line}: t = {} is beyond the range of f64", rec[1].trim())));
            }
            times.push(t);
        }
        if times.is_empty() {
            return Err(bad(path, "the series has no rows"));
        }
        // (the rows of later members are checked against these as they are read)
        check_axes(path, &[], &times)?;
        let data_rows = lines.saturating_sub(1);
        if data_rows % times.len() as u64 != 0 {
            return Err(bad(path, format!("{data_rows} rows are not a whole number of members of {} sample times each", times.len())));
        }
        let members_total = (data_rows / times.len() as u64) as usize;
        // Re-open to read from the first member again.
        let (file, _) = crate::plain_file::open_followed_regular(path)?;
        let rows = csv::ReaderBuilder::new().has_headers(true).from_reader(BufReader::with_capacity(1 << 20, file)).into_records();
        Ok(SeriesReader {
            format: SeriesFormat::Csv,
            path: path.into(),
            members_total,
            times,
            measures,
            ids: None,
            next_index: 0,
            source: Source::Csv { rows, line: 1, seen: Default::default() },
        })
    }

    pub fn n_times(&self) -> usize {
        self.times.len()
    }

    pub fn n_measures(&self) -> usize {
        self.measures.len()
    }

    pub fn measure_index(&self, name: &str) -> Option<usize> {
        self.measures.iter().position(|m| m == name)
    }

    /// Read the next member into `block` (times x measures, row-major); returns its id, or
    /// None after the last member.
    pub fn next_member(&mut self, block: &mut Vec<f64>) -> Result<Option<u64>> {
        let (nt, nm) = (self.times.len(), self.measures.len());
        block.clear();
        if self.next_index >= self.members_total {
            return Ok(None);
        }
        let index = self.next_index;
        let id = match &mut self.source {
            Source::Npy { data, big_endian, bytes } => {
                // One read per member, decoded in place (no per-value reader calls).
                bytes.resize(nt * nm * 8, 0);
                data.read_exact(bytes).map_err(|e| match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => bad(&self.path, "the file ends before its shape says"),
                    _ => QbatError::io(&self.path, e),
                })?;
                let decode = if *big_endian { f64::from_be_bytes } else { f64::from_le_bytes };
                block.extend(bytes.chunks_exact(8).map(|b| decode(b.try_into().expect("8 bytes"))));
                self.ids.as_ref().expect("npy ids")[index]
            }
            Source::Csv { rows, line, seen } => {
                let mut id = None;
                for s in 0..nt {
                    *line += 1;
                    let rec = match rows.next() {
                        Some(r) => r.map_err(|e| bad(&self.path, format!("line {line}: {e}")))?,
                        None => return Err(bad(&self.path, format!("line {line}: the file ends inside member {index}"))),
                    };
                    if rec.len() != nm + 2 {
                        return Err(bad(&self.path, format!("line {line}: {} fields, expected {}", rec.len(), nm + 2)));
                    }
                    let this = parse_u64(&self.path, *line, &rec, 0)?;
                    if *id.get_or_insert(this) != this {
                        return Err(bad(&self.path, format!("line {line}: member {this} has fewer than {nt} sample times")));
                    }
                    let (path, members_total, at) = (&self.path, self.members_total, *line);
                    if s == 0 && !seen.take(this, index, (path, at), members_total, nt)? {
                        return Err(bad(&self.path, format!("line {line}: member {this} is listed twice")));
                    }
                    let t = parse_f64(&self.path, *line, &rec, 1)?;
                    if t != self.times[s] {
                        return Err(bad(&self.path, format!("line {line}: t = {t}, expected {} (every member has the same sample times)", self.times[s])));
                    }
                    for k in 0..nm {
                        block.push(parse_f64(&self.path, *line, &rec, k + 2)?);
                    }
                }
                id.expect("nt > 0")
            }
        };
        self.next_index += 1;
        Ok(Some(id))
    }
}

/// The size bound of the axes file beside `npy` (series.json, states.json): its member ids
/// grow with the array, so the small files' limit and 32 bytes (a pretty-printed id) per
/// 8 bytes the npy holds.
pub fn axes_limit(npy: &Path) -> Result<u64> {
    let npy_len = std::fs::metadata(npy).map_err(|e| QbatError::io(npy, e))?.len();
    Ok(super::SMALL_FILE_LIMIT.saturating_add(npy_len / 8 * 32))
}

/// A series names each measure once: a repeated name would have its columns read as one.
/// The longest measure name a series may carry (qbat-gpu's are under 40 characters).
const MAX_MEASURE_NAME: usize = 100;

fn distinct_measures(path: &Path, measures: &[String]) -> Result<()> {
    for (k, m) in measures.iter().enumerate() {
        // (a name goes into the files the analysis writes, plot_hist2d_<a>_<b>.png, and its
        // rows: no path separators, quotes or control characters)
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
        if m.is_empty() || m.len() > MAX_MEASURE_NAME || !m.chars().all(plain) || m.starts_with('.') {
            return Err(bad(path, format!("the measure name {m:?} is not one qbat-gpu reads (letters, digits, '_', '-' and '.', at most {MAX_MEASURE_NAME})")));
        }
        if measures[..k].contains(m) {
            return Err(bad(path, format!("the measure {m} is listed twice")));
        }
    }
    Ok(())
}

/// Consecutive members of a series: their ids, and their blocks (times x measures, row-major)
/// one after another.
#[derive(Default)]
pub struct Chunk {
    pub ids: Vec<u64>,
    values: Vec<f64>,
}

impl Chunk {
    /// Each member's id and block, in order.
    pub fn members(&self) -> impl Iterator<Item = (u64, &[f64])> {
        let row = self.values.len() / self.ids.len().max(1);
        self.ids.iter().copied().zip(self.values.chunks_exact(row.max(1)))
    }
}

impl SeriesReader {
    /// Read the next (up to) `max` members into `chunk`, reusing its memory; it is empty after
    /// the last member. npy data are read straight into the values' memory.
    pub fn next_chunk(&mut self, max: usize, chunk: &mut Chunk) -> Result<()> {
        let row = self.times.len() * self.measures.len();
        let count = max.min(self.members_total - self.next_index);
        chunk.ids.clear();
        chunk.values.clear();
        match &mut self.source {
            Source::Npy { data, big_endian: false, .. } if cfg!(target_endian = "little") => {
                chunk.values.resize(count * row, 0.0);
                data.read_exact(bytemuck::cast_slice_mut(&mut chunk.values)).map_err(|e| match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => bad(&self.path, "the file ends before its shape says"),
                    _ => QbatError::io(&self.path, e),
                })?;
                chunk.ids.extend_from_slice(&self.ids.as_ref().expect("npy ids")[self.next_index..self.next_index + count]);
                self.next_index += count;
            }
            _ => {
                let mut block = vec![];
                while chunk.ids.len() < count {
                    let id = self.next_member(&mut block)?.expect("members remain");
                    chunk.ids.push(id);
                    chunk.values.extend_from_slice(&block);
                }
            }
        }
        Ok(())
    }
}

/// Every member of `reader`, in order, handed to `take` a chunk at a time (chunks of about
/// 8 MiB): a thread reads the next chunk while `take` works on the last, so at most three
/// chunks are held at once (one taken in, one queued, one being read), and their memory is
/// reused. The first error, reading or taking, ends it.
pub fn read_in_chunks(reader: &mut SeriesReader, take: impl FnMut(&Chunk) -> Result<()>) -> Result<()> {
    // small enough that the three chunks' memory stays warm: on a VM, memory touched for the
    // first time costs more than reading the file into it
    let chunk_members = ((1usize << 20) / (reader.n_times() * reader.n_measures()).max(1)).clamp(1, 4096);
    read_chunks_of(reader, chunk_members, take)
}

/// `read_in_chunks` with chunks of `chunk_members` members.
fn read_chunks_of(reader: &mut SeriesReader, chunk_members: usize, mut take: impl FnMut(&Chunk) -> Result<()>) -> Result<()> {
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Chunk>>(1);
        let (reuse_tx, reuse_rx) = std::sync::mpsc::channel::<Chunk>();
        crate::threads::spawn_scoped(scope, "the series reader", move || loop {
            let mut chunk = reuse_rx.try_recv().unwrap_or_default();
            let read = reader.next_chunk(chunk_members, &mut chunk);
            let last = read.is_err() || chunk.ids.len() < chunk_members;
            if tx.send(read.map(|_| chunk)).is_err() || last {
                break;
            }
        })?;
        for chunk in rx {
            let chunk = chunk?;
            take(&chunk)?;
            let _ = reuse_tx.send(chunk);
        }
        Ok(())
    })
}

/// The lines of a csv file (a last one without its newline counted). Lines end with LF or
/// CRLF; a carriage return that ends no line is refused, naming its line: the csv reader
/// would end a record there, and the file would hold more records than lines.
pub fn count_lines(path: &Path) -> Result<u64> {
    let mut f = BufReader::with_capacity(1 << 20, crate::plain_file::open_followed_regular(path)?.0);
    let mut n = 0u64;
    let mut last = b'\n';
    loop {
        let buf = f.fill_buf().map_err(|e| QbatError::io(path, e))?;
        if buf.is_empty() {
            break;
        }
        let newlines = |bytes: &[u8]| bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        // (a CR at the end of the previous piece, or anywhere here, before a byte but LF)
        let lone_cr =
            (last == b'\r' && buf[0] != b'\n').then_some(0).or_else(|| memchr::memchr_iter(b'\r', buf).find(|&i| buf.get(i + 1).is_some_and(|&b| b != b'\n')));
        if let Some(i) = lone_cr {
            return Err(bad(path, format!("line {}: a carriage return ends no line (lines end with LF or CRLF)", n + newlines(&buf[..i]) + 1)));
        }
        n += newlines(buf);
        last = buf[buf.len() - 1];
        let len = buf.len();
        f.consume(len);
    }
    if last == b'\r' {
        return Err(bad(path, format!("line {}: a carriage return ends no line (lines end with LF or CRLF)", n + 1)));
    }
    Ok(n + u64::from(last != b'\n'))
}

fn parse_u64(path: &Path, line: u64, rec: &csv::StringRecord, i: usize) -> Result<u64> {
    rec[i].trim().parse().map_err(|_| bad(path, format!("line {line}: column {} is not a member id: {:?}", i + 1, &rec[i])))
}

fn parse_f64(path: &Path, line: u64, rec: &csv::StringRecord, i: usize) -> Result<f64> {
    rec[i].trim().parse().map_err(|_| bad(path, format!("line {line}: column {} is not a number: {:?}", i + 1, &rec[i])))
}

/// Member i of n is in the evenly strided subset of `cap` members.
pub fn in_subset(i: usize, n: usize, cap: usize) -> bool {
    n <= cap || ((i as u128 * cap as u128) % n as u128) < cap as u128
}

/// Read a small file (run.json, series.json) fully, bounded (`read_text_bounded`).
pub fn read_text(path: &Path) -> Result<String> {
    super::read_text_bounded(path, super::SMALL_FILE_LIMIT)
}

/// series.csv's header: `member,t,<measure>...`.
pub fn write_csv_header(w: &mut dyn std::io::Write, measures: &[&str]) -> std::io::Result<()> {
    write!(w, "member,t")?;
    for name in measures {
        write!(w, ",{name}")?;
    }
    writeln!(w)
}

/// series.csv rows of the members `ids`, whose `values` are [member][sample][measure] with
/// `nm` measures: one row per member and sample time, numbers in round-trip form (`num`'s).
/// The text is formatted by every core, a window of about `CSV_WINDOW_VALUES` values at a
/// time, and written in member order.
pub fn write_csv_rows(w: &mut dyn std::io::Write, ids: &[u64], times: &[f64], values: &[f64], nm: usize) -> std::io::Result<()> {
    write_csv_rows_in_windows(w, ids, times, values, nm, csv_window_values())
}

fn write_csv_rows_in_windows(w: &mut dyn std::io::Write, ids: &[u64], times: &[f64], values: &[f64], nm: usize, window_values: usize) -> std::io::Result<()> {
    use rayon::prelude::*;
    let row = times.len() * nm;
    if values.len() < ids.len() * row {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{} values for {} members of {row}", values.len(), ids.len())));
    }
    // each sample time formatted once, not once a member
    let times: Vec<String> = times.iter().map(|t| format!("{t:?}")).collect();
    let times = &times[..];
    if row == 0 {
        return member_rows(w, ids, times, values, nm);
    }
    let window = (window_values / row).max(1);
    // a few groups per thread, so that uneven formatting costs even out
    let group = (window / (4 * rayon::current_num_threads())).max(1);
    for (ids, values) in ids.chunks(window).zip(values.chunks(window * row)) {
        let texts: Vec<Vec<u8>> = ids
            .par_chunks(group)
            .zip(values.par_chunks(group * row))
            .map(|(ids, values)| {
                let mut text = Vec::with_capacity(ids.len() * row * 24);
                member_rows(&mut text, ids, times, values, nm)?;
                Ok(text)
            })
            .collect::<std::io::Result<_>>()?;
        for text in texts {
            w.write_all(&text)?;
        }
    }
    Ok(())
}

/// Values formatted per window of `write_csv_rows` (about 100 MB of text).
const CSV_WINDOW_VALUES: usize = 4 << 20;

/// Text a window's value may take: up to 25 characters with its comma, as much again for its
/// row's id and time where a row holds one measure, and twice that while a group's buffer
/// doubles as it grows.
const CSV_TEXT_BYTES_PER_VALUE: f64 = 96.0;

/// `CSV_WINDOW_VALUES`, or fewer where a quarter of the usable memory cannot hold their text
/// (under a tight `ulimit -v` or `ulimit -d` the memory check does not count the window, and a
/// 100 MB window aborted a run that fitted). Read as each block is written: the block's values
/// are then held already.
fn csv_window_values() -> usize {
    let usable = crate::config::available_memory::available_memory().usable();
    CSV_WINDOW_VALUES.min((0.25 * usable / CSV_TEXT_BYTES_PER_VALUE) as usize).max(1)
}

/// The rows of `ids`, the sample times given as text (`{:?}`, `num`'s form).
fn member_rows(w: &mut (impl std::io::Write + ?Sized), ids: &[u64], times: &[String], values: &[f64], nm: usize) -> std::io::Result<()> {
    let ns = times.len();
    for (i, id) in ids.iter().enumerate() {
        let id = id.to_string();
        for (s, t) in times.iter().enumerate() {
            w.write_all(id.as_bytes())?;
            w.write_all(b",")?;
            w.write_all(t.as_bytes())?;
            // (`{:?}` is `num`'s form, written without a String per number)
            for v in &values[(i * ns + s) * nm..(i * ns + s + 1) * nm] {
                write!(w, ",{v:?}")?;
            }
            w.write_all(b"\n")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
