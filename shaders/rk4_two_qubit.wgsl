// RK4 ensemble kernel for two-qubit open systems in the real Pauli basis (dx/dt = G x).
//
// The host prepends `alias real = f32;` or `alias real = f64;` (src/gpu/mod.rs, shader_source),
// so that one source serves both precisions. Never call f64 transcendentals here (sin, cos,
// exp, log, pow, atan are wrong on some drivers): only + - * /, sqrt, abs, min/max, select, dot.
//
// One invocation per member. A dispatch integrates the pieces [piece_begin, piece_end); state,
// Z and peaks persist in `work` between dispatches.
//
// Keep in sync with src/gpu/rk4_two_qubit.rs (Params, buffer layouts) and with the CPU twin
// src/twin/rk4_two_qubit.rs (the loop, the stage order, the measures, the peaks).

// ---- layouts --------------------------------------------------------------------------------
// consts (vec4<real>): per chunk-local point, POINT_VEC4 vec4s:
//   [0, 64)    D = P - I, the RK4 increment for a full step, row i at 4i..4i+4
//   [64, 128)  G, the generator, same layout
//   128        h_B = (h0, hx, hy, hz)
//   129        h_C
//   130        (q, q^2, |h_B|, |h_C|), q = 1 - 2p (dephasing)
//   131        (h0^2 + |h_B|^2, 1, 0, 0): the 1 is the `one` of acc_add4
// With [protocol] switch_off the used points are followed by their uncoupled copies (the
// generator without the charger-battery coupling, everything else the same).
// then the sample times (scalar offset off_times) and the h_last of each piece (off_hlast).
// lookup (u32): member -> chunk-local point for each member; (n_full, sample) per piece at
// off_pieces; at off_wg_point, per workgroup, the point all its members share, or NO_POINT.
// init (vec4<real>): 4 per member, the initial state x.
// work (vec4<real>): work_stride per member: x (4), its compensation (4), Z and its
// compensation (4 + 4, only with F_Z), peak maxima (1), peak sample indices (1), the peaks over
// (energy_b, ergotropy_b, power_b, ergotropic_power_b).
// values (real): (sample * n_cols + column) * n_members + member: member-minor, so that the
//   invocations of a workgroup (consecutive members) write consecutive addresses.
// states (vec4<real>): ((sample * 4 + i) * n_members + member), with F_STATES: member-minor.
// [[drive]] (n_drives > 0): the drive block in consts and the tile tables in lookup, see
// driven_step.

struct Params {
    n_members: u32,
    n_samples: u32,
    n_cols: u32,
    piece_begin: u32,
    piece_end: u32,
    flags: u32,
    work_stride: u32,
    off_pieces: u32,
    off_times: u32,
    off_hlast: u32,
    off_wg_point: u32,
    // Added to every point index: the uncoupled copies of the points follow them in `consts`
    // (dispatches after [protocol] switch_off; a dispatch never spans the switch).
    point_offset: u32,
    // RK4 steps of x in this dispatch (what the invocation must complete).
    steps_expected: u32,
    // [[drive]]: drives per point (0: none), the drive block in consts (vec4 index) and the
    // tile tables in lookup (see driven_step).
    n_drives: u32,
    off_drives: u32,
    off_tiles: u32,
    // Kernel measure code of each output column, 4 per vec4.
    cols: array<vec4<u32>, 8>,
}

const POINT_VEC4: u32 = 132u;
const NO_SAMPLE: u32 = 0xffffffffu;
const NO_POINT: u32 = 0xffffffffu;

const F_FIRST: u32 = 1u;
const F_Z: u32 = 2u;
const F_STATES: u32 = 4u;
const F_BELL: u32 = 8u;
const F_COHERENCE: u32 = 16u;
const F_ENTROPY: u32 = 32u;
const F_CHARGER: u32 = 64u;
const F_TEXTURE: u32 = 128u;

