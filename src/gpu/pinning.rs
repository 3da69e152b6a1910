//! Which adapter to open: `--adapter` (a name, an index as listed, or a PCI bus id), else the
//! GPU the scheduler assigned to this task, else the best adapter found.
//!
//! Slurm (`--gres=gpu:1`), Ray and Kubernetes pin a task's GPU through `CUDA_VISIBLE_DEVICES`,
//! `SLURM_STEP_GPUS` / `SLURM_JOB_GPUS` or `NVIDIA_VISIBLE_DEVICES`. CUDA honours them, Vulkan
//! does not: on a node with eight identical GPUs every task would open adapter 0. The assigned
//! device (an index, a UUID `GPU-...`, a MIG id) is resolved to its PCI bus id through the
//! driver's list of GPUs (`nvidia-smi --query-gpu=index,pci.bus_id,uuid`, else
//! `/proc/driver/nvidia/gpus/*/information`), and the bus id names the adapter
//! (`wgpu::AdapterInfo::device_pci_bus_id`). Indices are the driver's (PCI bus order), which
//! is CUDA's order for identical GPUs and with `CUDA_DEVICE_ORDER=PCI_BUS_ID`.
//!
//! Everything here but `read_pin` and `read_driver_gpus` is a pure function of its inputs, so
//! that the mapping is tested with fake adapters and fake driver output.

use std::time::{Duration, Instant};

/// The variables that pin a task's GPU, in the order they are honoured: CUDA's own list
/// first (Ray, Slurm's per-task binding), then Slurm's step and job GPUs, then the container
/// runtime's (Kubernetes).
pub const PIN_VARS: [&str; 4] = ["CUDA_VISIBLE_DEVICES", "SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "NVIDIA_VISIBLE_DEVICES"];

/// One device named by a pinning variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceRef {
    /// The driver's index (`0`; `0:1`, a MIG slice of GPU 0, names GPU 0).
    Index(u32),
    /// A GPU UUID or a prefix of one, lower case (`gpu-8932f937`); `MIG-GPU-<uuid>/1/0`
    /// names its GPU.
    Uuid(String),
    /// A MIG instance UUID (`MIG-<uuid>`): its GPU cannot be told from the id alone.
    Mig(String),
    /// A PCI bus id, normalised (`0000:17:00.0`).
    BusId(String),
}

/// What a pinning variable assigns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Assignment {
    /// `all`: no pinning.
    All,
    /// No GPU: `NoDevFiles` (Slurm), `void` / `none` (containers), an empty value or `-1`.
    NoGpu,
    /// These devices, in order (the first is used).
    Devices(Vec<DeviceRef>),
}

/// A pinning variable that is set, with what it assigns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin {
    pub var: &'static str,
    pub value: String,
    pub assignment: Assignment,
}

impl Pin {
    /// `CUDA_VISIBLE_DEVICES=1`, for messages.
    pub fn describe(&self) -> String {
        format!("{}={}", self.var, self.value)
    }
}

/// One GPU as the driver lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverGpu {
    pub index: u32,
    /// Normalised (`0000:17:00.0`).
    pub bus_id: String,
    /// Lower case (`gpu-8932f937-...`).
    pub uuid: String,
}

/// What the chooser needs to know of an adapter.
#[derive(Clone, Debug)]
pub struct AdapterFacts {
    pub name: String,
    pub backend: String,
    pub device_type: wgpu::DeviceType,
    /// As wgpu reports it (empty when the driver does not say).
    pub bus_id: String,
    pub has_f64: bool,
}

impl AdapterFacts {
    pub fn of(a: &wgpu::Adapter) -> AdapterFacts {
        let i = a.get_info();
        AdapterFacts {
            name: i.name,
            backend: i.backend.to_string(),
            device_type: i.device_type,
            bus_id: i.device_pci_bus_id,
            has_f64: a.features().contains(wgpu::Features::SHADER_F64),
        }
    }
    /// `'NVIDIA H200' (vulkan, discrete GPU, PCI 0000:17:00.0)`.
    pub fn describe(&self) -> String {
        let bus = normalize_bus_id(&self.bus_id).map(|b| format!(", PCI {b}")).unwrap_or_default();
        format!("'{}' ({}, {}{bus})", self.name, self.backend, device_type_name(self.device_type))
    }
}

