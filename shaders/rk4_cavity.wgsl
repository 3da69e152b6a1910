// RK4 ensemble kernel for `cavity-cells` (paper 003): two cells and a cavity mode truncated at
// n_fock = N, dim = 4 (N + 1), index r = q (N + 1) + n with q = 2 i_1 + i_2. The Lindblad
// generator is applied element by element in gather form, exactly as the CPU twin
// src/twin/rk4_cavity.rs (CavityOps::apply, CavityWork::step) does it:
//
//   L[X][r, c] = (K X)[r, c] + conj((K X)[c, r]) + sum_k (J_k X J_k^+)[r, c],   r <= c,
//
// with K's diagonal kd, the cell-cell partner row, the lambda band and the three jump terms.
// One RHS costs O(dim^2) (a few complex products per element); nothing scales as dim^4.
//
// The host prepends `alias real = f32;` or `alias real = f64;` (src/gpu/mod.rs). Only + - * /,
// select, min/max here: never f64 transcendentals (wrong on some drivers).
//
// Work split: one workgroup (WG invocations) per member; invocation `lid` owns the elements
// e = lid, lid + WG, ... of the upper triangle. Every matrix is Hermitian and stored as its
// packed upper triangle, row-major: element (r, c), r <= c, at e = r dim - r (r + 1) / 2 + c,
// which is also the order of the twin's (q, n, qc, nc) loops. X[a, b] with a > b is read as
// conj(X[b, a]). A stage reads its input matrix (all of it, by gather) and writes only the
// elements its invocation owns (stage output, accumulator, or X at the last stage), so one
// storageBarrier() per stage is all the synchronisation there is, with one workgroupBarrier()
// more where the stage first copies its input into the workgroup tile (TILED, `load_tile`).
//
// [[drive]]: H(t) = H + sum_s S_s(t) O_s over the slots sx_1 sy_1 sz_1 sx_2 sy_2 sz_2 x_a y_a
// (job::cavity::DRIVE_SLOTS), S_s = sum_k c_k(t) w_ks with c_k(t) from drive.wgsl. Per step,
// every invocation computes its member's S at t, t + h/2 and t + h (drive_step); where every
// c_k is 0 at all three the step is the undriven one, bit for bit; else each element gets
// -i (A[r, c] - conj(A[c, r])), A = H_d X, gathered along the same bands as H (drive_term,
// the twin's CavityOps::drive_term).
//
// RK4 (classical, as the twin): stage 1 reads X and writes S_B = X + h/2 k1, acc = k1;
// stage 2 reads S_B, writes S_A = X + h/2 k2, acc += 2 k2; stage 3 reads S_A, writes
// S_B = X + h k3, acc += 2 k3; stage 4 reads S_B, writes X += h/6 (acc + k4). Per element the
// arithmetic is the twin's, in the same order. With F_Z, Z = e^{Lt}[{H_B, rho0}/2] is stepped
// after X in every step, through the same scratch (S_A, S_B, acc).
//
// Dispatch length: Mesa's software rasteriser (llvmpipe/lavapipe) has a loop limiter: once an
// invocation has spent about 65,535 loop iterations, all loops together, every loop of it ends
// at once, silently (observed with llvmpipe on LLVM 15: a one-dispatch run stopped at the same
// step whatever the load, earlier the more iterations a step took). The host therefore sizes each dispatch by the loop iterations it
// costs (src/gpu/rk4_cavity.rs, `loop_costs`), and the kernel counts the steps and pieces it
// completes in `status`, which the host checks: a run cut short is an error, never a silent
// wrong result.
//
// Keep in sync with src/gpu/rk4_cavity.rs (Params, buffer layouts, WORKGROUP_SIZE, loop costs)
// and with the CPU twin src/twin/rk4_cavity.rs (row table, K diagonal, per-element arithmetic
// in `CavityOps::element` and `drive_term`, samples). The twin's element loop computes runs
// of four neighbouring columns in SIMD lanes, as four invocations here would, with each
// element's operations unchanged.