// Kernel measure codes (= index in KERNEL_MEASURES, src/twin/rk4_two_qubit.rs).
const M_ENERGY_B: u32 = 0u;
const M_ENERGY_C: u32 = 1u;
const M_STORED_ENERGY_B: u32 = 2u;
const M_ERGOTROPY_B: u32 = 3u;
const M_ANTIERGOTROPY_B: u32 = 4u;
const M_CAPACITY_B: u32 = 5u;
const M_CAPACITY_C: u32 = 6u;
const M_POWER_B: u32 = 7u;
const M_ERGOTROPIC_POWER_B: u32 = 8u;
const M_ENERGY_VARIANCE_B: u32 = 9u;
const M_ENERGY_FLUCTUATION_B: u32 = 10u;
const M_STEERING_F3: u32 = 11u;
const M_BELL_CHSH: u32 = 12u;
const M_COHERENCE_L1: u32 = 13u;
const M_IMAGINARITY_L1: u32 = 14u;
const M_TEXTURE_B: u32 = 15u;
const M_PURITY: u32 = 16u;
const M_ENTROPY_B: u32 = 17u;
const M_TRACE_ERROR: u32 = 18u;
// Charger-side mirrors and <s-> (charger_measures below).
const M_TEXTURE_C: u32 = 19u;
const M_ERGOTROPY_C: u32 = 20u;
const M_ANTIERGOTROPY_C: u32 = 21u;
const M_ENERGY_VARIANCE_C: u32 = 22u;
const M_SM_B_RE: u32 = 23u;
const M_SM_B_IM: u32 = 24u;
const M_SM_C_RE: u32 = 25u;
const M_SM_C_IM: u32 = 26u;
const N_CODES: u32 = 27u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> consts: array<vec4<real>>;
@group(0) @binding(2) var<storage, read> lookup: array<u32>;
@group(0) @binding(3) var<storage, read> init: array<vec4<real>>;
@group(0) @binding(4) var<storage, read_write> work: array<vec4<real>>;
@group(0) @binding(5) var<storage, read_write> values: array<real>;
@group(0) @binding(6) var<storage, read_write> states: array<vec4<real>>;

// A 16-vector in registers: a = x[0..4] (charger I), b = x[4..8] (charger x), c (y), d (z).
struct V16 {
    a: vec4<real>,
    b: vec4<real>,
    c: vec4<real>,
    d: vec4<real>,
}

fn const_scalar(i: u32) -> real {
    return consts[i / 4u][i % 4u];
}

// Row of the matrix at vec4 offset `base` times x.
fn row(base: u32, x: V16) -> real {
    return dot(consts[base], x.a) + dot(consts[base + 1u], x.b) + dot(consts[base + 2u], x.c) + dot(consts[base + 3u], x.d);
}

fn matvec(base: u32, x: V16) -> V16 {
    return V16(
        vec4<real>(row(base, x), row(base + 4u, x), row(base + 8u, x), row(base + 12u, x)),
        vec4<real>(row(base + 16u, x), row(base + 20u, x), row(base + 24u, x), row(base + 28u, x)),
        vec4<real>(row(base + 32u, x), row(base + 36u, x), row(base + 40u, x), row(base + 44u, x)),
        vec4<real>(row(base + 48u, x), row(base + 52u, x), row(base + 56u, x), row(base + 60u, x)),
    );
}

// The RK4 increment h/6 (k1 + 2 (k2 + k3) + k4), with h6 = h/6 (the twin's `rk4_stages`).
fn rk4_combine(h6: real, k1: V16, k2: V16, k3: V16, k4: V16) -> V16 {
    return V16(
        h6 * (k1.a + 2.0 * (k2.a + k3.a) + k4.a),
        h6 * (k1.b + 2.0 * (k2.b + k3.b) + k4.b),
        h6 * (k1.c + 2.0 * (k2.c + k3.c) + k4.c),
        h6 * (k1.d + 2.0 * (k2.d + k3.d) + k4.d),
    );
}

// x + s y
fn axpy(s: real, y: V16, x: V16) -> V16 {
    return V16(x.a + s * y.a, x.b + s * y.b, x.c + s * y.c, x.d + s * y.d);
}

// A 16-vector with a compensation term (Kahan): the running value x and c, the rounding
// error of the last update to take back. Each step adds an increment dx ~ h|G| |x| to x of
// size ~1; plain summation would lose the low bits of every increment (a random walk of
// 1e-6 after 1e4 steps in f32), the compensated sum keeps them.
struct Acc {
    x: V16,
    c: V16,
}

// y = dx - c; t = x + y; c = (t - x) - y; x = t. `one` is 1.0 read from storage: the product
// t * one hides from the driver's optimiser that t - x - y is zero in exact arithmetic (an
// algebraic rule that Mesa, for one, applies, which silently undoes the compensation).
fn acc_add4(x: vec4<real>, c: vec4<real>, dx: vec4<real>, one: real) -> array<vec4<real>, 2> {
    let y = dx - c;
    let t = x + y;
    return array<vec4<real>, 2>(t, (t * one - x) - y);
}

fn acc_add(a: Acc, dx: V16, one: real) -> Acc {
    let ra = acc_add4(a.x.a, a.c.a, dx.a, one);
    let rb = acc_add4(a.x.b, a.c.b, dx.b, one);
    let rc = acc_add4(a.x.c, a.c.c, dx.c, one);
    let rd = acc_add4(a.x.d, a.c.d, dx.d, one);
    return Acc(V16(ra[0], rb[0], rc[0], rd[0]), V16(ra[1], rb[1], rc[1], rd[1]));
}

// Full step: x + D x, D = P - I.
fn full_step(dbase: u32, a: Acc, one: real) -> Acc {
    return acc_add(a, matvec(dbase, a.x), one);
}

