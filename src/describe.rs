//! Text of `qbat-gpu models` and `qbat-gpu measures`.

use crate::ensemble::random::RandomKind;
use crate::measures::Measure;
use crate::model::ModelKind;
use std::fmt::Write;

pub fn models_text() -> String {
    let mut s = String::new();
    for m in ModelKind::ALL {
        let _ = writeln!(s, "{}  ({})", m.name(), m.paper());
        let _ = writeln!(s, "  {}", m.hamiltonian_doc());
        for p in m.params() {
            let d = p.default.to_string();
            let _ = writeln!(s, "    {:<12} = {:<10} {}", p.name, d, p.doc);
        }
        let init = match m {
            ModelKind::SpinPair => "default |eg> (charger excited, battery ground)",
            ModelKind::DrivenPair => "default |gg>",
            ModelKind::BlochCharger => "charger cos(theta/2)|g> + e^{i phi} sin(theta/2)|e>, battery |g>; [initial] theta, phi (default pi, 0; sweeps allowed)",
            ModelKind::CavityCells => "|g g> x |alpha> (truncated to n_fock and renormalised); ket/dm of dimension 4 are tensored with |alpha>",
            ModelKind::TwoQubit => "default |gg>",
            ModelKind::Dicke => "|j, dicke_m> x |photons> (default: every cell in |g>, cavity in |N>) or x |alpha>; ket/dm of dimension N + 1 are the cells, tensored with the cavity state",
        };
        let _ = writeln!(s, "  initial: {init}");
        let _ = writeln!(s, "  [protocol] switch_off turns off: {}\n", m.coupling_doc());
    }
    let kinds: Vec<_> = RandomKind::ALL.iter().map(|k| k.name()).collect();
    let _ = writeln!(s, "[initial] also takes ket, dm, or random = {} (seeded per member).", kinds.join(" | "));
    let _ = writeln!(s, "[time] steady = true (instead of dt, t_end, samples, times): each member's steady state from the null space of its Liouvillian, no integration; two-qubit models with a unique steady state (not spin-pair, which is closed, nor gamma = 0).");
    let _ = writeln!(
        s,
        "[protocol] switch_off = T (> 0): the charger-battery coupling above goes off at T (the integrator lands on T exactly);\n  after T the battery stores. Dissipators and drives stay on; the measures keep the model's H, H_B and H_C."
    );
    let _ = writeln!(s, "Units: hbar = k_B = 1; times in inverse energy units. Complex numbers are [re, im].");
    s
}

pub fn measures_text() -> String {
    let mut s = String::new();
    for m in Measure::ALL {
        let dicke = m.applies_to(ModelKind::Dicke);
        let scope = match (m.applies(false), m.applies(true)) {
            _ if m.steady_only() => "steady runs",
            (true, true) if m.opt_in() => "listed, not dicke",
            (true, true) if dicke => "all models",
            (true, true) => "all but dicke",
            (true, false) => "two-qubit models",
            (false, true) if dicke => "cavity models",
            (false, true) => "cavity-cells",
            _ if dicke => "dicke",
            _ => "",
        };
        let _ = writeln!(s, "{:<22} {:<17} {}", m.name(), scope, m.doc());
    }
    let _ = writeln!(s, "\n\"listed\": written only when output.measures names it (not in the default list).");
    let _ = writeln!(s, "summary.csv also has max_<m> and t_max_<m> for energy_b, ergotropy_b, power_b, ergotropic_power_b.");
    s
}
