// Eigen-solve measures of two-qubit sample states, on the device: capacity_total,
// residual_capacity, concurrence, steering_ab, steering_ba, min_eigenvalue.
//
// The host prepends `alias real = f32;` or `alias real = f64;`. Only + - * /, sqrt, abs and
// comparisons (no transcendentals, which are wrong in f64 on some drivers).
//
// Dispatched after rk4_two_qubit in the same queue: it reads the dephased sample states that
// kernel wrote to its `states` buffer and writes the measures of each (member, sample), both
// member-minor (layouts below), so that the states never leave the device unless asked for.
// One invocation per (member, sample). The maths (4x4 Hermitian cyclic Jacobi, one-sided Jacobi singular values, the
// concurrence as singular values of X^T S X) is documented in the CPU twin,
// src/twin/measures_two_qubit.rs, which mirrors this file loop for loop; the layouts are in
// src/job/measures_two_qubit.rs (checked by tests/layouts.rs).

// ---- layouts --------------------------------------------------------------------------------
// consts (vec4<real>): per chunk-local point 2 vec4s: the gaps of H's spectrum eps (ascending)
//   (eps_3 - eps_0, eps_2 - eps_1, 0, 0), taken on the host in f64, then (|h_B|, |h_C|, 0, 0).
// lookup (u32): member -> chunk-local point (the integrator's lookup buffer; its first
//   n_members entries).
// states (vec4<real>): ((sample * 4 + i) * n_members + member), as rk4_two_qubit writes them.
// out (real): (sample * n_cols + column) * n_members + member.
// Both member-minor: invocation idx = sample * n_members + member, so that consecutive
// invocations read and write consecutive addresses.

struct MeasureParams {
    n_members: u32,
    n_samples: u32,
    n_cols: u32,
    flags: u32,
    // Workgroups along x; the dispatch is (groups_x, groups_y).
    groups_x: u32,
    // Code of each output column, 4 per vec4.
    cols: array<vec4<u32>, 2>,
}

const EIGEN_WORKGROUP_SIZE: u32 = 64u;
const EIGEN_POINT_VEC4: u32 = 2u;
const MAX_SWEEPS: u32 = 12u;

const G_SPECTRUM: u32 = 1u;
const G_CONCURRENCE: u32 = 2u;
const G_LOO: u32 = 4u;

const E_CAPACITY_TOTAL: u32 = 0u;
const E_RESIDUAL_CAPACITY: u32 = 1u;
const E_CONCURRENCE: u32 = 2u;
const E_STEERING_AB: u32 = 3u;
const E_STEERING_BA: u32 = 4u;
const E_MIN_EIGENVALUE: u32 = 5u;
const N_EIGEN_CODES: u32 = 6u;

@group(0) @binding(0) var<uniform> params: MeasureParams;
@group(0) @binding(1) var<storage, read> consts: array<vec4<real>>;
@group(0) @binding(2) var<storage, read> lookup: array<u32>;
@group(0) @binding(3) var<storage, read> states: array<vec4<real>>;
@group(0) @binding(4) var<storage, read_write> out: array<real>;

// A complex 4x4 matrix, row-major: entry (i, j) at 4i + j.
struct C4 {
    re: array<real, 16>,
    im: array<real, 16>,
}

struct Eigh {
    lam: array<real, 4>,
    v: C4,
}

// Entry (r, s) of c0 I + c1 sx + c2 sy + c3 sz with complex c (project convention:
// sy = [[0, i], [-i, 0]], sz = diag(-1, 1)).
fn p2(c0: vec2<real>, c1: vec2<real>, c2: vec2<real>, c3: vec2<real>, r: u32, s: u32) -> vec2<real> {
    if (r == 0u && s == 0u) {
        return c0 - c3;
    } else if (r == 0u) {
        return vec2<real>(c1.x - c2.y, c1.y + c2.x);
    } else if (s == 0u) {
        return vec2<real>(c1.x + c2.y, c1.y - c2.x);
    }
    return c0 + c3;
}

