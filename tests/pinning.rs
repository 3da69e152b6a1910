//! The GPU a scheduler assigns (CUDA_VISIBLE_DEVICES, SLURM_JOB_GPUS, NVIDIA_VISIBLE_DEVICES)
//! mapped to its wgpu adapter, and `--adapter` by index and PCI bus id: src/gpu/pinning.rs
//! with fake adapters and fake driver output, so that CI needs no GPU.

use qbat_gpu::gpu::pinning::{
    choose, device_keys, normalize_bus_id, parse_assignment, parse_nvidia_smi, parse_proc_gpus, pick_named, pin_from, resolve_bus_id, AdapterFacts, Assignment,
    DeviceRef, DriverGpu,
};
use wgpu::DeviceType;

fn gpu(name: &str, bus: &str) -> AdapterFacts {
    AdapterFacts { name: name.into(), backend: "vulkan".into(), device_type: DeviceType::DiscreteGpu, bus_id: bus.into(), has_f64: true }
}

fn llvmpipe() -> AdapterFacts {
    AdapterFacts {
        name: "llvmpipe (LLVM 15.0.6, 256 bits)".into(),
        backend: "vulkan".into(),
        device_type: DeviceType::Cpu,
        bus_id: String::new(),
        has_f64: true,
    }
}

/// A node with four identical GPUs as Vulkan enumerates them (not in bus order) and the
/// software adapter first.
fn node() -> Vec<AdapterFacts> {
    vec![
        llvmpipe(),
        gpu("NVIDIA H100 80GB HBM3", "0000:3a:00.0"),
        gpu("NVIDIA H100 80GB HBM3", "0000:18:00.0"),
        gpu("NVIDIA H100 80GB HBM3", "0000:bb:00.0"),
        gpu("NVIDIA H100 80GB HBM3", "0000:9a:00.0"),
    ]
}

/// nvidia-smi's view of the same node: indices in bus order, 8-digit domains, upper case.
const SMI: &str = "0, 00000000:18:00.0, GPU-11111111-aaaa-bbbb-cccc-000000000000
1, 00000000:3A:00.0, GPU-22222222-aaaa-bbbb-cccc-000000000000
2, 00000000:9A:00.0, GPU-33333333-aaaa-bbbb-cccc-000000000000
3, 00000000:BB:00.0, GPU-44444444-aaaa-bbbb-cccc-000000000000
";

fn smi() -> Option<Vec<DriverGpu>> {
    Some(parse_nvidia_smi(SMI))
}

fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
}

fn chosen_bus(adapters: &[AdapterFacts], pairs: &[(&str, &str)]) -> String {
    let pin = pin_from(env(pairs));
    let c = choose(adapters, None, false, pin.as_ref(), smi).unwrap_or_else(|e| panic!("{pairs:?}: {e}"));
    assert_eq!(c.note, None, "{pairs:?}");
    adapters[c.index].bus_id.clone()
}

#[test]
fn bus_ids_are_normalised() {
    for (raw, want) in [
        ("00000000:17:00.0", "0000:17:00.0"),
        ("0000:17:00.0", "0000:17:00.0"),
        ("00000000:BB:00.0", "0000:bb:00.0"),
        ("17:00.0", "0000:17:00.0"),
        (" 0001:3A:1f.7 ", "0001:3a:1f.7"),
    ] {
        assert_eq!(normalize_bus_id(raw).as_deref(), Some(want), "{raw}");
    }
    for bad in ["", "0", "GPU-1234", "17:00", "0000:17:00.8", "0000:17:20.0", "0000:117:00.0", "zz:00.0", "1:2:3:4.0"] {
        assert_eq!(normalize_bus_id(bad), None, "{bad}");
    }
}