pub fn device_type_name(t: wgpu::DeviceType) -> &'static str {
    match t {
        wgpu::DeviceType::DiscreteGpu => "discrete GPU",
        wgpu::DeviceType::IntegratedGpu => "integrated GPU",
        wgpu::DeviceType::VirtualGpu => "virtual GPU",
        wgpu::DeviceType::Cpu => "CPU (software)",
        wgpu::DeviceType::Other => "other",
    }
}

/// Preference among adapters when none is named: real GPUs first, software last.
fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// The adapters, numbered as `--adapter N` counts them: `0: 'NVIDIA H200' (...), 1: ...`.
pub fn list(adapters: &[AdapterFacts]) -> String {
    adapters.iter().enumerate().map(|(k, a)| format!("{k}: {}", a.describe())).collect::<Vec<_>>().join(", ")
}

/// A PCI bus id in the form wgpu writes it, `dddd:bb:dd.f` in lower case, from the driver's
/// `00000000:17:00.0`, sysfs's `0000:17:00.0` or a bare `17:00.0`; None if it is not one.
pub fn normalize_bus_id(s: &str) -> Option<String> {
    let s = s.trim();
    let parts: Vec<&str> = s.split(':').collect();
    let (domain, bus, devfn) = match parts.as_slice() {
        [d, b, df] => (*d, *b, *df),
        [b, df] => ("0", *b, *df),
        _ => return None,
    };
    let (dev, func) = devfn.split_once('.')?;
    let hex = |t: &str, max_len: usize| -> Option<u32> {
        if t.is_empty() || t.len() > max_len || !t.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(t, 16).ok()
    };
    let (domain, bus, dev, func) = (hex(domain, 8)?, hex(bus, 2)?, hex(dev, 2)?, hex(func, 1)?);
    if dev > 0x1f || func > 7 {
        return None;
    }
    Some(format!("{domain:04x}:{bus:02x}:{dev:02x}.{func:x}"))
}

/// What a pinning variable's value assigns. Like CUDA, the list ends at the first entry that
/// is not a device (`0,2,-1,1` assigns 0 and 2); a list with no device assigns none.
pub fn parse_assignment(value: &str) -> Assignment {
    let v = value.trim();
    match v.to_ascii_lowercase().as_str() {
        "all" => return Assignment::All,
        "" | "nodevfiles" | "void" | "none" => return Assignment::NoGpu,
        _ => {}
    }
    let mut devices = vec![];
    for item in v.split(',').map(str::trim) {
        match parse_device(item) {
            Some(d) => devices.push(d),
            None => break,
        }
    }
    if devices.is_empty() {
        Assignment::NoGpu
    } else {
        Assignment::Devices(devices)
    }
}

fn parse_device(item: &str) -> Option<DeviceRef> {
    let lower = item.to_ascii_lowercase();
    if !item.is_empty() && item.chars().all(|c| c.is_ascii_digit()) {
        return item.parse().ok().map(DeviceRef::Index);
    }
    // `0:1`: MIG slice 1 of GPU 0 (Slurm and CUDA write MIG devices this way).
    if let Some((gpu, mig)) = item.split_once(':') {
        if !gpu.is_empty() && !mig.is_empty() && gpu.chars().chain(mig.chars()).all(|c| c.is_ascii_digit()) {
            return gpu.parse().ok().map(DeviceRef::Index);
        }
    }
    if let Some(rest) = lower.strip_prefix("mig-") {
        // Legacy form MIG-GPU-<uuid>/<gi>/<ci> names its GPU; MIG-<uuid> does not.
        if rest.starts_with("gpu-") {
            let gpu = rest.split('/').next().unwrap_or(rest);
            return Some(DeviceRef::Uuid(gpu.to_string()));
        }
        return Some(DeviceRef::Mig(lower));
    }
    if lower.starts_with("gpu-") && lower.len() > 4 {
        return Some(DeviceRef::Uuid(lower));
    }
    normalize_bus_id(item).map(DeviceRef::BusId)
}