// rho = (1/4) sum_ab x[4a + b] sigma_a (x) sigma_b, basis index 2 charger + battery.
fn rho_from_pauli(x: array<real, 16>) -> C4 {
    var m: C4;
    for (var r1 = 0u; r1 < 2u; r1++) {
        for (var s1 = 0u; s1 < 2u; s1++) {
            for (var r2 = 0u; r2 < 2u; r2++) {
                for (var s2 = 0u; s2 < 2u; s2++) {
                    var b: array<vec2<real>, 4>;
                    for (var a = 0u; a < 4u; a++) {
                        b[a] = p2(vec2<real>(x[4u * a], 0.0), vec2<real>(x[4u * a + 1u], 0.0), vec2<real>(x[4u * a + 2u], 0.0), vec2<real>(x[4u * a + 3u], 0.0), r2, s2);
                    }
                    let z = p2(b[0], b[1], b[2], b[3], r1, s1);
                    let k = 4u * (2u * r1 + r2) + 2u * s1 + s2;
                    m.re[k] = z.x * 0.25;
                    m.im[k] = z.y * 0.25;
                }
            }
        }
    }
    return m;
}

// (|z|, z / |z|) of z = (re, im), scaled by its bound m = |re| + |im| first (squaring tiny
// parts underflows in f32, and a phase off modulus 1 would stretch a column per rotation);
// called only for a pair that rotates, whose m is never 0.
fn modulus_phase(re: real, im: real, m: real) -> vec3<real> {
    let a = re / m;
    let b = im / m;
    let n = sqrt(a * a + b * b);
    let inv_n = 1.0 / n;
    return vec3<real>(m * n, a * inv_n, b * inv_n);
}

// (t, c, s) of the Jacobi rotation zeroing an entry of modulus r between app and aqq.
fn rotation(app: real, aqq: real, r: real) -> vec3<real> {
    let theta = (aqq - app) / (2.0 * r);
    var t: real;
    if (abs(theta) > real(1e15)) {
        t = 0.5 / theta;
    } else {
        let sgn = select(real(-1.0), real(1.0), theta >= 0.0);
        t = sgn / (abs(theta) + sqrt(theta * theta + 1.0));
    }
    let c = 1.0 / sqrt(t * t + 1.0);
    return vec3<real>(t, c, t * c);
}

// (c a - s conj(e) b, s a + c conj(e) b), packed as (new a, new b).
fn rotate_pair(a: vec2<real>, b: vec2<real>, e: vec2<real>, c: real, s: real) -> vec4<real> {
    let w = vec2<real>(e.x * b.x + e.y * b.y, e.x * b.y - e.y * b.x);
    return vec4<real>(c * a.x - s * w.x, c * a.y - s * w.y, s * a.x + c * w.x, s * a.y + c * w.y);
}

fn pair_p(k: u32) -> u32 {
    return select(select(2u, 1u, k < 5u), 0u, k < 3u);
}

fn pair_q(k: u32) -> u32 {
    let qs = array<u32, 6>(1u, 2u, 3u, 2u, 3u, 3u);
    return qs[k];
}

