//! The layouts of `job/` against the shaders, parsed with naga: the uniform `Params` structs
//! (member names, offsets and size), the flag bits, the measure codes, the row-table bits and
//! the workgroup sizes. A layout changed on one side only fails here, on any machine.

use qbat_gpu::gpu::{shader_source, Precision};
use qbat_gpu::job::{cavity, two_qubit, NO_SAMPLE};
use qbat_gpu::measures::Measure;
use std::collections::BTreeMap;

fn module(kernel: &str) -> naga::Module {
    let source = shader_source(kernel, Precision::F32).unwrap();
    naga::front::wgsl::parse_str(&source).unwrap_or_else(|e| panic!("{kernel}: {}", e.emit_to_string(&source)))
}

/// Every named `u32` constant of the module, folded to its value.
fn constants(m: &naga::Module) -> BTreeMap<String, u32> {
    m.constants
        .iter()
        .filter_map(|(_, c)| match (&c.name, &m.global_expressions[c.init]) {
            (Some(name), naga::Expression::Literal(naga::Literal::U32(v))) => Some((name.clone(), *v)),
            _ => None,
        })
        .collect()
}

/// (member name, byte offset) of a struct, and its size.
fn struct_layout(m: &naga::Module, name: &str) -> (Vec<(String, u32)>, u32) {
    let ty = m.types.iter().find(|(_, t)| t.name.as_deref() == Some(name)).unwrap_or_else(|| panic!("no struct {name}")).1;
    let naga::TypeInner::Struct { members, span } = &ty.inner else { panic!("{name} is not a struct") };
    (members.iter().map(|mb| (mb.name.clone().unwrap_or_default(), mb.offset)).collect(), *span)
}

fn workgroup_size(m: &naga::Module) -> u32 {
    assert_eq!(m.entry_points.len(), 1, "one entry point per kernel");
    let [x, y, z] = m.entry_points[0].workgroup_size;
    assert_eq!((y, z), (1, 1));
    x
}

/// Expect `name` to be a constant of the shader equal to `value`.
fn expect_const(consts: &BTreeMap<String, u32>, kernel: &str, name: &str, value: u32) {
    assert_eq!(consts.get(name).copied(), Some(value), "{kernel}: const {name} differs from job/ ({value})");
}

macro_rules! rust_layout {
    ($t:ty { $($f:ident),* $(,)? }) => {
        (vec![$((stringify!($f).to_string(), std::mem::offset_of!($t, $f) as u32)),*], std::mem::size_of::<$t>() as u32)
    };
}

#[test]
fn two_qubit_params_match_the_shader() {
    let m = module("rk4_two_qubit");
    let rust = rust_layout!(two_qubit::Params {
        n_members,
        n_samples,
        n_cols,
        piece_begin,
        piece_end,
        flags,
        work_stride,
        off_pieces,
        off_times,
        off_hlast,
        off_wg_point,
        point_offset,
        steps_expected,
        n_drives,
        off_drives,
        off_tiles,
        cols
    });
    assert_eq!(struct_layout(&m, "Params"), rust);
}

#[test]
fn cavity_params_match_the_shader() {
    let m = module("rk4_cavity");
    let rust = rust_layout!(cavity::Params {
        n_members,
        n_fock,
        dim,
        n_elem,
        n_samples,
        piece_begin,
        piece_end,
        flags,
        member_stride,
        param_stride,
        out_stride,
        off_rows,
        off_pieces,
        off_sqrt,
        off_steps,
        steps_expected,
        n_drives,
        off_env,
        off_starts,
        off_weights
    });
    assert_eq!(struct_layout(&m, "Params"), rust);
}

