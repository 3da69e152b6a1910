//! states.npy (`--save-states`): complex128 (`<c16`), shape (members, times, d, d), written
//! with a hand-made NPY 1.0 header and the raw little-endian (re, im) pairs of the blocks, so
//! that blocks and shards are concatenated byte for byte.

use crate::error::{QbatError, Result};
use crate::measures::saved::{basis, saved_dim, StateSave};
use crate::model::Space;
use std::io::{Read, Write};
use std::path::Path;

/// The first bytes of every npy file.
pub(super) const MAGIC: &[u8] = b"\x93NUMPY";

/// What states.json says: the axes of states.npy, the members and times, and the basis.
pub fn states_axes(space: Space, save: StateSave, ids: &[u64], times: &[f64]) -> serde_json::Value {
    serde_json::json!({
        "dtype": "complex128",
        "axes": ["member", "time", "row", "column"],
        "kind": save.name(),
        "dim": saved_dim(space, save),
        "basis": basis(space, save),
        "basis_order": "row-major Kronecker order, the first factor varying slowest (docs/physics.md)",
        "members": ids,
        "times": times,
    })
}

/// The NPY 1.0 header of a C-order complex128 array of `shape`, padded to 64 bytes.
pub fn write_c16_header(w: &mut dyn Write, shape: &[u64]) -> std::io::Result<()> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let dims = if dims.len() == 1 { format!("{},", dims[0]) } else { dims.join(", ") };
    write_npy_header(w, "<c16", &dims)
}

/// The NPY 1.0 header of a C-order float64 array of `shape`, byte for byte as npyz writes it
/// (every dimension followed by ", "), padded to 64 bytes: the data follow as raw
/// little-endian f64.
pub fn write_f8_header(w: &mut dyn Write, shape: &[u64]) -> std::io::Result<()> {
    let dims: String = shape.iter().map(|d| format!("{d}, ")).collect();
    write_npy_header(w, "<f8", &dims)
}

/// An NPY 1.0 header for the dtype `descr` and the shape tuple's text `dims`.
fn write_npy_header(w: &mut dyn Write, descr: &str, dims: &str) -> std::io::Result<()> {
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}");
    // magic (6) + version (2) + length (2) + dict + '\n' is a multiple of 64
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    w.write_all(MAGIC)?;
    w.write_all(&[1, 0])?;
    w.write_all(&(dict.len() as u16).to_le_bytes())?;
    w.write_all(dict.as_bytes())
}

/// The shape of a complex128 states.npy and the offset of its data, from its header; an error
/// naming the file for anything else, or for a size that does not match the shape.
pub fn read_c16_layout(path: &Path) -> Result<(Vec<u64>, u64)> {
    read_npy_layout(path, "<c16", 16, "complex128 states", write_c16_header)
}

/// The same for a float64 array (series.npy, summary.npy).
pub fn read_f8_layout(path: &Path) -> Result<(Vec<u64>, u64)> {
    read_npy_layout(path, "<f8", 8, "float64", write_f8_header)
}

/// The shape and data offset of a C-order NPY 1.0 file of dtype `descr` (`item` bytes a
/// value); `what` names the kind of file in the error. The header must be the one qbat-gpu
/// writes for that shape (`header`), byte for byte: a hand-made one (a key given twice, text
/// after the shape) could make numpy read the data otherwise than this header says.
fn read_npy_layout(path: &Path, descr: &str, item: u64, what: &str, header: fn(&mut dyn Write, &[u64]) -> std::io::Result<()>) -> Result<(Vec<u64>, u64)> {
    let bad = |why: &str| QbatError::invalid(path.display().to_string(), format!("not a {what} file: {why}"));
    // A regular file (opening a FIFO would block), of at least a header's 10 bytes.
    let size = match std::fs::metadata(path) {
        Ok(m) if m.is_file() => m.len(),
        Ok(_) => return Err(bad("not a regular file")),
        Err(e) => return Err(QbatError::invalid(path.display().to_string(), format!("cannot be read: {e}"))),
    };
    let (mut f, _) = crate::plain_file::open_followed_regular(path)?;
    let mut head = [0u8; 10];
    if size < 10 {
        return Err(bad("shorter than an NPY header"));
    }
    f.read_exact(&mut head).map_err(|e| QbatError::io(path, e))?;
    if &head[..6] != MAGIC || head[6] != 1 {
        return Err(bad("no NPY 1.0 header"));
    }
    let len = u16::from_le_bytes([head[8], head[9]]) as usize;
    if size < 10 + len as u64 {
        return Err(bad("its header runs past the end of the file"));
    }
    let mut dict = vec![0u8; len];
    f.read_exact(&mut dict).map_err(|e| QbatError::io(path, e))?;
    let dict = String::from_utf8_lossy(&dict);
    if !dict.contains(&format!("'descr': '{descr}'")) || !dict.contains("'fortran_order': False") {
        return Err(bad(&format!("dtype is not {descr} in C order")));
    }
    let shape_text = dict.split("'shape': (").nth(1).and_then(|r| r.split(')').next()).ok_or_else(|| bad("no shape"))?;
    let shape: Vec<u64> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(|x| x.parse::<u64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad("bad shape"))?;
    let mut canonical = vec![];
    header(&mut canonical, &shape).map_err(|e| bad(&e.to_string()))?;
    let mut found = head.to_vec();
    found.extend_from_slice(dict.as_bytes());
    if found != canonical {
        return Err(bad("its header is not the one qbat-gpu writes for its shape"));
    }
    let offset = 10 + len as u64;
    let want = shape
        .iter()
        .try_fold(item, |a, &d| a.checked_mul(d))
        .and_then(|b| b.checked_add(offset))
        .ok_or_else(|| bad(&format!("the shape {shape:?} is too large")))?;
    if size != want {
        return Err(bad(&format!("{size} bytes, the shape {shape:?} needs {want}")));
    }
    Ok((shape, offset))
}

