//! `merge`'s `engines`: the engines that computed the whole run's blocks, from every shard's
//! list (one shard may have moved to the CPU after a device loss, or been resumed on another
//! backend). `analyze` reads them for the monotone tolerance: a shard's f32 blocks must not be
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
