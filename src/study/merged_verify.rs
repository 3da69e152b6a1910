//! The verify sections of shards merged into the run's (`merge`): every member re-run, each
//! measure's worst deviation at each precision, and the check of dt that moved most.

use serde_json::{json, Value};

/// The WARNING of a merged `verify` that fails, as a run's (`VerifyReport::warning`).
pub(super) fn merged_warning(merged: &Value) -> Option<String> {
    if merged["pass"] != json!(false) {
        return None;
    }
    let deviations = merged["deviations"].as_array().map(Vec::as_slice).unwrap_or_default();
    // (an infinite deviation is null in JSON)
    let failed = deviations.iter().filter(|d| d["pass"] == json!(false)).map(|d| {
        let number = |key: &str| d[key].as_f64().unwrap_or(f64::INFINITY);
        (d["measure"].as_str().unwrap_or("?"), number("max_abs"), number("tolerance"), d["member"].as_u64())
    });
    Some(crate::verify::verify_warning(failed))
}

/// The merged `verify` of the shards' (each with its run's precision), the first's taken for
/// what is not merged (the concurrence's route).
pub(super) fn merged_verify(verifies: &[(&Value, &Value)]) -> Value {
    let mut merged = verifies[0].0.clone();
    merged["members"] = json!(verifies.iter().flat_map(|(v, _)| v["members"].as_array().cloned().unwrap_or_default()).collect::<Vec<_>>());
    merged["pass"] = json!(verifies.iter().all(|(v, _)| v["pass"] == json!(true)));
    merged["deviations"] = json!(merged_deviations(verifies));
    // the check of dt of the shard whose member moved most past its limit
    let ratio = |c: &Value| {
        c["deviations"]
            .as_array()
            .map_or(0.0, |d| d.iter().map(|x| x["max_abs"].as_f64().unwrap_or(0.0) / x["limit"].as_f64().unwrap_or(f64::INFINITY)).fold(0.0, f64::max))
    };
    let checks = verifies.iter().map(|(v, _)| &v["dt_halved"]).filter(|c| c.is_object());
    match checks.max_by(|a, b| ratio(a).total_cmp(&ratio(b))) {
        Some(c) => merged["dt_halved"] = c.clone(),
        None => _ = merged.as_object_mut().map(|m| m.remove("dt_halved")),
    }
    merged
}

