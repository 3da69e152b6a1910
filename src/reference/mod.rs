//! The f64 oracle, in matrix form: rho is a complex dim x dim matrix, H and the jump
//! operators act on it by (sparse) matrix products. It is independent of every shader and
//! of the Pauli-basis engines, which are all checked against it.

pub mod lindblad;
pub mod rk4;

pub use lindblad::{DriveTerms, LindbladRhs};
pub use rk4::{integrate, ReferenceSample};
