//! The GPU context: one instance, adapter, device and queue per process, with the compiled
//! pipelines cached per (kernel, precision, override constants).

use super::pinning::{self, device_type_name, AdapterFacts};
use super::pipeline_disk_cache::PipelineDiskCache;
use super::{shader_source, Precision};
use crate::error::{QbatError, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The backends we ask wgpu for. Selected explicitly: with wgpu's defaults a missing Vulkan
/// driver would silently fall back to a software OpenGL adapter without f64.
#[cfg(target_os = "macos")]
pub const BACKENDS: wgpu::Backends = wgpu::Backends::METAL;
#[cfg(windows)]
pub const BACKENDS: wgpu::Backends = wgpu::Backends::DX12.union(wgpu::Backends::VULKAN);
#[cfg(not(any(target_os = "macos", windows)))]
pub const BACKENDS: wgpu::Backends = wgpu::Backends::VULKAN;

/// Storage buffers the kernels bind per shader stage (rk4_two_qubit: 6, rk4_cavity: 6).
const NEEDED_STORAGE_BUFFERS: u32 = 6;

/// Read-back buffers a context keeps between read-backs: the four of a two-qubit chunk
/// (work, values, states, eigen-solve measures), twice, and at most `KEPT_STAGING_BYTES`
/// (a block of the 100,000-member main job reads back about 1 GB in f32). Runs free them at
/// their end (`engine::ReleaseReadBack`).
const KEPT_STAGING: usize = 8;
const KEPT_STAGING_BYTES: u64 = 2 << 30;

/// What the run reports about the device.
#[derive(Clone, Debug)]
pub struct GpuInfo {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    /// A software rasteriser (CPU-type adapter, e.g. Mesa lavapipe): a fallback, never preferred
    /// by `--backend auto` over the CPU engine.
    pub software: bool,
    pub driver: String,
    pub has_f64: bool,
    /// The adapter's PCI bus id (`0000:17:00.0`), empty when the driver does not report one.
    pub pci_bus_id: String,
    /// Why the scheduler's GPU pinning could not be followed (printed once as a note), else None.
    pub pinning_note: Option<String>,
    /// The limits granted to the device (what the chunk planner must respect).
    pub limits: wgpu::Limits,
}

/// A compiled compute kernel with its bind-group layout.
#[derive(Debug)]
pub struct KernelPipeline {
    pub layout: wgpu::BindGroupLayout,
    pub pipeline: wgpu::ComputePipeline,
}

pub struct GpuContext {
    pub instance: wgpu::Instance,
    pub adapter: wgpu::Adapter,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: GpuInfo,
    /// Every pipeline built so far, and every one refused for good (a validation or internal
    /// error, as a driver's failed compile, or too much workgroup memory) with the refusal's
    /// message, so that a later block is refused at once, not after another compile. An
    /// out-of-memory error may pass, and is not remembered.
    pipelines: Mutex<HashMap<PipelineKey, std::result::Result<Arc<KernelPipeline>, String>>>,
    /// Pipelines handed to the driver so far (tests: a remembered refusal adds none).
    builds: std::sync::atomic::AtomicU64,
    /// Errors that escaped every error scope (the default handler would panic).
    uncaptured: Arc<Mutex<Option<String>>>,
    /// Read-back buffers handed back by `buffers::Staging`, unmapped, for the next read-back.
    staging: Mutex<Vec<wgpu::Buffer>>,
    /// Why the device was lost, once it is (wgpu loses it when a driver call fails, an
    /// error no error scope sees).
    lost: Arc<Mutex<Option<String>>>,
    /// The driver's compiled pipelines, loaded from and saved to disk (None: none kept).
    disk_cache: Option<PipelineDiskCache>,
    /// The pinning note was said (once a context, however many runs use it).
    pub(crate) pinning_said: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext").field("info", &self.info).finish_non_exhaustive()
    }
}