#[test]
fn pinning_values_are_parsed_as_cuda_slurm_and_containers_write_them() {
    use Assignment::*;
    use DeviceRef::*;
    assert_eq!(parse_assignment("2"), Devices(vec![Index(2)]));
    assert_eq!(parse_assignment("3,1"), Devices(vec![Index(3), Index(1)]));
    assert_eq!(parse_assignment(" 0, 2 ,-1,1"), Devices(vec![Index(0), Index(2)]), "CUDA stops at the first entry that is not a device");
    assert_eq!(parse_assignment("GPU-8932F937-d72c"), Devices(vec![Uuid("gpu-8932f937-d72c".into())]));
    assert_eq!(parse_assignment("MIG-GPU-8932f937-d72c/1/0"), Devices(vec![Uuid("gpu-8932f937-d72c".into())]));
    assert_eq!(parse_assignment("MIG-8932f937-d72c"), Devices(vec![Mig("mig-8932f937-d72c".into())]));
    assert_eq!(parse_assignment("1:0"), Devices(vec![Index(1)]), "MIG slice 0 of GPU 1");
    assert_eq!(parse_assignment("0000:3a:00.0"), Devices(vec![BusId("0000:3a:00.0".into())]));
    for none in ["", "  ", "NoDevFiles", "void", "none", "NONE", "-1", "garbage"] {
        assert_eq!(parse_assignment(none), NoGpu, "{none:?}");
    }
    assert_eq!(parse_assignment("all"), All);
    assert_eq!(parse_assignment("ALL"), All);
}

#[test]
fn cuda_visible_devices_wins_over_slurm_and_the_container_runtime() {
    let p = pin_from(env(&[("NVIDIA_VISIBLE_DEVICES", "3"), ("SLURM_JOB_GPUS", "2"), ("CUDA_VISIBLE_DEVICES", "1")])).unwrap();
    assert_eq!((p.var, p.describe().as_str()), ("CUDA_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES=1"));
    let p = pin_from(env(&[("NVIDIA_VISIBLE_DEVICES", "3"), ("SLURM_JOB_GPUS", "2")])).unwrap();
    assert_eq!(p.var, "SLURM_JOB_GPUS");
    let p = pin_from(env(&[("NVIDIA_VISIBLE_DEVICES", "all")])).unwrap();
    assert_eq!(p.assignment, Assignment::All);
    assert!(pin_from(env(&[("HOME", "/root")])).is_none());
}

#[test]
fn driver_listings_are_parsed() {
    let g = parse_nvidia_smi(SMI);
    assert_eq!(g.len(), 4);
    assert_eq!(g[1], DriverGpu { index: 1, bus_id: "0000:3a:00.0".into(), uuid: "gpu-22222222-aaaa-bbbb-cccc-000000000000".into() });
    assert!(parse_nvidia_smi("No devices were found\n").is_empty());
    assert!(parse_nvidia_smi("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.").is_empty());
    // /proc/driver/nvidia/gpus/*/information, read in directory order: numbered in bus order
    let info = |bus: &str, uuid: &str| {
        format!("Model: \t\t NVIDIA H100 80GB HBM3\nIRQ:   \t\t 123\nGPU UUID: \t GPU-{uuid}\nVideo BIOS: \t ??.??.??.??.??\nBus Type: \t PCIe\nBus Location: \t {bus}\nDevice Minor: \t 0\n")
    };
    let g = parse_proc_gpus(&[info("0000:9a:00.0", "ccc"), info("0000:18:00.0", "aaa"), "garbage".into()]);
    assert_eq!(
        g,
        vec![
            DriverGpu { index: 0, bus_id: "0000:18:00.0".into(), uuid: "gpu-aaa".into() },
            DriverGpu { index: 1, bus_id: "0000:9a:00.0".into(), uuid: "gpu-ccc".into() },
        ]
    );
}

#[test]
fn uuids_and_prefixes_resolve_through_the_driver_list() {
    let g = parse_nvidia_smi(SMI);
    assert_eq!(resolve_bus_id(&DeviceRef::Uuid("gpu-33333333".into()), Some(&g)).as_deref(), Some("0000:9a:00.0"));
    assert_eq!(resolve_bus_id(&DeviceRef::Uuid("gpu-".into()), Some(&g)), None, "a prefix shared by every GPU names none");
    assert_eq!(resolve_bus_id(&DeviceRef::Index(7), Some(&g)), None);
    assert_eq!(resolve_bus_id(&DeviceRef::Index(0), None), None);
    assert_eq!(resolve_bus_id(&DeviceRef::BusId("0000:bb:00.0".into()), None).as_deref(), Some("0000:bb:00.0"));
}