// Explicit RK4 step of length h with the generator at `gbase`.
fn rk4_step(gbase: u32, a: Acc, h: real, one: real) -> Acc {
    let x = a.x;
    let hh = h * 0.5;
    let h6 = h / 6.0;
    let k1 = matvec(gbase, x);
    let k2 = matvec(gbase, axpy(hh, k1, x));
    let k3 = matvec(gbase, axpy(hh, k2, x));
    let k4 = matvec(gbase, axpy(h, k3, x));
    return acc_add(a, rk4_combine(h6, k1, k2, k3, k4), one);
}

// Z(0) = {I (x) (H_B - h0 I), rho0}/2, of H_B's traceless part h.sigma alone: z_a0 = h.r_a
// (r_a = (x_a1, x_a2, x_a3)), z_ak = h_k x_a0. That of H_B itself is h0 rho0 + Z(0), whose
// offset would cost f32 h0 eps in every entry (see fluctuation_sq).
fn anticommutator_row(r: vec4<real>, hb: vec4<real>) -> vec4<real> {
    return vec4<real>(dot(hb.yzw, r.yzw), hb.y * r.x, hb.z * r.x, hb.w * r.x);
}

fn anticommutator(x: V16, hb: vec4<real>) -> V16 {
    return V16(anticommutator_row(x.a, hb), anticommutator_row(x.b, hb), anticommutator_row(x.c, hb), anticommutator_row(x.d, hb));
}

// Sample channel (dephasing): x_ab scaled by q^(number of a, b in {x, y}).
fn dephase(x: V16, q: real, q2: real) -> V16 {
    let outer = vec4<real>(1.0, q, q, 1.0);
    let inner = vec4<real>(q, q2, q2, q);
    return V16(x.a * outer, x.b * inner, x.c * inner, x.d * outer);
}

// log2 without transcendentals: exact power-of-two range reduction to [1/sqrt2, sqrt2], then
// ln m = 2 atanh(u), u = (m - 1)/(m + 1), by its series through u^21.
fn log2_arith(x: real) -> real {
    var m = x;
    var e = real(0.0);
    for (var i = 0u; i < 128u && m < 0.7071067811865476; i++) {
        m = m * 2.0;
        e = e - 1.0;
    }
    for (var i = 0u; i < 128u && m > 1.4142135623730951; i++) {
        m = m * 0.5;
        e = e + 1.0;
    }
    let u = (m - 1.0) / (m + 1.0);
    let u2 = u * u;
    var s = real(1.0 / 21.0);
    s = 1.0 / 19.0 + u2 * s;
    s = 1.0 / 17.0 + u2 * s;
    s = 1.0 / 15.0 + u2 * s;
    s = 1.0 / 13.0 + u2 * s;
    s = 1.0 / 11.0 + u2 * s;
    s = 1.0 / 9.0 + u2 * s;
    s = 1.0 / 7.0 + u2 * s;
    s = 1.0 / 5.0 + u2 * s;
    s = 1.0 / 3.0 + u2 * s;
    s = 1.0 + u2 * s;
    return e + 2.0 * u * s * 1.4426950408889634;
}

// -l log2 l, 0 for l <= 1e-30.
fn neg_plogp(l: real) -> real {
    if (l > 1e-30) {
        return -(l * log2_arith(l));
    }
    return 0.0;
}

// Eigenvalues of a symmetric 3x3 matrix by cyclic Jacobi (the diagonal at the end). A pair is
// rotated unless a_pq is zero or negligible beside s = max(|a_pp|, |a_qq|) (s + |a_pq| rounds
// to s); the sweeps stop after one that rotated nothing, at most 6.
fn sym3_eigenvalues(m00: real, m01: real, m02: real, m11: real, m12: real, m22: real) -> vec3<real> {
    var a = array<real, 9>(m00, m01, m02, m01, m11, m12, m02, m12, m22);
    for (var sweep = 0u; sweep < 6u; sweep++) {
        var rotated = false;
        for (var k = 0u; k < 3u; k++) {
            let p = select(0u, 1u, k == 2u);
            let q = select(1u, 2u, k >= 1u);
            let r = 3u - p - q;
            let apq = a[3u * p + q];
            let dp = abs(a[3u * p + p]);
            let dq = abs(a[3u * q + q]);
            let scale = select(dq, dp, dp > dq);
            if (apq != 0.0 && scale + abs(apq) != scale) {
                rotated = true;
                let theta = (a[3u * q + q] - a[3u * p + p]) / (2.0 * apq);
                let sgn = select(real(-1.0), real(1.0), theta >= 0.0);
                let t = sgn / (abs(theta) + sqrt(theta * theta + 1.0));
                let c = 1.0 / sqrt(t * t + 1.0);
                let s = t * c;
                let arp = a[3u * r + p];
                let arq = a[3u * r + q];
                a[3u * p + p] = a[3u * p + p] - t * apq;
                a[3u * q + q] = a[3u * q + q] + t * apq;
                a[3u * p + q] = 0.0;
                a[3u * q + p] = 0.0;
                let nrp = c * arp - s * arq;
                let nrq = s * arp + c * arq;
                a[3u * r + p] = nrp;
                a[3u * p + r] = nrp;
                a[3u * r + q] = nrq;
                a[3u * q + r] = nrq;
            }
        }
        if (!rotated) {
            break;
        }
    }
    return vec3<real>(a[0], a[4], a[8]);
}