/// The first pinning variable that is set, by `PIN_VARS`' order; `get` reads a variable.
pub fn pin_from(get: impl Fn(&str) -> Option<String>) -> Option<Pin> {
    PIN_VARS.iter().find_map(|&var| get(var).map(|value| Pin { var, assignment: parse_assignment(&value), value }))
}

/// The pinning variable of this process, if one is set.
pub fn read_pin() -> Option<Pin> {
    pin_from(|k| std::env::var_os(k).map(|v| v.to_string_lossy().into_owned()))
}

/// `nvidia-smi --query-gpu=index,pci.bus_id,uuid --format=csv,noheader` output, one GPU a
/// line (`0, 00000000:17:00.0, GPU-8932f937-...`); lines that are not GPUs are skipped.
pub fn parse_nvidia_smi(csv: &str) -> Vec<DriverGpu> {
    csv.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            let [index, bus, uuid] = f.as_slice() else {
                return None;
            };
            Some(DriverGpu { index: index.parse().ok()?, bus_id: normalize_bus_id(bus)?, uuid: uuid.to_ascii_lowercase() })
        })
        .collect()
}

/// The driver's procfs entries (`/proc/driver/nvidia/gpus/<bus>/information`, with its
/// `Bus Location:` and `GPU UUID:` lines), numbered in PCI bus order as the driver numbers
/// its GPUs.
pub fn parse_proc_gpus(informations: &[String]) -> Vec<DriverGpu> {
    let field = |text: &str, key: &str| {
        text.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case(key)).map(|(_, v)| v.trim().to_string()))
    };
    let mut found: Vec<(String, String)> =
        informations.iter().filter_map(|t| Some((normalize_bus_id(&field(t, "Bus Location")?)?, field(t, "GPU UUID")?.to_ascii_lowercase()))).collect();
    found.sort();
    found.dedup();
    found.into_iter().enumerate().map(|(k, (bus_id, uuid))| DriverGpu { index: k as u32, bus_id, uuid }).collect()
}

/// The GPUs the NVIDIA driver lists: nvidia-smi (at most 10 s), else procfs; None when
/// neither is there.
pub fn read_driver_gpus() -> Option<Vec<DriverGpu>> {
    if let Some(csv) = run_with_timeout("nvidia-smi", &["--query-gpu=index,pci.bus_id,uuid", "--format=csv,noheader"], Duration::from_secs(10)) {
        let gpus = parse_nvidia_smi(&csv);
        if !gpus.is_empty() {
            return Some(gpus);
        }
    }
    let dir = std::fs::read_dir("/proc/driver/nvidia/gpus").ok()?;
    let infos: Vec<String> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            use std::io::Read;
            let mut s = String::new();
            std::fs::File::open(e.path().join("information")).ok()?.take(64 * 1024).read_to_string(&mut s).ok()?;
            Some(s)
        })
        .collect();
    let gpus = parse_proc_gpus(&infos);
    (!gpus.is_empty()).then_some(gpus)
}

