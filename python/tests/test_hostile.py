"""Damaged and hostile input through Python: refused with a one-line error naming the field or
the file, never a user's file replaced, never a hang."""

from __future__ import annotations

import os

import numpy as np
import pytest

import qbat_gpu as qb
from conftest import BLOCH, same_bits


def test_a_saved_run_read_back_is_saved_under_the_runs_own_rules(tmp_path):
    a = qb.run(BLOCH, backend="cpu", progress=False).save(tmp_path / "a", format="npy", plots=False)
    b = qb.run(BLOCH.replace("gamma = 0.05", "gamma = 0.5"), backend="cpu", progress=False).save(tmp_path / "b", format="npy", plots=False)
    # a directory of the user's: never written into, even with force
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "run.json").write_text("my notes")
    with pytest.raises(qb.ConfigError, match="not a qbat-gpu output"):
        qb.open(b).save(mine, format="npy", force=True)
    assert (mine / "run.json").read_text() == "my notes"
    # over another run: its files replaced whole, a user's file beside them kept
    (a / "notes.txt").write_text("mine")
    qb.open(b).save(a, format="npy", force=True)
    assert (a / "notes.txt").read_text() == "mine"
    got, want = qb.open(a), qb.open(b)
    assert got.info["config"] == want.info["config"]
    assert same_bits(got.series, want.series)


def test_open_reads_only_the_files_the_run_wrote(tmp_path):
    out = qb.run(BLOCH, backend="cpu", progress=False).save(tmp_path / "o", format="npy", plots=False)
    data = bytearray((out / "series.npy").read_bytes())
    data[-1] ^= 1
    (out / "series.npy").write_bytes(bytes(data))
    with pytest.raises(qb.ConfigError, match="series.npy"):
        qb.open(out)


def test_a_config_that_is_not_a_file_is_refused_at_once(tmp_path):
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)
        with pytest.raises(qb.ConfigError, match="not a regular file"):
            qb.run(fifo, backend="cpu", progress=False)
    if os.path.exists("/dev/zero"):
        with pytest.raises(qb.ConfigError, match="not a regular file"):
            qb.run("/dev/zero", backend="cpu", progress=False)


def test_bad_states_and_outputs_are_named(tmp_path):
    rho = np.diag([1.0, 0, 0, 0]).astype(complex)
    nan = rho.copy()
    nan[2, 3] = nan[3, 2] = np.nan
    h = np.diag([1.0, 0.5, -0.5, -1.0]).astype(complex)
    with pytest.raises(qb.ConfigError, match="must be finite"):
        qb.mesolve(h, [], np.stack([rho, nan]), [0.0, 0.5], dt=0.01, backend="cpu", progress=False)
    # entries far beyond a density matrix's: refused, not an eigen-solve that never ends
    with pytest.raises(qb.ConfigError, match="not a density matrix"):
        qb.measures.concurrence(np.diag([1e308] * 4).astype(complex))
    with pytest.raises(qb.ConfigError, match="^out: "):
        qb.study(BLOCH, "", backend="cpu", progress=False)
    # a newline in a user's key stays inside the one line
    with pytest.raises(qb.ConfigError) as e:
        qb.run(BLOCH.replace("gamma = 0.05", '"gam\\nma" = 0.05'), backend="cpu", progress=False)
    assert "\n" not in str(e.value)


# ----- the Python API, hostile round: paths, flags, batches, forks, replaced directories


def test_a_directory_whose_name_is_not_utf8_is_returned_as_named(tmp_path):
    """study, save and merge return the directory the caller named: a name that is not UTF-8
    came back with U+FFFD, a path that does not exist (and study then raised)."""
    out = os.fsdecode(os.fsencode(str(tmp_path)) + b"/st\xfe")
    r = qb.study(BLOCH, out, backend="cpu", progress=False, plots=False)
    assert os.fsencode(r.dir) == os.fsencode(str(tmp_path)) + b"/st\xfe" and r.dir.is_dir()
    saved = r.save(os.fsencode(str(tmp_path)) + b"/sv\xfe", plots=False)
    assert saved.is_dir() and qb.open(saved).info["config"] == r.info["config"]
    shards = [qb.study(BLOCH, os.fsdecode(os.fsencode(str(tmp_path)) + b"/s%d\xfe" % k), shard=(k, 2), backend="cpu", progress=False, plots=False).dir for k in range(2)]
    merged = qb.merge(shards, os.fsencode(str(tmp_path)) + b"/m\xfe", plots=False)
    assert merged.dir.is_dir() and same_bits(merged.series, r.series)


