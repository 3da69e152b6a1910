"""Bad arguments and damaged results through Python: a ConfigError naming the argument (with
.field and .exit_code 2), never an interpreter abort, a PanicException, a bare TypeError or a
silently different result."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import qutip

import qbat_gpu as qb
from conftest import BLOCH

H = np.diag([-2.0, 0, 0, 2]).astype(complex)
L = 0.3 * np.kron(np.eye(2), [[0, 1], [0, 0]])
RHO = np.diag([0, 0, 1.0, 0])
T = [0.0, 0.5, 1.0]
SPIN = {"model": "spin-pair", "time": {"dt": 0.01, "t_end": 0.1, "samples": 2}}


def me(**kw):
    a = dict(H=H, jump_ops=[L], rho0=RHO, tsave=T, dt=0.01, backend="cpu", measures=["energy_b"])
    a.update(kw)
    return qb.mesolve(**a)


def refused(field, f):
    with pytest.raises(qb.ConfigError) as e:
        f()
    assert e.value.field == field and e.value.exit_code == 2, str(e.value)
    assert str(e.value).startswith(f"{field}: ") and "\n" not in str(e.value)
    return str(e.value)


# ----- H1: an in-memory run too large for memory

# 4e6 members x 15000 samples: a 480 GB series in memory, which the streamed run's check (a
# 1 GB member list, 1 GB of statistics) lets through.
TOO_LARGE = textwrap.dedent("""
    import time, numpy as np, qbat_gpu as qb
    t0 = time.time()
    try:
        {call}
    except qb.ConfigError as e:
        print("REFUSED", e.field, e.exit_code, round(time.time() - t0), e)
""")


@pytest.mark.parametrize(
    "call, field",
    [
        ('qb.run({"model": "spin-pair", "time": {"dt": 0.01, "t_end": 150.0, "samples": 15000}, '
         '"ensemble": {"size": 4000000}, "output": {"measures": ["energy_b"]}}, backend="cpu", progress=False)', "ensemble"),
        ("qb.mesolve(np.diag([-2., 0, 0, 2]), [], np.broadcast_to(np.diag([0, 0, 1., 0]), (200000, 4, 4)), "
         "np.linspace(0, 100, 10000), dt=0.01, backend='cpu')", "rho0"),
    ],
    ids=["run", "mesolve"],
)
def test_an_in_memory_run_too_large_for_memory_is_refused_not_an_abort(call, field):
    """In a child process: before the fix the interpreter aborted on the allocation (SIGABRT)."""
    p = subprocess.run([sys.executable, "-c", TOO_LARGE.format(call=call)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    out = p.stdout.strip()
    assert out.startswith(f"REFUSED {field} 2 "), out
    assert "in-memory run" in out and ("qb.study" if field == "ensemble" else "smaller qb.mesolve calls") in out
    assert int(out.split()[3]) < 60  # refused before any integration


# ----- H2: Result.stats of a replaced series


def test_stats_checks_a_replaced_series():
    r = qb.run(BLOCH, backend="cpu", progress=False)
    want = r.stats
    full = r.series
    for bad in (np.ascontiguousarray(full[:, :10]), full[:1].copy(), np.concatenate([full, full])):
        r.series = bad
        msg = refused("series", lambda: r._native.stats_csv(r.series))
        assert "not the run's" in msg
    r.series = full.astype(np.float32)
    assert "float64" in refused("series", lambda: r._native.stats_csv(r.series))
    # the same values in another memory order are the same run
    r.series = np.asfortranarray(full)
    pd.testing.assert_frame_equal(r.stats, want)
    r.series = full[:, :10]
    refused("series", lambda: r.stats)


def test_stats_follow_a_series_edited_in_place(tmp_path):
    """Before the fix `.stats` kept the text of its first read while `save` wrote the edited
    values: the two disagreed. The means are checked against numpy's over the healthy members."""
    r = qb.run(BLOCH, backend="cpu", progress=False)
    first = r.stats
    # (a measure whose peaks summary.csv does not hold: save refuses edits of those)
    name = next(m for m in r.measures if m not in ("energy_b", "ergotropy_b", "power_b", "ergotropic_power_b"))
    k = r.measures.index(name)
    r.series[:, :, k] += 0.5
    now = r.stats
    healthy = np.asarray(r.health) == "ok"
    got = now[now["measure"] == name]["mean"].to_numpy()
    np.testing.assert_allclose(got, r.series[healthy, :, k].mean(axis=0), rtol=1e-12, atol=1e-15)
    assert not np.allclose(got, first[first["measure"] == name]["mean"].to_numpy())
    # the other measures' rows are unchanged, and save writes what .stats shows
    others = now["measure"] != name
    pd.testing.assert_frame_equal(now[others], first[others])
    r.save(tmp_path / "saved", plots=False)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "saved" / "stats.csv"), now)