impl GpuContext {
    /// The adapters `--devices all` opens, each as `--adapter` names it uniquely (a PCI bus id,
    /// else an index: identical GPUs share a name); software adapters only when there is no
    /// hardware one (`pinning::device_keys`).
    pub fn adapter_names() -> Vec<String> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle().with_env();
        desc.backends &= BACKENDS;
        let backends = desc.backends;
        let instance = wgpu::Instance::new(desc);
        let facts: Vec<AdapterFacts> = pollster::block_on(instance.enumerate_adapters(backends)).iter().map(AdapterFacts::of).collect();
        pinning::device_keys(&facts)
    }

    /// Open a device. `adapter` is `--adapter`: an index as the adapters are listed, a PCI bus
    /// id, or (part of) a name, case-insensitive; one that matches nothing is an error listing
    /// the adapters found. Without it, the GPU a scheduler assigned (CUDA_VISIBLE_DEVICES,
    /// SLURM_JOB_GPUS, NVIDIA_VISIBLE_DEVICES; `pinning.rs`) is taken, else a discrete GPU is
    /// preferred, a software adapter taken last, and with `need_f64` adapters with SHADER_F64
    /// come first. No adapter is an error (fast, no panic).
    pub fn new(adapter_name: Option<&str>, need_f64: bool) -> Result<GpuContext> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle().with_env();
        // WGPU_BACKEND may narrow the choice, never widen it past the explicit backends.
        desc.backends &= BACKENDS;
        let backends = desc.backends;
        if backends.is_empty() {
            // (a misspelt or foreign WGPU_BACKEND left none: say which, not "no adapter")
            let set = std::env::var_os("WGPU_BACKEND").map(|v| v.to_string_lossy().into_owned()).unwrap_or_default();
            let ours: Vec<String> = BACKENDS.iter_names().map(|(n, _)| n.to_lowercase()).collect();
            return Err(QbatError::Device(format!(
                "no GPU adapter found: WGPU_BACKEND={set:?} names none of the backends qbat-gpu uses ({}); unset it, or use --backend cpu",
                ours.join(", ")
            )));
        }
        let instance = wgpu::Instance::new(desc);
        let adapters = pollster::block_on(instance.enumerate_adapters(backends));
        if adapters.is_empty() {
            let names: Vec<String> = backends.iter_names().map(|(n, _)| n.to_lowercase()).collect();
            return Err(QbatError::Device(format!("no GPU adapter found (backends: {}); use --backend cpu", names.join(", "))));
        }
        let facts: Vec<AdapterFacts> = adapters.iter().map(AdapterFacts::of).collect();
        let pin = if adapter_name.is_none() { pinning::read_pin() } else { None };
        // (a name that matches no adapter is the user's option, named as such)
        let choice = pinning::choose(&facts, adapter_name, need_f64, pin.as_ref(), pinning::read_driver_gpus).map_err(|why| match adapter_name {
            Some(_) => QbatError::invalid("--adapter", why),
            None => QbatError::Device(why),
        })?;
        let describe = |a: &wgpu::Adapter| AdapterFacts::of(a).describe();
        let Some(adapter) = adapters.into_iter().nth(choice.index) else {
            return Err(QbatError::Device("the chosen adapter went away".into()));
        };
        let ainfo = adapter.get_info();
        let has_f64 = adapter.features().contains(wgpu::Features::SHADER_F64);
        if need_f64 && !has_f64 {
            return Err(QbatError::Device(format!("adapter {} has no SHADER_F64 (64-bit floats in shaders); use --precision f32", describe(&adapter))));
        }

        let al = adapter.limits();
        let mut req = wgpu::Limits::downlevel_defaults();
        req.max_storage_buffers_per_shader_stage = NEEDED_STORAGE_BUFFERS;
        req.max_storage_buffer_binding_size = al.max_storage_buffer_binding_size;
        req.max_buffer_size = al.max_buffer_size;
        req.max_compute_workgroups_per_dimension = al.max_compute_workgroups_per_dimension;
        // all the adapter has: the cavity kernel keeps a stage's matrix there where it fits
        req.max_compute_workgroup_storage_size = req.max_compute_workgroup_storage_size.max(al.max_compute_workgroup_storage_size);
        let mut missing = vec![];
        req.check_limits_with_fail_fn(&al, false, |name, want, have| missing.push(format!("{name}: need {want}, adapter has {have}")));
        if !missing.is_empty() {
            return Err(QbatError::Device(format!("adapter {} is below the limits qbat-gpu needs: {}", describe(&adapter), missing.join("; "))));
        }
        let features = if has_f64 { wgpu::Features::SHADER_F64 } else { wgpu::Features::empty() };
        // the driver's compiled pipelines kept between processes, where it can (`pipeline_disk_cache`)
        let features = features | (adapter.features() & wgpu::Features::PIPELINE_CACHE);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("qbat-gpu"),
            required_features: features,
            required_limits: req,
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| QbatError::Device(format!("could not open adapter {}: {e}", describe(&adapter))))?;
        let uncaptured = Arc::new(Mutex::new(None::<String>));
        let slot = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut s = slot.lock().unwrap_or_else(|p| p.into_inner());
            if s.is_none() {
                // Out-of-memory is kept apart: the run driver re-chunks smaller on it.
                let oom = matches!(e, wgpu::Error::OutOfMemory { .. });
                *s = Some(if oom { format!("{OOM_TAG}{e}") } else { e.to_string() });
            }
        }));
        let info = GpuInfo {
            name: ainfo.name.clone(),
            backend: ainfo.backend.to_string(),
            device_type: device_type_name(ainfo.device_type).to_string(),
            software: ainfo.device_type == wgpu::DeviceType::Cpu,
            driver: format!("{} {}", ainfo.driver, ainfo.driver_info).trim().to_string(),
            has_f64,
            pci_bus_id: pinning::normalize_bus_id(&ainfo.device_pci_bus_id).unwrap_or_default(),
            pinning_note: choice.note.clone(),
            limits: device.limits(),
        };
        let lost = Arc::new(Mutex::new(None::<String>));
        let slot = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            slot.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(format!("{message} ({reason:?})"));
        });
        let disk_cache = PipelineDiskCache::open(&device, &ainfo);
        Ok(GpuContext {
            disk_cache,
            pinning_said: Default::default(),
            instance,
            adapter,
            device,
            queue,
            info,
            pipelines: Mutex::new(HashMap::new()),
            builds: Default::default(),
            uncaptured,
            staging: Mutex::new(vec![]),
            lost,
        })
    }

    /// A mappable read-back buffer of at least `size` bytes: the smallest kept one that holds it
    /// without being more than twice as large, else a new one. A kept buffer's host memory is
    /// already allocated (and, on a software adapter, faulted in): the blocks of a run read
    /// back chunks of the same sizes again and again.
    pub(crate) fn staging_buffer(&self, size: u64) -> wgpu::Buffer {
        let mut kept = self.staging.lock().unwrap_or_else(|p| p.into_inner());
        let fits = kept.iter().enumerate().filter(|(_, b)| b.size() >= size && b.size() / 2 <= size).min_by_key(|(_, b)| b.size()).map(|(i, _)| i);
        match fits {
            Some(i) => kept.remove(i),
            None => self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("read-back"),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
        }
    }

    /// The read-back buffers kept for the next read-back: how many, and their bytes.
    pub fn kept_staging(&self) -> (usize, u64) {
        let kept = self.staging.lock().unwrap_or_else(|p| p.into_inner());
        (kept.len(), kept.iter().map(|b| b.size()).sum())
    }

    /// Free the kept read-back buffers (a long-lived context between runs, tests).
    pub fn release_staging(&self) {
        self.staging.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Keep an unmapped read-back buffer for `staging_buffer`; past `KEPT_STAGING` buffers or
    /// `KEPT_STAGING_BYTES`, the buffers kept longest go first (the newest too, alone over the
    /// bytes).
    pub(crate) fn keep_staging_buffer(&self, buffer: wgpu::Buffer) {
        let mut kept = self.staging.lock().unwrap_or_else(|p| p.into_inner());
        kept.push(buffer);
        while kept.len() > KEPT_STAGING || kept.iter().map(|b| b.size()).sum::<u64>() > KEPT_STAGING_BYTES {
            kept.remove(0);
        }
    }

    /// Wait until the device has done everything submitted so far; a failed wait is a lost
    /// device.
    pub fn wait(&self) -> Result<()> {
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| QbatError::DeviceLost(format!("waiting for the kernel: {e}")))?;
        Ok(())
    }

    /// An error that escaped the error scopes since the last call, as a Device error.
    pub fn take_uncaptured_error(&self) -> Result<()> {
        let mut s = self.uncaptured.lock().unwrap_or_else(|p| p.into_inner());
        match s.take() {
            Some(e) => match e.strip_prefix(OOM_TAG) {
                Some(e) => Err(QbatError::DeviceOutOfMemory(e.to_string())),
                None => Err(QbatError::Device(e)),
            },
            None => Ok(()),
        }
    }

    /// The cached pipeline of kernel `name` (a file in shaders/) in `precision`, compiled on
    /// first use with one bind group of `entries`. Shader or layout errors come back as Device
    /// errors.
    pub fn pipeline(&self, name: &'static str, precision: Precision, entries: &[wgpu::BindGroupLayoutEntry]) -> Result<Arc<KernelPipeline>> {
        self.pipeline_with(name, precision, &[], entries)
    }

    /// `pipeline` with the kernel's `override` constants set to `constants` (name, value),
    /// cached per set of values.
    pub fn pipeline_with(
        &self,
        name: &'static str,
        precision: Precision,
        constants: &[(&'static str, f64)],
        entries: &[wgpu::BindGroupLayoutEntry],
    ) -> Result<Arc<KernelPipeline>> {
        let key = pipeline_key(name, precision, constants, entries);
        let mut cache = self.pipelines.lock().unwrap_or_else(|p| p.into_inner());
        match cache.get(&key) {
            Some(Ok(p)) => return Ok(p.clone()),
            Some(Err(why)) => return Err(QbatError::Device(why.clone())),
            None => {}
        }
        if precision == Precision::F64 && !self.info.has_f64 {
            return Err(QbatError::Device(format!("adapter '{}' has no SHADER_F64; use --precision f32", self.info.name)));
        }
        let source = shader_source(name, precision)?;
        if !constants.is_empty() {
            // a driver may not refuse an override-sized workgroup array past the limit (lavapipe
            // tried to compile a 1e8-element tile and ran out of host memory), so count it here
            let limit = self.info.limits.max_compute_workgroup_storage_size;
            let refusal = match workgroup_bytes(&source, precision, constants) {
                Ok(bytes) if bytes > u64::from(limit) => Some(format!("needs {bytes} bytes of workgroup memory; the adapter allows {limit}")),
                Ok(_) => None,
                Err(why) => Some(why),
            };
            if let Some(why) = refusal {
                let why = format!("kernel {name} ({}): {why}", precision.name());
                cache.insert(key, Err(why.clone()));
                return Err(QbatError::Device(why));
            }
        }
        // every kind of error a scope sees: naga's translation fails as an internal error, a
        // driver's refusal may come as out of memory; a driver failure otherwise loses the
        // device, which no scope sees (checked below)
        self.builds.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let scopes = [wgpu::ErrorFilter::Validation, wgpu::ErrorFilter::OutOfMemory, wgpu::ErrorFilter::Internal].map(|f| self.device.push_error_scope(f));
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor { label: Some(name), source: wgpu::ShaderSource::Wgsl(source.into()) });
        let layout = self.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(name), entries });
        let pipeline_layout =
            self.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor { label: Some(name), bind_group_layouts: &[Some(&layout)], immediate_size: 0 });
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(name),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions { constants, ..Default::default() },
            cache: self.disk_cache.as_ref().map(PipelineDiskCache::cache),
        });
        let mut errors: Vec<wgpu::Error> = vec![];
        for scope in scopes.into_iter().rev() {
            errors.extend(pollster::block_on(scope.pop()));
        }
        if let Some(why) = self.lost() {
            return Err(QbatError::DeviceLost(format!("building kernel {name} ({}): {why}", precision.name())));
        }
        if let Some(e) = errors.first() {
            let why = format!("kernel {name} ({}): {e}", precision.name());
            // (a driver that fails to compile or link the pipeline gives an internal error)
            if matches!(e, wgpu::Error::Validation { .. } | wgpu::Error::Internal { .. }) {
                cache.insert(key, Err(why.clone()));
            }
            return Err(QbatError::Device(why));
        }
        let p = Arc::new(KernelPipeline { layout, pipeline });
        cache.insert(key, Ok(p.clone()));
        drop(cache);
        if let Some(disk) = &self.disk_cache {
            disk.save();
        }
        Ok(p)
    }
}

