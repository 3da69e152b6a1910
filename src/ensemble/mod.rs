//! Ensembles: parameter sweeps and seeded random initial states.
//! Member i's randomness comes from its own ChaCha stream (seed, stream = 2i for the state,
//! 2i + 1 for parameters), so member i is the same whatever the chunking, backend, thread
//! count or shard.

pub mod random;
pub mod sweep;

use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;

/// The random stream of member `i`'s initial state.
pub fn state_rng(seed: u64, member: u64) -> ChaCha12Rng {
    let mut rng = ChaCha12Rng::seed_from_u64(seed);
    rng.set_stream(2 * member);
    rng
}

/// The random stream of member `i`'s uniformly drawn parameters.
pub fn param_rng(seed: u64, member: u64) -> ChaCha12Rng {
    let mut rng = ChaCha12Rng::seed_from_u64(seed);
    rng.set_stream(2 * member + 1);
    rng
}