// ---- layouts --------------------------------------------------------------------------------
// lookup (u32, shared by all members):
//   [0, n_elem)            the element table: r | (c << 16) of packed element e
//   off_rows + 4 r + ...   the row table of row r: (partner row, band row, sqrt index of the
//                          band coefficient (0: no band), bits ROW_*; n = bits >> ROW_N_SHIFT)
//   off_pieces + 2 p + ... (n_full, sample or NO_SAMPLE) of piece p
//   off_env + k            the envelope code of drive k
// consts (real, shared):
//   off_sqrt + n           sqrt(n), n = 0..N+1
//   off_steps + 4 i + ...  (h, h/2, h/6, 0): i = 0 the full step dt, i = 1 + p the shortened
//                          last step of piece p (h = 0: none)
//   off_starts + p         the time piece p starts at (step j of it at start + j dt)
//   off_weights + 8 k + s  drive k's weight on slot s
// mparams (vec2<real>), param_stride = dim + 3 + 3 n_drives per member:
//   [0, dim)  K's diagonal kd[r] = (-loss, -energy);  dim: (lambda, g zeta);
//   dim + 1: (g, kappa);  dim + 2: (gamma, 0);
//   dim + 3 + 3 k + ...: drive k's (amplitude, frequency), (phase, env_a), (env_b, 0)
// work (vec2<real>), member_stride per member, n_elem each matrix:
//   X at 0, S_A at n_elem, S_B at 2 n_elem, acc at 3 n_elem, Z at 4 n_elem (F_Z only), then
//   REF_LEN entries: the reduced coefficients of X (0..16) and Z (16..32) at t = 0, in .x
// out (real), out_stride per (member, sample), at (member * n_samples + sample) * out_stride:
//   16 reals: d x[4a + b] = Re Tr(rho_q sigma_a (x) sigma_b) - the same at t = 0, rho_q the
//             reduced (cell 1, cell 2) state (src/pauli.rs convention, a = cell 1);
//   16 reals: the same for Z (F_Z only);
//   photon_number = Tr(rho a^+ a), fock_tail = sum_q rho[(q, N), (q, N)].
// status (atomic u32), 2 per member: the pieces completed (summed over dispatches, by
//   invocation 0), and the invocations that completed fewer steps or pieces than the dispatch
//   holds (should stay 0).

struct Params {
    n_members: u32,
    n_fock: u32,
    dim: u32,
    n_elem: u32,
    n_samples: u32,
    piece_begin: u32,
    piece_end: u32,
    flags: u32,
    member_stride: u32,
    param_stride: u32,
    out_stride: u32,
    off_rows: u32,
    off_pieces: u32,
    off_sqrt: u32,
    off_steps: u32,
    // RK4 steps of X in this dispatch (what every invocation must complete).
    steps_expected: u32,
    n_drives: u32,
    off_env: u32,
    off_starts: u32,
    off_weights: u32,
}

const WG: u32 = 256u;
const NO_SAMPLE: u32 = 0xffffffffu;
const REF_LEN: u32 = 32u;

const F_FIRST: u32 = 1u;
const F_Z: u32 = 2u;
// The dispatch lies after [protocol] switch_off: the cell-cell coupling g (the charger-battery
// coupling of cavity-cells) is off; lambda and the dissipators stay. A dispatch never spans
// the switch.
const F_UNCOUPLED: u32 = 4u;

const ROW_FLIP: u32 = 1u;
const ROW_E1_ZERO: u32 = 2u;
const ROW_E2_ZERO: u32 = 4u;
const ROW_TOP: u32 = 8u;
const ROW_N_SHIFT: u32 = 16u;

// Drive operator slots (weights per drive in consts) and vec2 per drive in mparams.
const DRIVE_SLOTS: u32 = 8u;
const DRIVE_VEC2: u32 = 3u;

