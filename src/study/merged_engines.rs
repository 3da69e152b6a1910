//! `merge`'s `engines`: the engines that computed the whole run's blocks, from every shard's
//! list (one shard may have moved to the CPU after a device loss, or been resumed on another
//! backend); and the "mixed: A | B" of a run's or a merge's backends, devices and precisions. `analyze` reads them for the monotone tolerance: a shard's f32 blocks must not be
//! lost behind the first shard's f64 ones.

use serde_json::{json, Value};

/// The shards' `engines` entries (from each shard's run.json) summed per (backend, precision),
/// in the order each first appears; `blocks` the number of blocks each engine computed over
/// all shards. A shard without a list (an older build's) counts as its run.json's `backend`
/// and `precision`, of blocks not known: that engine's `blocks` is null.
pub(super) fn merged_engines<'a>(shard_runs: impl IntoIterator<Item = &'a Value>) -> Value {
    let mut merged: Vec<(Value, Value, Option<u64>)> = vec![];
    for run in shard_runs {
        let listed: Vec<(Value, Value, Option<u64>)> = match run["engines"].as_array() {
            Some(list) => list.iter().map(|e| (e["backend"].clone(), e["precision"].clone(), e["blocks"].as_u64())).collect(),
            None => vec![(run["backend"].clone(), run["precision"].clone(), None)],
        };
        for (backend, precision, blocks) in listed {
            match merged.iter_mut().find(|(b, p, _)| *b == backend && *p == precision) {
                Some(m) => m.2 = m.2.zip(blocks).map(|(a, b)| a.saturating_add(b)),
                None => merged.push((backend, precision, blocks)),
            }
        }
    }
    json!(merged.into_iter().map(|(backend, precision, blocks)| json!({"backend": backend, "precision": precision, "blocks": blocks})).collect::<Vec<_>>())
}

/// The distinct values of one of the shards' `backend`, `device` or `precision`, in the order
/// each first appears, a shard's own "mixed: A | B" (blocks of several engines or devices)
/// taken as its parts, so that a merge lists each once rather than nesting the lists.
pub(super) fn distinct_parts<'a>(values: impl IntoIterator<Item = &'a Value>) -> Vec<Value> {
    let mut seen: Vec<Value> = vec![];
    for v in values {
        let parts = match v.as_str().and_then(|s| s.strip_prefix("mixed: ")) {
            Some(list) => list.split(" | ").map(|p| json!(p)).collect(),
            None => vec![v.clone()],
        };
        for part in parts {
            if !seen.contains(&part) {
                seen.push(part);
            }
        }
    }
    seen
}

/// `current` (a run's backend or device, or "mixed: A | B" of several) with `this`, one more
/// block's, added where it is not among them.
pub(super) fn mixed_with(current: &str, this: &str) -> String {
    let parts = distinct_parts([&json!(current), &json!(this)]);
    match parts.len() {
        1 => current.to_string(),
        _ => format!("mixed: {}", parts.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" | ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_are_summed_per_backend_and_precision_across_shards() {
        let cpu = |n| json!({"backend": "cpu", "precision": "f64", "blocks": n});
        let gpu = |n| json!({"backend": "gpu", "precision": "f32", "blocks": n});
        let run = |engines: Value| json!({"backend": "cpu", "precision": "f64", "engines": engines});
        let shards = [run(json!([cpu(5)])), run(json!([gpu(1), cpu(2)])), run(json!([cpu(3)]))];
        assert_eq!(merged_engines(&shards), json!([cpu(10), gpu(1)]));
        // a shard without the list: its backend and precision, of blocks not known; the
        // others' engines kept
        let older = json!({"backend": "cpu", "precision": "f64"});
        assert_eq!(merged_engines(&[run(json!([gpu(1), cpu(2)])), older]), json!([gpu(1), {"backend": "cpu", "precision": "f64", "blocks": null}]));
    }
}
