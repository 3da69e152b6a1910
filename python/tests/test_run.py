"""qb.run against the CLI's own output files; Result views, xarray, save/open, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import qbat_gpu as qb
from conftest import BLOCH, SPIN_PAIR, run_cli, same_bits

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def cli_npy(qbat_bin, config_path, out, *extra):
    run_cli(qbat_bin, "run", str(config_path), "--out", str(out), "--format", "npy", "--no-plots", "--no-progress", *extra)
    return np.load(out / "series.npy"), json.loads((out / "series.json").read_text())


@pytest.mark.parametrize("text", [BLOCH, SPIN_PAIR], ids=["bloch-charger", "spin-pair"])
def test_run_equals_cli_bit_for_bit_path_string_dict(tmp_path, qbat_bin, text):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(text)
    want, axes = cli_npy(qbat_bin, cfg, tmp_path / "cli", "--backend", "cpu")
    as_dict = tomllib.loads(text)
    for config in (cfg, str(cfg), text, as_dict):
        r = qb.run(config, backend="cpu", progress=False)
        assert r.series.shape == want.shape
        assert same_bits(r.series, want), f"series differs from the CLI's for config given as {type(config).__name__}"
        assert list(r.measures) == axes["measures"]
        assert same_bits(r.times, np.array(axes["times"]))
        assert r.member_ids.tolist() == axes["members"]


def test_run_equals_cli_csv_and_overrides(tmp_path, qbat_bin):
    cfg = tmp_path / "sp.toml"
    cfg.write_text(SPIN_PAIR)
    out = tmp_path / "cli"
    run_cli(qbat_bin, "run", str(cfg), "--out", str(out), "--backend", "cpu", "--ensemble", "12", "--seed", "5", "--no-plots", "--no-progress")
    data = np.loadtxt(out / "series.csv", delimiter=",", skiprows=1)
    r = qb.run(cfg, backend="cpu", ensemble=12, seed=5, progress=False)
    m, t, k = r.series.shape
    assert m == 12
    assert same_bits(r.series.reshape(m * t, k), data[:, 2:])
    assert same_bits(np.repeat(r.member_ids.astype(float), t), data[:, 0])


def test_run_auto_backend_equals_cli(tmp_path, qbat_bin):
    """backend="auto": a hardware GPU adapter when there is one, else the CPU engine (also where
    lavapipe is the only adapter, as in CI); either way the same as the CLI with the same options."""
    cfg = tmp_path / "b.toml"
    cfg.write_text(BLOCH)
    want, _ = cli_npy(qbat_bin, cfg, tmp_path / "cli", "--verify", "2")
    r = qb.run(cfg, verify=2, progress=False)
    assert same_bits(r.series, want)
    assert r.info["backend"] in ("gpu", "cpu")


def test_result_views_and_tables(tmp_path, qbat_bin):
    r = qb.run(BLOCH, backend="cpu", progress=False)
    m, t, k = r.series.shape
    assert (m, t, k) == (10, 41, len(r.measures))
    assert r.series.dtype == np.float64
    # zero-copy: the (M, T, K) array is a view of the buffer Rust filled
    assert not r.series.flags["OWNDATA"] and r.series.base is not None
    assert r.expect.shape == (m, k, t) and np.shares_memory(r.expect, r.series)
    assert same_bits(r.expect[:, 2, :], r.series[:, :, 2])
    assert same_bits(r["energy_b"], r.series[:, :, r.measures.index("energy_b")])
    assert set(r.params) == {"j", "theta", "phi"}
    assert all(v.shape == (m,) for v in r.params.values())
    # the grid: theta varies fastest? whatever the order, it is the CLI's summary.csv
    cfg = tmp_path / "b.toml"
    cfg.write_text(BLOCH)
    run_cli(qbat_bin, "run", str(cfg), "--out", str(tmp_path / "cli"), "--backend", "cpu", "--no-plots", "--no-progress")
    import pandas as pd

    cli_summary = pd.read_csv(tmp_path / "cli" / "summary.csv")
    pd.testing.assert_frame_equal(r.summary, cli_summary)
    for name in ("j", "theta", "phi"):
        assert same_bits(r.params[name], cli_summary[name].to_numpy())
    pd.testing.assert_frame_equal(r.stats, pd.read_csv(tmp_path / "cli" / "stats.csv"))
    assert (r.health == "ok").all()
    cli_info = json.loads((tmp_path / "cli" / "run.json").read_text())
    for key in ("model", "config", "resolved", "seed", "measures", "backend", "precision", "dt", "samples"):
        assert r.info[key] == cli_info[key], key


def test_to_xarray(tmp_path):
    r = qb.run(BLOCH, backend="cpu", progress=False)
    ds = r.to_xarray()
    assert tuple(ds.sizes) == ("member", "time") or set(ds.sizes) == {"member", "time"}
    assert ds.sizes["member"] == 10 and ds.sizes["time"] == 41
    assert list(ds.data_vars) == list(r.measures)
    for k, name in enumerate(r.measures):
        assert ds[name].dims == ("member", "time")
        assert same_bits(ds[name].values, r.series[:, :, k])
    assert same_bits(ds["time"].values, r.times)
    assert ds["member"].values.tolist() == r.member_ids.tolist()
    for p in ("j", "theta", "phi"):
        assert ds[p].dims == ("member",)
        assert same_bits(ds[p].values, r.params[p])
    assert json.loads(ds.attrs["run_json"]) == r.info
    assert ds.attrs["model"] == "bloch-charger"
    # swept coordinates select members
    best = ds.ergotropy_b.max("time")
    assert best.dims == ("member",)


@pytest.mark.parametrize("fmt", ["npy", "csv"])
def test_save_writes_the_cli_files_and_open_reads_them_back(tmp_path, qbat_bin, fmt):
    cfg = tmp_path / "sp.toml"
    cfg.write_text(SPIN_PAIR)
    cli = tmp_path / "cli"
    run_cli(qbat_bin, "run", str(cfg), "--out", str(cli), "--backend", "cpu", "--format", fmt, "--no-plots", "--no-progress")
    r = qb.run(cfg, backend="cpu", progress=False)
    out = r.save(tmp_path / "saved", format=fmt, plots=False)
    names = ["summary.csv", "stats.csv"] + (["series.npy", "series.json", "summary.npy", "summary.json"] if fmt == "npy" else ["series.csv"])
    for name in names:
        assert (out / name).read_bytes() == (cli / name).read_bytes(), f"{name} differs from the CLI's"
    assert (out / "run.json").is_file()
    for d in (out, cli):
        o = qb.open(d)
        assert o.dir == d
        assert same_bits(o.series, r.series)
        assert same_bits(o.times, r.times)
        assert o.measures == r.measures
        assert o.member_ids.tolist() == r.member_ids.tolist()
        assert o.params.keys() == r.params.keys()
        for k in r.params:
            assert same_bits(o.params[k], r.params[k])
        assert (o.health == r.health).all()
        import pandas as pd

        pd.testing.assert_frame_equal(o.summary, r.summary)
        pd.testing.assert_frame_equal(o.stats, r.stats)
        assert o.info["config"] == r.info["config"]
        ds_o, ds_r = o.to_xarray(), r.to_xarray()
        assert same_bits(ds_o["energy_b"].values, ds_r["energy_b"].values)
    if fmt == "npy":
        assert isinstance(qb.open(out).series, np.memmap)
    # a non-empty directory is refused unless force
    with pytest.raises(qb.ConfigError, match="^out: "):
        r.save(out, format=fmt, plots=False)
    r.save(out, format=fmt, plots=False, force=True)


def test_save_with_plots(tmp_path):
    r = qb.run(BLOCH, backend="cpu", progress=False)
    out = r.save(tmp_path / "p", format="npy")
    assert any(p.name.startswith("plot_") and p.suffix == ".png" for p in out.iterdir())


def test_config_error_names_the_field_like_the_cli(tmp_path, qbat_bin):
    bad = tomllib.loads(BLOCH)
    bad["params"]["gama"] = 0.1
    with pytest.raises(qb.ConfigError) as e:
        qb.run(bad, backend="cpu", progress=False)
    assert isinstance(e.value, ValueError)
    assert str(e.value).startswith("params.gama: unknown parameter")
    assert e.value.field == "params.gama" and e.value.exit_code == 2
    # the same one-line message as the CLI
    cfg = tmp_path / "bad.toml"
    cfg.write_text(qb.dict_to_toml(bad))
    p = run_cli(qbat_bin, "run", str(cfg), "--out", str(tmp_path / "o"), "--no-progress", check=False)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines()[-1] == f"error: {e.value}"
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda c: c["time"].__setitem__("dt", -1.0), "time.dt"),
        (lambda c: c.__setitem__("model", "nope"), "model"),
        (lambda c: c["output"].__setitem__("measures", ["energy_b", "wat"]) if "output" in c else c.__setitem__("output", {"measures": ["wat"]}), "output.measures"),
    ],
)
def test_config_errors(mutate, field):
    c = tomllib.loads(BLOCH)
    mutate(c)
    with pytest.raises(ValueError) as e:
        qb.run(c, backend="cpu", progress=False)
    assert isinstance(e.value, qb.ConfigError)
    assert str(e.value).startswith(field + ":")


def test_toml_syntax_error_and_missing_file(tmp_path):
    with pytest.raises(qb.ConfigError, match="^config: "):
        qb.run("model = \n[params", backend="cpu", progress=False)
    with pytest.raises(qb.ConfigError, match="^CONFIG: cannot read"):
        qb.run(tmp_path / "missing.toml", backend="cpu", progress=False)
    with pytest.raises(qb.ConfigError, match="^backend: "):
        qb.run(BLOCH, backend="tpu", progress=False)


def test_option_errors_name_the_keyword_not_the_cli_flag(tmp_path):
    """An option the library names by its CLI flag (--ensemble, --out) is named by the keyword
    the Python caller wrote."""
    for ensemble, start in ((0, "ensemble: must be an integer >= 1, got 0"), (-1, "ensemble: must be an integer >= 1, got -1"), (3, "ensemble: must be a multiple of the sweep grid size 10"), (10**12, "ensemble: 1000000000000 members is more than 1e9")):
        with pytest.raises(qb.ConfigError) as e:
            qb.run(BLOCH, backend="cpu", ensemble=ensemble, progress=False)
        assert str(e.value).startswith(start) and "--" not in str(e.value)
        assert e.value.field == "ensemble" and e.value.exit_code == 2
    with pytest.raises(qb.ConfigError, match="^ensemble: must be a multiple") as e:
        qb.study(BLOCH, tmp_path / "s", backend="cpu", ensemble=3, progress=False)
    assert e.value.field == "ensemble"
    with pytest.raises(qb.ConfigError, match="^out: is empty") as e:
        qb.study(BLOCH, "", backend="cpu", progress=False)
    assert e.value.field == "out"



def test_ensemble_takes_a_whole_float_as_ensemble_size_does(tmp_path):
    """ensemble=1e5, as a physicist writes it, is read by ensemble.size's rules (the library's,
    as --ensemble 1e5): a whole float is the integer's members (it was refused as not an
    integer); a fraction, a float below 1 or above 1e9, a non-finite one and a string are
    ConfigErrors (ValueErrors) naming ensemble."""
    base = qb.run(BLOCH, backend="cpu", seed=3, ensemble=20, progress=False)
    for ensemble in (20.0, 2e1, np.float64(20.0), np.float32(20.0), np.array(20.0)):
        r = qb.run(BLOCH, backend="cpu", seed=3, ensemble=ensemble, progress=False)
        assert np.array_equal(r.series, base.series) and len(r.member_ids) == 20, repr(ensemble)
    s = qb.study(BLOCH, tmp_path / "s", backend="cpu", seed=3, ensemble=2e1, progress=False, plots=False)
    assert len(s) == 20 and np.array_equal(np.asarray(s.series), base.series)
    for ensemble, start in (
        (2.5, "ensemble: must be an integer >= 1, got 2.5"),
        (0.0, "ensemble: must be an integer >= 1, got 0"),
        # (an integer's bound is said in the same words, wherever it is checked)
        (0, "ensemble: must be an integer >= 1, got 0"),
        (-1, "ensemble: must be an integer >= 1, got -1"),
        (np.int64(-5), "ensemble: must be an integer >= 1, got -5"),
        (2**70, "ensemble: 1180591620717411303424 members is more than 1e9"),
        (True, "ensemble: must be an integer >= 1 (or a whole float: 1e5), got True"),
        (1e12, "ensemble: 1000000000000 members is more than 1e9"),
        (float("nan"), "ensemble: must be finite"),
        ("20", "ensemble: must be an integer >= 1 (or a whole float: 1e5), got '20'"),
    ):
        with pytest.raises(ValueError) as e:
            qb.run(BLOCH, backend="cpu", ensemble=ensemble, progress=False)
        assert isinstance(e.value, qb.ConfigError) and str(e.value).startswith(start), str(e.value)
        assert e.value.field == "ensemble" and e.value.exit_code == 2
    with pytest.raises(qb.ConfigError, match="^ensemble: must be an integer >= 1, got 2.5"):
        qb.study(BLOCH, tmp_path / "f", backend="cpu", ensemble=2.5, progress=False)
    assert not (tmp_path / "f").exists()


@pytest.mark.parametrize("backend", ["gpu", "auto", "cpu"])
def test_empty_adapter_is_a_config_error(tmp_path, backend):
    """adapter="" is a bad argument (a ConfigError naming adapter, as backend="tpu" is), not a
    missing device, whatever the backend and whether or not there is a GPU."""
    for adapter in ("", "  "):
        with pytest.raises(qb.ConfigError, match="^adapter: ") as e:
            qb.run(BLOCH, backend=backend, adapter=adapter, progress=False)
        assert isinstance(e.value, ValueError) and not isinstance(e.value, qb.DeviceError)
        assert e.value.field == "adapter" and e.value.exit_code == 2
    with pytest.raises(qb.ConfigError, match="^adapter: "):
        qb.study(BLOCH, tmp_path / "s", backend=backend, adapter="", progress=False)
    assert not (tmp_path / "s").exists()


def test_an_adapter_that_matches_nothing_is_a_config_error_naming_adapter():
    """adapter="nosuch" where there are adapters: the keyword's fault (a ConfigError with field
    "adapter" listing the adapters found), not a DeviceError without a field."""
    if not qb.devices():
        pytest.skip("no GPU adapter to match against")
    with pytest.raises(qb.ConfigError, match="^adapter: no adapter name contains 'nosuch'; adapters found: ") as e:
        qb.run(BLOCH, backend="gpu", adapter="nosuch", progress=False)
    assert e.value.field == "adapter" and e.value.exit_code == 2


def test_gpu_call_without_xdg_runtime_dir_says_nothing_of_it(tmp_path):
    """Without XDG_RUNTIME_DIR, Mesa's Vulkan drivers print a complaint on every adapter probe;
    the extension gives the process a private one at import, as the CLI does at start."""
    if not qb.devices():
        pytest.skip("no GPU adapter")
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    env["TMPDIR"] = str(tmp_path)  # where the private runtime directory goes
    code = (
        "import sys, qbat_gpu as qb\n"
        "assert qb.devices()\n"
        "r = qb.run(sys.argv[1], backend='gpu', verify=0, progress=False)\n"
        "print(r.info['backend'])\n"
    )
    p = subprocess.run([sys.executable, "-c", code, BLOCH], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["gpu"]
    assert "XDG_RUNTIME_DIR" not in p.stderr, p.stderr


def test_a_per_process_runtime_dir_goes_with_the_python_process(tmp_path):
    """Where the per-user runtime directory is taken (here a link someone put at its name),
    the import makes a per-process one: it was left behind by every Python process that ended
    normally. It goes at exit now, as the CLI's does (not at the exit of a child forked from the
    process), and nothing is written through the link."""
    tq = tmp_path / "tq"
    (tq / "victim").mkdir(parents=True)
    (tq / f"qbat-gpu-runtime-{os.getuid()}").symlink_to("victim")
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    env["TMPDIR"] = str(tq)
    code = (
        "import os, sys, qbat_gpu as qb\n"
        "d = os.path.join(os.environ['TMPDIR'], f'qbat-gpu-runtime-{os.getuid()}-{os.getpid()}')\n"
        "# a child forked before any call, which exits through atexit: the directory is not its\n"
        "child = os.fork()\n"
        "if child == 0:\n"
        "    sys.exit(0)\n"
        "os.waitpid(child, 0)\n"
        "assert os.path.isdir(d), 'a forked child removed the parent process runtime directory'\n"
        "r = qb.run({'model': 'bloch-charger', 'time': {'dt': 0.01, 't_end': 0.1, 'samples': 2}}, backend='cpu', verify=0, progress=False)\n"
        "print(os.path.isdir(os.path.join(os.environ['TMPDIR'], f'qbat-gpu-runtime-{os.getuid()}-{os.getpid()}')))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["True"], p.stdout  # made at the import
    assert sorted(os.listdir(tq)) == [f"qbat-gpu-runtime-{os.getuid()}", "victim"]
    assert os.listdir(tq / "victim") == []


def test_device_error_is_a_runtime_error():
    """No adapter at all (WGPU_BACKEND narrowed to a backend qbat-gpu does not open, in a
    process of its own) is a DeviceError, a RuntimeError; an adapter named that matches none
    is the keyword's ConfigError (test_an_adapter_that_matches_nothing_is_a_config_error_naming_adapter)."""
    assert issubclass(qb.DeviceError, RuntimeError)
    code = (
        "import qbat_gpu as qb\n"
        f"try:\n    qb.run({BLOCH!r}, backend='gpu', progress=False)\n"
        "except qb.DeviceError as e:\n    print(type(e).__name__, isinstance(e, RuntimeError), e.exit_code, e)\n"
    )
    env = dict(os.environ, WGPU_BACKEND="gl")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.startswith("DeviceError True 2 gpu: no GPU adapter found"), out.stdout + out.stderr
    assert 'WGPU_BACKEND="gl"' in out.stdout, out.stdout


