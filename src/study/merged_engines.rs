//! `merge`'s `engines`: the engines that computed the whole run's blocks, from every shard's
//! list (one shard may have moved to the CPU after a device loss, or been resumed on another
//! backend). `analyze` reads them for the monotone tolerance: a shard's f32 blocks must not be
//! lost behind the first shard's f64 ones.

use serde_json::{json, Value};

/// The shards' `engines` entries summed per (backend, precision), in the order each first
/// appears; `blocks` the number of blocks each engine computed over all shards. Null where a
/// shard has no list (an older build's), rather than a list that leaves its blocks out.
pub(super) fn merged_engines<'a>(shards: impl IntoIterator<Item = &'a Value>) -> Value {
    let mut merged: Vec<(Value, Value, u64)> = vec![];
    for engines in shards {
        let Some(list) = engines.as_array() else {
            return Value::Null;
        };
        for e in list {
            let (backend, precision) = (e["backend"].clone(), e["precision"].clone());
            let blocks = e["blocks"].as_u64().unwrap_or(0);
            match merged.iter_mut().find(|(b, p, _)| *b == backend && *p == precision) {
                Some(m) => m.2 = m.2.saturating_add(blocks),
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
        let shards = [json!([cpu(5)]), json!([gpu(1), cpu(2)]), json!([cpu(3)])];
        assert_eq!(merged_engines(&shards), json!([cpu(10), gpu(1)]));
        // a shard without the list: none, not a list short of its blocks
        assert_eq!(merged_engines(&[json!([cpu(5)]), Value::Null]), Value::Null);
    }
}