// ---- [[drive]]: dx/dt = (G + sum_k c_k(t) G_k) x ------------------------------------------
// Twin: driven_step in src/twin/rk4_two_qubit.rs, stage_coeffs and SparseR in
// src/twin/drive.rs; c_k(t) by drive_coeff (shaders/drive.wgsl). With n_drives > 0:
// consts at off_drives: vec4(dt, 0, 0, 0), the start time of each piece (padded to 4), then per
// point (the used points, then their uncoupled copies, as the points) DRIVE_VEC4_PER_DRIVE
// vec4s per drive, (amplitude, frequency, phase, env code), (env a, env b, 0, 0), and
// TILE_VEC4 vec4s per term (G, then each G_k): its non-zero 4x4 tiles, each four columns
// (job::two_qubit::SparseGenerator). lookup at off_tiles: per point and term TILE_TABLE u32s,
// the 5 quad starts and the 16 tiles' column blocks.
const DRIVE_VEC4_PER_DRIVE: u32 = 2u;
const TILE_VEC4: u32 = 64u;
const TILE_TABLE: u32 = 21u;
const MAX_DRIVES: u32 = 8u;

// Where a point's drives are: drive numbers and tile values in consts, tile tables in lookup.
struct DriveBases {
    n: u32,
    params: u32,
    tiles: u32,
    table: u32,
}

// Rows 4r..4r + 4 of M x over its tiles in block order (twin: SparseR::quad):
// d = ((v_0 x_4b + v_1 x_4b+1) + v_2 x_4b+2) + v_3 x_4b+3, y = y + d.
fn tile_quad(tiles: u32, table: u32, r: u32, x: V16) -> vec4<real> {
    var xs = array<vec4<real>, 4>(x.a, x.b, x.c, x.d);
    var y = vec4<real>(0.0);
    let hi = lookup[table + r + 1u];
    for (var n = lookup[table + r]; n < hi; n++) {
        let xb = xs[lookup[table + 5u + n] & 3u];
        let v = tiles + 4u * n;
        let d = consts[v] * xb.x + consts[v + 1u] * xb.y + consts[v + 2u] * xb.z + consts[v + 3u] * xb.w;
        y = y + d;
    }
    return y;
}

// (G + sum_k c_k G_k) x, a quad at a time (twin: driven_apply).
fn driven_apply(db: DriveBases, c_in: array<real, MAX_DRIVES>, x: V16) -> V16 {
    var c = c_in;
    var q: array<vec4<real>, 4>;
    for (var r = 0u; r < 4u; r++) {
        var y = tile_quad(db.tiles, db.table, r, x);
        for (var k = 0u; k < db.n; k++) {
            let p = tile_quad(db.tiles + (k + 1u) * TILE_VEC4, db.table + (k + 1u) * TILE_TABLE, r, x);
            y = y + c[k] * p;
        }
        q[r] = y;
    }
    return V16(q[0], q[1], q[2], q[3]);
}

// One step of length h from t (twin: driven_step): where every coefficient is 0 at the three
// stage times, the undriven step bit for bit (x + D x when full, else the stages with G);
// otherwise the classical stages with c(t), c(t + h/2) twice and c(t + h).
fn driven_step(db: DriveBases, dbase: u32, gbase: u32, a: Acc, t: real, h: real, full: bool, one: real) -> Acc {
    var c0: array<real, MAX_DRIVES>;
    var c1: array<real, MAX_DRIVES>;
    var c2: array<real, MAX_DRIVES>;
    var driven = false;
    let tm = t + h * 0.5;
    let te = t + h;
    for (var k = 0u; k < db.n; k++) {
        let p0 = consts[db.params + DRIVE_VEC4_PER_DRIVE * k];
        let p1 = consts[db.params + DRIVE_VEC4_PER_DRIVE * k + 1u];
        let env = u32(p0.w);
        c0[k] = drive_coeff(p0.x, p0.y, p0.z, env, p1.x, p1.y, t, tm);
        c1[k] = drive_coeff(p0.x, p0.y, p0.z, env, p1.x, p1.y, tm, tm);
        c2[k] = drive_coeff(p0.x, p0.y, p0.z, env, p1.x, p1.y, te, tm);
        driven = driven || c0[k] != 0.0 || c1[k] != 0.0 || c2[k] != 0.0;
    }
    if (!driven) {
        if (full) {
            return full_step(dbase, a, one);
        }
        return rk4_step(gbase, a, h, one);
    }
    let x = a.x;
    let hh = h * 0.5;
    let h6 = h / 6.0;
    let k1 = driven_apply(db, c0, x);
    let k2 = driven_apply(db, c1, axpy(hh, k1, x));
    let k3 = driven_apply(db, c1, axpy(hh, k2, x));
    let k4 = driven_apply(db, c2, axpy(h, k3, x));
    return acc_add(a, rk4_combine(h6, k1, k2, k3, k4), one);
}