def test_listings(qbat_bin):
    models = qb.models()
    names = [m["name"] for m in models]
    cli = run_cli(qbat_bin, "models").stdout
    for n in names:
        assert n in cli
    assert "two-qubit" in names
    ms = [m["name"] for m in qb.measures_list()]
    cli_ms = [line.split()[0] for line in run_cli(qbat_bin, "measures").stdout.splitlines() if line and not line.startswith(("summary", " "))]
    assert ms == cli_ms[: len(ms)]
    for d in qb.devices():
        assert set(d) == {"name", "type", "backend", "driver", "f64"}


def test_steady_run_and_open(tmp_path, qbat_bin, repo):
    cfg = repo / "examples" / "papers" / "002-fig3.toml"
    if not cfg.is_file():
        pytest.skip("no steady example")
    r = qb.run(cfg, backend="cpu", progress=False)
    assert np.isinf(r.times).all()
    out = r.save(tmp_path / "s", format="npy", plots=False)
    o = qb.open(out)
    assert same_bits(o.series, r.series) and np.isinf(o.times).all()


def test_in_memory_run_warns_of_a_low_fock_cutoff_as_the_study_does(tmp_path):
    """A cavity run whose Fock tail passes the threshold: qb.run gives the study's WARNING (a
    QbatWarning), keeps it in its notes, and records run.json's fock_tail, equal to
    qb.study's."""
    cfg = {"model": "cavity-cells", "params": {"g": 0.2, "alpha": [2.0, 0.0], "n_fock": 4},
           "time": {"dt": 0.01, "t_end": 0.5, "samples": 3},
           "output": {"measures": ["energy_b", "photon_number", "fock_tail"]}}
    with pytest.warns(qb.QbatWarning) as in_memory:
        r = qb.run(cfg, backend="cpu", progress=False)
    with pytest.warns(qb.QbatWarning) as streamed:
        s = qb.study(cfg, tmp_path / "s", backend="cpu", progress=False, plots=False)
    warnings = [str(w.message) for w in streamed if str(w.message).startswith("fock_tail")]
    assert len(warnings) == 1, warnings
    assert warnings[0] in [str(w.message) for w in in_memory]
    assert r.info["notes"] == s.info["notes"]
    assert r.info["fock_tail"] == s.info["fock_tail"] and r.info["fock_tail"]["flags"]["count"] == 1
    # saved, run.json holds it as the study's does
    saved = qb.open(r.save(tmp_path / "m", plots=False))
    assert saved.info["fock_tail"] == s.info["fock_tail"]


