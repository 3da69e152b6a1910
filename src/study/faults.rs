//! Test-only fault injection (`QBAT_INJECT_FAULT`, comma-separated), so that the tests can
//! drive the study through out-of-memory, device loss, NaN members and slow blocks.

use crate::error::QbatError;

/// `oom-once` makes the
/// first GPU block fail as out of memory; `lost-at=K` makes GPU block K fail as a lost device;
/// `nan-member=ID` turns member ID's values into NaN after integration (an instability);
/// `slow-blocks=MS` sleeps MS milliseconds after each block (to kill a run mid-way).
pub(super) fn injected_nan_member() -> Option<u64> {
    let spec = std::env::var("QBAT_INJECT_FAULT").ok()?;
    spec.split(',').find_map(|p| p.strip_prefix("nan-member=").and_then(|id| id.parse().ok()))
}

pub(super) fn injected_block_delay() -> Option<std::time::Duration> {
    let spec = std::env::var("QBAT_INJECT_FAULT").ok()?;
    spec.split(',').find_map(|p| p.strip_prefix("slow-blocks=").and_then(|ms| ms.parse().ok())).map(std::time::Duration::from_millis)
}

/// `analysis-fails`: the default study's analysis fails (as on a full disk).
pub(super) fn injected_analysis_failure() -> bool {
    std::env::var("QBAT_INJECT_FAULT").is_ok_and(|spec| spec.split(',').any(|p| p == "analysis-fails"))
}

pub(super) fn injected_fault(block: usize, attempt: usize) -> Option<QbatError> {
    let spec = std::env::var("QBAT_INJECT_FAULT").ok()?;
    for part in spec.split(',') {
        if part == "oom-once" && block == 0 && attempt == 0 {
            return Some(QbatError::DeviceOutOfMemory("injected by QBAT_INJECT_FAULT".into()));
        }
        if let Some(k) = part.strip_prefix("lost-at=").and_then(|k| k.parse::<usize>().ok()) {
            if k == block {
                return Some(QbatError::DeviceLost("injected by QBAT_INJECT_FAULT".into()));
            }
        }
    }
    None
}
