//! How much memory this process may still use: the host's MemAvailable, or less where a
//! cgroup limits the process (a container's, or a Slurm job's with `--mem`), whose limit the
//! host's figure does not know, or where its address-space limit (`ulimit -v`, RLIMIT_AS) or
//! data-size limit (`ulimit -d`, RLIMIT_DATA) leaves less, which neither figure knows and past
//! which an allocation aborts the process.
//! It sizes the memory check, the block budget and the series read-back.

use std::path::{Component, Path};

/// What is assumed where neither /proc/meminfo nor a cgroup can be read.
const UNKNOWN_BYTES: f64 = 16.0 * 1073741824.0;

/// A cgroup limit at or above this is no limit (cgroup v1 writes "unlimited" as
/// 9223372036854771712).
const NO_LIMIT_BYTES: u64 = 1 << 60;

/// The address space a thread yet to start may take: its stack (2 MiB by default) and the
/// allocator's arena, which glibc reserves whole for a new thread (64 MiB, counted by RLIMIT_AS
/// though never touched) and keeps after it ends, with a little for its guard page and maps.
pub const THREAD_ADDRESS_SPACE: f64 = 68.0 * 1048576.0;

/// The data (RLIMIT_DATA's count) a thread yet to start may take before it allocates: its
/// stack, counted whole, and its arena's first heap (glibc makes only that part writable; what
/// the thread allocates later is the run's, which the checks count), with slack. A 2-thread
/// run of 100 members peaked at 18 MB of VmData, one of 16 threads at 51 MB.
pub const THREAD_DATA: f64 = 4.0 * 1048576.0;

/// The headroom a GPU driver needs under each limit as it opens: its libraries, its threads'
/// stacks and arenas, its queues. Mesa's lavapipe mapped 0.7 to 1.1 GiB and started 10 threads
/// on a 2-CPU machine, of which 0.22 GiB were data (a run's VmData rose from 0.25 to 0.47 GiB;
/// it crashed opening under 0.15 GB of data limit); a hardware driver's share is not known
/// here, hence the margins.
pub const DRIVER_ADDRESS_SPACE: f64 = 2.0 * 1073741824.0;
pub const DRIVER_DATA: f64 = 1073741824.0;

/// The threads a run has at once beside the main thread and rayon's pool (a device's blocks, a
/// block's files, its hash, its summary, and one to spare for a series reader or the --verify
/// references; a GPU driver's own are not known).
pub const RUN_THREADS: usize = 5;

/// What set the figure of `Available`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// the host's MemAvailable (or the 16 GiB assumed without one)
    Host,
    /// the headroom under a cgroup's memory limit
    Cgroup,
    /// the headroom under this process's address-space limit (`ulimit -v`)
    AddressSpace,
    /// the headroom under this process's data-size limit (`ulimit -d`)
    DataSize,
}

impl Limit {
    /// The limit as a message names it ("address-space limit (ulimit -v)"); "" for the host's
    /// figure.
    pub fn named(self) -> &'static str {
        match self {
            Limit::Host => "",
            Limit::Cgroup => "cgroup memory limit",
            Limit::AddressSpace => "address-space limit (ulimit -v)",
            Limit::DataSize => "data-size limit (ulimit -d)",
        }
    }

    /// The shell command that sets a per-process limit (`ulimit -v`, `ulimit -d`); None for the
    /// host's figure and a cgroup's.
    pub fn ulimit(self) -> Option<&'static str> {
        match self {
            Limit::Host | Limit::Cgroup => None,
            Limit::AddressSpace => Some("ulimit -v"),
            Limit::DataSize => Some("ulimit -d"),
        }
    }
}

/// A per-process limit of /proc/self/limits and what counts against it in /proc/self/status.
struct ProcessLimit {
    limit: Limit,
    /// the line of /proc/self/limits
    line: &'static str,
    /// the key of /proc/self/status that counts against it (kB)
    counted: &'static str,
    /// what a thread yet to start takes of it
    per_thread: f64,
    /// what a GPU driver takes of it as it opens
    per_driver: f64,
}

/// RLIMIT_AS counts every mapping, reserved or not (VmSize); RLIMIT_DATA the private writable
/// ones, heap, thread stacks and anonymous maps (VmData).
const PROCESS_LIMITS: [ProcessLimit; 2] = [
    ProcessLimit {
        limit: Limit::AddressSpace,
        line: "Max address space",
        counted: "VmSize:",
        per_thread: THREAD_ADDRESS_SPACE,
        per_driver: DRIVER_ADDRESS_SPACE,
    },
    ProcessLimit { limit: Limit::DataSize, line: "Max data size", counted: "VmData:", per_thread: THREAD_DATA, per_driver: DRIVER_DATA },
];