def test_pickle_of_a_run_directory_reopens_it_and_an_in_memory_run_says_what_to_do(tmp_path):
    """A directory's Result pickles as its path (opened and checked again when unpickled, with
    the same values); an in-memory one is refused with a TypeError naming save()."""
    import pickle

    r = qb.run(BLOCH, backend="cpu", progress=False)
    with pytest.raises(TypeError, match=r"r\.save\(dir\)"):
        pickle.dumps(r)
    opened = qb.open(r.save(tmp_path / "m", plots=False))
    back = pickle.loads(pickle.dumps(opened))
    assert back.dir == opened.dir and back.measures == opened.measures
    assert same_bits(np.asarray(back.series), np.asarray(r.series))
    assert same_bits(back.times, r.times) and list(back.member_ids) == list(r.member_ids)
    # the files are checked again where it is unpickled: an edited one is refused
    data = pickle.dumps(opened)
    (tmp_path / "m" / "summary.csv").write_text("member,health\n0,ok\n")
    with pytest.raises(qb.ConfigError, match="summary.csv"):
        pickle.loads(data)


def test_a_saved_mesolve_result_keeps_its_batch_shape(tmp_path):
    """qb.mesolve's batch shape is kept in run.json: qb.open of the saved result, and its pickle,
    have it, so the series reshapes as the caller's arrays did. Other runs have none."""
    import pickle

    H = np.zeros((2, 3, 4, 4), dtype=complex)
    H[..., 1, 2] = H[..., 2, 1] = np.arange(1, 4)  # (3,) broadcast against (2, 3)
    r = qb.mesolve(H, [], np.eye(4)[2], np.linspace(0, 1, 3), dt=0.01, measures="energy_b", backend="cpu")
    assert r.batch_shape == (2, 3) and r.info["config"]["mesolve"]["batch_shape"] == [2, 3]
    opened = qb.open(r.save(tmp_path / "m", plots=False))
    assert opened.batch_shape == (2, 3)
    assert json.loads((tmp_path / "m" / "run.json").read_text())["config"]["mesolve"]["batch_shape"] == [2, 3]
    assert pickle.loads(pickle.dumps(opened)).batch_shape == (2, 3)
    # members in C order of the batch: the coupling (the last axis) moves energy_b, the first
    # axis (one H for both) does not
    shaped = np.asarray(opened.series).reshape(opened.batch_shape + (3, 1))
    assert same_bits(shaped[0], shaped[1]) and not np.array_equal(shaped[0, 0], shaped[0, 2])
    plain = qb.run(BLOCH, backend="cpu", progress=False)
    assert plain.batch_shape is None
    # a pickle of an earlier version: its batch shape where run.json has none
    from qbat_gpu.result import _reopen

    d = plain.save(tmp_path / "plain", plots=False)
    assert _reopen(os.fspath(d), [4, 5]).batch_shape == (4, 5) and _reopen(os.fspath(d)).batch_shape is None


