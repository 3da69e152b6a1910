// Library (not a kernel): the drive coefficients of `[[drive]]`, prepended by the host to the
// kernels that take drives (`gpu::KERNEL_LIBRARIES`). CPU twin: src/twin/drive.rs, which this
// file mirrors operation for operation.
//
//   c(t) = amplitude * env(t) * cos(frequency * t + phase),
//   env = 1 (ENV_CONSTANT), exp(-((t - a) / b)^2 / 2) (ENV_GAUSSIAN), or 1 where the step's
//   midpoint tm lies in [a, b) and 0 elsewhere (ENV_WINDOW).
//
// cos and exp are evaluated without transcendentals (WGSL has none for f64, and the f32 ones
// differ between drivers): Cody-Waite reduction by pi/2 in three parts and Taylor series on
// |r| <= pi/4 through r^20 / r^21; exp by ln 2 in two parts, a Taylor series on |r| <= ln2/2
// through r^16, and 2^n by binary powers. exp(x) for x < -80 is 0.

const ENV_CONSTANT: u32 = 0u;
const ENV_GAUSSIAN: u32 = 1u;
const ENV_WINDOW: u32 = 2u;

fn drive_cos(x: real) -> real {
    let q = floor(x * real(0.6366197723675814) + real(0.5));
    let r = ((x - q * real(1.5703125)) - q * real(0.0004838267923332751)) - q * real(2.563344151594519e-12);
    let n = q - real(4.0) * floor(q * real(0.25));
    let r2 = r * r;
    // cos r = sum (-1)^k r^2k / (2k)!, sin r = r sum (-1)^k r^2k / (2k + 1)!, Horner from the top.
    var cs = real(1.0 / 2432902008176640000.0);
    var sn = real(1.0 / 51090942171709440000.0);
    cs = real(-1.0 / 6402373705728000.0) + r2 * cs;
    sn = real(-1.0 / 121645100408832000.0) + r2 * sn;
    cs = real(1.0 / 20922789888000.0) + r2 * cs;
    sn = real(1.0 / 355687428096000.0) + r2 * sn;
    cs = real(-1.0 / 87178291200.0) + r2 * cs;
    sn = real(-1.0 / 1307674368000.0) + r2 * sn;
    cs = real(1.0 / 479001600.0) + r2 * cs;
    sn = real(1.0 / 6227020800.0) + r2 * sn;
    cs = real(-1.0 / 3628800.0) + r2 * cs;
    sn = real(-1.0 / 39916800.0) + r2 * sn;
    cs = real(1.0 / 40320.0) + r2 * cs;
    sn = real(1.0 / 362880.0) + r2 * sn;
    cs = real(-1.0 / 720.0) + r2 * cs;
    sn = real(-1.0 / 5040.0) + r2 * sn;
    cs = real(1.0 / 24.0) + r2 * cs;
    sn = real(1.0 / 120.0) + r2 * sn;
    cs = real(-1.0 / 2.0) + r2 * cs;
    sn = real(-1.0 / 6.0) + r2 * sn;
    cs = real(1.0) + r2 * cs;
    sn = real(1.0) + r2 * sn;
    sn = r * sn;
    if n == real(0.0) {
        return cs;
    } else if n == real(1.0) {
        return -sn;
    } else if n == real(2.0) {
        return -cs;
    }
    return sn;
}

// exp(x) for x <= 0 (0 below -80).
fn drive_exp(x: real) -> real {
    if x < real(-80.0) {
        return real(0.0);
    }
    let n = floor(x * real(1.4426950408889634) + real(0.5));
    let r = (x - n * real(0.693145751953125)) - n * real(1.4286068203094173e-06);
    var p = real(1.0 / 20922789888000.0);
    p = real(1.0 / 1307674368000.0) + r * p;
    p = real(1.0 / 87178291200.0) + r * p;
    p = real(1.0 / 6227020800.0) + r * p;
    p = real(1.0 / 479001600.0) + r * p;
    p = real(1.0 / 39916800.0) + r * p;
    p = real(1.0 / 3628800.0) + r * p;
    p = real(1.0 / 362880.0) + r * p;
    p = real(1.0 / 40320.0) + r * p;
    p = real(1.0 / 5040.0) + r * p;
    p = real(1.0 / 720.0) + r * p;
    p = real(1.0 / 120.0) + r * p;
    p = real(1.0 / 24.0) + r * p;
    p = real(1.0 / 6.0) + r * p;
    p = real(1.0 / 2.0) + r * p;
    p = real(1.0) + r * p;
    p = real(1.0) + r * p;
    // 2^n, n in [-116, 0]: multiply by 2^-(2^b) for each bit b of -n.
    let m = u32(-n);
    var scale = real(0.5);
    for (var b = 0u; b < 7u; b++) {
        if ((m >> b) & 1u) == 1u {
            p = p * scale;
        }
        scale = scale * scale;
    }
    return p;
}

// c(t) at a stage time t of a step with midpoint tm; exactly 0 where env is.
fn drive_coeff(amplitude: real, frequency: real, phase: real, env_code: u32, a: real, b: real, t: real, tm: real) -> real {
    var env = real(1.0);
    if env_code == ENV_GAUSSIAN {
        let u = (t - a) / b;
        env = drive_exp(-(real(0.5) * u * u));
    } else if env_code == ENV_WINDOW {
        if tm >= a && tm < b {
            env = real(1.0);
        } else {
            env = real(0.0);
        }
    }
    if env == real(0.0) {
        return real(0.0);
    }
    return amplitude * env * drive_cos(frequency * t + phase);
}