/// Eight array tasks on one node, each given one GPU: each opens its own adapter, by index, UUID
/// or MIG parent, whatever the variable, and never the software adapter.
#[test]
fn each_task_opens_the_gpu_it_was_assigned() {
    let a = node();
    assert_eq!(chosen_bus(&a, &[("CUDA_VISIBLE_DEVICES", "0")]), "0000:18:00.0");
    assert_eq!(chosen_bus(&a, &[("CUDA_VISIBLE_DEVICES", "1")]), "0000:3a:00.0");
    assert_eq!(chosen_bus(&a, &[("CUDA_VISIBLE_DEVICES", "2,3")]), "0000:9a:00.0");
    assert_eq!(chosen_bus(&a, &[("SLURM_JOB_GPUS", "3")]), "0000:bb:00.0");
    assert_eq!(chosen_bus(&a, &[("NVIDIA_VISIBLE_DEVICES", "GPU-22222222-aaaa-bbbb-cccc-000000000000")]), "0000:3a:00.0");
    assert_eq!(chosen_bus(&a, &[("CUDA_VISIBLE_DEVICES", "GPU-4444")]), "0000:bb:00.0");
    assert_eq!(chosen_bus(&a, &[("CUDA_VISIBLE_DEVICES", "MIG-GPU-33333333-aaaa-bbbb-cccc-000000000000/1/0")]), "0000:9a:00.0");
    // without pinning, or with all: the default choice, a hardware GPU (the first found)
    assert_eq!(chosen_bus(&a, &[]), "0000:3a:00.0");
    assert_eq!(chosen_bus(&a, &[("NVIDIA_VISIBLE_DEVICES", "all")]), "0000:3a:00.0");
}

#[test]
fn a_pinned_gpu_that_no_adapter_is_is_refused_naming_the_variable() {
    // the driver knows GPU 3 (bus bb), but Vulkan lists only three of the four
    let a: Vec<AdapterFacts> = node().into_iter().filter(|f| f.bus_id != "0000:bb:00.0").collect();
    let pin = pin_from(env(&[("CUDA_VISIBLE_DEVICES", "3")]));
    let e = choose(&a, None, false, pin.as_ref(), smi).unwrap_err();
    assert!(e.contains("CUDA_VISIBLE_DEVICES=3") && e.contains("0000:bb:00.0") && e.contains("--adapter"), "{e}");
    assert!(e.contains("1: 'NVIDIA H100 80GB HBM3' (vulkan, discrete GPU, PCI 0000:3a:00.0)"), "the adapters are listed with their index: {e}");
    // no GPU assigned at all
    for v in ["NoDevFiles", "void", ""] {
        let pin = pin_from(env(&[("CUDA_VISIBLE_DEVICES", v)]));
        let e = choose(&node(), None, false, pin.as_ref(), smi).unwrap_err();
        assert!(e.contains("assigned no GPU") && e.contains("--backend cpu"), "{v}: {e}");
    }
}

#[test]
fn a_pinning_that_cannot_be_mapped_gives_a_note_and_the_default_choice() {
    let a = node();
    let default = choose(&a, None, false, None, smi).unwrap().index;
    let cases: [(&str, fn() -> Option<Vec<DriverGpu>>, &str); 4] = [
        ("1", || None, "no GPU list from nvidia-smi"),
        ("7", smi, "lists no such GPU"),
        ("MIG-8932f937-d72c", smi, "MIG"),
        ("GPU-99999999", smi, "lists no such GPU"),
    ];
    for (value, driver, why) in cases {
        let pin = pin_from(env(&[("CUDA_VISIBLE_DEVICES", value)]));
        let c = choose(&a, None, false, pin.as_ref(), driver).unwrap_or_else(|e| panic!("{value}: {e}"));
        assert_eq!(c.index, default, "{value}");
        let note = c.note.unwrap_or_else(|| panic!("{value}: no note"));
        assert!(note.contains(&format!("CUDA_VISIBLE_DEVICES={value}")) && note.contains(why) && !note.contains('\n'), "{value}: {note}");
    }
    // adapters that report no bus id (a driver without VK_EXT_pci_bus_info): a note, not a refusal
    let blind: Vec<AdapterFacts> = node()
        .into_iter()
        .map(|mut f| {
            f.bus_id.clear();
            f
        })
        .collect();
    let pin = pin_from(env(&[("CUDA_VISIBLE_DEVICES", "2")]));
    let c = choose(&blind, None, false, pin.as_ref(), smi).unwrap();
    assert!(c.note.unwrap().contains("no adapter reports a PCI bus id"));
    assert_ne!(blind[c.index].device_type, DeviceType::Cpu, "the software adapter stays a fallback");
}