/// A command's stdout if it exits 0 and its output ends within `limit` (a process it left
/// behind holding the pipe, which the read would wait on, is not waited for: the reading
/// thread is left to it).
fn run_with_timeout(cmd: &str, args: &[&str], limit: Duration) -> Option<String> {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    // (a group of its own, so that a command past its limit goes with what it started: a
    // wrapper script's `sleep` outlived its shell's kill)
    let mut child = Command::new(cmd).args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).process_group(0).spawn().ok()?;
    let kill_group = |child: &mut std::process::Child| {
        // SAFETY: kill is given the negated id of the group this child leads, not yet reaped.
        unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
        child.kill().ok();
        child.wait().ok();
    };
    let mut out = child.stdout.take()?;
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::Builder::new().spawn(move || {
        use std::io::Read;
        let mut s = String::new();
        let _ = tx.send(out.by_ref().take(1 << 20).read_to_string(&mut s).ok().map(|_| s));
    });
    // (no thread to be had: no answer, as when the command fails)
    if reader.is_err() {
        kill_group(&mut child);
        return None;
    }
    let start = Instant::now();
    loop {
        match child.try_wait() {
            // (at least a moment for the output of a command that ended at the limit)
            Ok(Some(status)) if status.success() => {
                return rx.recv_timeout(limit.saturating_sub(start.elapsed()).max(Duration::from_millis(200))).ok().flatten()
            }
            Ok(Some(_)) => return None,
            Ok(None) if start.elapsed() < limit => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                kill_group(&mut child);
                return None;
            }
        }
    }
}

/// The bus id of the device a pinning names, through the driver's list; None when it cannot
/// be told (no driver list, an index or UUID the list lacks, a MIG UUID).
pub fn resolve_bus_id(device: &DeviceRef, gpus: Option<&[DriverGpu]>) -> Option<String> {
    match device {
        DeviceRef::BusId(b) => Some(b.clone()),
        DeviceRef::Mig(_) => None,
        DeviceRef::Index(i) => gpus?.iter().find(|g| g.index == *i).map(|g| g.bus_id.clone()),
        DeviceRef::Uuid(u) => {
            let mut hits = gpus?.iter().filter(|g| g.uuid.starts_with(u.as_str()));
            let first = hits.next()?;
            // A prefix that two GPUs share names neither.
            hits.next().is_none().then(|| first.bus_id.clone())
        }
    }
}

/// How the adapter was chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    /// Index into the adapters.
    pub index: usize,
    /// A line for the user (a pinning that could not be followed), else None.
    pub note: Option<String>,
}

/// `--adapter VALUE`: an index as listed, a PCI bus id, else (part of) a name, case-insensitive.
/// Err: why VALUE names no adapter (the caller names the option).
pub fn pick_named(adapters: &[AdapterFacts], want: &str) -> Result<usize, String> {
    let w = want.trim();
    if w.is_empty() {
        return Err(format!("is empty: name an adapter's index, PCI bus id or name; adapters found: {}", list(adapters)));
    }
    if w.chars().all(|c| c.is_ascii_digit()) {
        return match w.parse::<usize>() {
            Ok(k) if k < adapters.len() => Ok(k),
            _ => Err(format!("there is no adapter {w}; adapters found: {}", list(adapters))),
        };
    }
    if let Some(bus) = normalize_bus_id(w) {
        return by_bus_id(adapters, &bus).ok_or_else(|| format!("no adapter has PCI bus id {bus}; adapters found: {}", list(adapters)));
    }
    let lw = w.to_lowercase();
    adapters
        .iter()
        .position(|a| a.name.to_lowercase().contains(&lw))
        .ok_or_else(|| format!("no adapter name contains '{want}'; adapters found: {}", list(adapters)))
}

/// The adapter on PCI bus `bus` (normalised), a hardware one before a software one.
fn by_bus_id(adapters: &[AdapterFacts], bus: &str) -> Option<usize> {
    let hits = || adapters.iter().enumerate().filter(|(_, a)| normalize_bus_id(&a.bus_id).as_deref() == Some(bus));
    hits().find(|(_, a)| a.device_type != wgpu::DeviceType::Cpu).or_else(|| hits().next()).map(|(k, _)| k)
}