impl GpuContext {
    /// The override constants of each pipeline of kernel `name` in `precision` built so far
    /// (tests; refused ones left out).
    pub fn pipeline_constants(&self, name: &str, precision: Precision) -> Vec<Vec<(&'static str, f64)>> {
        let cache = self.pipelines.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .iter()
            .filter(|(k, p)| k.0 == name && k.1 == precision && p.is_ok())
            .map(|(k, _)| k)
            .map(|k| k.2.iter().map(|&(c, v)| (c, f64::from_bits(v))).collect())
            .collect()
    }

    /// How many pipelines were handed to the driver so far (tests).
    pub fn pipeline_builds(&self) -> u64 {
        self.builds.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Record that the driver refused kernel `name` with `constants` (a test hook that stands
    /// for a driver's validation error): later calls get `why`, as for a real refusal.
    pub fn refuse_pipeline(
        &self,
        name: &'static str,
        precision: Precision,
        constants: &[(&'static str, f64)],
        entries: &[wgpu::BindGroupLayoutEntry],
        why: &str,
    ) {
        let key = pipeline_key(name, precision, constants, entries);
        self.pipelines.lock().unwrap_or_else(|p| p.into_inner()).insert(key, Err(why.to_string()));
    }

    /// Why the device was lost, if it was.
    pub fn lost(&self) -> Option<String> {
        self.lost.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The workgroup memory of a kernel's source with its override constants set: the sum of its
/// workgroup variables' sizes, as naga lays them out.
fn workgroup_bytes(source: &str, precision: Precision, constants: &[(&'static str, f64)]) -> std::result::Result<u64, String> {
    let module = naga::front::wgsl::parse_str(source).map_err(|e| e.to_string())?;
    let caps = if precision == Precision::F64 { naga::valid::Capabilities::FLOAT64 } else { naga::valid::Capabilities::empty() };
    let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps).validate(&module).map_err(|e| e.into_inner().to_string())?;
    let constants: naga::back::PipelineConstants = constants.iter().map(|&(c, v)| (c.to_string(), v)).collect();
    let (module, _) =
        naga::back::pipeline_constants::process_overrides(&module, &info, Some((naga::ShaderStage::Compute, "main")), &constants).map_err(|e| e.to_string())?;
    let mut bytes = 0u64;
    for (_, g) in module.global_variables.iter().filter(|(_, g)| g.space == naga::AddressSpace::WorkGroup) {
        bytes = bytes.saturating_add(u64::from(module.types[g.ty].inner.size(module.to_ctx())));
    }
    Ok(bytes)
}

/// A cached pipeline: kernel, precision, its override constants (name, value bits) and its
/// bind group's layout.
fn pipeline_key(name: &'static str, precision: Precision, constants: &[(&'static str, f64)], entries: &[wgpu::BindGroupLayoutEntry]) -> PipelineKey {
    (name, precision, constants.iter().map(|&(c, v)| (c, v.to_bits())).collect(), entries.to_vec())
}

type PipelineKey = (&'static str, Precision, Vec<(&'static str, u64)>, Vec<wgpu::BindGroupLayoutEntry>);

/// Marks an out-of-memory error in the uncaptured-error slot.
const OOM_TAG: &str = "\u{1}oom:";