#[test]
fn two_qubit_constants_match_the_shader() {
    let k = "rk4_two_qubit";
    let m = module(k);
    let c = constants(&m);
    for (name, v) in [
        ("F_FIRST", two_qubit::F_FIRST),
        ("F_Z", two_qubit::F_Z),
        ("F_STATES", two_qubit::F_STATES),
        ("F_BELL", two_qubit::F_BELL),
        ("F_COHERENCE", two_qubit::F_COHERENCE),
        ("F_ENTROPY", two_qubit::F_ENTROPY),
        ("F_CHARGER", two_qubit::F_CHARGER),
        ("F_TEXTURE", two_qubit::F_TEXTURE),
        ("NO_SAMPLE", NO_SAMPLE),
        ("NO_POINT", two_qubit::NO_POINT),
        ("POINT_VEC4", two_qubit::POINT_VEC4 as u32),
        ("N_CODES", two_qubit::N_CODES as u32),
        // [[drive]]: the drive block and the tiles of job::two_qubit::SparseGenerator.
        ("DRIVE_VEC4_PER_DRIVE", two_qubit::DRIVE_VEC4_PER_DRIVE),
        ("TILE_VEC4", two_qubit::TILE_VEC4),
        ("TILE_TABLE", two_qubit::TILE_TABLE),
        ("MAX_DRIVES", two_qubit::MAX_DRIVES as u32),
    ] {
        expect_const(&c, k, name, v);
    }
    // Each kernel measure's code is M_<NAME> in the shader, and the shader has no other M_.
    for m in two_qubit::KERNEL_MEASURES {
        let name = format!("M_{}", m.name().to_uppercase());
        expect_const(&c, k, &name, two_qubit::kernel_code(m).unwrap());
    }
    let shader_codes = c.keys().filter(|n| n.starts_with("M_")).count();
    assert_eq!(shader_codes, two_qubit::KERNEL_MEASURES.len());
    assert!(Measure::ALL.iter().filter(|m| two_qubit::kernel_code(**m).is_some()).count() == two_qubit::N_CODES);
    assert_eq!(workgroup_size(&m), two_qubit::WORKGROUP_SIZE);
}

#[test]
fn cavity_constants_match_the_shader() {
    let k = "rk4_cavity";
    let m = module(k);
    let c = constants(&m);
    for (name, v) in [
        ("WG", cavity::WORKGROUP_SIZE),
        ("NO_SAMPLE", NO_SAMPLE),
        ("REF_LEN", cavity::REF_LEN as u32),
        ("F_FIRST", cavity::F_FIRST),
        ("F_Z", cavity::F_Z),
        ("F_UNCOUPLED", cavity::F_UNCOUPLED),
        ("ROW_FLIP", cavity::ROW_FLIP),
        ("ROW_E1_ZERO", cavity::ROW_E1_ZERO),
        ("ROW_E2_ZERO", cavity::ROW_E2_ZERO),
        ("ROW_TOP", cavity::ROW_TOP),
        ("ROW_N_SHIFT", cavity::ROW_N_SHIFT),
        ("NQ", cavity::SAMPLE_QUANTITIES as u32),
        ("NPART", cavity::SAMPLE_PARTS as u32),
        ("DRIVE_SLOTS", cavity::DRIVE_SLOTS as u32),
        ("DRIVE_VEC2", cavity::DRIVE_VEC2 as u32),
    ] {
        expect_const(&c, k, name, v);
    }
    assert_eq!(workgroup_size(&m), cavity::WORKGROUP_SIZE);
    // The workgroup memory the planner counts beside the tile (`workgroup_tile`): every
    // workgroup variable but `tile` is an array of vec2<real> of a fixed length, and their
    // reals add up to WORKGROUP_FIXED_REALS; `tile` is sized by the TILE_LEN override.
    let mut fixed = 0;
    let mut tile = false;
    for (_, g) in m.global_variables.iter().filter(|(_, g)| g.space == naga::AddressSpace::WorkGroup) {
        let naga::TypeInner::Array { base, size, .. } = m.types[g.ty].inner else { panic!("{k}: workgroup {:?} is not an array", g.name) };
        assert!(matches!(m.types[base].inner, naga::TypeInner::Vector { size: naga::VectorSize::Bi, .. }), "{k}: {:?} holds vec2", g.name);
        match (g.name.as_deref(), size) {
            (Some("tile"), naga::ArraySize::Pending(_)) => tile = true,
            (name, naga::ArraySize::Constant(n)) => {
                assert_ne!(name, Some("tile"), "{k}: tile must be sized by TILE_LEN");
                fixed += 2 * n.get() as usize;
            }
            (name, size) => panic!("{k}: workgroup {name:?} of size {size:?}"),
        }
    }
    assert!(tile, "{k}: no workgroup tile");
    assert_eq!(fixed, cavity::WORKGROUP_FIXED_REALS, "{k}: workgroup reals besides the tile");
}