// Per-point constants a sample needs.
struct PointInfo {
    hb: vec4<real>,
    hc: vec4<real>,
    nhb: real,
    nhc: real,
    nhb2: real,
}

// Tr(rho H^2) - Tr(rho H)^2 of one qubit, H = h0 I + h.sigma, rho = (x_00 I + r.sigma) / 2:
//   (h0^2 + |h|^2) x_00 + 2 h0 h.r - (h0 x_00 + h.r)^2
//     = |h|^2 x_00 - (h.r)^2 + (1 - x_00) h0 (h0 x_00 + 2 h.r).
// The last term is 0 at x_00 = 1, and x_00 moves only by the initial state's rounding (the
// evolution keeps the trace exactly): kept, it was h0^2 times that rounding (2.2 at h0 = 1e8
// in f64), so the variance is that of h.sigma, |h|^2 x_00 - (h.r)^2, as the f64 reference
// takes it of H_B's traceless part (the first form loses every digit in f32 where h0 is
// large). Twin: variance in src/twin/rk4_two_qubit.rs.
fn variance(nh: real, hr: real, x00: real) -> real {
    return nh * nh * x00 - hr * hr;
}

// Sigma^2 of energy_fluctuation_b from the battery rows' changes since t = 0: d of rho, dz of
// Z (evolved from anticommutator's Z(0), of h.sigma alone); H_B = h0 I + h.sigma, whose own Z
// is h0 rho + Z. With stored = h0 d_0 + h.d,
//   Sigma^2 = Tr(H_B^2 d) - 2 Tr(H_B (h0 d + dz)) - stored^2
//           = |h|^2 d_0 - 2 h.dz - (h.d)^2 - h0 (h0 d_0 (1 + d_0) + 2 (dz_0 + d_0 h.d)),
// the h0 terms only through the traces' changes d_0 and dz_0 (0 where the trace is kept).
// Written with H_B's Z, h0 (h.d) cancelled against h.dz (f32: 5e-4 in Sigma^2 at h0 = 3000,
// 2e-2 at 1e5, on |h| = 1). Twin: fluctuation_sq in src/twin/rk4_two_qubit/arith.rs.
fn fluctuation_sq(hb: vec4<real>, nhb2: real, d: vec4<real>, dz: vec4<real>) -> real {
    let hd = dot(hb.yzw, d.yzw);
    let h0 = hb.x;
    return nhb2 * d.x - 2.0 * dot(hb.yzw, dz.yzw) - hd * hd - h0 * (h0 * d.x * (1.0 + d.x) + 2.0 * (dz.x + d.x * hd));
}