# ----- H3: a QuTiP bra is not a ket


def test_mesolve_refuses_a_qutip_bra():
    ket = qutip.Qobj(np.array([[0.5], [0.5j], [0.5], [-0.5j]]))
    msg = refused("rho0", lambda: me(rho0=ket.dag()))
    assert "bra" in msg and "dag()" in msg
    refused("rho0", lambda: me(rho0=[ket.dag(), ket.dag()]))
    # a numpy (1, 4) is a batch of one ket, as documented
    one = me(rho0=ket.full().T)
    k = me(rho0=ket)
    assert one.batch_shape == (1,) and k.batch_shape == ()
    assert np.array_equal(one.series, k.series)


# ----- M3: mesolve errors name the arguments


def test_mesolve_errors_name_the_arguments_not_config_fields():
    assert "must be finite" in refused("H[0]", lambda: me(H=H * np.nan))
    refused("h_battery", lambda: me(h_battery=np.diag([np.nan, 1.0])))
    refused("h_charger", lambda: me(h_charger=np.diag([np.nan, 1.0])))
    refused("jump_ops[0][0]", lambda: me(jump_ops=[L * np.nan]))
    msg = refused("dt", lambda: me(tsave=[0.0, 1e12]))
    assert "RK4 steps" in msg and "tsave" in msg


@pytest.mark.parametrize("arg", ["H", "rho0"])
def test_mesolve_refuses_none_naming_the_argument(arg):
    # (it raised AttributeError: a 0-d array of None was cut to the None itself)
    assert "NoneType" in refused(arg, lambda: me(**{arg: None}))
    assert "NoneType" in refused("jump_ops[0]", lambda: me(jump_ops=[None]))


# ----- M4: wrong types and negative integers name the keyword


@pytest.mark.parametrize(
    "field, call",
    [
        ("ensemble", lambda p: qb.run(SPIN, backend="cpu", progress=False, ensemble=-1)),
        ("ensemble", lambda p: qb.run(SPIN, backend="cpu", progress=False, ensemble=2.5)),
        ("ensemble", lambda p: qb.run(SPIN, backend="cpu", progress=False, ensemble=True)),
        ("seed", lambda p: qb.run(SPIN, backend="cpu", progress=False, seed=-1)),
        ("precision", lambda p: qb.run(SPIN, backend="cpu", progress=False, precision=None)),
        ("adapter", lambda p: qb.run(SPIN, backend="cpu", progress=False, adapter=0)),
        ("verify", lambda p: me(verify=-1)),
        ("measures", lambda p: me(measures=(1, 2))),
        ("dt", lambda p: me(dt=0.01j)),
        ("jump_ops", lambda p: me(jump_ops=None)),
        ("shard", lambda p: qb.study(SPIN, p, shard="0/2", backend="cpu", progress=False)),
        ("shard", lambda p: qb.study(SPIN, p, shard=(-1, 2), backend="cpu", progress=False)),
        ("shard", lambda p: qb.study(SPIN, p, shard=(True, 2), backend="cpu", progress=False)),
        ("block_members", lambda p: qb.study(SPIN, p, block_members=-1, backend="cpu", progress=False)),
        ("H", lambda p: me(H=qutip.QobjEvo([qutip.Qobj(H), [qutip.Qobj(H), "cos(t)"]]))),
        ("H", lambda p: me(H=[qutip.Qobj(H), [qutip.Qobj(H), "cos(t)"]])),
    ],
    ids=[
        "ensemble-negative", "ensemble-float", "ensemble-bool", "seed-negative", "precision-none", "adapter-int",
        "verify-negative", "measures-ints", "dt-complex", "jump-ops-none", "shard-text", "shard-negative",
        "shard-bool", "block-members-negative", "H-qobjevo", "H-time-list",
    ],
)
def test_wrong_types_name_the_keyword(tmp_path, field, call):
    msg = refused(field, lambda: call(tmp_path / "s"))
    if field == "H":
        assert "time-dependent" in msg and "[[drive]]" in msg
    assert not (tmp_path / "s").exists()