/// The memory this process may still use, and what set the figure.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Available {
    pub bytes: f64,
    pub limit: Limit,
}

/// The share of the available memory a run may plan to take (the rest for the page cache,
/// other processes and the estimates' slack): the memory checks refuse beyond it.
pub const USABLE_SHARE: f64 = 0.6;

impl Available {
    /// The bytes a run may plan to take (`USABLE_SHARE` of the available).
    pub fn usable(&self) -> f64 {
        USABLE_SHARE * self.bytes
    }

    /// What a refusal adds after "available" where a limit other than the host's set the figure
    /// (a refusal on a big node under a small job, container or address-space limit should say
    /// why).
    pub fn under(&self) -> String {
        match self.limit {
            Limit::Host => String::new(),
            limit => format!(" under this process's {}", limit.named()),
        }
    }
}

/// The memory this process may still use: the host's MemAvailable (/proc/meminfo), or the
/// headroom of its cgroups (`cgroup_headroom`) or under its address-space or data-size limit
/// (`process_limit_headroom`, less a margin for the threads that rayon's pool and the run may
/// yet start) where that is less. 16 GiB where none can be read.
pub fn available_memory() -> Available {
    least(host_or_cgroup(), process_limit_left())
}

/// `available_memory` for a command that starts no thread of its own beyond rayon's pool
/// (`merge`): the process limits' headroom less the pool's margin only until it has started.
pub fn available_memory_pool_only() -> Available {
    least(host_or_cgroup(), least_headroom(headrooms_now(pool_threads_to_start())))
}

/// rayon's pool threads yet to start: all of them until it has started.
fn pool_threads_to_start() -> usize {
    if crate::threads::pool_started() {
        0
    } else {
        crate::threads::pool_threads()
    }
}

/// `available_memory` with the headroom under `limit` (a process limit) not counted.
pub fn available_memory_without(limit: Limit) -> Available {
    least(host_or_cgroup(), least_headroom(process_limits_left().into_iter().filter(|a| a.limit != limit).collect()))
}

/// The host's MemAvailable, or its cgroups' headroom where less (`available_from`).
fn host_or_cgroup() -> Available {
    available_from(&proc_text("/proc/meminfo"), Path::new("/sys/fs/cgroup"), &proc_text("/proc/self/cgroup"))
}