// Cyclic Jacobi of a Hermitian 4x4: eigenvalues (unsorted) and, with `vectors`, the
// eigenvectors as the columns of v.
fn jacobi_eigh(a0: C4, vectors: bool) -> Eigh {
    var a = a0;
    var v: C4;
    for (var i = 0u; i < 4u; i++) {
        v.re[5u * i] = 1.0;
    }
    for (var sweep = 0u; sweep < MAX_SWEEPS; sweep++) {
        var rotated = false;
        for (var pair = 0u; pair < 6u; pair++) {
            let p = pair_p(pair);
            let q = pair_q(pair);
            let apq = vec2<real>(a.re[4u * p + q], a.im[4u * p + q]);
            let app = a.re[5u * p];
            let aqq = a.re[5u * q];
            let scale = abs(app) + abs(aqq);
            // negligible: |re| + |im| at most about 2 ulp of scale and below it (the twin's
            // `rotates`: an infinite bound beside an infinite scale rotates, and turns NaN)
            let bound = abs(apq.x) + abs(apq.y);
            if (bound == 0.0 || (scale + 0.25 * bound == scale && bound < scale)) {
                continue;
            }
            rotated = true;
            let rp = modulus_phase(apq.x, apq.y, bound);
            let r = rp.x;
            let e = rp.yz;
            let tcs = rotation(app, aqq, r);
            let t = tcs.x;
            let c = tcs.y;
            let s = tcs.z;
            for (var k = 0u; k < 4u; k++) {
                if (k != p && k != q) {
                    let kp = 4u * k + p;
                    let kq = 4u * k + q;
                    let n = rotate_pair(vec2<real>(a.re[kp], a.im[kp]), vec2<real>(a.re[kq], a.im[kq]), e, c, s);
                    a.re[kp] = n.x;
                    a.im[kp] = n.y;
                    a.re[4u * p + k] = n.x;
                    a.im[4u * p + k] = -n.y;
                    a.re[kq] = n.z;
                    a.im[kq] = n.w;
                    a.re[4u * q + k] = n.z;
                    a.im[4u * q + k] = -n.w;
                }
            }
            a.re[5u * p] = app - t * r;
            a.re[5u * q] = aqq + t * r;
            a.re[4u * p + q] = 0.0;
            a.im[4u * p + q] = 0.0;
            a.re[4u * q + p] = 0.0;
            a.im[4u * q + p] = 0.0;
            if (vectors) {
                for (var k = 0u; k < 4u; k++) {
                    let kp = 4u * k + p;
                    let kq = 4u * k + q;
                    let n = rotate_pair(vec2<real>(v.re[kp], v.im[kp]), vec2<real>(v.re[kq], v.im[kq]), e, c, s);
                    v.re[kp] = n.x;
                    v.im[kp] = n.y;
                    v.re[kq] = n.z;
                    v.im[kq] = n.w;
                }
            }
        }
        if (!rotated) {
            break;
        }
    }
    return Eigh(array<real, 4>(a.re[0], a.re[5], a.re[10], a.re[15]), v);
}

// Singular values (unsorted) of a complex 4x4 by one-sided Jacobi on its columns.
fn singular_values(m0: C4) -> array<real, 4> {
    var m = m0;
    for (var sweep = 0u; sweep < MAX_SWEEPS; sweep++) {
        var rotated = false;
        for (var pair = 0u; pair < 6u; pair++) {
            let p = pair_p(pair);
            let q = pair_q(pair);
            var alpha = real(0.0);
            var beta = real(0.0);
            var gr = real(0.0);
            var gi = real(0.0);
            for (var k = 0u; k < 4u; k++) {
                let kp = 4u * k + p;
                let kq = 4u * k + q;
                alpha = alpha + m.re[kp] * m.re[kp] + m.im[kp] * m.im[kp];
                beta = beta + m.re[kq] * m.re[kq] + m.im[kq] * m.im[kq];
                gr = gr + m.re[kp] * m.re[kq] + m.im[kp] * m.im[kq];
                gi = gi + m.re[kp] * m.im[kq] - m.im[kp] * m.re[kq];
            }
            let ab = sqrt(alpha * beta);
            // negligible: |gr| + |gi| at most about 2 ulp of ab and below it (the twin's
            // `rotates`: an infinite bound beside an infinite scale rotates, and turns NaN)
            let bound = abs(gr) + abs(gi);
            if (bound == 0.0 || (ab + 0.25 * bound == ab && bound < ab)) {
                continue;
            }
            rotated = true;
            let gp = modulus_phase(gr, gi, bound);
            let g = gp.x;
            let e = gp.yz;
            let tcs = rotation(alpha, beta, g);
            for (var k = 0u; k < 4u; k++) {
                let kp = 4u * k + p;
                let kq = 4u * k + q;
                let n = rotate_pair(vec2<real>(m.re[kp], m.im[kp]), vec2<real>(m.re[kq], m.im[kq]), e, tcs.y, tcs.z);
                m.re[kp] = n.x;
                m.im[kp] = n.y;
                m.re[kq] = n.z;
                m.im[kq] = n.w;
            }
        }
        if (!rotated) {
            break;
        }
    }
    var sv: array<real, 4>;
    for (var j = 0u; j < 4u; j++) {
        var n2 = real(0.0);
        for (var k = 0u; k < 4u; k++) {
            n2 = n2 + m.re[4u * k + j] * m.re[4u * k + j] + m.im[4u * k + j] * m.im[4u * k + j];
        }
        sv[j] = sqrt(n2);
    }
    return sv;
}