// Every kernel measure of one sample, by kernel code. y is the sample copy of the state, yza
// the battery row (a = 0) of that of Z; y0a and z0a are the same rows at t = 0. Quantities
// relative to t = 0 are formed from row differences, which vanish exactly at t = 0 (no O(1)
// cancellation under the square root of energy_fluctuation_b). Those under a flag that no
// column asks for are 0; the peaks' four are always taken.
fn sample_measures(y: V16, yza: vec4<real>, y0a: vec4<real>, z0a: vec4<real>, t: real, pt: PointInfo, flags: u32) -> array<real, N_CODES> {
    var m: array<real, N_CODES>;
    let rb = y.a.yzw;
    let e_b = dot(pt.hb, y.a);
    let nrb = sqrt(dot(rb, rb));
    let hr = dot(pt.hb.yzw, rb);
    let ergo = hr + pt.nhb * nrb;
    let dya = y.a - y0a;
    let stored = dot(pt.hb, dya);
    let tpos = t > 0.0;
    m[M_ENERGY_B] = e_b;
    m[M_STORED_ENERGY_B] = stored;
    m[M_ERGOTROPY_B] = ergo;
    m[M_ANTIERGOTROPY_B] = hr - pt.nhb * nrb;
    m[M_CAPACITY_B] = 2.0 * pt.nhb * nrb;
    m[M_POWER_B] = select(real(0.0), stored / t, tpos);
    m[M_ERGOTROPIC_POWER_B] = select(real(0.0), ergo / t, tpos);
    m[M_ENERGY_VARIANCE_B] = variance(pt.nhb, hr, y.a.x);
    if ((flags & F_Z) != 0u) {
        // Sigma^2 = Tr(H_B^2 rho_b) - 2 Tr(H_B Z_b) + Tr(H_B^2 rho_b(0)) - stored^2
        //        = Tr(H_B^2 (rho_b - rho_b(0))) - 2 Tr(H_B (Z_b - Z_b(0))) - stored^2,
        // since Tr(H_B Z_b(0)) = Tr(H_B^2 rho_b(0)) (Z_b of H_B; fluctuation_sq). Output:
        // signed sqrt.
        let s2 = fluctuation_sq(pt.hb, pt.nhb2, dya, yza - z0a);
        m[M_ENERGY_FLUCTUATION_B] = select(-sqrt(-s2), sqrt(s2), s2 >= 0.0);
    }
    // Correlation matrix T: rows t1, t2, t3 (charger x, y, z), columns battery x, y, z.
    let t1 = y.b.yzw;
    let t2 = y.c.yzw;
    let t3 = y.d.yzw;
    let s11 = dot(t1, t1);
    let s22 = dot(t2, t2);
    let s33 = dot(t3, t3);
    m[M_STEERING_F3] = s11 + s22 + s33 - 1.0;
    if ((flags & F_BELL) != 0u) {
        // T T^T has the eigenvalues of T^T T; u1 + u2 = trace - smallest.
        let ev = sym3_eigenvalues(s11, dot(t1, t2), dot(t1, t3), s22, dot(t2, t3), s33);
        let lo = min(min(ev.x, ev.y), ev.z);
        let u = ev.x + ev.y + ev.z - lo;
        m[M_BELL_CHSH] = 2.0 * sqrt(u) - 2.0;
    }
    if ((flags & F_COHERENCE) != 0u) {
        // rho = (1/4) sum x_ab sigma_a (x) sigma_b; with B_a = [[x_a0 - x_a3, x_a1 + i x_a2],
        // [x_a1 - i x_a2, x_a0 + x_a3]] (sigma_y = [[0, i], [-i, 0]] in this convention) the
        // 2x2 blocks of 4 rho are B_0 - B_3, B_0 + B_3 (diagonal) and B_1 + i B_2 (upper).
        // The six upper off-diagonal entries of 4 rho, as (re, im):
        let e1 = vec2<real>(y.a.y - y.d.y, y.a.z - y.d.z); // rho_01
        let e2 = vec2<real>(y.a.y + y.d.y, y.a.z + y.d.z); // rho_23
        let e3 = vec2<real>(y.b.x - y.b.w, y.c.x - y.c.w); // rho_02
        let e4 = vec2<real>(y.b.y - y.c.z, y.b.z + y.c.y); // rho_03
        let e5 = vec2<real>(y.b.y + y.c.z, y.c.y - y.b.z); // rho_12
        let e6 = vec2<real>(y.b.x + y.b.w, y.c.x + y.c.w); // rho_13
        var coh = real(0.0);
        coh = coh + sqrt(dot(e1, e1));
        coh = coh + sqrt(dot(e2, e2));
        coh = coh + sqrt(dot(e3, e3));
        coh = coh + sqrt(dot(e4, e4));
        coh = coh + sqrt(dot(e5, e5));
        coh = coh + sqrt(dot(e6, e6));
        var ima = real(0.0);
        ima = ima + abs(e1.y);
        ima = ima + abs(e2.y);
        ima = ima + abs(e3.y);
        ima = ima + abs(e4.y);
        ima = ima + abs(e5.y);
        ima = ima + abs(e6.y);
        // Both sides of the diagonal, over 4: 2/4.
        m[M_COHERENCE_L1] = 0.5 * coh;
        m[M_IMAGINARITY_L1] = 0.5 * ima;
    }
    // texture_b = (1/2) ||rho_b - |+><+| ||_tr = (1/2) max(|x_00 - 1|, |r_b - e_x|).
    let tr_dev = abs(y.a.x - 1.0);
    if ((flags & F_TEXTURE) != 0u) {
        let dx = y.a.y - 1.0;
        let dtex = sqrt(dx * dx + y.a.z * y.a.z + y.a.w * y.a.w);
        m[M_TEXTURE_B] = 0.5 * max(tr_dev, dtex);
    }
    m[M_PURITY] = 0.25 * (dot(y.a, y.a) + dot(y.b, y.b) + dot(y.c, y.c) + dot(y.d, y.d));
    if ((flags & F_ENTROPY) != 0u) {
        let lp = (y.a.x + nrb) * 0.5;
        let lm = (y.a.x - nrb) * 0.5;
        m[M_ENTROPY_B] = neg_plogp(lp) + neg_plogp(lm);
    }
    m[M_TRACE_ERROR] = tr_dev;
    if ((flags & F_CHARGER) != 0u) {
        let rc = vec3<real>(y.b.x, y.c.x, y.d.x);
        let e_c = dot(pt.hc, vec4<real>(y.a.x, y.b.x, y.c.x, y.d.x));
        let nrc = sqrt(dot(rc, rc));
        m[M_ENERGY_C] = e_c;
        m[M_CAPACITY_C] = 2.0 * pt.nhc * nrc;
        m = charger_measures(m, y, pt, nrc, tr_dev);
    }
    return m;
}

