//! summary.csv and run.json read back (for the plots and `merge`).

use super::series::read_text;
use crate::error::{QbatError, Result};
use std::path::Path;

/// summary.csv as columns of numbers (theta/phi may be NaN).
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub columns: Vec<String>,
    /// rows[member][column]
    pub rows: Vec<Vec<f64>>,
}

impl Summary {
    pub fn col(&self, name: &str) -> Option<Vec<f64>> {
        let k = self.columns.iter().position(|c| c == name)?;
        Some(self.rows.iter().map(|r| r[k]).collect())
    }
    /// The swept parameter columns (between `member` and the angles / peaks).
    pub fn param_columns(&self) -> Vec<String> {
        self.columns.iter().skip(1).take_while(|c| *c != "theta" && !c.starts_with("max_")).cloned().collect()
    }
}

pub fn read_summary(dir: &Path) -> Result<Option<Summary>> {
    let path = dir.join("summary.csv");
    if !path.is_file() {
        return Ok(None);
    }
    let mut rdr = csv::Reader::from_reader(crate::plain_file::open_followed_regular(&path)?.0);
    let header: Vec<String> = rdr.headers().map_err(|e| QbatError::invalid(path.display().to_string(), e.to_string()))?.iter().map(String::from).collect();
    // the `health` column is text (ok, nonfinite, ...): the plots use the numeric ones
    let numeric = |k: usize| header[k] != "health";
    let columns: Vec<String> = header.iter().enumerate().filter(|(k, _)| numeric(*k)).map(|(_, c)| c.clone()).collect();
    let mut rows = vec![];
    for (i, rec) in rdr.records().enumerate() {
        let bad = |why: String| QbatError::invalid(path.display().to_string(), format!("line {}: {why}", i + 2));
        let rec = rec.map_err(|e| bad(e.to_string()))?;
        let row: Vec<f64> = rec
            .iter()
            .enumerate()
            .filter(|(k, _)| numeric(*k))
            .map(|(_, v)| v.trim().parse::<f64>().map_err(|_| bad(format!("not a number: {v:?}"))))
            .collect::<Result<_>>()?;
        rows.push(row);
    }
    Ok(Some(Summary { columns, rows }))
}

pub fn read_run_json(dir: &Path) -> Option<serde_json::Value> {
    let text = read_text(&dir.join("run.json")).ok()?;
    serde_json::from_str(&text).ok()
}
