// RK4 ensemble kernel for `dicke`: N cells in the symmetric subspace (Dicke index k = 0..N
// excitations) and a cavity mode truncated at n_fock, dim = (N + 1)(n_fock + 1), index
// r = k d + n with d = n_fock + 1. The Lindblad generator is applied element by element in
// gather form, as the CPU twin src/twin/rk4_dicke.rs (DickeOps::element_with, stage) does it:
//
//   L[X]_rc = (kd_r + conj kd_c) X_rc - i (H_c X)_rc + i (X H_c)_rc
//             + kappa sqrt(n_r + 1) sqrt(n_c + 1) X[r + 1, c + 1]
//             + gamma s_{k_r} s_{k_c} X[r + d, c + d],                      r <= c,
//
// K's diagonal kd per member, H_c (the coupling, at most 4 entries per row) and the jump
// factors from the shared row and weight tables (src/job/dicke.rs, `row_tables`).
//
// The host prepends `alias real = f32;` or `alias real = f64;`. Only + - * /, select here.
//
// Work split: one workgroup (WG invocations) per member; invocation `lid` owns the entries
// e = lid, lid + WG, ... of the element table: every upper-triangle pair r <= c, or, for an
// ensemble whose initial states are all block-diagonal in the parity (-1)^(n + k), only the
// same-parity pairs (L keeps such a state so; the other entries stay 0). Every matrix is
// Hermitian and stored as its packed upper triangle, row-major: (a, b), a <= b, at
// a dim - a (a + 1) / 2 + b; X[a, b] with a > b is read as conj(X[b, a]). A stage reads its
// input matrix by gather and writes only the entries its invocation owns, so one
// storageBarrier() per stage is all the synchronisation there is.
//
// RK4 (classical, as the twin): stage 1 reads X and writes acc = k1, S_A = X + h/2 k1;
// stage 2 reads S_A, acc += 2 k2, S_B = X + h/2 k2; stage 3 reads S_B, acc += 2 k3,
// S_A = X + h k3; stage 4 reads S_A, X += h/6 (acc + k4).
//
// Samples: the reduced cell state rb[k][k'] = sum_n X[(k, n), (k', n)] ((N + 1)^2 complex),
// then Tr X, Tr(X a^+ a), the Fock tail sum_k X[(k, N), (k, N)] and the purity
// sum_ij |X_ij|^2; the host computes energy, ergotropy, capacity, entropy... from rb. Full
// states are never read back (min_eigenvalue, which needs them, runs on the CPU engine).
//
// Dispatch length: llvmpipe (lavapipe) ends every loop of an invocation once about 65,535
// loop iterations are spent; the host sizes each dispatch by loop costs (src/gpu/rk4_dicke.rs)
// and the kernel counts the steps and pieces it completes in `status`, which the host checks.
//
// Keep in sync with src/job/dicke.rs (Params, tables, flags, WORKGROUP_SIZE) and the twin.

// ---- layouts --------------------------------------------------------------------------------
// lookup (u32, shared): [0, n_list) the element table r | (c << 16);
//   off_rows + 8 r + i: row r's slot columns (i < 4), a-jump row (4), J_- jump row (5), n, k;
//   off_pieces + 2 p + ...: (n_full, sample or NO_SAMPLE) of piece p
// consts (real, shared): off_weights + 8 r + i: row r's slot weights (i < 4), sqrt(n + 1) (4),
//   s_k (5) (0 at the top); off_steps + 4 i + ...: (h, h/2, h/6, 0), i = 0 dt, i = 1 + p the
//   shortened last step of piece p (h = 0: none)
// mparams (vec2<real>), param_stride = dim + 2 per member: K's diagonal kd[r] = (-loss,
//   -energy), then (g_rot, g_counter), (kappa, gamma)
// work (vec2<real>), member_stride = 4 n_packed per member: X, S_A, S_B, acc
// out (real), out_stride per (member, sample): rb (re, im) row-major, trace, photon number,
//   Fock tail, purity
// status (atomic u32), 2 per member: pieces completed, invocations that fell short

struct Params {
    n_members: u32,
    n_cells: u32,
    n_fock: u32,
    dim: u32,
    n_list: u32,
    n_packed: u32,
    n_samples: u32,
    piece_begin: u32,
    piece_end: u32,
    flags: u32,
    member_stride: u32,
    param_stride: u32,
    out_stride: u32,
    off_rows: u32,
    off_pieces: u32,
    off_weights: u32,
    off_steps: u32,
    // RK4 steps in this dispatch (what every invocation must complete).
    steps_expected: u32,
    _pad0: u32,
    _pad1: u32,
}