// modulus_phase of a real z, m = |z|: the same operations with the imaginary part 0, so the
// same (|z|, sign z), and NaN for an infinite z, as there.
fn modulus_sign(z: real, m: real) -> vec2<real> {
    let a = z / m;
    let n = sqrt(a * a);
    let inv_n = 1.0 / n;
    return vec2<real>(m * n, a * inv_n);
}

// Singular values (unsorted) of a real 4x4 (row-major): singular_values with every
// imaginary part zero (which its operations keep zero), so the same values at half the work
// (to rounding: a GPU may fuse the two forms' multiply-adds differently).
fn singular_values_real(m0: array<real, 16>) -> array<real, 4> {
    var m = m0;
    for (var sweep = 0u; sweep < MAX_SWEEPS; sweep++) {
        var rotated = false;
        for (var pair = 0u; pair < 6u; pair++) {
            let p = pair_p(pair);
            let q = pair_q(pair);
            var alpha = real(0.0);
            var beta = real(0.0);
            var gr = real(0.0);
            for (var k = 0u; k < 4u; k++) {
                let kp = 4u * k + p;
                let kq = 4u * k + q;
                alpha = alpha + m[kp] * m[kp];
                beta = beta + m[kq] * m[kq];
                gr = gr + m[kp] * m[kq];
            }
            let ab = sqrt(alpha * beta);
            // negligible: |gr| at most about 2 ulp of ab and below it (the twin's
            // `rotates`: an infinite bound beside an infinite scale rotates, and turns NaN)
            let bound = abs(gr);
            if (bound == 0.0 || (ab + 0.25 * bound == ab && bound < ab)) {
                continue;
            }
            rotated = true;
            let gs = modulus_sign(gr, bound);
            let g = gs.x;
            let e = gs.y;
            let tcs = rotation(alpha, beta, g);
            for (var k = 0u; k < 4u; k++) {
                let kp = 4u * k + p;
                let kq = 4u * k + q;
                let w = e * m[kq];
                let a = m[kp];
                m[kp] = tcs.y * a - tcs.z * w;
                m[kq] = tcs.z * a + tcs.y * w;
            }
        }
        if (!rotated) {
            break;
        }
    }
    var sv: array<real, 4>;
    for (var j = 0u; j < 4u; j++) {
        var n2 = real(0.0);
        for (var k = 0u; k < 4u; k++) {
            n2 = n2 + m[4u * k + j] * m[4u * k + j];
        }
        sv[j] = sqrt(n2);
    }
    return sv;
}

fn sort4_asc(v: array<real, 4>) -> array<real, 4> {
    var a = v;
    for (var i = 0u; i < 3u; i++) {
        for (var j = 0u; j < 3u - i; j++) {
            if (a[j + 1u] < a[j]) {
                let tmp = a[j];
                a[j] = a[j + 1u];
                a[j + 1u] = tmp;
            }
        }
    }
    return a;
}

// max(x, 0) that keeps a NaN.
fn floor0(x: real) -> real {
    return select(x, 0.0, x < 0.0);
}

// Wootters numbers, descending, from the eigen-decomposition of rho: the singular values of
// M = X^T S X, X = V diag(sqrt(max(lam, 0))), S = antidiag(-1, 1, 1, -1).
fn wootters_r(lam: array<real, 4>, v: C4) -> array<real, 4> {
    var x = v;
    for (var j = 0u; j < 4u; j++) {
        let w = sqrt(floor0(lam[j]));
        for (var k = 0u; k < 4u; k++) {
            x.re[4u * k + j] = x.re[4u * k + j] * w;
            x.im[4u * k + j] = x.im[4u * k + j] * w;
        }
    }
    var m: C4;
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            // M_ij = -X_0i X_3j + X_1i X_2j + X_2i X_1j - X_3i X_0j
            let t0 = cmul(x, i, 12u + j);
            let t1 = cmul(x, 4u + i, 8u + j);
            let t2 = cmul(x, 8u + i, 4u + j);
            let t3 = cmul(x, 12u + i, j);
            m.re[4u * i + j] = t1.x + t2.x - t0.x - t3.x;
            m.im[4u * i + j] = t1.y + t2.y - t0.y - t3.y;
        }
    }
    let r = sort4_asc(singular_values(m));
    return array<real, 4>(r[3], r[2], r[1], r[0]);
}