/// The `bytes` data bytes of the NPY file at `path` (from byte `offset`, its layout's) into
/// `w`, as they are; an error if the file holds fewer (it changed since its layout was read).
pub fn copy_npy_data(path: &Path, offset: u64, bytes: u64, w: &mut dyn Write) -> std::io::Result<()> {
    let mut f = std::io::BufReader::with_capacity(1 << 20, crate::plain_file::open_followed_regular(path).map_err(std::io::Error::other)?.0);
    std::io::copy(&mut (&mut f).take(offset), &mut std::io::sink())?;
    let copied = std::io::copy(&mut (&mut f).take(bytes), w)?;
    if copied != bytes {
        return Err(std::io::Error::other(format!("{}: ended after {copied} of its {bytes} data bytes", path.display())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// series.npy's header is written here and its data copied from the blocks: the header must
    /// be npyz's, byte for byte (files and their hashes as before), for any rank and size.
    #[test]
    fn f8_header_is_npyz_header() {
        use npyz::WriterBuilder;
        for shape in [vec![5u64], vec![2, 3], vec![1000, 2001, 1], vec![0, 7, 2], vec![u64::MAX; 3], vec![123_456_789; 5]] {
            // npyz writes its header as it begins (the data would follow).
            let mut theirs = vec![];
            drop(npyz::WriteOptions::<f64>::new().default_dtype().shape(&shape).writer(&mut theirs).begin_nd().expect("npyz header"));
            let mut ours = vec![];
            write_f8_header(&mut ours, &shape).expect("header");
            assert_eq!(ours.len() % 64, 0);
            assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs), "shape {shape:?}");
        }
    }

    /// The layout reader takes qbat-gpu's own headers and refuses edited ones (each with a
    /// one-line message naming the file), short files and files whose size is not the shape's.
    #[test]
    fn layouts_refuse_edited_headers_and_sizes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).expect("write");
            p
        };
        let mut good = vec![];
        write_f8_header(&mut good, &[2, 3]).expect("header");
        let offset = good.len() as u64;
        good.extend(std::iter::repeat_n(0u8, 48));
        assert_eq!(read_f8_layout(&file("good.npy", &good)).expect("layout"), (vec![2, 3], offset));
        // the same dict with a second descr, padded to the same length
        let mut twice = good.clone();
        let dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3, ), 'descr': '>f8', }";
        twice[10..10 + dict.len()].copy_from_slice(dict.as_bytes());
        let mut short = good.clone();
        short.pop();
        for (name, bytes) in [("twice.npy", &twice[..]), ("short.npy", &short[..]), ("tiny.npy", &good[..5]), ("cut.npy", &good[..40])] {
            let p = file(name, bytes);
            let e = read_f8_layout(&p).expect_err(name).to_string();
            assert!(e.contains(name) && !e.contains('\n'), "{name}: {e}");
        }
        assert!(read_c16_layout(&dir.path().join("good.npy")).is_err(), "an f8 file is not a c16 one");
        assert!(read_f8_layout(&dir.path().join("missing.npy")).is_err());
    }
}
