//! The series reader against files written here by hand and by npyz.

use super::*;
use npyz::WriterBuilder;

/// series.json and a series.npy of `values` (2 members x 3 times x 2 measures) with the
/// given npy dtype, written by npyz.
fn write_series(dir: &Path, dtype: &str, values: &[f64]) {
    let axes = serde_json::json!({ "members": [7, 9], "times": [0.0, 0.5, 1.0], "measures": ["a", "b"] });
    std::fs::write(dir.join("series.json"), axes.to_string()).unwrap();
    let file = std::fs::File::create(dir.join("series.npy")).unwrap();
    let dtype = npyz::DType::Plain(dtype.parse().unwrap());
    let mut w = npyz::WriteOptions::<f64>::new().dtype(dtype).shape(&[2, 3, 2]).writer(file).begin_nd().unwrap();
    w.extend(values.iter().copied()).unwrap();
    w.finish().unwrap();
}

/// A measure named twice in series.json or in series.csv's header is refused, naming the
/// file and the measure; distinct names open.
#[test]
fn a_measure_named_twice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_series(dir.path(), "<f8", &[0.0; 12]);
    assert!(SeriesReader::open(dir.path()).unwrap().is_some());
    let axes = serde_json::json!({ "members": [7, 9], "times": [0.0, 0.5, 1.0], "measures": ["a", "a"] });
    std::fs::write(dir.path().join("series.json"), axes.to_string()).unwrap();
    let e = SeriesReader::open(dir.path()).err().expect("refused").to_string();
    assert!(e.contains("series.json") && e.contains("the measure a is listed twice"), "{e}");
    let csv_dir = tempfile::tempdir().unwrap();
    std::fs::write(csv_dir.path().join("series.csv"), "member,t,x,y,x\n0,0,1,2,3\n").unwrap();
    let e = SeriesReader::open(csv_dir.path()).err().expect("refused").to_string();
    assert!(e.contains("series.csv") && e.contains("the measure x is listed twice"), "{e}");
}

/// The rows formatted in parallel windows (here of 1 to 7 members, groups of one member
/// and more) are those of one row at a time, in member order, in `num`'s form.
#[test]
fn csv_rows_in_windows_are_the_rows_one_at_a_time() {
    let (ids, times, nm) = ([7u64, 3, 11, 0, 5, 2, 9], [0.0, 0.25, 1e-7], 2);
    let values: Vec<f64> = (0..ids.len() * times.len() * nm).map(|k| (k as f64).sqrt() * if k % 3 == 0 { -1e-9 } else { 1e5 }).collect();
    let mut want = String::new();
    for (i, id) in ids.iter().enumerate() {
        for (s, t) in times.iter().enumerate() {
            let k = (i * times.len() + s) * nm;
            want += &format!("{id},{},{},{}\n", crate::output::num(*t), crate::output::num(values[k]), crate::output::num(values[k + 1]));
        }
    }
    for window_values in [1, 6, 13, 42, 1000] {
        let mut got = vec![];
        write_csv_rows_in_windows(&mut got, &ids, &times, &values, nm, window_values).unwrap();
        assert_eq!(String::from_utf8(got).unwrap(), want, "windows of {window_values} values");
    }
}