const MODE_FIRST: u32 = 0u;
const MODE_MID: u32 = 1u;
const MODE_LAST: u32 = 2u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> consts: array<real>;
@group(0) @binding(2) var<storage, read> lookup: array<u32>;
@group(0) @binding(3) var<storage, read> mparams: array<vec2<real>>;
@group(0) @binding(4) var<storage, read_write> work: array<vec2<real>>;
@group(0) @binding(5) var<storage, read_write> out: array<real>;
@group(0) @binding(6) var<storage, read_write> status: array<atomic<u32>>;

// Sample quantities: the reduced 4x4 entries (upper triangle, 10 each) of X (0..10) and Z
// (10..20), the photon number (20) and the Fock tail (21); NPART partial sums of each.
const NQ: u32 = 22u;
const NPART: u32 = WG / NQ;
var<workgroup> red: array<vec2<real>, NQ>;
var<workgroup> partial: array<vec2<real>, WG>;
// A stage's input matrix in workgroup memory (TILED): copied in once per stage (`load_tile`),
// so the ten or so gathers of each element read the workgroup's memory instead of device
// memory. The host sets both per job, TILED only where n_elem elements fit the adapter's
// max_compute_workgroup_storage_size beside `red` and `partial` (src/gpu/rk4_cavity/plan.rs,
// `workgroup_tile`); then TILE_LEN = n_elem. The arithmetic is the same either way.
override TILED: bool = false;
override TILE_LEN: u32 = 1u;
var<workgroup> tile: array<vec2<real>, TILE_LEN>;

// Per-dispatch constants, set once in main (the member's coefficients in registers).
var<private> p_dim: u32;
var<private> p_n_elem: u32;
var<private> p_rows: u32;
var<private> p_sqrt: u32;
var<private> p_kd: u32;
var<private> c_lambda: real;
var<private> c_gflip: real;
var<private> c_gswap: real;
var<private> c_kappa: real;
var<private> c_gamma: real;
// The member's drives: count, offsets of their numbers (mparams), codes (lookup) and weights
// (consts); the slot coefficients of the current step's three stage times, as (sx_1, sy_1,
// sz_1, sx_2) and (sy_2, sz_2, x_a, y_a).
var<private> p_n_drives: u32;
var<private> p_drv: u32;
var<private> p_env: u32;
var<private> p_weights: u32;
var<private> ds_lo: array<vec4<real>, 3>;
var<private> ds_hi: array<vec4<real>, 3>;