/// The shards' verify deviations merged per (measure, precision), in the order first seen:
/// each the worst member's (the largest deviation as a fraction of its own tolerance,
/// max_abs / max(1, scale), as the run folds its members; ties to the smaller id), with a pass
/// only where every shard's passed, and the largest `largest_abs` of any. A deviation's precision is its own label, or its shard's
/// run's; the label is kept where the merged run has more than one precision (among the
/// deviations, or a shard's blocks: a shard's run.json saying "mixed: f32 | f64").
fn merged_deviations(verifies: &[(&Value, &Value)]) -> Vec<Value> {
    // (an older build's shard has none: its max_abs was the largest)
    let largest_abs = |d: &Value| match d.get("largest_abs") {
        Some(x) => x.as_f64().unwrap_or(f64::INFINITY),
        None => d["max_abs"].as_f64().unwrap_or(f64::INFINITY),
    };
    // (null: an infinite deviation, a NaN against the reference; a missing scale or member,
    // an older build's: its tolerance had no scale)
    let rank = |d: &Value| {
        let max_abs = d["max_abs"].as_f64().unwrap_or(f64::INFINITY);
        (max_abs / d["scale"].as_f64().unwrap_or(0.0).max(1.0), d["member"].as_u64().unwrap_or(u64::MAX))
    };
    let mut merged: Vec<(Value, Value)> = vec![];
    for (v, shard_precision) in verifies {
        for d in v["deviations"].as_array().into_iter().flatten() {
            let precision = if d["precision"].is_null() { (*shard_precision).clone() } else { d["precision"].clone() };
            match merged.iter_mut().find(|(m, p)| m["measure"] == d["measure"] && *p == precision) {
                Some((m, _)) => {
                    let pass = m["pass"] == json!(true) && d["pass"] == json!(true);
                    let largest = largest_abs(m).max(largest_abs(d));
                    let ((held, held_id), (ratio, id)) = (rank(m), rank(d));
                    if ratio > held || (ratio == held && id < held_id) {
                        *m = d.clone();
                    }
                    m["pass"] = json!(pass);
                    m["largest_abs"] = json!(largest);
                }
                None => {
                    let mut m = d.clone();
                    m["largest_abs"] = json!(largest_abs(d));
                    merged.push((m, precision));
                }
            }
        }
    }
    let mixed_shard = verifies.iter().any(|(_, p)| p.as_str().is_some_and(|p| p.starts_with("mixed:")));
    let several = mixed_shard || merged.iter().any(|(_, p)| *p != merged[0].1);
    merged
        .into_iter()
        .map(|(mut m, precision)| {
            match m.as_object_mut() {
                Some(o) if several => _ = o.insert("precision".into(), precision),
                Some(o) => _ = o.remove("precision"),
                None => {}
            }
            m
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shards that ran at different precisions keep each precision's deviations apart, each
    /// with its own tolerance (merged by measure alone, an f32 shard's 1e-6 was held to an f64
    /// shard's 1e-9 and failed, while the run passed); within a precision the worst member's
    /// deviation, scale and tolerance, and a pass only where every shard's passed.
    #[test]
    fn shards_at_different_precisions_keep_their_own_tolerances() {
        let dev = |m: &str, max_abs: Option<f64>, scale: f64, tol: f64| json!({"measure": m, "max_abs": max_abs, "scale": scale, "tolerance": tol, "pass": max_abs.is_some_and(|x| x <= tol)});
        let f64_shard = json!({"members": [1], "pass": true, "deviations": [dev("energy_b", Some(1e-12), 1.0, 1e-9), dev("purity", Some(2e-12), 1.0, 1e-9)]});
        let f32_shard = json!({"members": [7], "pass": true, "deviations": [dev("energy_b", Some(3e-6), 1.0, 1e-4), dev("purity", Some(1e-6), 1.0, 1e-4)]});
        let f32_big = json!({"members": [9], "pass": false, "deviations": [dev("energy_b", Some(0.2), 3000.0, 0.3), dev("purity", None, 1.0, 1e-4)]});
        let (p64, p32) = (json!("f64"), json!("f32"));
        let v = merged_verify(&[(&f64_shard, &p64), (&f32_shard, &p32)]);
        assert_eq!(v["pass"], json!(true));
        assert_eq!(v["members"], json!([1, 7]));
        let d = v["deviations"].as_array().unwrap();
        assert_eq!(d.len(), 4, "{v:#}");
        let find =
            |m: &str, p: &str| d.iter().find(|x| x["measure"] == json!(m) && x["precision"] == json!(p)).unwrap_or_else(|| panic!("{m} {p}: {v:#}")).clone();
        assert_eq!(find("energy_b", "f32")["max_abs"], json!(3e-6));
        assert_eq!(find("energy_b", "f64")["tolerance"], json!(1e-9));
        assert!(d.iter().all(|x| x["pass"] == json!(true)), "{v:#}");
        // one precision: merged, unlabelled; the worst member's (here the larger scale's, 0.2 of
        // 0.3 against 3e-6 of 1e-4) tolerance; an infinite deviation (null) stays infinite; a
        // failed shard fails the measure
        let v = merged_verify(&[(&f32_shard, &p32), (&f32_big, &p32)]);
        let d = v["deviations"].as_array().unwrap();
        assert_eq!(d.len(), 2, "{v:#}");
        assert!(d.iter().all(|x| x.get("precision").is_none()), "{v:#}");
        assert_eq!(
            (d[0]["max_abs"].clone(), d[0]["scale"].clone(), d[0]["tolerance"].clone(), d[0]["pass"].clone()),
            (json!(0.2), json!(3000.0), json!(0.3), json!(true))
        );
        assert_eq!((d[1]["max_abs"].clone(), d[1]["pass"].clone()), (Value::Null, json!(false)));
        assert_eq!(v["pass"], json!(false));
        let v = merged_verify(&[(&f32_big, &p32), (&f32_shard, &p32)]);
        assert_eq!(v["deviations"][1]["max_abs"], Value::Null, "{v:#}");
    }

    /// Each measure's worst member across shards is the one furthest past, or nearest to, its
    /// own tolerance, not the largest deviation: a small member's 5e-4 at scale 0.01 (5x its
    /// 1e-4) outranks a large member's 0.05 at scale 1000 (0.5x its 0.1); equal fractions go
    /// to the smaller id, in either shard order.
    #[test]
    fn shards_merge_to_the_worst_member_by_its_own_tolerance() {
        let dev = |max_abs: f64, scale: f64, member: u64| {
            let tolerance = 1e-4 * scale.max(1.0);
            json!({"measure": "energy_b", "max_abs": max_abs, "scale": scale, "tolerance": tolerance, "pass": max_abs <= tolerance, "member": member})
        };
        let shard = |members: u64, d: Value| json!({"members": [members], "pass": d["pass"], "deviations": [d]});
        let (small, large) = (shard(3, dev(5e-4, 0.01, 3)), shard(8, dev(0.05, 1000.0, 8)));
        let p32 = json!("f32");
        for order in [[&small, &large], [&large, &small]] {
            let v = merged_verify(&[(order[0], &p32), (order[1], &p32)]);
            let d = &v["deviations"][0];
            assert_eq!((d["member"].clone(), d["max_abs"].clone(), d["pass"].clone()), (json!(3), json!(5e-4), json!(false)), "{v:#}");
            // the largest error of any member, the large one's (shards without largest_abs,
            // an older build's: their max_abs)
            assert_eq!(d["largest_abs"], json!(0.05), "{v:#}");
        }
        let (a, b) = (shard(6, dev(2e-5, 0.5, 6)), shard(2, dev(2e-5, 0.5, 2)));
        for order in [[&a, &b], [&b, &a]] {
            let v = merged_verify(&[(order[0], &p32), (order[1], &p32)]);
            assert_eq!(v["deviations"][0]["member"], json!(2), "{v:#}");
        }
    }
}
