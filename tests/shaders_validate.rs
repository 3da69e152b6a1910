//! Every WGSL file in shaders/ must parse and validate with naga in both precisions, so that a
//! shader error fails `cargo test` on machines without a GPU.

use qbat_gpu::gpu::{kernel_libraries, shader_source, with_prelude, Precision, LIBRARIES, SHADERS};
use std::path::{Path, PathBuf};

fn wgsl_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("shaders/ is readable") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            wgsl_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "wgsl") {
            out.push(path);
        }
    }
}

fn validate(name: &str, source: &str, precision: Precision) {
    let module = naga::front::wgsl::parse_str(source).unwrap_or_else(|e| panic!("{name} ({}): {}", precision.name(), e.emit_to_string(source)));
    let caps = match precision {
        Precision::F32 => naga::valid::Capabilities::empty(),
        Precision::F64 => naga::valid::Capabilities::FLOAT64,
    };
    let mut validator = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps);
    if let Err(e) = validator.validate(&module) {
        panic!("{name} ({}): {}", precision.name(), e.emit_to_string(source));
    }
}

#[test]
fn every_shader_validates_in_f32_and_f64() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files = vec![];
    wgsl_files(&dir, &mut files);
    assert!(!files.is_empty(), "no .wgsl files in {}", dir.display());
    for path in &files {
        // A kernel is validated with the libraries the host prepends to it (drive.wgsl).
        let stem = path.file_stem().unwrap_or_default().to_string_lossy();
        let mut text = String::new();
        for (lib, _) in kernel_libraries(&stem) {
            text.push_str(&std::fs::read_to_string(dir.join(format!("{lib}.wgsl"))).expect("library file exists"));
        }
        text.push_str(&std::fs::read_to_string(path).expect("readable shader"));
        let name = path.strip_prefix(&dir).expect("under shaders/").display().to_string();
        for precision in [Precision::F32, Precision::F64] {
            validate(&name, &with_prelude(&text, precision), precision);
        }
    }
}

#[test]
fn runtime_sources_are_the_files() {
    // What the runtime compiles (embedded at build time) is what is on disk: the prelude, the
    // kernel's libraries, the kernel.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    for (name, src) in LIBRARIES {
        assert_eq!(&std::fs::read_to_string(dir.join(format!("{name}.wgsl"))).expect("library file exists"), src);
    }
    for (name, _) in SHADERS {
        let mut text = String::new();
        for (lib, _) in kernel_libraries(name) {
            text.push_str(&std::fs::read_to_string(dir.join(format!("{lib}.wgsl"))).expect("library file exists"));
        }
        text.push_str(&std::fs::read_to_string(dir.join(format!("{name}.wgsl"))).expect("kernel file exists"));
        for precision in [Precision::F32, Precision::F64] {
            let src = shader_source(name, precision).expect("registered kernel");
            assert_eq!(src, with_prelude(&text, precision));
            validate(name, &src, precision);
        }
    }
    assert!(shader_source("no_such_kernel", Precision::F32).is_err());
}

#[test]
fn f64_variant_needs_the_float64_capability() {
    // Guards the test above: without FLOAT64 the f64 variant must be rejected.
    let src = shader_source("rk4_two_qubit", Precision::F64).unwrap();
    let module = naga::front::wgsl::parse_str(&src).unwrap();
    let mut validator = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::empty());
    assert!(validator.validate(&module).is_err());
}

/// The cavity kernel with its workgroup tile on (`TILED`, `TILE_LEN` = n_elem, as
/// `gpu::rk4_cavity` builds it) specialises, validates and compiles to SPIR-V, in both
/// precisions, at a small cutoff and at n_fock 20 (3,570 elements): what the GPU's driver gets.
#[test]
fn the_cavity_kernel_with_its_tile_compiles_to_spirv() {
    for precision in [Precision::F32, Precision::F64] {
        let source = shader_source("rk4_cavity", precision).expect("registered kernel");
        let module = naga::front::wgsl::parse_str(&source).expect("parses");
        let caps = if precision == Precision::F64 { naga::valid::Capabilities::FLOAT64 } else { naga::valid::Capabilities::empty() };
        let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps).validate(&module).expect("validates");
        for n_elem in [300.0, 3570.0] {
            let mut constants = naga::back::PipelineConstants::default();
            constants.insert("TILED".into(), 1.0);
            constants.insert("TILE_LEN".into(), n_elem);
            let (specialised, info) = naga::back::pipeline_constants::process_overrides(&module, &info, Some((naga::ShaderStage::Compute, "main")), &constants)
                .unwrap_or_else(|e| panic!("{} with a tile of {n_elem}: {e}", precision.name()));
            let tile = specialised.global_variables.iter().find(|(_, g)| g.name.as_deref() == Some("tile")).expect("the tile").1;
            let naga::TypeInner::Array { size, .. } = specialised.types[tile.ty].inner else { panic!("the tile is an array") };
            let len = size.resolve(specialised.to_ctx());
            assert!(matches!(len, Ok(naga::proc::IndexableLength::Known(n)) if n as f64 == n_elem), "the tile holds TILE_LEN elements: {len:?}");
            let words = naga::back::spv::write_vec(&specialised, &info, &naga::back::spv::Options::default(), None)
                .unwrap_or_else(|e| panic!("{} with a tile of {n_elem}: {e}", precision.name()));
            assert!(!words.is_empty());
        }
    }
}