@pytest.mark.parametrize(
    "field, call",
    [
        ("series", lambda r, p: r.save(p, series=0)),
        ("plots", lambda r, p: r.save(p, plots=None)),
        ("force", lambda r, p: r.save(p, force="yes")),
        ("resume", lambda r, p: qb.study(BLOCH, p, resume=1, backend="cpu", progress=False)),
        ("allow_mixed_backends", lambda r, p: qb.study(BLOCH, p, allow_mixed_backends=1, backend="cpu", progress=False)),
        ("force", lambda r, p: qb.merge([p], p / "m", force=1)),
        ("out", lambda r, p: r.save(5)),
        ("out", lambda r, p: qb.study(BLOCH, "a\0b", backend="cpu", progress=False)),
        ("dirs", lambda r, p: qb.merge(7, p / "m")),
        ("params.j", lambda r, p: qb.run({"model": "bloch-charger", "params": {"j": {1, 2}}}, backend="cpu", progress=False)),
        ("CONFIG", lambda r, p: qb.run("no\0such.toml", backend="cpu", progress=False)),
        ("CONFIG", lambda r, p: qb.run('model = "\ud800"\n', backend="cpu", progress=False)),
        ("config", lambda r, p: qb.run(123, backend="cpu", progress=False)),
    ],
    ids=["save-series-int", "save-plots-none", "save-force-text", "study-resume-int", "study-mixed-int", "merge-force-int",
         "save-out-int", "study-out-nul", "merge-dirs-int", "dict-set-value", "config-path-nul", "config-lone-surrogate",
         "config-int"],
)
def test_wrong_flags_paths_and_config_values_name_the_keyword(tmp_path, field, call):
    """A ConfigError whose .field and message name what was wrong (PyO3's TypeError named
    nothing; a dict config's unsupported value had no .field; a NUL or lone surrogate gave
    ValueError or UnicodeEncodeError), and nothing written."""
    r = qb.run(BLOCH, backend="cpu", progress=False)
    with pytest.raises(qb.ConfigError) as e:
        call(r, tmp_path / "o")
    assert e.value.field == field and str(e.value).startswith(f"{field}: ") and e.value.exit_code == 2, str(e.value)
    assert not (tmp_path / "o").exists()


def test_a_config_path_given_as_bytes_is_read(tmp_path):
    """bytes are a path (as os.fsencode gives it), even one whose name has an '=' in it."""
    cfg = tmp_path / "a=b.toml"
    cfg.write_text(BLOCH)
    got = qb.run(os.fsencode(str(cfg)), backend="cpu", progress=False)
    assert same_bits(got.series, qb.run(BLOCH, backend="cpu", progress=False).series)


def test_battery_measures_of_hostile_batches_are_refused_or_empty():
    """An empty batch of any d is empty (d = 100000 aborted the interpreter allocating a d x d
    matrix); an h beyond a config's 1e60 bound is refused naming it (1e308 gave NaN); bad
    shapes and mixed Qobj/array lists name the argument."""
    import qutip

    empty = np.empty((0, 100000, 100000), complex)
    assert qb.measures.ergotropy(empty, empty).shape == (0,)
    rho = np.diag([1.0, 0.0])
    assert qb.measures.ergotropy(rho, np.diag([1e60, 0.0])) == pytest.approx(1e60)
    with pytest.raises(qb.ConfigError, match="^h: has an entry of modulus 1.000e308, beyond 1e60"):
        qb.measures.ergotropy(rho, np.full((2, 2), 1e308))
    for field, call in [
        ("rho_b", lambda: qb.measures.ergotropy(np.ones((3, 0, 0)), np.ones((0, 0)))),
        ("h", lambda: qb.measures.ergotropy(np.stack([rho] * 3), np.stack([rho] * 2))),
        ("rho", lambda: qb.measures.purity([qutip.Qobj(np.eye(4) / 4), qutip.Qobj(np.ones((3, 1)))])),
    ]:
        with pytest.raises(qb.ConfigError) as e:
            call()
        assert e.value.field == field, str(e.value)
    bell = np.zeros((4, 4))
    bell[1, 1] = bell[2, 2] = bell[1, 2] = bell[2, 1] = 0.5
    mixed = qb.measures.concurrence([qutip.Qobj(bell), bell])
    assert np.allclose(mixed, [1.0, 1.0])