def test_a_batch_shape_that_does_not_hold_the_members_is_refused_naming_run_json():
    from qbat_gpu.result import _batch_shape

    def info(shape):
        return {"config": {"mesolve": {"batch_shape": shape}}}

    assert _batch_shape(info([2, 3]), 6, "run.json") == (2, 3)
    assert _batch_shape(info([]), 1, "run.json") == ()
    assert _batch_shape({"config": {"model": "spin-pair"}}, 6, "run.json") is None
    assert _batch_shape({"config": {"mesolve": {"members": 6}}}, 6, "run.json") is None
    for bad in ([2, 2], [True, 6], [-2, -3], [2.0, 3], "6", {"a": 6}):
        with pytest.raises(qb.ConfigError, match="batch_shape") as e:
            _batch_shape(info(bad), 6, "/x/run.json")
        assert e.value.field == "/x/run.json"


def test_save_refuses_a_format_as_a_config_error(tmp_path):
    r = qb.run(BLOCH, backend="cpu", progress=False)
    d = qb.study(BLOCH, tmp_path / "d", backend="cpu", plots=False, progress=False)
    for result, kw in ((r, {"format": "xyz"}), (d, {"format": "xyz"}), (d, {"format": "csv"}), (d, {"format": "xyz", "series": False})):
        with pytest.raises(qb.ConfigError) as e:
            result.save(tmp_path / "o", plots=False, **kw)
        assert e.value.field == "format", (kw, str(e.value))
    assert not (tmp_path / "o").exists()