/// A /proc file's text, empty where it cannot be read.
fn proc_text(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `process_limit_headrooms` of this process now, with `to_start` threads yet to start.
fn headrooms_now(to_start: usize) -> Vec<Available> {
    process_limit_headrooms(&proc_text("/proc/self/limits"), &proc_text("/proc/self/status"), to_start)
}

/// The headroom under this process's address-space or data-size limit, whichever leaves less
/// (`process_limit_headroom`), less a margin for the threads yet to start (rayon's pool until
/// it has started, and the run's own, `RUN_THREADS`); None without either limit.
pub fn process_limit_left() -> Option<Available> {
    least_headroom(process_limits_left())
}

/// The headroom under each of this process's address-space and data-size limits that is set
/// (`process_limit_headrooms`: below 0 where overrun), less the margins of the threads yet to
/// start.
pub fn process_limits_left() -> Vec<Available> {
    headrooms_now(pool_threads_to_start() + RUN_THREADS)
}

/// What a pool of `threads` worker threads takes under `limit` as it starts: each its stack
/// (`POOL_THREAD_STACK`: rayon's 2 MiB, and its guard and signal stacks) and, under the
/// address-space limit, an arena's 64 MiB reservation for as many of them as glibc makes
/// arenas (8 a CPU, or `MALLOC_ARENA_MAX`; further threads share them). (Not the 68 and 4 MiB
/// a thread of `process_limits_left`: those refused 64 threads under `ulimit -v 4000000` and
/// `ulimit -d 240000`, which ran.)
fn pool_need(limit: Limit, threads: usize) -> f64 {
    const POOL_THREAD_STACK: f64 = 2.5 * 1048576.0;
    const ARENA: f64 = 64.0 * 1048576.0;
    let stacks = threads as f64 * POOL_THREAD_STACK;
    if limit != Limit::AddressSpace {
        return stacks;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let arena_max = std::env::var("MALLOC_ARENA_MAX").ok().and_then(|v| v.trim().parse::<usize>().ok()).filter(|&n| n > 0).unwrap_or(8 * cpus);
    stacks + threads.min(arena_max) as f64 * ARENA
}

/// Start rayon's pool (`threads::start_pool`), unless it has started, where each process limit
/// leaves room for its threads as they start (`pool_need`); else Err naming the threads and the
/// limit. Under `ulimit -v 900000` a pool of 16 started, and then a worker could not map its
/// signal stack: the run aborted ("failed to register TLS destructor") or hung.
pub fn start_pool_within_limits() -> crate::error::Result<()> {
    if !crate::threads::pool_started() {
        // (a thread count refused whatever the limits is refused as such first)
        crate::threads::check_threads_asked()?;
        let threads = crate::threads::pool_threads();
        for free in headrooms_now(0) {
            let need = pool_need(free.limit, threads);
            if need > free.bytes {
                return Err(crate::error::QbatError::Threads(format!(
                    "{threads} worker threads need about {} as they start, more than the {} left under this process's {}; set RAYON_NUM_THREADS lower, or raise the limit ({})",
                    size_need(need),
                    size_text(free.bytes.max(0.0)),
                    free.limit.named(),
                    free.limit.ulimit().unwrap_or_default()
                )));
            }
        }
    }
    crate::threads::start_pool()
}

/// What a GPU driver needs of the headroom under a process limit as it opens
/// (`DRIVER_ADDRESS_SPACE`, `DRIVER_DATA`); 0 for the host's figure and a cgroup's.
pub fn driver_need(limit: Limit) -> f64 {
    PROCESS_LIMITS.iter().find(|p| p.limit == limit).map_or(0.0, |p| p.per_driver)
}

/// A size for a message: GiB to one decimal, or MiB under 1 GiB (a tight `ulimit -v` leaves
/// figures that "0.0 GiB" would hide); rounded down, so that what is available is never shown
/// as more than it is (`size_need` rounds up).
pub fn size_text(bytes: f64) -> String {
    size_rounded(bytes, f64::floor)
}

/// `size_text` rounded up: what a run needs is never shown as less than it is.
pub fn size_need(bytes: f64) -> String {
    size_rounded(bytes, f64::ceil)
}

fn size_rounded(bytes: f64, round: fn(f64) -> f64) -> String {
    if bytes >= 1073741824.0 {
        format!("{:.1} GiB", round(bytes / 1073741824.0 * 10.0) / 10.0)
    } else {
        format!("{:.0} MiB", round(bytes / 1048576.0))
    }
}

/// `available_memory().bytes`.
pub fn available_memory_bytes() -> f64 {
    available_memory().bytes
}

/// `found`, or a process limit's headroom where that is less.
fn least(found: Available, process_limit: Option<Available>) -> Available {
    match process_limit {
        Some(p) if p.bytes < found.bytes => p,
        _ => found,
    }
}

/// The least headroom of `process_limit_headrooms`; None without either limit.
pub fn process_limit_headroom(limits: &str, status: &str, to_start: usize) -> Option<Available> {
    least_headroom(process_limit_headrooms(limits, status, to_start))
}

/// The headroom under each soft limit of a /proc/self/limits text that is set, "Max address
/// space" and "Max data size": the limit less what counts against it in a /proc/self/status
/// text (VmSize: every mapping, reserved or not, the started threads' stacks and arenas, a
/// driver's libraries; VmData: the private writable ones) and the limit's margin for each of
/// the `to_start` threads (`THREAD_ADDRESS_SPACE`, `THREAD_DATA`); below 0 where the limit
/// is overrun. Nothing for a limit not set ("unlimited", or no such line); where the status
/// key cannot be read, the limit less the threads' margin.
pub fn process_limit_headrooms(limits: &str, status: &str, to_start: usize) -> Vec<Available> {
    let headroom = |p: &ProcessLimit| -> Option<Available> {
        let line = limits.lines().find_map(|l| l.strip_prefix(p.line))?;
        let limit = line.split_whitespace().next()?.parse::<u64>().ok()? as f64;
        let counted_kb = status.lines().find_map(|l| l.strip_prefix(p.counted)).and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok());
        let counted = counted_kb.map_or(0.0, |kb| kb as f64 * 1024.0);
        // (not yet clamped: of two limits both used up, the one overrun more is named)
        Some(Available { bytes: limit - counted - to_start as f64 * p.per_thread, limit: p.limit })
    };
    PROCESS_LIMITS.iter().filter_map(headroom).collect()
}

/// The least of `headrooms` (the first of equals), at least 0.
fn least_headroom(headrooms: Vec<Available>) -> Option<Available> {
    let least = headrooms.into_iter().min_by(|a, b| a.bytes.total_cmp(&b.bytes))?;
    Some(Available { bytes: least.bytes.max(0.0), ..least })
}

/// `available_memory` from a /proc/meminfo text, the cgroup mount and a /proc/self/cgroup text.
fn available_from(meminfo: &str, cgroup_root: &Path, proc_self_cgroup: &str) -> Available {
    let host = mem_available(meminfo);
    let cgroup = cgroup_headroom(cgroup_root, proc_self_cgroup);
    match (host, cgroup) {
        (Some(h), Some(c)) if c < h => Available { bytes: c, limit: Limit::Cgroup },
        (None, Some(c)) => Available { bytes: c, limit: Limit::Cgroup },
        (h, _) => Available { bytes: h.unwrap_or(UNKNOWN_BYTES), limit: Limit::Host },
    }
}

/// MemAvailable of a /proc/meminfo text, in bytes.
fn mem_available(meminfo: &str) -> Option<f64> {
    let kb = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?.split_whitespace().nth(1)?;
    kb.parse::<f64>().ok().map(|kb| kb * 1024.0)
}

/// The least headroom over the process's memory cgroups and those above them, up to `root`
/// (the cgroup file system's mount): limit - (usage - reclaimable), reclaimable being the
/// page cache (active and inactive) and reclaimable slab less the dirty and writeback pages,
/// as MemAvailable counts them. cgroup v2 (`0::PATH` in /proc/self/cgroup): memory.max and
/// memory.high (the less of the two), memory.current and memory.stat under root/PATH; v1 (the
/// line of the `memory` controller): memory.limit_in_bytes, memory.usage_in_bytes and
/// memory.stat's `total_` keys under root/memory/PATH. A cgroup without a limit, or whose
/// limit or usage cannot be read, adds nothing; None when none has a limit. Where a container
/// shows its own cgroup as the mount's root (PATH then not found under it), the root's own
/// files still count; a PATH that leaves the root (`..`: the process is outside the
/// namespace's root) is not followed.
pub fn cgroup_headroom(root: &Path, proc_self_cgroup: &str) -> Option<f64> {
    let mut least: Option<f64> = None;
    for line in proc_self_cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_id), Some(controllers), Some(path)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        let (base, files) = if controllers.is_empty() {
            (root.to_path_buf(), &V2)
        } else if controllers.split(',').any(|c| c == "memory") {
            (root.join("memory"), &V1)
        } else {
            continue;
        };
        // only plain names: `..` (a process outside its namespace's root) is not followed
        let relative = Path::new(path.trim_start_matches('/'));
        if relative.components().any(|c| !matches!(c, Component::Normal(_))) {
            continue;
        }
        // the process's cgroup, then each one above it, up to the mount's root
        let mut dir = base.join(relative);
        loop {
            if let Some(h) = headroom_of(&dir, files) {
                least = Some(least.map_or(h, |l| l.min(h)));
            }
            if dir == base || !dir.pop() || !dir.starts_with(&base) {
                break;
            }
        }
    }
    least
}