def test_a_mesolve_batch_beyond_memory_is_refused_before_its_arrays_are_built():
    """H (100000, 4, 4) against rho0 (100000, 1, 4, 4) broadcast to 1e10 members: a ConfigError
    naming rho0 (numpy's MemoryError named nothing); 1e5 x 2e3 members, within the 1e9 bound,
    are weighed against the memory left before numpy allocates them."""
    H = np.broadcast_to(np.diag([0.0, 1.0, 1.0, 2.0]).astype(complex), (100000, 4, 4))
    rho = np.broadcast_to(np.eye(4, dtype=complex) / 4, (100000, 1, 4, 4))
    with pytest.raises(qb.ConfigError, match="^rho0: .* = 10000000000 members, more than 1e9") as e:
        qb.mesolve(H, [], rho, [0.0, 1.0], dt=0.01, backend="cpu")
    assert e.value.field == "rho0"
    with pytest.raises(qb.ConfigError, match="^rho0: the batch of 1000000000 members .* for its arrays alone"):
        qb._native.check_batch_arrays(1, 0, 10**9)
    qb._native.check_batch_arrays(1000, 1, 1000)


def test_a_broadcast_view_too_large_is_refused_by_its_shape_not_copied():
    """An H, jump operator or ket that is itself a broadcast view of 1e10 (or 3e8) entries: a
    ConfigError from the member bound or the memory check, where the conversion to complex
    copied the view first (numpy's MemoryError of 2.33 TiB, naming nothing). A view within
    bounds gives the bits of the materialised array."""
    H = np.diag([-2.0, 0.0, 0.0, 2.0])
    ket = np.array([0.0, 1.0, 1.0j, 0.0]) / np.sqrt(2)
    with pytest.raises(qb.ConfigError, match="^rho0: .* = 10000000000 members, more than 1e9"):
        qb.mesolve(np.broadcast_to(H, (10**5, 10**5, 4, 4)), [], ket, [0.0, 1.0], dt=0.01, backend="cpu")
    with pytest.raises(qb.ConfigError, match="^rho0: .* = 2000000000 members, more than 1e9"):
        qb.mesolve(H, [], np.broadcast_to(ket, (2 * 10**9, 4)), [0.0, 1.0], dt=0.01, backend="cpu")
    with pytest.raises(qb.ConfigError, match="for its arrays alone"):
        qb.mesolve(H, [np.broadcast_to(0.1 * np.eye(4), (3 * 10**8, 4, 4))], ket, [0.0, 1.0], dt=0.01, backend="cpu")
    rng = np.random.default_rng(1)
    kets = rng.normal(size=(3, 1, 4)) + 1j * rng.normal(size=(3, 1, 4))
    kets /= np.linalg.norm(kets, axis=-1, keepdims=True)
    L = np.zeros((4, 4)); L[0, 1] = L[2, 3] = 0.3
    Hs = np.stack([np.diag(rng.normal(size=4)) for _ in range(2)])
    view = qb.mesolve(Hs, [L], np.broadcast_to(kets, (3, 2, 4)), [0.0, 0.5], dt=0.01, backend="cpu", measures=["purity", "energy_b"])
    built = qb.mesolve(Hs, [L], np.ascontiguousarray(np.broadcast_to(kets, (3, 2, 4))), [0.0, 0.5], dt=0.01, backend="cpu", measures=["purity", "energy_b"])
    assert same_bits(view.series, built.series) and view.batch_shape == (3, 2)