// The charger's mirrors of the battery measures, and <s-> of both qubits. rho_c =
// (1/2)(x_00 I + r_c.sigma), r_c = (x_10, x_20, x_30); <s-> = rho[(e, g)] = (x_1 - i x_2)/2 of
// the qubit's Bloch vector. Twin: charger_measures in src/twin/rk4_two_qubit.rs.
fn charger_measures(m_in: array<real, N_CODES>, y: V16, pt: PointInfo, nrc: real, tr_dev: real) -> array<real, N_CODES> {
    var m = m_in;
    let rc = vec3<real>(y.b.x, y.c.x, y.d.x);
    let hr = dot(pt.hc.yzw, rc);
    let dx = rc.x - 1.0;
    let dtex = sqrt(dx * dx + rc.y * rc.y + rc.z * rc.z);
    m[M_TEXTURE_C] = 0.5 * max(tr_dev, dtex);
    m[M_ERGOTROPY_C] = hr + pt.nhc * nrc;
    m[M_ANTIERGOTROPY_C] = hr - pt.nhc * nrc;
    m[M_ENERGY_VARIANCE_C] = variance(pt.nhc, hr, y.a.x);
    m[M_SM_B_RE] = 0.5 * y.a.y;
    m[M_SM_B_IM] = -0.5 * y.a.z;
    m[M_SM_C_RE] = 0.5 * y.b.x;
    m[M_SM_C_IM] = -0.5 * y.c.x;
    return m;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let member = gid.x;
    if (member >= params.n_members) {
        return;
    }
    // Where the whole workgroup shares one point (one point per run, or members grouped by
    // point), the point's base is workgroup-uniform: the matrix reads in the step loop are
    // then uniform loads (scalar loads and broadcasts) instead of per-invocation gathers.
    let wg_point = lookup[params.off_wg_point + wid.x];
    let off = params.point_offset;
    if (wg_point != NO_POINT) {
        run_member(member, (wg_point + off) * POINT_VEC4);
    } else {
        run_member(member, (lookup[member] + off) * POINT_VEC4);
    }
}