# ----- M5: tsave is one axis of numbers


@pytest.mark.parametrize(
    "tsave",
    [np.array([[0.0, 0.5], [0.75, 1.0]]), ["0", "1"], [0.0, "1"]],
    ids=["2-D", "text", "mixed"],
)
def test_mesolve_refuses_tsave_that_is_not_one_axis_of_numbers(tsave):
    refused("tsave", lambda: me(tsave=tsave))


def test_mesolve_takes_a_single_time_as_one_sample():
    """A scalar (or 0-d) tsave is one sample time, as [t] is."""
    want = me(tsave=[0.5])["energy_b"]
    for t in (0.5, np.array(0.5), np.float32(0.5)):
        assert np.array_equal(me(tsave=t)["energy_b"], want)


def test_keywords_take_any_integer_real_and_name_types(tmp_path):
    """The checks refuse wrong types, not other spellings of right ones: numpy and 0-d
    integers, Fraction and Decimal reals, any iterable of names; and a 2-D batch of Qobj is
    not taken for QuTiP's time-dependent list."""
    from decimal import Decimal
    from fractions import Fraction

    base = qb.run(BLOCH, backend="cpu", progress=False, seed=3, ensemble=20)
    for seed, ensemble in ((np.int64(3), np.uint8(20)), (np.array(3), np.array(20))):
        r = qb.run(BLOCH, backend="cpu", progress=False, seed=seed, ensemble=ensemble)
        assert np.array_equal(r.series, base.series)
    want = me(dt=0.01)["energy_b"]
    for dt in (Fraction(1, 100), Decimal("0.01"), np.float64(0.01), np.array(0.01)):
        assert np.array_equal(me(dt=dt)["energy_b"], want)
    names = me(measures=["energy_b", "purity"])
    for measures in ({"energy_b": 0, "purity": 1}.keys(), ("energy_b", "purity"), iter(["energy_b", "purity"])):
        assert np.array_equal(me(measures=measures)["purity"], names["purity"])


# ----- M6: an emptied manifest


def test_open_refuses_a_manifest_that_does_not_list_the_runs_files(tmp_path):
    d = qb.run(BLOCH, backend="cpu", progress=False).save(tmp_path / "o", plots=False)
    assert qb.open(d).series is not None
    manifest = d / ".qbat-manifest.json"
    full = json.loads(manifest.read_text())
    manifest.write_text('{"files": []}')
    with pytest.raises(qb.ConfigError, match="damaged.*run.json") as e:
        qb.open(d)
    assert e.value.field == str(manifest) and e.value.exit_code == 2
    # series.npy listed without its series.json: damaged too, not read unchecked
    full["files"] = [f for f in full["files"] if f["name"] != "series.json"]
    manifest.write_text(json.dumps(full))
    with pytest.raises(qb.ConfigError, match="series.json"):
        qb.open(d)


@pytest.mark.parametrize(
    "field, kw",
    [
        ("dt", {"dt": np.array(True)}),
        ("dt", {"dt": np.array("0.01")}),
        ("dt", {"dt": 10**400}),
        ("measures", {"measures": {"energy_b", "purity"}}),
        ("measures", {"measures": np.array("energy_b")}),
        ("verify", {"verify": np.array(True)}),
    ],
    ids=["dt-bool-array", "dt-text-array", "dt-overflow", "measures-set", "measures-0d-text", "verify-bool-array"],
)
def test_look_alike_arguments_are_refused(field, kw):
    """Not a real (a bool or text array, an int beyond f64), not an ordered list of names (a set,
    whose order would change the columns from one process to the next)."""
    refused(field, lambda: me(**kw))