@pytest.mark.parametrize("bad", [np.full((4, 4), "1"), np.full((4, 4), b"1"), np.zeros((4, 4), dtype="M8[s]"), np.full((4, 4), {}, dtype=object),
                                 np.full((4, 4), "0", dtype=object), np.full((4, 4), b"0", dtype=object), np.full((4, 4), 10**400, dtype=object),
                                 np.array([[None] * 4, ["0"] * 4] * 2, dtype=object)])
def test_arrays_of_text_dates_or_objects_are_refused_naming_the_argument(bad):
    """Text, bytes, dates and objects that are not numbers: a ConfigError naming the argument,
    where the measures raised numpy's bare ValueError or TypeError (and mesolve took the text
    "1" for the number 1). So is text in an object array (a pandas column's `to_numpy()`),
    which numpy reads as numbers, and an integer beyond the floats (numpy's OverflowError)."""
    for call, arg in [(lambda: qb.measures.concurrence(bad), "rho"), (lambda: qb.measures.ergotropy(np.eye(2) / 2, bad[:2, :2]), "h"),
                      (lambda: qb.mesolve(bad, [], np.eye(4) / 4, [0.0, 1.0], dt=0.01, backend="cpu"), "H")]:
        with pytest.raises(qb.ConfigError, match=f"^{arg}: must be numbers") as e:
            call()
        assert e.value.field == arg and e.value.exit_code == 2