const WG: u32 = 256u;
const NO_SAMPLE: u32 = 0xffffffffu;
const ROW_U32: u32 = 8u;
const ROW_REALS: u32 = 8u;
// The dispatch lies after [protocol] switch_off: the cavity-cell coupling g is off.
const F_UNCOUPLED: u32 = 2u;

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

var<workgroup> partial: array<real, WG>;

var<private> p_dim: u32;
var<private> p_d: u32;
var<private> p_n_list: u32;
var<private> p_rows: u32;
var<private> p_w: u32;
var<private> p_kd: u32;
var<private> c_grot: real;
var<private> c_gctr: real;
var<private> c_kappa: real;
var<private> c_gamma: real;

// Packed index of (a, b), a <= b.
fn pk(a: u32, b: u32) -> u32 {
    return a * p_dim - ((a * (a + 1u)) >> 1u) + b;
}

// X[a, b] of the Hermitian matrix at `base`, on either side of the diagonal.
fn rd(base: u32, a: u32, b: u32) -> vec2<real> {
    let z = work[base + pk(min(a, b), max(a, b))];
    return select(z, vec2<real>(z.x, -z.y), a > b);
}

// L[src]_rc, r <= c (the twin's element_with; its loop over the 4 slots written out).
fn element(src: u32, r: u32, c: u32) -> vec2<real> {
    let ur = p_rows + ROW_U32 * r;
    let uc = p_rows + ROW_U32 * c;
    let wr = p_w + ROW_REALS * r;
    let wc = p_w + ROW_REALS * c;
    let kr = mparams[p_kd + r];
    let kc = mparams[p_kd + c];
    let diag = vec2<real>(kr.x + kc.x, kr.y - kc.y);
    let z = work[src + pk(r, c)];
    // (H_c X)_rc and (X H_c)_rc: slots 0, 1 rotating (g_rot), 2, 3 counter-rotating (g_counter)
    var hr = rd(src, lookup[ur], c) * (c_grot * consts[wr]);
    var hc = rd(src, r, lookup[uc]) * (c_grot * consts[wc]);
    hr = hr + rd(src, lookup[ur + 1u], c) * (c_grot * consts[wr + 1u]);
    hc = hc + rd(src, r, lookup[uc + 1u]) * (c_grot * consts[wc + 1u]);
    hr = hr + rd(src, lookup[ur + 2u], c) * (c_gctr * consts[wr + 2u]);
    hc = hc + rd(src, r, lookup[uc + 2u]) * (c_gctr * consts[wc + 2u]);
    hr = hr + rd(src, lookup[ur + 3u], c) * (c_gctr * consts[wr + 3u]);
    hc = hc + rd(src, r, lookup[uc + 3u]) * (c_gctr * consts[wc + 3u]);
    // diag z - i hr + i hc
    var v = vec2<real>(diag.x * z.x - diag.y * z.y + hr.y - hc.y, diag.x * z.y + diag.y * z.x - hr.x + hc.x);
    // kappa a X a^+, gamma J_- X J_+ (factor 0 at the top, where the row is r itself)
    v = v + rd(src, lookup[ur + 4u], lookup[uc + 4u]) * ((c_kappa * consts[wr + 4u]) * consts[wc + 4u]);
    v = v + rd(src, lookup[ur + 5u], lookup[uc + 5u]) * ((c_gamma * consts[wr + 5u]) * consts[wc + 5u]);
    return v;
}

// One RK4 stage over the entries this invocation owns: k = L[src], then
//   MODE_FIRST: acc = k;  dst = X + a k.   MODE_MID: acc += 2 k;  dst = X + a k.
//   MODE_LAST:  X += a (acc + k).
fn stage(src: u32, xb: u32, dst: u32, accb: u32, mode: u32, a: real, lid: u32) {
    for (var e = lid; e < p_n_list; e += WG) {
        let rc = lookup[e];
        let r = rc & 0xffffu;
        let c = rc >> 16u;
        let v = element(src, r, c);
        let p = pk(r, c);
        let x = work[xb + p];
        if (mode == MODE_FIRST) {
            work[accb + p] = v;
            work[dst + p] = x + v * a;
        } else if (mode == MODE_MID) {
            work[accb + p] = work[accb + p] + v * 2.0;
            work[dst + p] = x + v * a;
        } else {
            work[xb + p] = x + (work[accb + p] + v) * a;
        }
    }
}