#[test]
fn chunks_hand_over_every_member_once_in_order_and_stop_at_the_first_error() {
    let (nt, nm) = (3, 2);
    for n in [4usize, 5] {
        for dtype in ["<f8", ">f8"] {
            let dir = tempfile::tempdir().unwrap();
            let ids: Vec<u64> = (0..n as u64).map(|i| i * 3 + 1).collect();
            let values: Vec<f64> = (0..n * nt * nm).map(|i| (i as f64).sin() * 1e3).collect();
            let axes = serde_json::json!({ "members": ids, "times": [0.0, 0.5, 1.0], "measures": ["a", "b"] });
            std::fs::write(dir.path().join("series.json"), axes.to_string()).unwrap();
            let file = std::fs::File::create(dir.path().join("series.npy")).unwrap();
            let npy_dtype = npyz::DType::Plain(dtype.parse().unwrap());
            let mut w = npyz::WriteOptions::<f64>::new().dtype(npy_dtype).shape(&[n as u64, nt as u64, nm as u64]).writer(file).begin_nd().unwrap();
            w.extend(values.iter().copied()).unwrap();
            w.finish().unwrap();
            // chunks of 2: 4 members are two full chunks and an empty one, 5 end in one
            let read = |dir: &Path| {
                let mut rd = SeriesReader::open(dir).unwrap().unwrap();
                let (mut sizes, mut got_ids, mut got) = (vec![], vec![], vec![]);
                let r = read_chunks_of(&mut rd, 2, |c| {
                    sizes.push(c.ids.len());
                    for (id, block) in c.members() {
                        got_ids.push(id);
                        got.extend_from_slice(block);
                    }
                    Ok(())
                });
                (r, sizes, got_ids, got)
            };
            let (r, sizes, got_ids, got) = read(dir.path());
            r.unwrap();
            assert_eq!(sizes, if n == 4 { vec![2, 2, 0] } else { vec![2, 2, 1] }, "{dtype}");
            assert_eq!(got_ids, ids);
            assert!(got.len() == values.len() && got.iter().zip(&values).all(|(a, b)| a.to_bits() == b.to_bits()), "{dtype}");
            // an error from the taker ends it at once
            let mut rd = SeriesReader::open(dir.path()).unwrap().unwrap();
            let mut calls = 0;
            let r = read_chunks_of(&mut rd, 2, |_| {
                calls += 1;
                Err(QbatError::invalid("take", "stop here"))
            });
            assert!(r.unwrap_err().to_string().contains("stop here"));
            assert_eq!(calls, 1);
            // a file cut inside the last chunk is refused when it is opened, naming it
            let npy = dir.path().join("series.npy");
            let len = std::fs::metadata(&npy).unwrap().len();
            std::fs::OpenOptions::new().write(true).open(&npy).unwrap().set_len(len - 8).unwrap();
            let err = SeriesReader::open(dir.path()).err().expect("a cut file is refused").to_string();
            assert!(err.contains("series.npy") && err.contains("ends before its shape says"), "{err}");
        }
    }
}

#[test]
fn npy_members_read_in_either_byte_order_and_a_short_file_is_named() {
    let values: Vec<f64> = (0..12).map(|i| i as f64 * 0.25 - 1.0).collect();
    for dtype in ["<f8", ">f8"] {
        let dir = tempfile::tempdir().unwrap();
        write_series(dir.path(), dtype, &values);
        let mut rd = SeriesReader::open(dir.path()).unwrap().unwrap();
        let mut block = vec![];
        assert_eq!(rd.next_member(&mut block).unwrap(), Some(7));
        assert_eq!(block, values[..6]);
        assert_eq!(rd.next_member(&mut block).unwrap(), Some(9));
        assert_eq!(block, values[6..]);
        assert_eq!(rd.next_member(&mut block).unwrap(), None);
        // cut inside the second member
        let npy = dir.path().join("series.npy");
        let len = std::fs::metadata(&npy).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&npy).unwrap().set_len(len - 8).unwrap();
        let err = SeriesReader::open(dir.path()).err().expect("a cut file is refused").to_string();
        assert!(err.contains("series.npy") && err.contains("ends before its shape says"), "{err}");
    }
    let dir = tempfile::tempdir().unwrap();
    write_series(dir.path(), "<f8", &values);
    let file = std::fs::File::create(dir.path().join("series.npy")).unwrap();
    let mut w = npyz::WriteOptions::<f32>::new().default_dtype().shape(&[2, 3, 2]).writer(file).begin_nd().unwrap();
    w.extend(values.iter().map(|&v| v as f32)).unwrap();
    w.finish().unwrap();
    let err = SeriesReader::open(dir.path()).err().expect("f32 data is refused").to_string();
    assert!(err.contains("series.npy") && err.contains("'<f4'"), "{err}");
}