#[test]
fn software_adapters_are_never_the_default() {
    let a = vec![llvmpipe(), AdapterFacts { device_type: DeviceType::IntegratedGpu, has_f64: false, ..gpu("Intel(R) Graphics", "0000:00:02.0") }];
    assert_eq!(choose(&a, None, false, None, smi).unwrap().index, 1);
    // with f64 needed, the adapter that has it comes first
    assert_eq!(choose(&a, None, true, None, smi).unwrap().index, 0);
    assert_eq!(choose(&[llvmpipe()], None, false, None, smi).unwrap().index, 0, "the only adapter is taken");
}

#[test]
fn adapter_option_takes_an_index_a_bus_id_or_a_name() {
    let a = node();
    assert_eq!(pick_named(&a, "3"), Ok(3));
    assert_eq!(pick_named(&a, "0"), Ok(0), "an index, not a name containing 0");
    assert_eq!(pick_named(&a, "0000:9a:00.0"), Ok(4));
    assert_eq!(pick_named(&a, "00000000:9A:00.0"), Ok(4));
    assert_eq!(pick_named(&a, "bb:00.0"), Ok(3));
    assert_eq!(pick_named(&a, "llvmpipe"), Ok(0));
    assert_eq!(pick_named(&a, "h100"), Ok(1));
    let e = pick_named(&a, "5").unwrap_err();
    assert!(e.contains("no adapter 5") && e.contains("4: 'NVIDIA H100"), "{e}");
    let e = pick_named(&a, "0000:01:00.0").unwrap_err();
    assert!(e.contains("no adapter has PCI bus id 0000:01:00.0"), "{e}");
    assert!(pick_named(&a, "radeon").unwrap_err().contains("no adapter name contains 'radeon'"));
    // an empty name would be contained in every name: refused, not the first adapter
    for blank in ["", "  "] {
        assert!(pick_named(&a, blank).unwrap_err().starts_with("is empty: name an adapter"), "{blank:?}");
    }
    // --adapter wins over the scheduler's pinning
    let pin = pin_from(env(&[("CUDA_VISIBLE_DEVICES", "0")]));
    assert_eq!(choose(&a, Some("2"), false, pin.as_ref(), smi).unwrap().index, 2);
}

/// `--devices all` on a node of identical GPUs opens each of them once (not the first one N
/// times, as names would), and leaves the software adapter out.
#[test]
fn devices_all_names_each_gpu_uniquely() {
    let a = node();
    let keys = device_keys(&a);
    assert_eq!(keys, ["0000:3a:00.0", "0000:18:00.0", "0000:bb:00.0", "0000:9a:00.0"]);
    let opened: Vec<usize> = keys.iter().map(|k| pick_named(&a, k).unwrap()).collect();
    assert_eq!(opened, [1, 2, 3, 4]);
    // no bus ids: indices; only software adapters: they are used
    let blind: Vec<AdapterFacts> = node()
        .into_iter()
        .map(|mut f| {
            f.bus_id.clear();
            f
        })
        .collect();
    assert_eq!(device_keys(&blind), ["1", "2", "3", "4"]);
    assert_eq!(device_keys(&[llvmpipe()]), ["0"]);
}

/// A WGPU_BACKEND that leaves none of qbat-gpu's backends (misspelt, empty, or another API) is
/// named as the reason, not reported as a machine without a GPU; `--backend gpu` exits 2.
#[test]
fn a_wgpu_backend_that_leaves_no_backend_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = crate::common::config(tmp.path(), "model = \"bloch-charger\"\n[time]\ndt = 0.01\nt_end = 0.1\nsamples = 3\n[ensemble]\nsize = 2\n");
    for value in ["vulkn", "", "gl"] {
        let o = crate::common::bin()
            .arg("run")
            .arg(&cfg)
            .args(["--backend", "gpu", "--no-progress", "--verify", "0", "--out"])
            .arg(tmp.path().join("out"))
            .env("WGPU_BACKEND", value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{value:?}: {stderr}");
        assert!(stderr.contains(&format!("WGPU_BACKEND={value:?}")) && stderr.trim().lines().count() == 1, "{value:?}: {stderr}");
    }
}