// One RK4 step of X; step constants (h, h/2, h/6) at consts[sb..sb+3].
fn rk4_step(xb: u32, sa: u32, sbuf: u32, accb: u32, sb: u32, lid: u32) {
    let h = consts[sb];
    let hh = consts[sb + 1u];
    let h6 = consts[sb + 2u];
    stage(xb, xb, sa, accb, MODE_FIRST, hh, lid);
    storageBarrier();
    stage(sa, xb, sbuf, accb, MODE_MID, hh, lid);
    storageBarrier();
    stage(sbuf, xb, sa, accb, MODE_MID, h, lid);
    storageBarrier();
    stage(sa, xb, 0u, accb, MODE_LAST, h6, lid);
    storageBarrier();
}

// The sums of a sample into out[ob..ob + out_stride] (the twin's DickeOps::sample). Called in
// uniform control flow; barriers inside.
fn write_sample(xb: u32, ob: u32, n_cells: u32, lid: u32) {
    // purity: WG strided partial sums over the stepped entries, off-diagonal ones twice
    var s = real(0.0);
    for (var e = lid; e < p_n_list; e += WG) {
        let rc = lookup[e];
        let r = rc & 0xffffu;
        let c = rc >> 16u;
        let z = work[xb + pk(r, c)];
        let a = z.x * z.x + z.y * z.y;
        s = s + select(a + a, a, r == c);
    }
    partial[lid] = s;
    workgroupBarrier();
    let q1 = n_cells + 1u;
    let nrb = q1 * q1;
    for (var q = lid; q < nrb + 3u; q += WG) {
        if (q < nrb) {
            let k = q / q1;
            let k2 = q % q1;
            var z = vec2<real>(0.0);
            for (var m = 0u; m < p_d; m++) {
                z = z + rd(xb, k * p_d + m, k2 * p_d + m);
            }
            out[ob + 2u * q] = z.x;
            out[ob + 2u * q + 1u] = z.y;
        } else {
            // trace (nrb), photon number (nrb + 1), Fock tail (nrb + 2), in row order
            var t = real(0.0);
            for (var r = 0u; r < p_dim; r++) {
                let x = work[xb + pk(r, r)].x;
                let n = r % p_d;
                if (q == nrb) {
                    t = t + x;
                } else if (q == nrb + 1u) {
                    t = t + real(n) * x;
                } else if (n == p_d - 1u) {
                    t = t + x;
                }
            }
            out[ob + nrb + q] = t;
        }
    }
    if (lid == 0u) {
        var p = real(0.0);
        for (var k = 0u; k < WG; k++) {
            p = p + partial[k];
        }
        out[ob + 2u * nrb + 3u] = p;
    }
    // partial is rewritten by the next sample
    workgroupBarrier();
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let member = wid.x;
    if (member >= params.n_members) {
        return;
    }
    let n_packed = params.n_packed;
    let n_samples = params.n_samples;
    let piece_begin = params.piece_begin;
    let piece_end = params.piece_end;
    let out_stride = params.out_stride;
    let off_pieces = params.off_pieces;
    let off_steps = params.off_steps;
    let n_cells = params.n_cells;
    p_dim = params.dim;
    p_d = params.n_fock + 1u;
    p_n_list = params.n_list;
    p_rows = params.off_rows;
    p_w = params.off_weights;
    p_kd = member * params.param_stride;
    let pc = p_kd + params.dim;
    let m0 = mparams[pc];
    let m1 = mparams[pc + 1u];
    c_grot = m0.x;
    c_gctr = m0.y;
    c_kappa = m1.x;
    c_gamma = m1.y;
    if ((params.flags & F_UNCOUPLED) != 0u) {
        c_grot = 0.0;
        c_gctr = 0.0;
    }

    let xb = member * params.member_stride;
    let sa = xb + n_packed;
    let sbuf = xb + 2u * n_packed;
    let accb = xb + 3u * n_packed;

    var steps_done = 0u;
    var pieces_done = 0u;
    for (var p = piece_begin; p < piece_end; p++) {
        let n_full = lookup[off_pieces + 2u * p];
        let s = lookup[off_pieces + 2u * p + 1u];
        for (var k = 0u; k < n_full; k++) {
            rk4_step(xb, sa, sbuf, accb, off_steps, lid);
            steps_done = steps_done + 1u;
        }
        let sl = off_steps + 4u * (p + 1u);
        if (consts[sl] > 0.0) {
            rk4_step(xb, sa, sbuf, accb, sl, lid);
            steps_done = steps_done + 1u;
        }
        if (s != NO_SAMPLE) {
            write_sample(xb, (member * n_samples + s) * out_stride, n_cells, lid);
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
