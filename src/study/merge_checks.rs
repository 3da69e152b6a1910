//! `merge`'s check of the shards' series axes: every shard's series.json (npy) or series.csv
//! header (csv) names the first shard's measures, in its order, at its times, and series.json
//! its own member range's ids. The merged output takes one shard's axes for all: a shard whose
//! axes were edited (two measure names swapped, a time nudged, ids shifted) and its manifest
//! sealed again would otherwise relabel the other shards' columns.

use crate::error::{QbatError, Result};
use crate::output::read_bounded;
use crate::output::series::axes_limit;
use serde_json::Value;
use std::io::BufRead;
use std::ops::Range;
use std::path::Path;

/// Each shard's series.json (`dir`, member range), checked against the first's measures and
/// times and against its range's ids; the merged series.json: the first's, with every shard's
/// ids in order.
pub fn merged_series_axes(shards: &[(&Path, Range<usize>)]) -> Result<Value> {
    let mut merged = Value::Null;
    let mut ids: Vec<Value> = vec![];
    for (dir, range) in shards {
        let p = dir.join("series.json");
        let named = || p.display().to_string();
        let a: Value = serde_json::from_slice(&read_bounded(&p, axes_limit(&dir.join("series.npy"))?)?)
            .map_err(|e| QbatError::invalid(named(), format!("is not valid JSON: {e}")))?;
        let members = a["members"].as_array().ok_or_else(|| QbatError::invalid(named(), "has no members list"))?;
        let want = range.start as u64..range.end as u64;
        if members.len() as u64 != want.end - want.start || members.iter().zip(want.clone()).any(|(m, id)| m.as_u64() != Some(id)) {
            return Err(QbatError::invalid(
                named(),
                format!("lists members {}, not the ids {}..{} of the shard's range (run.json shard.members)", short(members), want.start, want.end),
            ));
        }
        ids.extend(members.iter().cloned());
        if merged.is_null() {
            merged = a;
        } else {
            for key in ["measures", "times"] {
                if a[key] != merged[key] {
                    let first = shards[0].0.join("series.json");
                    return Err(QbatError::invalid(
                        named(),
                        format!("{}, not as in {}: the shards' series do not line up", difference(key, &a[key], &merged[key]), first.display()),
                    ));
                }
            }
        }
    }
    merged["members"] = Value::Array(ids);
    Ok(merged)
}

/// Each shard's series.csv header line (its columns: member, time, parameters, measures) equal
/// to the first's.
pub fn check_csv_headers(dirs: &[&Path]) -> Result<()> {
    let mut first: Option<String> = None;
    for dir in dirs {
        let p = dir.join("series.csv");
        let file = crate::plain_file::open_followed_regular(&p)?.0;
        let mut header = String::new();
        // (one line, bounded: a header is the column names)
        std::io::Read::take(std::io::BufReader::new(file), crate::output::SMALL_FILE_LIMIT)
            .read_line(&mut header)
            .map_err(|e| QbatError::invalid(p.display().to_string(), format!("unreadable header: {e}")))?;
        match &first {
            None => first = Some(header),
            Some(h) if *h != header => {
                return Err(QbatError::invalid(
                    p.display().to_string(),
                    format!("its header names other columns than {}'s: the shards' series do not line up", dirs[0].join("series.csv").display()),
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// A list for a one-line message: its first entries, and how many there are.
fn short(v: &[Value]) -> String {
    const SHOWN: usize = 4;
    let head: Vec<String> = v.iter().take(SHOWN).map(|x| x.to_string()).collect();
    if v.len() > SHOWN {
        format!("[{}, ... ({} in all)]", head.join(", "), v.len())
    } else {
        format!("[{}]", head.join(", "))
    }
}

/// Where `got` first differs from `want` (lists of measures or times), for a message.
fn difference(key: &str, got: &Value, want: &Value) -> String {
    match (got.as_array(), want.as_array()) {
        (Some(g), Some(w)) if g.len() != w.len() => format!("its {key} are {} entries, not {}", g.len(), w.len()),
        (Some(g), Some(w)) => match g.iter().zip(w).position(|(x, y)| x != y) {
            Some(k) => format!("its {key}[{k}] is {}, not {}", g[k], w[k]),
            None => format!("its {key} differ"),
        },
        _ => format!("its {key} is not a list"),
    }
}