def test_a_bad_rayon_num_threads_is_refused_until_mended():
    """RAYON_NUM_THREADS that is not a number: an OSError naming it, and, once mended in the same
    process (before the pool started), the run goes."""
    code = textwrap.dedent(
        """
        import os, qbat_gpu as qb
        cfg = {"model": "bloch-charger", "time": {"dt": 0.01, "t_end": 0.1, "samples": 3}}
        os.environ["RAYON_NUM_THREADS"] = "junk"
        try:
            qb.run(cfg, backend="cpu", progress=False)
            print("ran")
        except OSError as e:
            print("refused", "RAYON_NUM_THREADS" in str(e))
        os.environ["RAYON_NUM_THREADS"] = "2"
        print(len(qb.run(cfg, backend="cpu", progress=False)))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["refused", "True", "1"], out.stdout + out.stderr


# ----- a mesolve batch whose members cannot be built under the address-space limit

BATCH_UNDER_LIMIT = textwrap.dedent("""
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    import numpy as np, qbat_gpu as qb
    ket = np.zeros(4, dtype=complex); ket[1] = 1.0
    try:
        qb.mesolve(np.diag([-2., 0, 0, 2]), [], np.broadcast_to(ket, (3_000_000, 4)), [0.0, 0.5, 1.0],
                   dt=0.01, backend="cpu", measures=["energy_b"], progress=False)
        print("RAN")
    except qb.ConfigError as e:
        print("REFUSED", e.field, e.exit_code, e)
""")


def test_a_mesolve_batch_beyond_the_address_space_limit_is_refused_not_an_abort():
    """3e6 members under a 3 GiB limit: the check counted 264 bytes a member (0.8 GB), and the
    members' states and plan, about 870 bytes each, aborted the interpreter as they were built."""
    p = subprocess.run([sys.executable, "-c", BATCH_UNDER_LIMIT], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    out = p.stdout.strip()
    # (refused by the check before the arrays, not by the one after the plan is built)
    assert out.startswith("REFUSED rho0 2 ") and "for its arrays alone" in out and "smaller qb.mesolve calls" in out, out


def test_a_verify_beyond_its_tolerance_is_a_warning(tmp_path, monkeypatch):
    """The CLI's WARNING of a failed --verify was the report's own, so a study or run from
    Python said nothing: member 1 made NaN (an injected fault) deviates without bound."""
    from conftest import BLOCH
    monkeypatch.setenv("QBAT_INJECT_FAULT", "nan-member=1")
    with pytest.warns(qb.QbatWarning, match="verify found deviations beyond tolerance: .*member 1"):
        s = qb.study(BLOCH, tmp_path / "s", backend="cpu", verify=100, progress=False, plots=False)
    assert json.loads((s.dir / "run.json").read_text())["verify"]["pass"] is False


def test_a_config_path_with_an_equals_sign_is_read_as_a_path(tmp_path):
    """A string with '=' was always TOML text: `runs/a=3/job.toml` failed as an unquoted key."""
    from conftest import BLOCH
    d = tmp_path / "a=3"
    d.mkdir()
    (d / "job.toml").write_text(BLOCH)
    r = qb.run(str(d / "job.toml"), backend="cpu", verify=0, progress=False)
    assert np.array_equal(r.series, qb.run(BLOCH, backend="cpu", verify=0, progress=False).series)
    # a string with '=' that names no file stays TOML text (its error is the parser's, not a
    # path's that cannot be read)
    with pytest.raises(qb.ConfigError) as e:
        qb.run(str(d / "missing=1.toml"), backend="cpu", progress=False)
    assert "cannot read" not in str(e.value) and e.value.field != "CONFIG", str(e.value)


# ----- files edited, their manifest entries written again to match


def _damaged(src, dst, name, edit):
    """A copy of the run `src` at `dst` with `name` edited by `edit` (bytes -> bytes) and its
    manifest entry written again to match it (the manifest is no seal)."""
    import shutil

    import blake3

    shutil.copytree(src, dst)
    path = dst / name
    path.write_bytes(edit(path.read_bytes()))
    manifest = dst / ".qbat-manifest.json"
    m = json.loads(manifest.read_text())
    for f in m["files"]:
        if f["name"] == name:
            data = path.read_bytes()
            f.update(bytes=len(data), blake3=blake3.blake3(data).hexdigest())
            f.pop("identity", None)
    manifest.write_text(json.dumps(m))
    return dst


@pytest.mark.parametrize(
    "fmt, name, edit, named",
    [
        ("npy", "summary.csv", lambda b: b.replace(b"member,", b"membre,", 1), "summary.csv"),
        ("npy", "summary.csv", lambda b: b.replace(b"\n", b"\n\xff", 1), "summary.csv"),
        ("npy", "run.json", lambda b: b"{not json", "run.json"),
        ("npy", "run.json", lambda b: b"[]", "run.json"),
        ("npy", "run.json", lambda b: b.replace(b'"measures": [', b'"measures": ["purity", ', 1), "series.npy"),
        ("npy", "series.json", lambda b: b.replace(b'"times"', b'"tiems"', 1), "series.json"),
        ("npy", "series.npy", lambda b: b[: len(b) - (len(b) - 128) // 2], "series.npy"),
        ("csv", "series.csv", lambda b: b + b"1,0.0,0.5\n", "series.csv"),
    ],
    ids=["summary-header", "summary-not-utf8", "run-not-json", "run-a-list", "run-extra-measure", "series-json-no-times", "series-npy-short", "series-csv-row"],
)
def test_open_refuses_files_not_as_qbat_gpu_writes_them_naming_them(tmp_path, fmt, name, edit, named):
    """Each raised a bare KeyError, JSONDecodeError, AttributeError or UnicodeDecodeError, or
    opened and failed later (to_xarray's IndexError), where the manifest matched the edit."""
    d = qb.run(BLOCH, backend="cpu", verify=0, progress=False).save(tmp_path / "o", format=fmt, plots=False)
    assert qb.open(d).series is not None
    bad = _damaged(d, tmp_path / "bad", name, edit)
    with pytest.raises(qb.ConfigError) as e:
        qb.open(bad)
    assert e.value.field.endswith(named) and e.value.exit_code == 2, (e.value.field, str(e.value))


def test_a_superoperator_is_refused_where_an_operator_is_wanted():
    """qutip.spre(sigmaz) is 4x4: it was integrated as the two-qubit Hamiltonian, where
    qutip.mesolve takes a superoperator as the Liouvillian."""
    ket = np.zeros(4, dtype=complex)
    ket[1] = 1.0
    for H, jumps, field in [(qutip.spre(qutip.sigmaz()), [], "H"), (np.diag([-2.0, 0, 0, 2]).astype(complex), [qutip.spre(qutip.sigmam())], "jump_ops[0]")]:
        with pytest.raises(qb.ConfigError, match="superoperator") as e:
            qb.mesolve(H, jumps, ket, [0.0, 1.0], dt=0.01, backend="cpu")
        assert e.value.field == field, e.value.field
    # a vectorised one-qubit density matrix (4, 1) ran as the two-qubit ket |ee>
    vec = qutip.operator_to_vector(qutip.fock_dm(2, 1))
    for rho0 in (vec, vec.dag()):
        with pytest.raises(qb.ConfigError, match="vectorised operator") as e:
            qb.mesolve(np.diag([-2.0, 0, 0, 2]).astype(complex), [], rho0, [0.0, 1.0], dt=0.01, backend="cpu")
        assert e.value.field == "rho0" and "ket (4,)" in str(e.value), str(e.value)
    with pytest.raises(qb.ConfigError, match="vectorised operator.*the operator itself") as e:
        qb.mesolve(np.diag([-2.0, 0, 0, 2]).astype(complex), [], np.eye(4) / 4, [0.0, 1.0], dt=0.01, backend="cpu", h_battery=qutip.operator_to_vector(qutip.sigmaz()))
    assert e.value.field == "h_battery", e.value.field