def test_save_refuses_a_replaced_series_that_contradicts_the_summary(tmp_path):
    r = qb.run(BLOCH, backend="cpu", progress=False)
    # a replaced array (not edited in place) with a healthy member's non-peak value made NaN:
    # its summary row would say "ok" beside a member that is not
    s = r.series.copy()
    s[1, 3, r.measures.index("concurrence")] = np.nan
    r.series = s
    with pytest.raises(qb.ConfigError) as e:
        r.save(tmp_path / "o", plots=False)
    assert e.value.field == "series" and "\n" not in str(e.value), str(e.value)
    assert "member 1 is nonfinite in it, not ok as in the run" in str(e.value), str(e.value)
    assert not (tmp_path / "o").exists()


def test_save_refuses_states_edited_into_non_density_matrices(tmp_path):
    """Result.save wrote states.npy with NaN entries, or 7 I (trace 28), for members summary.csv
    marks ok, when r.states had been edited in place: states that differ from the run's must be
    finite, Hermitian, positive and of unit trace (to the run precision's health tolerance),
    else a one-line ConfigError naming ``states`` and nothing written. The run's own states,
    and an edit that leaves them density matrices, are saved."""
    r = qb.run(BLOCH, backend="cpu", progress=False, save_states="reduced")
    own = r.states.copy()
    r.save(tmp_path / "own", plots=False)
    for edit in ("nan", "7I", "trace", "nonherm", "nonpos"):
        r.states[...] = own
        if edit == "nan":
            r.states[2, 3, 0, 0] = np.nan
        elif edit == "7I":
            r.states[2, 3] = 7 * np.eye(4)
        elif edit == "trace":
            r.states[2, 3] *= 1.01
        elif edit == "nonherm":
            r.states[2, 3, 0, 1] += 0.01
        else:
            r.states[2, 3] = np.diag([1.2, -0.2, 0.0, 0.0])
        with pytest.raises(qb.ConfigError) as e:
            r.save(tmp_path / edit, plots=False)
        assert e.value.field == "states" and "\n" not in str(e.value) and "member 2" in str(e.value), (edit, str(e.value))
        assert not (tmp_path / edit).exists()
    # an edit that keeps a density matrix (another member's state) is saved as given
    r.states[...] = own
    r.states[2, 3] = own[0, 0]
    r.save(tmp_path / "swapped", plots=False)
    assert np.array_equal(np.load(tmp_path / "swapped" / "states.npy")[2, 3], own[0, 0])