/// The files and memory.stat keys of one cgroup version.
struct CgroupFiles {
    /// the least of these that is set is the limit
    limits: &'static [&'static str],
    usage: &'static str,
    /// counted as free: the page cache and reclaimable slab
    reclaimable: &'static [&'static str],
    /// not free until written: dirty and writeback pages
    unwritten: &'static [&'static str],
}

/// (memory.high throttles the cgroup's processes past it, as good as a limit for a run)
const V2: CgroupFiles = CgroupFiles {
    limits: &["memory.max", "memory.high"],
    usage: "memory.current",
    reclaimable: &["active_file", "inactive_file", "slab_reclaimable"],
    unwritten: &["file_dirty", "file_writeback"],
};

/// (v1 has no slab figure in memory.stat)
const V1: CgroupFiles = CgroupFiles {
    limits: &["memory.limit_in_bytes"],
    usage: "memory.usage_in_bytes",
    reclaimable: &["total_active_file", "total_inactive_file"],
    unwritten: &["total_dirty", "total_writeback"],
};

/// One cgroup's limit - (usage - reclaimable), at least 0, the limit the least of those set
/// (a file that reads "max", or is missing, sets none); None without a limit, or when the
/// usage cannot be read.
fn headroom_of(dir: &Path, files: &CgroupFiles) -> Option<f64> {
    let number = |name: &str| std::fs::read_to_string(dir.join(name)).ok()?.trim().parse::<u64>().ok();
    let limit = files.limits.iter().filter_map(|f| number(f)).filter(|&l| l < NO_LIMIT_BYTES).min()?;
    let usage = number(files.usage)?;
    let stat = std::fs::read_to_string(dir.join("memory.stat")).unwrap_or_default();
    // a key's value: the line "key value" (so inactive_file never reads total_inactive_file)
    let stat_sum = |keys: &[&str]| -> u64 {
        keys.iter().filter_map(|k| stat.lines().find_map(|l| l.strip_prefix(k)?.strip_prefix(' ')?.trim().parse::<u64>().ok())).fold(0u64, u64::saturating_add)
    };
    let reclaimable = stat_sum(files.reclaimable).saturating_sub(stat_sum(files.unwritten));
    Some(limit.saturating_sub(usage.saturating_sub(reclaimable)) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const GIB: u64 = 1 << 30;

    fn write(dir: &Path, name: &str, text: &str) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn mem_available_reads_the_line_in_kib() {
        assert_eq!(mem_available("MemTotal: 100 kB\nMemAvailable:    2048 kB\n"), Some(2048.0 * 1024.0));
        assert_eq!(mem_available("MemTotal: 100 kB\n"), None);
        assert_eq!(mem_available("MemAvailable: lots kB\n"), None);
    }

    /// The host's figure, the cgroup's where less, each alone, and 16 GiB with neither.
    #[test]
    fn the_least_of_the_host_and_the_cgroup() {
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "memory.max", &format!("{}\n", 3 * GIB));
        write(root.path(), "memory.current", "0\n");
        let host = |gib: u64| format!("MemAvailable: {} kB\n", gib * GIB / 1024);
        let at = |meminfo: &str, cgroup: &str| available_from(meminfo, root.path(), cgroup);
        assert_eq!(at(&host(8), "0::/\n"), Available { bytes: (3 * GIB) as f64, limit: Limit::Cgroup });
        assert_eq!(at(&host(2), "0::/\n"), Available { bytes: (2 * GIB) as f64, limit: Limit::Host });
        assert_eq!(at(&host(8), ""), Available { bytes: (8 * GIB) as f64, limit: Limit::Host });
        assert_eq!(at("", "0::/\n"), Available { bytes: (3 * GIB) as f64, limit: Limit::Cgroup });
        assert_eq!(at("", ""), Available { bytes: UNKNOWN_BYTES, limit: Limit::Host });
    }

    /// RLIMIT_AS: the soft limit less VmSize and a margin for each thread yet to start; none for
    /// "unlimited", a missing line or garbage; never below 0.
    #[test]
    fn address_space_headroom_is_the_limit_less_the_mapped_and_the_threads_to_come() {
        let limits = |soft: &str| {
            format!("Limit                     Soft Limit           Hard Limit           Units     \nMax data size             unlimited            unlimited            bytes     \nMax address space         {soft:<20} unlimited            bytes     \nMax nofile                1024                 4096                 files     \n")
        };
        let status = "Name:\tqbat-gpu\nVmPeak:\t  999999 kB\nVmSize:\t  153600 kB\nVmRSS:\t   20000 kB\nVmData:\t   51200 kB\nThreads:\t3\n";
        let mib = 1048576.0;
        let space = |bytes: f64| Some(Available { bytes, limit: Limit::AddressSpace });
        // 1 GiB less 150 MiB mapped, and 5 threads to start: 5 x 68 MiB (the threads started,
        // the Threads line, are in VmSize: not counted again)
        let at = |soft: &str, status: &str, to_start: usize| process_limit_headroom(&limits(soft), status, to_start);
        assert_eq!(at("1073741824", status, 5), space(1024.0 * mib - 150.0 * mib - 5.0 * THREAD_ADDRESS_SPACE));
        // every thread started: the limit less VmSize alone
        assert_eq!(at("1073741824", status, 0), space(874.0 * mib));
        // a limit the process has (nearly) used up: 0, not a negative figure
        assert_eq!(at("209715200", status, 5), space(0.0));
        // no VmSize to read: the limit less the threads' margin
        assert_eq!(at("1073741824", "", 2), space(1024.0 * mib - 2.0 * THREAD_ADDRESS_SPACE));
        // no limit
        assert_eq!(at("unlimited", status, 8), None);
        assert_eq!(process_limit_headroom("", status, 8), None);
        assert_eq!(at("lots", status, 8), None);
        // the soft limit is the one that counts (the hard one only caps what may be set)
        let soft_below_hard = "Max address space         1073741824           2147483648           bytes     \n";
        assert_eq!(process_limit_headroom(soft_below_hard, status, 0), space(874.0 * mib));
    }

    /// RLIMIT_DATA: the soft limit less VmData (not VmSize: reserved maps and code do not count
    /// against it) and the threads' margin; with both limits set, the one that leaves less
    /// sets the figure, and names itself.
    #[test]
    fn data_size_headroom_is_the_limit_less_the_data_and_the_least_limit_counts() {
        let limits = |data: &str, space: &str| {
            format!("Limit                     Soft Limit           Hard Limit           Units     \nMax data size             {data:<20} unlimited            bytes     \nMax address space         {space:<20} unlimited            bytes     \n")
        };
        let status = "VmSize:\t  1048576 kB\nVmData:\t   51200 kB\n";
        let mib = 1048576.0;
        let at = |data: &str, space: &str, to_start: usize| process_limit_headroom(&limits(data, space), status, to_start);
        let data = |bytes: f64| Some(Available { bytes, limit: Limit::DataSize });
        // 512 MiB less 50 MiB of data and 2 threads' margin
        assert_eq!(at("536870912", "unlimited", 2), data(462.0 * mib - 2.0 * THREAD_DATA));
        assert_eq!(at("536870912", "unlimited", 0), data(462.0 * mib));
        assert_eq!(at("52428800", "unlimited", 0), data(0.0));
        // both set: 4 GiB of address space less 1 GiB mapped leaves 3 GiB, more than the data
        // limit's 462 MiB; a 1.25 GiB address space (256 MiB left) then is the tighter one
        assert_eq!(at("536870912", "4294967296", 0), data(462.0 * mib));
        assert_eq!(at("536870912", "1342177280", 0), Some(Available { bytes: 256.0 * mib, limit: Limit::AddressSpace }));
        // both overrun: the one overrun more is named (1 GiB mapped against 0.5 GiB, 50 MiB of
        // data against 40 MiB), and the figure is 0
        assert_eq!(at("41943040", "536870912", 0), Some(Available { bytes: 0.0, limit: Limit::AddressSpace }));
        assert_eq!(at("41943040", "1069547520", 0), Some(Available { bytes: 0.0, limit: Limit::DataSize }));
        // each limit set is listed, unclamped, with its own threads' margin
        let both = process_limit_headrooms(&limits("536870912", "4294967296"), status, 1);
        assert_eq!(
            both,
            vec![
                Available { bytes: 3072.0 * mib - THREAD_ADDRESS_SPACE, limit: Limit::AddressSpace },
                Available { bytes: 462.0 * mib - THREAD_DATA, limit: Limit::DataSize }
            ]
        );
        assert_eq!(process_limit_headrooms(&limits("41943040", "unlimited"), status, 0), vec![Available { bytes: -10.0 * mib, limit: Limit::DataSize }]);
        // what a driver needs of each
        assert_eq!((driver_need(Limit::AddressSpace), driver_need(Limit::DataSize), driver_need(Limit::Host)), (DRIVER_ADDRESS_SPACE, DRIVER_DATA, 0.0));
        // no data limit, or garbage: none
        assert_eq!(at("unlimited", "unlimited", 0), None);
        assert_eq!(at("-1", "unlimited", 0), None);
    }

    /// A process limit's headroom sets the figure only where it is less than the host's or the
    /// cgroup's, and `under()` then names its `ulimit` flag; each limit names its own.
    #[test]
    fn a_process_limit_counts_where_it_is_least_and_is_named() {
        let host = Available { bytes: 8e9, limit: Limit::Host };
        let cgroup = Available { bytes: 2e9, limit: Limit::Cgroup };
        let space = |bytes: f64| Available { bytes, limit: Limit::AddressSpace };
        let data = |bytes: f64| Available { bytes, limit: Limit::DataSize };
        assert_eq!(least(host, Some(space(1e9))), space(1e9));
        assert_eq!(least(host, Some(space(9e9))), host);
        assert_eq!(least(host, None), host);
        assert_eq!(least(cgroup, Some(space(1e9))), space(1e9));
        assert_eq!(least(cgroup, Some(space(3e9))), cgroup);
        assert_eq!(least(cgroup, Some(data(1e9))), data(1e9));
        assert_eq!(least(cgroup, Some(data(3e9))), cgroup);
        assert_eq!(space(1e9).under(), " under this process's address-space limit (ulimit -v)");
        assert_eq!(data(1e9).under(), " under this process's data-size limit (ulimit -d)");
        assert_eq!(cgroup.under(), " under this process's cgroup memory limit");
        assert_eq!(host.under(), "");
        assert_eq!(
            (Limit::AddressSpace.ulimit(), Limit::DataSize.ulimit(), Limit::Cgroup.ulimit(), Limit::Host.ulimit()),
            (Some("ulimit -v"), Some("ulimit -d"), None, None)
        );
        assert_eq!(least(host, Some(space(1e9))).usable(), USABLE_SHARE * 1e9);
    }

    /// cgroup v2: the tightest limit on the way up counts (a job's, above its unlimited step),
    /// less the usage that is not reclaimable: page cache (active and inactive) and reclaimable
    /// slab, less the dirty and writeback pages. A decoy v1 key is not read as a v2 one.
    #[test]
    fn v2_takes_the_least_headroom_on_the_way_up() {
        let root = tempfile::tempdir().unwrap();
        let job = root.path().join("system.slice/slurmstepd.scope/job_7");
        let step = job.join("step_0");
        let proc_cgroup = "0::/system.slice/slurmstepd.scope/job_7/step_0\n";
        write(root.path(), "memory.max", "max\n");
        write(&job, "memory.max", &format!("{}\n", 8 * GIB));
        write(&job, "memory.current", &format!("{}\n", 7 * GIB));
        let stat = format!(
            "total_inactive_file 999999999999\nanon {}\nactive_file {}\ninactive_file {}\nslab_reclaimable {}\nfile_dirty {}\nfile_writeback {}\n",
            2 * GIB,
            3 * GIB,
            GIB,
            GIB,
            GIB / 2,
            GIB / 4
        );
        write(&job, "memory.stat", &stat);
        write(&step, "memory.max", "max\n");
        write(&step, "memory.current", "123\n");
        // 8 GiB - (7 GiB - (3 + 1 + 1 - 0.5 - 0.25) GiB)
        assert_eq!(cgroup_headroom(root.path(), proc_cgroup), Some((8 * GIB - 7 * GIB + 17 * GIB / 4) as f64));
        // a tighter limit below it wins
        write(&step, "memory.max", &format!("{}\n", GIB));
        assert_eq!(cgroup_headroom(root.path(), proc_cgroup), Some((GIB - 123) as f64));
        // usage above the limit leaves nothing, not a negative figure
        write(&step, "memory.current", &format!("{}\n", 2 * GIB));
        assert_eq!(cgroup_headroom(root.path(), proc_cgroup), Some(0.0));
        // a limit whose usage cannot be read adds nothing
        write(&step, "memory.current", "?\n");
        assert_eq!(cgroup_headroom(root.path(), proc_cgroup), Some((8 * GIB - 7 * GIB + 17 * GIB / 4) as f64));
        // memory.high below memory.max is the limit (it throttles past it); "max" sets none
        write(&step, "memory.current", &format!("{}\n", GIB / 2));
        write(&step, "memory.max", "max\n");
        write(&step, "memory.high", &format!("{}\n", GIB));
        assert_eq!(cgroup_headroom(root.path(), proc_cgroup), Some((GIB / 2) as f64));
        write(&step, "memory.max", &format!("{}\n", 3 * GIB / 4));
        assert_eq!(cgroup_headroom(root.path(), proc_cgroup), Some((GIB / 4) as f64));
        write(&step, "memory.max", &format!("{}\n", 2 * GIB));
        assert_eq!(cgroup_headroom(root.path(), proc_cgroup), Some((GIB / 2) as f64));
        write(&step, "memory.max", "max\n");
        write(&step, "memory.high", "max\n");
        assert_eq!(cgroup_headroom(root.path(), proc_cgroup), Some((8 * GIB - 7 * GIB + 17 * GIB / 4) as f64));
    }

    /// cgroup v1: the line of the memory controller (alone or beside others), under
    /// root/memory, with memory.stat's hierarchical `total_` keys; "unlimited" (4 KiB and
    /// 64 KiB pages) is no limit.
    #[test]
    fn v1_reads_the_memory_controller() {
        let root = tempfile::tempdir().unwrap();
        let mem = root.path().join("memory");
        let job = mem.join("slurm/uid_1000/job_7");
        write(&mem, "memory.limit_in_bytes", "9223372036854771712\n");
        write(&mem, "memory.usage_in_bytes", "5\n");
        write(&job, "memory.limit_in_bytes", &format!("{}\n", 8 * GIB));
        write(&job, "memory.usage_in_bytes", &format!("{}\n", 3 * GIB));
        write(&job, "memory.stat", &format!("cache 7\ninactive_file 99\ntotal_inactive_file {}\ntotal_active_file {}\ntotal_dirty 0\n", GIB, GIB / 2));
        let proc_cgroup =
            "12:pids:/slurm\n1:name=systemd:/slurm/uid_1000/job_7\n4:cpu,cpuacct:/slurm/uid_1000/job_7\n3:memory,hugetlb:/slurm/uid_1000/job_7\n0::/\n";
        assert_eq!(cgroup_headroom(root.path(), proc_cgroup), Some((8 * GIB - 3 * GIB + 3 * GIB / 2) as f64));
        // only the unlimited root (4 KiB or 64 KiB pages): no limit
        assert_eq!(cgroup_headroom(root.path(), "3:memory:/\n"), None);
        write(&mem, "memory.limit_in_bytes", "9223372036854710272\n");
        assert_eq!(cgroup_headroom(root.path(), "3:memory:/\n"), None);
    }

    /// A hybrid layout: memory is a v1 controller; the `0::` line's paths under the v2 root
    /// hold no memory files and add nothing.
    #[test]
    fn hybrid_takes_the_v1_figure() {
        let root = tempfile::tempdir().unwrap();
        let job = root.path().join("memory/user.slice");
        write(&job, "memory.limit_in_bytes", &format!("{}\n", 4 * GIB));
        write(&job, "memory.usage_in_bytes", &format!("{}\n", GIB));
        fs::create_dir_all(root.path().join("unified/user.slice/u.slice/s.scope")).unwrap();
        let proc_cgroup = "5:memory:/user.slice\n0::/user.slice/u.slice/s.scope\n";
        assert_eq!(cgroup_headroom(root.path(), proc_cgroup), Some((3 * GIB) as f64));
    }

    /// A container that shows its own cgroup as the mount's root: its path is not found under
    /// it (or is "/"), and the root's limit still counts.
    #[test]
    fn a_namespaced_root_still_counts() {
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "memory.max", &format!("{}\n", 3 * GIB));
        write(root.path(), "memory.current", &format!("{}\n", GIB));
        assert_eq!(cgroup_headroom(root.path(), "0::/docker/0123abcd\n"), Some((2 * GIB) as f64));
        assert_eq!(cgroup_headroom(root.path(), "0::/\n"), Some((2 * GIB) as f64));
    }

    /// A path with `..` is not followed: neither out of the mount nor to its root's limit.
    #[test]
    fn a_path_out_of_the_mount_is_not_followed() {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("cg");
        write(outer.path(), "memory.max", &format!("{}\n", GIB));
        write(outer.path(), "memory.current", "0\n");
        write(&root, "memory.max", &format!("{}\n", 2 * GIB));
        write(&root, "memory.current", "0\n");
        assert_eq!(cgroup_headroom(&root, "0::/../..\n"), None);
        assert_eq!(cgroup_headroom(&root, "0::/a/../..\n"), None);
        assert_eq!(cgroup_headroom(&root, "0::/a\n"), Some((2 * GIB) as f64));
    }

    /// Nothing to read, garbage, or no limit anywhere: no figure, never a panic.
    #[test]
    fn unreadable_or_unlimited_cgroups_add_nothing() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(cgroup_headroom(root.path(), ""), None);
        assert_eq!(cgroup_headroom(root.path(), "garbage\n::\n0::\n"), None);
        write(root.path(), "memory.max", "a lot\n");
        write(root.path(), "memory.current", "1\n");
        write(&root.path().join("a"), "memory.max", "-5\n");
        write(&root.path().join("a"), "memory.current", "1\n");
        assert_eq!(cgroup_headroom(root.path(), "0::/a\n"), None);
        write(root.path(), "memory.max", "max\n");
        assert_eq!(cgroup_headroom(root.path(), "0::/a\n"), None);
    }
}