/// How `--devices all` names each adapter, so that `pick_named` opens exactly that one: its
/// PCI bus id where the driver reports one (identical GPUs share a name), else its index. A
/// software adapter is left out when there is a hardware one.
pub fn device_keys(adapters: &[AdapterFacts]) -> Vec<String> {
    let hardware = adapters.iter().any(|a| a.device_type != wgpu::DeviceType::Cpu);
    adapters
        .iter()
        .enumerate()
        .filter(|(_, a)| !hardware || a.device_type != wgpu::DeviceType::Cpu)
        .map(|(k, a)| {
            normalize_bus_id(&a.bus_id)
                .filter(|b| adapters.iter().filter(|o| normalize_bus_id(&o.bus_id).as_deref() == Some(b)).count() == 1)
                .unwrap_or_else(|| k.to_string())
        })
        .collect()
}

/// Without a name or a pinning: a discrete GPU first, a software adapter last, and with
/// `need_f64` the adapters with SHADER_F64 before the others.
pub fn pick_default(adapters: &[AdapterFacts], need_f64: bool) -> Option<usize> {
    adapters.iter().enumerate().min_by_key(|(_, a)| (need_f64 && !a.has_f64, rank(a.device_type))).map(|(k, _)| k)
}

/// Choose among `adapters` (non-empty): `want` (`--adapter`) if given, else the GPU `pin`
/// assigns, else the default. `driver_gpus` lists the driver's GPUs, called only when a
/// pinning needs it. Err is the message of a refusal: a name that matches nothing, no GPU
/// assigned, or an assigned GPU that no adapter is.
pub fn choose(
    adapters: &[AdapterFacts],
    want: Option<&str>,
    need_f64: bool,
    pin: Option<&Pin>,
    driver_gpus: impl FnOnce() -> Option<Vec<DriverGpu>>,
) -> Result<Choice, String> {
    if let Some(w) = want {
        return pick_named(adapters, w).map(|index| Choice { index, note: None });
    }
    let default = || pick_default(adapters, need_f64).ok_or_else(|| "no GPU adapter found".to_string());
    let Some(pin) = pin else {
        return default().map(|index| Choice { index, note: None });
    };
    let device = match &pin.assignment {
        Assignment::All => return default().map(|index| Choice { index, note: None }),
        Assignment::NoGpu => {
            return Err(format!("the scheduler assigned no GPU to this task ({}); use --backend cpu, or name an adapter with --adapter", pin.describe()))
        }
        Assignment::Devices(d) => match d.first() {
            Some(d) => d,
            None => return default().map(|index| Choice { index, note: None }),
        },
    };
    let gpus = match device {
        DeviceRef::BusId(_) | DeviceRef::Mig(_) => None,
        _ => driver_gpus(),
    };
    let unmapped = |why: &str| {
        default().map(|index| Choice {
            index,
            note: Some(format!("{} assigns a GPU, but {why}; using adapter {} (name another with --adapter)", pin.describe(), adapters[index].describe())),
        })
    };
    let Some(bus) = resolve_bus_id(device, gpus.as_deref()) else {
        let why = match (device, &gpus) {
            (DeviceRef::Mig(_), _) => "a MIG instance's GPU cannot be told from its UUID".to_string(),
            // (nvidia-smi missing, failing, silent or past its 10 s: said alike)
            (_, None) => "its PCI bus id could not be found (no GPU list from nvidia-smi, no /proc/driver/nvidia/gpus)".to_string(),
            (_, Some(g)) => format!("the driver lists no such GPU (it lists {})", g.iter().map(|g| g.index.to_string()).collect::<Vec<_>>().join(", ")),
        };
        return unmapped(&why);
    };
    if let Some(index) = by_bus_id(adapters, &bus) {
        return Ok(Choice { index, note: None });
    }
    if adapters.iter().all(|a| normalize_bus_id(&a.bus_id).is_none()) {
        return unmapped(&format!("no adapter reports a PCI bus id to match against {bus}"));
    }
    Err(format!("{} assigns the GPU on PCI bus {bus}, which is none of the adapters found: {}; name one with --adapter", pin.describe(), list(adapters)))
}