def test_object_arrays_of_numbers_of_any_kind_are_taken_as_their_values():
    """An object array of numpy scalars (np.bool_ too), 0-d arrays or Python numbers gives the
    complex entries numpy gives the numbers themselves; only what is not a number is refused."""
    from qbat_gpu.measures import complex_entries

    values = [[0.25, 0.0, 1.5, -2.0], [0.0, 1.0, 0.0, 0.0], [3.0, 0.0, 0.5, 0.0], [0.0, 0.0, 0.0, 1.0]]
    def parts(z: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(z, dtype=np.complex128).view(np.float64)

    want = np.array(values, dtype=np.complex128)
    for entry in (float, np.float32, np.float64, lambda x: np.array(x), lambda x: np.array(np.float64(x), dtype=object)):
        objects = np.empty((4, 4), dtype=object)
        for i, row in enumerate(values):
            for j, x in enumerate(row):
                objects[i, j] = entry(x)
        assert same_bits(parts(complex_entries("H", objects)), parts(want)), entry
    bools = np.empty((4, 4), dtype=object)
    for i in range(4):
        for j in range(4):
            bools[i, j] = np.bool_(i == j)
    assert same_bits(parts(complex_entries("H", bools)), parts(np.eye(4)))


def test_a_dict_s_text_is_counted_as_it_is_written():
    """The bound of a dict's TOML text counts what the text holds: a dict of 4.09 MB of text is
    written (the count had charged each list 2 bytes more, 4.7 MB here, and refused it), one
    past the bound is refused, and a numpy view of 2^40 entries is refused before its list is
    built."""
    d = {"model": "x", "params": {"v": [[0.5, 0.25]] * 315_000}}
    assert 4_000_000 < len(qb.dict_to_toml(d).encode()) <= 4 << 20
    d["params"]["v"] = [[0.5, 0.25]] * 330_000
    with pytest.raises(qb.ConfigError, match="^config: its TOML text is more than the 4194304 bytes"):
        qb.dict_to_toml(d)
    with pytest.raises(qb.ConfigError, match="^config: its TOML text is more than the 4194304 bytes"):
        qb.dict_to_toml({"model": "x", "params": {"v": np.broadcast_to(0.5, (2**40,))}})


def test_a_config_of_more_text_than_a_config_file_may_hold_is_refused_before_it_is_parsed():
    """A config of more TOML text than the 4 MiB a config file may hold: a ConfigError naming the
    config, before the parse, which needs up to about 600 bytes of memory a byte of text (3
    million nested inline tables, 36 MB of text, aborted the interpreter under a 2 GiB
    address-space limit). A dict is refused as its text is written (shared references made a
    small dict of 2^40 leaves, written for ever), TOML text as given."""
    import time as clock

    time = {"dt": 0.01, "t_end": 0.1, "samples": 2}
    shared: object = 0.5
    for _ in range(40):
        shared = [shared, shared]
    empty: object = []
    for _ in range(40):
        empty = [empty, empty]
    start = clock.monotonic()
    for values in ([{"a": {}}] * 3_000_000, shared, empty):
        with pytest.raises(qb.ConfigError, match=r"^config: its TOML text is more than the 4194304 bytes a config may hold") as e:
            qb.run({"model": "spin-pair", "params": {"j1": {"values": values}}, "time": time}, backend="cpu")
        assert e.value.field == "config" and e.value.exit_code == 2
    assert clock.monotonic() - start < 60
    text = 'model = "spin-pair"\n[time]\ndt = 0.01\nt_end = 0.1\nsamples = 2\n[params]\nj1 = { values = [' + "0.5, " * 1_000_000 + "] }\n"
    with pytest.raises(qb.ConfigError, match=rf"^config: its TOML text is {len(text)} bytes, more than the 4194304 bytes a config may hold") as e:
        qb.run(text, backend="cpu")
    assert e.value.field == "config" and e.value.exit_code == 2
    # the limit itself is taken
    head = 'model = "spin-pair"\n[time]\ndt = 0.01\nt_end = 0.1\nsamples = 2\n#'
    fits = head + "x" * ((4 << 20) - len(head) - 1) + "\n"
    assert len(fits.encode()) == 4 << 20
    assert len(qb.run(fits, backend="cpu", progress=False).member_ids) == 1


def test_a_config_dict_that_contains_itself_or_nests_too_deep_is_refused_naming_its_key():
    """A dict or list that contains itself, or lists nested 3000 deep: a ConfigError naming the
    key, where writing the TOML raised Python's RecursionError (the parser takes 80 levels)."""
    time = {"dt": 0.01, "t_end": 0.1, "samples": 2}
    loop: dict = {}
    loop["x"] = loop
    ring: list = []
    ring.append(ring)
    deep: list = []
    last = deep
    for _ in range(3000):
        last.append([])
        last = last[0]
    for params, key in [({"x": loop}, "params.x"), ({"j1": ring}, "params.j1"), ({"j1": deep}, "params.j1")]:
        with pytest.raises(qb.ConfigError, match=f"^{key}: is nested more than 80 deep") as e:
            qb.run({"model": "spin-pair", "params": params, "time": time}, backend="cpu")
        assert e.value.field == key and e.value.exit_code == 2


def test_a_forked_child_reads_outputs_and_is_refused_the_pool_not_left_waiting(tmp_path):
    """After the worker threads started, a forked child has none of them: a call there that
    needs them raised nothing and waited for ever; now it says how to start the child. Reading
    an output there works, its large files hashed on one thread (a copied output's series,
    whose identity no longer matches, is hashed again: that hash had started the pool on its
    own, unrecorded, and a child then waited for ever)."""
    import select
    import shutil

    out = qb.study(BLOCH, tmp_path / "o", ensemble=400, backend="cpu", progress=False, plots=False).dir
    assert (out / "series.npy").stat().st_size > 2 << 20
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    n = len(qb.open(copy).summary)  # the pool starts here, for the hash
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        said = []
        for call in (lambda: len(qb.open(copy).summary), lambda: qb.measures.purity(np.eye(4) / 4)):
            try:
                said.append(f"ok {call()}")
            except OSError as e:
                said.append(f"OSError {e}")
            except BaseException as e:  # noqa: BLE001 - reported to the parent
                said.append(repr(e))
        os.write(w, "\n".join(said).encode()[:8000])
        os._exit(0)
    os.close(w)
    ready, _, _ = select.select([r], [], [], 60)
    if not ready:
        os.kill(pid, 9)
    os.waitpid(pid, 0)
    assert ready, "the forked child's calls did not return"
    opened, measured = os.read(r, 8192).decode().split("\n")
    assert opened == f"ok {n}", opened
    assert measured.startswith("OSError") and "forked" in measured and "spawn" in measured, measured


def test_a_result_whose_directory_was_replaced_says_so_rather_than_mix_two_runs(tmp_path):
    """A result opened from a directory that another run then replaced (force=True): its
    summary, stats and save read the new run's files beside the old run's mapped series."""
    out = tmp_path / "o"
    a = qb.study(BLOCH, out, ensemble=50, backend="cpu", progress=False, plots=False)
    assert len(a.summary) == 50
    qb.study(BLOCH, out, ensemble=10, backend="cpu", progress=False, plots=False, force=True)
    for call in (lambda: a.summary, lambda: a.stats, lambda: a.save(tmp_path / "copy")):
        with pytest.raises(qb.ConfigError, match="no longer holds the run this result was opened from") as e:
            call()
        assert e.value.field == str(out)
    assert not (tmp_path / "copy").exists()
    assert len(qb.open(out).summary) == 10


def test_a_result_outlives_an_analysis_added_to_its_directory(tmp_path, qbat_bin):
    """`qbat-gpu analyze DIR` adds analysis.csv and seals it in the manifest: the run's own files
    are unchanged, and a result opened before reads them on (it is not a replaced run)."""
    import subprocess

    cfg = BLOCH.replace('[output]', '[output]\nmeasures = ["capacity_b", "concurrence"]') if "[output]" in BLOCH else BLOCH + '[output]\nmeasures = ["capacity_b", "concurrence"]\n'
    a = qb.study(cfg, tmp_path / "o", backend="cpu", progress=False, plots=False)
    before = a.summary
    subprocess.run([qbat_bin, "analyze", str(tmp_path / "o"), "--no-plots"], check=True, capture_output=True)
    assert (tmp_path / "o" / "analysis.csv").is_file()
    assert a.summary.equals(before) and len(a.stats) > 0
    assert a.save(tmp_path / "copy", plots=False).is_dir()



def test_a_dict_s_strings_and_keys_outside_the_bmp_reach_the_parser_as_written():
    """A string or key of a dict config with a character outside the BMP was written as json's
    surrogate-pair escapes, which TOML refuses (a parse error of the whole config, not the field
    named); a non-ASCII key was written bare, which TOML refuses too; DEL raw. Now the text
    parses back to the dict, and the refusal names the field; a lone surrogate is refused
    naming its field."""
    import tomllib

    d = {"model": "a\U0001F600\x7f\"\\\n\t\u202e", "params": {"é": 1.5, "x y": "\U0001F600", "\U0001F600": [1.0]}}
    assert tomllib.loads(qb.dict_to_toml(d)) == d
    for cfg, field in [
        ({"model": "bloch-charger\U0001F600"}, "model"),
        ({"model": "bloch-charger", "params": {"\U0001F600": 1.0}}, "params.\U0001F600"),
        ({"model": "bloch-charger", "params": {"é": 1.0}}, "params.é"),
        ({"model": "bloch-charger", "params": {"j": "\ud800"}}, "params.j"),
    ]:
        with pytest.raises(qb.ConfigError) as e:
            qb.run(cfg, backend="cpu", progress=False)
        assert e.value.field == field and e.value.exit_code == 2, str(e.value)
    # a lone surrogate in a key: named escaped, so that the message prints
    with pytest.raises(qb.ConfigError) as e:
        qb.run({"model": "bloch-charger", "params": {"\ud800": 1.0}}, backend="cpu", progress=False)
    assert e.value.field == "params.\\ud800" and str(e.value).encode("utf-8"), str(e.value)


def test_measures_of_a_broadcast_view_measure_each_distinct_state_once():
    """A measure of np.broadcast_to(state, (1e10, 4, 4)) copied the view to measure it (numpy's
    MemoryError of 2.3 TiB): each distinct state is now measured once, and the result is a view
    of the batch's shape, equal bit for bit to measuring the states one by one."""
    rng = np.random.default_rng(5)

    def state(d):
        m = rng.normal(size=(d, d)) + 1j * rng.normal(size=(d, d))
        rho = m @ m.conj().T
        return rho / np.trace(rho).real

    three = np.stack([state(4) for _ in range(3)])
    one_by_one = [qb.measures.concurrence(s) for s in three]
    got = qb.measures.concurrence(np.broadcast_to(three[:, None], (3, 10**9, 4, 4)))
    assert got.shape == (3, 10**9)
    for k in (0, 1, 10**9 - 1):
        assert [float(x) for x in got[:, k]] == one_by_one
    huge = qb.measures.purity(np.broadcast_to(three[1], (10**10, 4, 4)))
    assert huge.shape == (10**10,) and huge[0] == huge[-1] == qb.measures.purity(three[1])
    # a battery state repeated against distinct Hamiltonians, and both repeated
    rho_b, hs = state(3), np.stack([np.diag([0.0, 1.0, 2.5]), np.diag([0.0, 0.7, 3.0])])
    want = [qb.measures.ergotropy(rho_b, h) for h in hs]
    got = qb.measures.ergotropy(np.broadcast_to(rho_b, (10**9, 2, 3, 3)), hs)
    assert got.shape == (10**9, 2) and [float(x) for x in got[12345]] == want
    got = qb.measures.capacity(np.broadcast_to(rho_b, (10**10, 3, 3)), np.broadcast_to(hs[0], (10**10, 3, 3)))
    assert got.shape == (10**10,) and got[99] == qb.measures.capacity(rho_b, hs[0])
    # without a repeated axis the result is the usual array, a copy of its own
    plain = qb.measures.ergotropy(np.stack([rho_b] * 2), hs)
    assert plain.flags.writeable and [float(x) for x in plain] == want
    # a refusal names the state as the caller's batch counts it, however it lies in memory
    good = np.diag([0.25] * 4).astype(complex)
    bad = good.copy()
    bad[0, 0] = 2.0
    view = np.broadcast_to(np.stack([good, bad])[:, None], (2, 5, 4, 4))
    for batch in (view, np.ascontiguousarray(view)):
        with pytest.raises(qb.ConfigError) as e:
            qb.measures.purity(batch)
        assert e.value.field == "rho[5]" and str(e.value).startswith("rho[5]: "), str(e.value)
    huge_h = np.broadcast_to(np.stack([np.diag([0.0, 1.0]), np.diag([0.0, 1e61])])[:, None], (2, 3, 2, 2))
    for h in (huge_h, np.ascontiguousarray(huge_h)):
        with pytest.raises(qb.ConfigError) as e:
            qb.measures.ergotropy(np.diag([0.5, 0.5]), h)
        assert e.value.field == "h[3]", str(e.value)


def test_save_refuses_a_series_whose_peaks_are_not_the_run_s(tmp_path):
    """Result.save writes summary.csv from the run's peaks and stats.csv from the series given:
    a series edited where it gives the peaks (energy_b, ergotropy_b, power_b,
    ergotropic_power_b) was saved beside a summary.csv that contradicts it. Now a ConfigError
    naming `series` and the member, and nothing written; an edit elsewhere is saved, with
    stats.csv computed from it; the run's own series (also as a copy) saves as before."""
    r = qb.run(BLOCH + '[output]\nmeasures = ["energy_b", "ergotropy_b", "purity"]\n', backend="cpu", progress=False)
    own = r.series
    r.save(tmp_path / "own")
    r.series = own.copy()
    r.save(tmp_path / "copy")
    assert (tmp_path / "own" / "summary.csv").read_bytes() == (tmp_path / "copy" / "summary.csv").read_bytes()
    k, member = r.measures.index("ergotropy_b"), 3
    for edit in ("raise", "nan", "first-time"):
        s = own.copy()
        if edit == "raise":
            s[member, 7, k] = s[member].max() + 1.0
        elif edit == "nan":
            s[member, 0, k] = np.nan
        else:
            # the same maximum, reached at an earlier sample
            j = int(np.argmax(s[member, :, k]))
            assert j > 0
            s[member, j - 1, k] = s[member, j, k]
        r.series = s
        with pytest.raises(qb.ConfigError) as e:
            r.save(tmp_path / edit)
        assert e.value.field == "series" and f"member {member}'s ergotropy_b" in str(e.value), (edit, str(e.value))
        assert not (tmp_path / edit).exists()
    s = own.copy()
    s[:, :, r.measures.index("purity")] *= 0.5
    r.series = s
    r.save(tmp_path / "purity")
    import pandas as pd

    stats = pd.read_csv(tmp_path / "purity" / "stats.csv")
    ours = pd.read_csv(tmp_path / "own" / "stats.csv")
    half = stats["measure"] == "purity"
    assert np.allclose(stats[half]["mean"].to_numpy(), 0.5 * ours[half]["mean"].to_numpy(), rtol=1e-15)