#[test]
fn dicke_params_match_the_shader() {
    use qbat_gpu::job::dicke;
    let m = module("rk4_dicke");
    let rust = rust_layout!(dicke::Params {
        n_members,
        n_cells,
        n_fock,
        dim,
        n_list,
        n_packed,
        n_samples,
        piece_begin,
        piece_end,
        flags,
        member_stride,
        param_stride,
        out_stride,
        off_rows,
        off_pieces,
        off_weights,
        off_steps,
        steps_expected,
        _pad0,
        _pad1
    });
    assert_eq!(struct_layout(&m, "Params"), rust);
}

#[test]
fn dicke_constants_match_the_shader() {
    use qbat_gpu::job::dicke;
    let k = "rk4_dicke";
    let m = module(k);
    let c = constants(&m);
    for (name, v) in [
        ("WG", dicke::WORKGROUP_SIZE),
        ("NO_SAMPLE", NO_SAMPLE),
        ("ROW_U32", dicke::ROW_U32 as u32),
        ("ROW_REALS", dicke::ROW_REALS as u32),
        ("F_UNCOUPLED", dicke::F_UNCOUPLED),
    ] {
        expect_const(&c, k, name, v);
    }
    assert_eq!(workgroup_size(&m), dicke::WORKGROUP_SIZE);
    // the kernel writes out_stride reals per sample: (N + 1)^2 complex and 4 sums
    assert_eq!(dicke::out_stride(3), 2 * 16 + dicke::SAMPLE_EXTRA);
}

#[test]
fn measures_two_qubit_layout_matches_the_shader() {
    use qbat_gpu::job::measures_two_qubit as mq;
    let k = "measures_two_qubit";
    let m = module(k);
    let rust = rust_layout!(mq::MeasureParams { n_members, n_samples, n_cols, flags, groups_x, cols });
    assert_eq!(struct_layout(&m, "MeasureParams"), rust);
    let c = constants(&m);
    for (name, v) in [
        ("G_SPECTRUM", mq::G_SPECTRUM),
        ("G_CONCURRENCE", mq::G_CONCURRENCE),
        ("G_LOO", mq::G_LOO),
        ("MAX_SWEEPS", mq::MAX_SWEEPS),
        ("EIGEN_POINT_VEC4", mq::EIGEN_POINT_VEC4 as u32),
        ("EIGEN_WORKGROUP_SIZE", mq::EIGEN_WORKGROUP_SIZE),
        ("N_EIGEN_CODES", mq::N_EIGEN_CODES as u32),
    ] {
        expect_const(&c, k, name, v);
    }
    // Each measure's code is E_<NAME> in the shader, the shader has no other E_, and the list
    // is exactly the measures that need an eigen-solve.
    for m in mq::EIGEN_MEASURES {
        expect_const(&c, k, &format!("E_{}", m.name().to_uppercase()), mq::eigen_code(m).unwrap());
    }
    assert_eq!(c.keys().filter(|n| n.starts_with("E_")).count(), mq::EIGEN_MEASURES.len());
    let needs: Vec<Measure> = Measure::ALL.iter().copied().filter(|m| m.needs_eigensolve()).collect();
    assert_eq!(needs, mq::EIGEN_MEASURES.to_vec());
    assert_eq!(workgroup_size(&m), mq::EIGEN_WORKGROUP_SIZE);
}

#[test]
fn drive_envelope_codes_match_the_library_in_every_drive_kernel() {
    use qbat_gpu::job::drive::{ENV_CONSTANT, ENV_GAUSSIAN, ENV_WINDOW};
    for kernel in ["rk4_two_qubit", "rk4_cavity"] {
        let consts = constants(&module(kernel));
        expect_const(&consts, kernel, "ENV_CONSTANT", ENV_CONSTANT);
        expect_const(&consts, kernel, "ENV_GAUSSIAN", ENV_GAUSSIAN);
        expect_const(&consts, kernel, "ENV_WINDOW", ENV_WINDOW);
    }
}