// One member over the pieces of this dispatch; pbase = its point's offset in `consts`.
fn run_member(member: u32, pbase: u32) {
    // Parameters into locals before the time loop.
    let n_samples = params.n_samples;
    let n_cols = params.n_cols;
    let piece_begin = params.piece_begin;
    let piece_end = params.piece_end;
    let flags = params.flags;
    let stride = params.work_stride;
    let off_pieces = params.off_pieces;
    let off_times = params.off_times;
    let off_hlast = params.off_hlast;
    let ez = (flags & F_Z) != 0u;
    let keep = (flags & F_STATES) != 0u;

    let dbase = pbase;
    let gbase = pbase + 64u;
    let hb = consts[pbase + 128u];
    let hc = consts[pbase + 129u];
    let aux = consts[pbase + 130u];
    let q = aux.x;
    let q2 = aux.y;
    let aux2 = consts[pbase + 131u];
    let pt = PointInfo(hb, hc, aux.z, aux.w, aux2.x);
    let one = aux2.y;

    let ibase = member * 4u;
    let x0 = V16(init[ibase], init[ibase + 1u], init[ibase + 2u], init[ibase + 3u]);
    let wbase = member * stride;
    let pk = select(8u, 16u, ez); // peaks after x, cx (and z, cz)
    var x: Acc;
    var z: Acc;
    var pmax: vec4<real>;
    var pidx: vec4<real>;
    // The step count, as in rk4_cavity.wgsl: (pieces completed, dispatches that fell short),
    // summed over dispatches (exact in f32 to 2^24). A dispatch falls short when it completed
    // fewer steps than steps_expected or fewer pieces than it holds. The host checks both: a
    // driver that cuts loops short (lavapipe stops an invocation's loops after ~65k
    // iterations) is then an error, never silent output.
    var counts = vec2<real>(0.0);
    if ((flags & F_FIRST) != 0u) {
        x.x = x0;
        if (ez) {
            z.x = anticommutator(x0, hb);
        }
        pmax = vec4<real>(0.0);
        pidx = vec4<real>(0.0);
    } else {
        x = Acc(V16(work[wbase], work[wbase + 1u], work[wbase + 2u], work[wbase + 3u]),
                V16(work[wbase + 4u], work[wbase + 5u], work[wbase + 6u], work[wbase + 7u]));
        if (ez) {
            z = Acc(V16(work[wbase + 8u], work[wbase + 9u], work[wbase + 10u], work[wbase + 11u]),
                    V16(work[wbase + 12u], work[wbase + 13u], work[wbase + 14u], work[wbase + 15u]));
        }
        pmax = work[wbase + pk];
        pidx = work[wbase + pk + 1u];
        counts = work[wbase + pk + 2u].xy;
    }
    var steps = 0u;
    var pieces = 0u;

    // [[drive]]: this point's drive block and tile tables, the step dt.
    let nd = params.n_drives;
    var db = DriveBases(nd, 0u, 0u, 0u);
    var ddt = real(0.0);
    if (nd > 0u) {
        let pi = pbase / POINT_VEC4;
        db.params = lookup[params.off_tiles] + pi * (nd * DRIVE_VEC4_PER_DRIVE + (nd + 1u) * TILE_VEC4);
        db.tiles = db.params + nd * DRIVE_VEC4_PER_DRIVE;
        db.table = params.off_tiles + 1u + pi * (nd + 1u) * TILE_TABLE;
        ddt = consts[params.off_drives].x;
    }

    // t = 0 references: battery rows of the sample copies of rho0 and Z(0).
    let outer = vec4<real>(1.0, q, q, 1.0);
    let y0a = x0.a * outer;
    let z0a = anticommutator_row(x0.a, hb) * outer;

    for (var p = piece_begin; p < piece_end; p++) {
        let n_full = lookup[off_pieces + 2u * p];
        let s = lookup[off_pieces + 2u * p + 1u];
        let h = const_scalar(off_hlast + p);
        if (nd > 0u) {
            // Step k of the piece starts at t0 + k dt.
            let t0 = const_scalar(4u * (params.off_drives + 1u) + p);
            for (var k = 0u; k < n_full; k++) {
                let t = t0 + real(k) * ddt;
                x = driven_step(db, dbase, gbase, x, t, ddt, true, one);
                if (ez) {
                    z = driven_step(db, dbase, gbase, z, t, ddt, true, one);
                }
                steps += 1u;
            }
            if (h > 0.0) {
                let t = t0 + real(n_full) * ddt;
                x = driven_step(db, dbase, gbase, x, t, h, false, one);
                if (ez) {
                    z = driven_step(db, dbase, gbase, z, t, h, false, one);
                }
                steps += 1u;
            }
        } else {
            if (ez) {
                for (var k = 0u; k < n_full; k++) {
                    x = full_step(dbase, x, one);
                    z = full_step(dbase, z, one);
                    steps += 1u;
                }
            } else {
                for (var k = 0u; k < n_full; k++) {
                    x = full_step(dbase, x, one);
                    steps += 1u;
                }
            }
            if (h > 0.0) {
                x = rk4_step(gbase, x, h, one);
                if (ez) {
                    z = rk4_step(gbase, z, h, one);
                }
                steps += 1u;
            }
        }
        if (s != NO_SAMPLE) {
            let t = const_scalar(off_times + s);
            let y = dephase(x.x, q, q2);
            let m = sample_measures(y, z.x.a * outer, y0a, z0a, t, pt, flags);
            let n_members = params.n_members;
            let vbase = s * n_cols * n_members + member;
            for (var k = 0u; k < n_cols; k++) {
                values[vbase + k * n_members] = m[params.cols[k / 4u][k % 4u]];
            }
            if (keep) {
                let sbase = s * 4u * n_members + member;
                states[sbase] = y.a;
                states[sbase + n_members] = y.b;
                states[sbase + 2u * n_members] = y.c;
                states[sbase + 3u * n_members] = y.d;
            }
            let v = vec4<real>(m[M_ENERGY_B], m[M_ERGOTROPY_B], m[M_POWER_B], m[M_ERGOTROPIC_POWER_B]);
            let upd = select(v > pmax, vec4<bool>(true), s == 0u);
            pmax = select(pmax, v, upd);
            pidx = select(pidx, vec4<real>(real(s)), upd);
        }
        pieces += 1u;
    }

    work[wbase] = x.x.a;
    work[wbase + 1u] = x.x.b;
    work[wbase + 2u] = x.x.c;
    work[wbase + 3u] = x.x.d;
    work[wbase + 4u] = x.c.a;
    work[wbase + 5u] = x.c.b;
    work[wbase + 6u] = x.c.c;
    work[wbase + 7u] = x.c.d;
    if (ez) {
        work[wbase + 8u] = z.x.a;
        work[wbase + 9u] = z.x.b;
        work[wbase + 10u] = z.x.c;
        work[wbase + 11u] = z.x.d;
        work[wbase + 12u] = z.c.a;
        work[wbase + 13u] = z.c.b;
        work[wbase + 14u] = z.c.c;
        work[wbase + 15u] = z.c.d;
    }
    work[wbase + pk] = pmax;
    work[wbase + pk + 1u] = pidx;
    counts.x = counts.x + real(pieces);
    if (steps != params.steps_expected || pieces != piece_end - piece_begin) {
        counts.y = counts.y + 1.0;
    }
    work[wbase + pk + 2u] = vec4<real>(counts, 0.0, 0.0);
}