// x[a] x[b] (complex entries of one matrix, flat indices).
fn cmul(x: C4, a: u32, b: u32) -> vec2<real> {
    return vec2<real>(x.re[a] * x.re[b] - x.im[a] * x.im[b], x.re[a] * x.im[b] + x.im[a] * x.re[b]);
}

fn loo_bound(a: real, b: real) -> real {
    return sqrt(floor0((2.0 - a) * (1.0 - b)));
}

// Every measure of this kernel for one sample state x, by code; unflagged ones are 0.
// pt0 = (eps_3 - eps_0, eps_2 - eps_1, 0, 0) of H's spectrum, pt1 = (|h_B|, |h_C|, 0, 0).
fn eigen_measures(x: array<real, 16>, pt0: vec4<real>, pt1: vec4<real>, flags: u32) -> array<real, N_EIGEN_CODES> {
    var o: array<real, N_EIGEN_CODES>;
    if ((flags & (G_SPECTRUM | G_CONCURRENCE)) != 0u) {
        let rho = rho_from_pauli(x);
        let eh = jacobi_eigh(rho, (flags & G_CONCURRENCE) != 0u);
        let l = sort4_asc(eh.lam);
        // sum_i eps_i (l_i - l_{3-i}) by the gaps: an offset of H (in every eps_i, cancelling
        // between the terms) would cost f32 its eps each (3e-4 at 3000 on a spread of 4).
        let cap = pt0.x * (l[3] - l[0]) + pt0.y * (l[2] - l[1]);
        let rb = sqrt(x[1] * x[1] + x[2] * x[2] + x[3] * x[3]);
        let rc = sqrt(x[4] * x[4] + x[8] * x[8] + x[12] * x[12]);
        o[E_CAPACITY_TOTAL] = cap;
        o[E_RESIDUAL_CAPACITY] = cap - 2.0 * pt1.x * rb - 2.0 * pt1.y * rc;
        o[E_MIN_EIGENVALUE] = l[0];
        if ((flags & G_CONCURRENCE) != 0u) {
            let r = wootters_r(eh.lam, eh.v);
            o[E_CONCURRENCE] = floor0(r[0] - r[1] - r[2] - r[3]);
        }
    }
    if ((flags & G_LOO) != 0u) {
        var c: array<real, 16>;
        for (var i = 0u; i < 4u; i++) {
            for (var j = 0u; j < 4u; j++) {
                c[4u * i + j] = 0.5 * (x[4u * i + j] - x[4u * i] * x[j]);
            }
        }
        let sv = singular_values_real(c);
        let norm = sv[0] + sv[1] + sv[2] + sv[3];
        let pc = 0.5 * (x[0] * x[0] + x[4] * x[4] + x[8] * x[8] + x[12] * x[12]);
        let pb = 0.5 * (x[0] * x[0] + x[1] * x[1] + x[2] * x[2] + x[3] * x[3]);
        o[E_STEERING_AB] = norm - loo_bound(pc, pb);
        o[E_STEERING_BA] = norm - loo_bound(pb, pc);
    }
    return o;
}

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let idx = (wid.y * params.groups_x + wid.x) * EIGEN_WORKGROUP_SIZE + lid.x;
    let n_members = params.n_members;
    if (n_members == 0u || idx / n_members >= params.n_samples) {
        return;
    }
    let member = idx % n_members;
    let sample = idx / n_members;
    let pbase = lookup[member] * EIGEN_POINT_VEC4;
    var x: array<real, 16>;
    for (var i = 0u; i < 4u; i++) {
        let s = states[(sample * 4u + i) * n_members + member];
        x[4u * i] = s.x;
        x[4u * i + 1u] = s.y;
        x[4u * i + 2u] = s.z;
        x[4u * i + 3u] = s.w;
    }
    let m = eigen_measures(x, consts[pbase], consts[pbase + 1u], params.flags);
    let n_cols = params.n_cols;
    for (var k = 0u; k < n_cols; k++) {
        out[(sample * n_cols + k) * n_members + member] = m[params.cols[k / 4u][k % 4u]];
    }
}