fn cmul(a: vec2<real>, b: vec2<real>) -> vec2<real> {
    return vec2<real>(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}

// Packed index of (a, b), a <= b.
fn pk(a: u32, b: u32) -> u32 {
    return a * p_dim - ((a * (a + 1u)) >> 1u) + b;
}

// Element i of a stage's input matrix, at `base` in `work`: from `tile` when TILED.
fn src_at(base: u32, i: u32) -> vec2<real> {
    if (TILED) {
        return tile[i];
    }
    return work[base + i];
}

// X[a, b] of a stage's input matrix (at `base`), on either side of the diagonal.
fn rd(base: u32, a: u32, b: u32) -> vec2<real> {
    let z = src_at(base, pk(min(a, b), max(a, b)));
    return select(z, vec2<real>(z.x, -z.y), a > b);
}

// With TILED, the matrix at `src` into `tile`, each invocation copying the elements it owns;
// the barrier makes every copy visible before the stage gathers. (The stage before ended with
// a barrier, so no invocation still reads the tile being overwritten.) Uniform control flow.
fn load_tile(src: u32, lid: u32) {
    if (TILED) {
        for (var e = lid; e < p_n_elem; e += WG) {
            tile[e] = work[src + e];
        }
        workgroupBarrier();
    }
}

struct Row {
    partner: u32,
    band: u32,
    g: real,
    l: real,
    bits: u32,
}

// The twin's kx_rows: the partner row with its coefficient, the band row with its coefficient.
fn row_info(r: u32) -> Row {
    let w = p_rows + 4u * r;
    let bits = lookup[w + 3u];
    let g = select(c_gswap, c_gflip, (bits & ROW_FLIP) != 0u);
    return Row(lookup[w], lookup[w + 1u], g, c_lambda * consts[p_sqrt + lookup[w + 2u]], bits);
}

// The slot coefficients at the three stage times of a step of length h from t into ds_lo and
// ds_hi (the twin's CavityDrives::step_at: drive_coeff per drive at t, t + h/2, t + h, then
// S = sum_k c_k w_k in drive order); returns whether any c_k is non-zero.
fn drive_step(t: real, h: real) -> bool {
    let tm = t + h * 0.5;
    let te = t + h;
    var any = false;
    for (var i = 0u; i < 3u; i++) {
        ds_lo[i] = vec4<real>(0.0);
        ds_hi[i] = vec4<real>(0.0);
    }
    for (var k = 0u; k < p_n_drives; k++) {
        let pb = p_drv + DRIVE_VEC2 * k;
        let m0 = mparams[pb];
        let m1 = mparams[pb + 1u];
        let m2 = mparams[pb + 2u];
        let env = lookup[p_env + k];
        let c0 = drive_coeff(m0.x, m0.y, m1.x, env, m1.y, m2.x, t, tm);
        let c1 = drive_coeff(m0.x, m0.y, m1.x, env, m1.y, m2.x, tm, tm);
        let c2 = drive_coeff(m0.x, m0.y, m1.x, env, m1.y, m2.x, te, tm);
        any = any || c0 != 0.0 || c1 != 0.0 || c2 != 0.0;
        let wb = p_weights + DRIVE_SLOTS * k;
        let wl = vec4<real>(consts[wb], consts[wb + 1u], consts[wb + 2u], consts[wb + 3u]);
        let wh = vec4<real>(consts[wb + 4u], consts[wb + 5u], consts[wb + 6u], consts[wb + 7u]);
        ds_lo[0] = ds_lo[0] + wl * c0;
        ds_hi[0] = ds_hi[0] + wh * c0;
        ds_lo[1] = ds_lo[1] + wl * c1;
        ds_hi[1] = ds_hi[1] + wh * c1;
        ds_lo[2] = ds_lo[2] + wl * c2;
        ds_hi[2] = ds_hi[2] + wh * c2;
    }
    return any;
}

// A[r, c] = (H_d X)[r, c] - conj((H_d X)[c, r]) of the stage's slots lo = (sx_1, sy_1, sz_1,
// sx_2), hi = (sy_2, sz_2, x_a, y_a) (the twin's CavityOps::drive_term): the groups that are
// non-zero, in the order z, cell 1, cell 2, mode. rb, cb: the row-table bits of r and c.
//   z:      (S_z1 z_1 + S_z2 z_2)(r) - (...)(c), z = -1 on g, +1 on e, times X[r, c]
//   cell j: (S_xj + i s S_yj) X[r ^ cell j, c] - conj(the same of c) X[r, c ^ cell j],
//           s = +1 where the cell is in g, else -1
//   mode:   sqrt(n) (S_xa + i S_ya) X[(q, n-1), c] + sqrt(n+1) (S_xa - i S_ya) X[(q, n+1), c]
//           - the conjugates of c's along row r
fn drive_term(src: u32, r: u32, c: u32, rb: u32, cb: u32, lo: vec4<real>, hi: vec4<real>) -> vec2<real> {
    let d = p_dim >> 2u;
    var a = vec2<real>(0.0);
    if (lo.z != 0.0 || hi.y != 0.0) {
        let zr = select(lo.z, -lo.z, (rb & ROW_E1_ZERO) != 0u) + select(hi.y, -hi.y, (rb & ROW_E2_ZERO) != 0u);
        let zc = select(lo.z, -lo.z, (cb & ROW_E1_ZERO) != 0u) + select(hi.y, -hi.y, (cb & ROW_E2_ZERO) != 0u);
        a = a + rd(src, r, c) * (zr - zc);
    }
    if (lo.x != 0.0 || lo.y != 0.0) {
        let gr = (rb & ROW_E1_ZERO) != 0u;
        let gc = (cb & ROW_E1_ZERO) != 0u;
        let pr = select(r - 2u * d, r + 2u * d, gr);
        let pc = select(c - 2u * d, c + 2u * d, gc);
        let ur = vec2<real>(lo.x, select(-lo.y, lo.y, gr));
        let uc = vec2<real>(lo.x, select(lo.y, -lo.y, gc));
        a = a + cmul(ur, rd(src, pr, c)) - cmul(uc, rd(src, r, pc));
    }
    if (lo.w != 0.0 || hi.x != 0.0) {
        let gr = (rb & ROW_E2_ZERO) != 0u;
        let gc = (cb & ROW_E2_ZERO) != 0u;
        let pr = select(r - d, r + d, gr);
        let pc = select(c - d, c + d, gc);
        let ur = vec2<real>(lo.w, select(-hi.x, hi.x, gr));
        let uc = vec2<real>(lo.w, select(hi.x, -hi.x, gc));
        a = a + cmul(ur, rd(src, pr, c)) - cmul(uc, rd(src, r, pc));
    }
    if (hi.z != 0.0 || hi.w != 0.0) {
        let down = vec2<real>(hi.z, hi.w);
        let up = vec2<real>(hi.z, -hi.w);
        let nr = rb >> ROW_N_SHIFT;
        let nc = cb >> ROW_N_SHIFT;
        let tr = (rb & ROW_TOP) != 0u;
        let tc = (cb & ROW_TOP) != 0u;
        // n = 0 reads its own row times sqrt(0) = 0; n = N its own row times 0
        let rl = select(r, r - 1u, nr > 0u);
        let rh = select(r, r + 1u, tr);
        let cl = select(c, c - 1u, nc > 0u);
        let ch = select(c, c + 1u, tc);
        let sr = select(real(0.0), consts[p_sqrt + nr + 1u], tr);
        let sc = select(real(0.0), consts[p_sqrt + nc + 1u], tc);
        a = a + cmul(down * consts[p_sqrt + nr], rd(src, rl, c)) + cmul(up * sr, rd(src, rh, c))
            - cmul(up * consts[p_sqrt + nc], rd(src, r, cl)) - cmul(down * sc, rd(src, r, ch));
    }
    return a;
}

// One RK4 stage over the elements this invocation owns: k = L[src] elementwise, then
//   MODE_FIRST: acc = k;      dst = X + a k
//   MODE_MID:   acc += 2 k;   dst = X + a k
//   MODE_LAST:  X += a (acc + k)
// (X at xb). Bases are offsets in `work`. With drv, the drive terms of the stage's slots lo,
// hi are added to k after L's.
fn stage(src: u32, xb: u32, dst: u32, accb: u32, mode: u32, a: real, lid: u32, drv: bool, lo: vec4<real>, hi: vec4<real>) {
    let d = p_dim >> 2u;
    for (var e = lid; e < p_n_elem; e += WG) {
        let rc = lookup[e];
        let r = rc & 0xffffu;
        let c = rc >> 16u;
        let ri = row_info(r);
        let ci = row_info(c);
        // (K x)[r, c] = kd[r] x(r, c) - i (g_r x(pr, c) + l_r x(br, c))
        let h_rc = rd(src, ri.partner, c) * ri.g + rd(src, ri.band, c) * ri.l;
        // conj((K x)[c, r]) read along row r: conj(kd[c]) x(r, c) + i (g_c x(r, pc) + l_c x(r, bc))
        let h_cr = rd(src, r, ci.partner) * ci.g + rd(src, r, ci.band) * ci.l;
        let kr = mparams[p_kd + r];
        let kc = mparams[p_kd + c];
        let diag = kr + vec2<real>(kc.x, -kc.y);
        var v = cmul(diag, src_at(src, e)) + vec2<real>(h_rc.y, -h_rc.x) + vec2<real>(-h_cr.y, h_cr.x);
        // kappa a x a^+
        if ((ri.bits & ci.bits & ROW_TOP) != 0u) {
            let nr = ri.bits >> ROW_N_SHIFT;
            let nc = ci.bits >> ROW_N_SHIFT;
            v = v + src_at(src, pk(r + 1u, c + 1u)) * (c_kappa * consts[p_sqrt + nr + 1u] * consts[p_sqrt + nc + 1u]);
        }
        // gamma s-_1 x s+_1
        if ((ri.bits & ci.bits & ROW_E1_ZERO) != 0u) {
            v = v + src_at(src, pk(r + 2u * d, c + 2u * d)) * c_gamma;
        }
        // gamma s-_2 x s+_2
        if ((ri.bits & ci.bits & ROW_E2_ZERO) != 0u) {
            v = v + src_at(src, pk(r + d, c + d)) * c_gamma;
        }
        if (drv) {
            let dterm = drive_term(src, r, c, ri.bits, ci.bits, lo, hi);
            v = v + vec2<real>(dterm.y, -dterm.x);
        }
        let x = work[xb + e];
        if (mode == MODE_FIRST) {
            work[accb + e] = v;
            work[dst + e] = x + v * a;
        } else if (mode == MODE_MID) {
            work[accb + e] = work[accb + e] + v * 2.0;
            work[dst + e] = x + v * a;
        } else {
            work[xb + e] = x + (work[accb + e] + v) * a;
        }
    }
}

// One RK4 step of the matrix at xb; step constants (h, h/2, h/6) at consts[sb..sb+3]. With
// drv, the stages take the slot coefficients of drive_step: at t, t + h/2, t + h/2, t + h.
fn rk4_step(xb: u32, sa: u32, sbuf: u32, accb: u32, sb: u32, lid: u32, drv: bool) {
    let h = consts[sb];
    let hh = consts[sb + 1u];
    let h6 = consts[sb + 2u];
    load_tile(xb, lid);
    stage(xb, xb, sbuf, accb, MODE_FIRST, hh, lid, drv, ds_lo[0], ds_hi[0]);
    storageBarrier();
    load_tile(sbuf, lid);
    stage(sbuf, xb, sa, accb, MODE_MID, hh, lid, drv, ds_lo[1], ds_hi[1]);
    storageBarrier();
    load_tile(sa, lid);
    stage(sa, xb, sbuf, accb, MODE_MID, h, lid, drv, ds_lo[1], ds_hi[1]);
    storageBarrier();
    load_tile(sbuf, lid);
    stage(sbuf, xb, 0u, accb, MODE_LAST, h6, lid, drv, ds_lo[2], ds_hi[2]);
    storageBarrier();
}

// Term n of sample quantity q: the reduced entries k = q (X, q < 10) and k = q - 10 (Z,
// 10 <= q < 20) of the upper 4x4 triangle, X[(a, n), (b, n)]; the photon number's
// n(r) X[r, r] (q = 20, n = r < dim); the Fock tail's X[(n, N), (n, N)] (q = 21, n < 4).
fn sample_term(q: u32, n: u32, xb: u32, zb: u32) -> vec2<real> {
    let d = p_dim >> 2u;
    if (q < 20u) {
        var ka = array<u32, 10>(0u, 0u, 0u, 0u, 1u, 1u, 1u, 2u, 2u, 3u);
        var kb = array<u32, 10>(0u, 1u, 2u, 3u, 1u, 2u, 3u, 2u, 3u, 3u);
        let k = select(q - 10u, q, q < 10u);
        let base = select(zb, xb, q < 10u);
        return work[base + pk(ka[k] * d + n, kb[k] * d + n)];
    }
    if (q == 20u) {
        return vec2<real>(real(n % d) * work[xb + pk(n, n)].x, 0.0);
    }
    let r = n * d + d - 1u;
    return vec2<real>(work[xb + pk(r, r)].x, 0.0);
}

// Terms of sample quantity q.
fn sample_count(q: u32) -> u32 {
    let d = p_dim >> 2u;
    if (q < 20u) {
        return d;
    }
    return select(4u, p_dim, q == 20u);
}

// sigma_i[b, a] in the project convention: sx = [[0,1],[1,0]], sy = [[0,i],[-i,0]],
// sz = diag(-1, 1) in the (g, e) basis.
fn sig(i: u32, b: u32, a: u32) -> vec2<real> {
    let same = a == b;
    let one = vec2<real>(1.0, 0.0);
    let zero = vec2<real>(0.0, 0.0);
    if (i == 0u) {
        return select(zero, one, same);
    }
    if (i == 1u) {
        return select(one, zero, same);
    }
    if (i == 2u) {
        return select(select(vec2<real>(0.0, -1.0), vec2<real>(0.0, 1.0), b == 0u), zero, same);
    }
    return select(zero, select(one, -one, a == 0u), same);
}

// x[k] = Re Tr(R sigma_i (x) sigma_j), k = 4 i + j, from the reduced entries at red[rb..rb+10].
fn pauli_coeff(k: u32, rb: u32) -> real {
    let i = k >> 2u;
    let j = k & 3u;
    var s = real(0.0);
    for (var a = 0u; a < 4u; a++) {
        for (var b = 0u; b < 4u; b++) {
            let lo = min(a, b);
            let hi = max(a, b);
            let z = red[rb + lo * 4u - ((lo * (lo + 1u)) >> 1u) + hi];
            let rab = select(z, vec2<real>(z.x, -z.y), a > b);
            let p = cmul(sig(i, b >> 1u, a >> 1u), sig(j, b & 1u, a & 1u));
            s = s + (rab.x * p.x - rab.y * p.y);
        }
    }
    return s;
}

// The sample quantities of the current state into red[0..22]: NPART invocations per quantity
// each sum the terms n = part, part + NPART, ...; then one invocation per quantity adds the
// NPART partial sums in order (the twin's `sample_outputs` with parts = NPART). Returns the
// reduced coefficient of X (lid < 16) or Z (16 <= lid < 32, with ez). Called in uniform control
// flow; barriers inside. photon_number and fock_tail are then red[20].x and red[21].x, until
// the closing barrier of the next call.
fn reduced_coeffs(xb: u32, zb: u32, ez: bool, lid: u32) -> real {
    if (lid < NQ * NPART) {
        let q = lid / NPART;
        var s = vec2<real>(0.0);
        if (ez || q < 10u || q >= 20u) {
            let count = sample_count(q);
            for (var n = lid % NPART; n < count; n += NPART) {
                s = s + sample_term(q, n, xb, zb);
            }
        }
        partial[lid] = s;
    }
    workgroupBarrier();
    if (lid < NQ) {
        var s = vec2<real>(0.0);
        for (var k = 0u; k < NPART; k++) {
            s = s + partial[lid * NPART + k];
        }
        red[lid] = s;
    }
    workgroupBarrier();
    var v = real(0.0);
    if (lid < 16u) {
        v = pauli_coeff(lid, 0u);
    } else if (ez && lid < 32u) {
        v = pauli_coeff(lid - 16u, 10u);
    }
    return v;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let member = wid.x;
    if (member >= params.n_members) {
        return;
    }
    // Parameters into locals and private registers before the time loop.
    let n_elem = params.n_elem;
    let n_samples = params.n_samples;
    let piece_begin = params.piece_begin;
    let piece_end = params.piece_end;
    let flags = params.flags;
    let out_stride = params.out_stride;
    let off_pieces = params.off_pieces;
    let off_steps = params.off_steps;
    let ez = (flags & F_Z) != 0u;
    p_dim = params.dim;
    p_n_elem = n_elem;
    p_rows = params.off_rows;
    p_sqrt = params.off_sqrt;
    p_kd = member * params.param_stride;
    let pc = p_kd + params.dim;
    let m0 = mparams[pc];
    let m1 = mparams[pc + 1u];
    let m2 = mparams[pc + 2u];
    c_lambda = m0.x;
    c_gflip = m0.y;
    c_gswap = m1.x;
    c_kappa = m1.y;
    c_gamma = m2.x;
    if ((flags & F_UNCOUPLED) != 0u) {
        c_gflip = 0.0;
        c_gswap = 0.0;
    }
    p_n_drives = params.n_drives;
    p_drv = pc + 3u;
    p_env = params.off_env;
    p_weights = params.off_weights;
    let off_starts = params.off_starts;
    let dt = consts[off_steps];

    let mbase = member * params.member_stride;
    let xb = mbase;
    let sa = mbase + n_elem;
    let sbuf = mbase + 2u * n_elem;
    let accb = mbase + 3u * n_elem;
    let zb = mbase + 4u * n_elem;
    let refb = select(zb, zb + n_elem, ez);

    // The t = 0 reduced coefficients: computed on the first dispatch, kept in `work`.
    var ref_v = real(0.0);
    if ((flags & F_FIRST) != 0u) {
        ref_v = reduced_coeffs(xb, zb, ez, lid);
        if (lid < REF_LEN) {
            work[refb + lid] = vec2<real>(ref_v, 0.0);
        }
        workgroupBarrier();
    } else if (lid < REF_LEN) {
        ref_v = work[refb + lid].x;
    }

    var steps_done = 0u;
    var pieces_done = 0u;
    for (var p = piece_begin; p < piece_end; p++) {
        let n_full = lookup[off_pieces + 2u * p];
        let s = lookup[off_pieces + 2u * p + 1u];
        // Step k of the piece starts at t0 + k dt.
        let t0 = consts[off_starts + p];
        for (var k = 0u; k < n_full; k++) {
            var drv = false;
            if (p_n_drives > 0u) {
                drv = drive_step(t0 + real(k) * dt, dt);
            }
            rk4_step(xb, sa, sbuf, accb, off_steps, lid, drv);
            if (ez) {
                rk4_step(zb, sa, sbuf, accb, off_steps, lid, drv);
            }
            steps_done = steps_done + 1u;
        }
        let sl = off_steps + 4u * (p + 1u);
        if (consts[sl] > 0.0) {
            var drv = false;
            if (p_n_drives > 0u) {
                drv = drive_step(t0 + real(n_full) * dt, consts[sl]);
            }
            rk4_step(xb, sa, sbuf, accb, sl, lid, drv);
            if (ez) {
                rk4_step(zb, sa, sbuf, accb, sl, lid, drv);
            }
            steps_done = steps_done + 1u;
        }
        if (s != NO_SAMPLE) {
            let v = reduced_coeffs(xb, zb, ez, lid);
            let ob = (member * n_samples + s) * out_stride;
            let nq = select(16u, 32u, ez);
            if (lid < nq) {
                out[ob + lid] = v - ref_v;
            } else if (lid < nq + 2u) {
                out[ob + lid] = red[20u + lid - nq].x;
            }
            // red is rewritten by the next sample.
            workgroupBarrier();
        }
        pieces_done = pieces_done + 1u;
    }
    if (lid == 0u) {
        atomicAdd(&status[2u * member], pieces_done);
    }
    if (steps_done != params.steps_expected || pieces_done != piece_end - piece_begin) {
        atomicAdd(&status[2u * member + 1u], 1u);
    }
}
