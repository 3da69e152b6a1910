"""Config normalisation: a dict with the TOML's structure, a TOML string, or a path -> TOML text."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any, Mapping, Union

import numpy as np

from ._native import ConfigError

ConfigLike = Union[Mapping[str, Any], str, "os.PathLike[str]"]

def config_error(field: str, reason: str) -> ConfigError:
    """A ConfigError as the native ones are: "field: reason", with .field and .exit_code (2).
    A lone surrogate in the field (a dict key's) is shown escaped: the message must print."""
    field = field.encode("utf-8", "backslashreplace").decode("utf-8")
    err = ConfigError(f"{field}: {reason}")
    err.field = field
    err.exit_code = 2
    return err


def show(v: Any) -> str:
    """A value as an error quotes it: its repr where short, else its type's name."""
    r = repr(v)
    return r if len(r) <= 40 and "\n" not in r else type(v).__name__


def flag(name: str, v: Any) -> bool:
    """A keyword that is a switch: True or False (Python's or numpy's), not 0, 1 or None."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    raise config_error(name, f"must be True or False, got {show(v)}")


def path_arg(name: str, v: Any) -> str:
    """A path keyword (str, bytes or os.PathLike) as `os.fsdecode` gives it, which the native
    layer encodes back to the same bytes (a name that is not UTF-8 included)."""
    try:
        p = os.fsdecode(v)
    except TypeError:
        raise config_error(name, f"must be a path (str, bytes or os.PathLike), got {show(v)}") from None
    if "\0" in p:
        raise config_error(name, "contains a NUL character: not a path")
    return p


# The largest config file read (the CLI's limit).
CONFIG_LIMIT = 4 << 20


def _scalar(v: Any, where: str) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        x = float(v)
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return repr(x)  # shortest round-trip text: the same f64 after parsing
    if isinstance(v, (complex, np.complexfloating)):
        return f"[{_scalar(float(v.real), where)}, {_scalar(float(v.imag), where)}]"
    if isinstance(v, str):
        return toml_string(v, where)
    if isinstance(v, os.PathLike):
        return toml_string(os.fspath(v), where)
    raise config_error(where, f"cannot write a {type(v).__name__} into the config")


def toml_string(text: str, where: str) -> str:
    """`text` as a TOML basic string. json's escapes are TOML's, but with its default
    ensure_ascii a character outside the BMP becomes a surrogate pair of escapes, which TOML
    refuses: other characters are written as they are, and DEL, which TOML wants escaped and
    json leaves, as \\u007f. A lone surrogate is no character: refused naming `where`."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise config_error(where, f"is not valid Unicode text: {e.reason} at character {e.start}") from None
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


# The deepest nesting of lists and tables in a value (the TOML parser's own limit).
MAX_NESTING = 80


def too_long() -> ConfigError:
    """The refusal of a dict whose text passes what a config may hold (the native layer's
    words, which also give the length of a text it is handed)."""
    return config_error("config", f"its TOML text is more than the {CONFIG_LIMIT} bytes a config may hold; sweep many points with a linspace or uniform axis, or split them across runs")


class _Budget:
    """The bytes of text still free as a dict's TOML is written: each value spends what it adds
    itself (a scalar's text, a list's brackets and commas, a table's keys), so that a dict whose
    text passes CONFIG_LIMIT is refused while it is written (a dict of shared references holds
    2^40 leaves in a few kilobytes)."""

    def __init__(self) -> None:
        self.left = CONFIG_LIMIT

    def spend(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise too_long()


def _value(v: Any, where: str, budget: _Budget, depth: int = 0, top: str = "") -> str:
    """The TOML of `v`, at `where`; `top` is the config key that holds it (as `where` is at
    depth 0), named where `v` nests too deep."""
    top = top or where
    if isinstance(v, np.ndarray):
        # (each entry writes at least one digit and a comma: a view of 2^40 entries is refused
        # before its list is built)
        if 2 * v.size > budget.left:
            raise too_long()
        v = v.tolist()
    if isinstance(v, (Mapping, list, tuple)) and depth >= MAX_NESTING:
        # (a list or dict that contains itself would recurse until Python's RecursionError)
        raise config_error(top, f"is nested more than {MAX_NESTING} deep (a list or dict that contains itself?)")
    if isinstance(v, Mapping):
        keys = [_key(k, f"{where}.{k}") for k in v]
        # ("{ " and " }", each "k = " and ", "; "{}" when empty: the text this table adds itself)
        budget.spend(2 + sum(len(k.encode("utf-8")) + 5 for k in keys))
        items = ", ".join(f"{kt} = {_value(x, f'{where}.{k}', budget, depth + 1, top)}" for kt, (k, x) in zip(keys, v.items()))
        return "{ " + items + " }" if items else "{}"
    if isinstance(v, (list, tuple)):
        # ("[" and "]", each ", ")
        budget.spend(max(2, 2 * len(v)))
        return "[" + ", ".join(_value(x, f"{where}[{i}]", budget, depth + 1, top) for i, x in enumerate(v)) + "]"
    if hasattr(v, "full") and callable(v.full):  # a qutip.Qobj
        return _value(np.asarray(v.full()), where, budget, depth, top)
    text = _scalar(v, where)
    # (its UTF-8 bytes: a string's characters outside ASCII are written as they are)
    budget.spend(len(text.encode("utf-8")))
    return text


def _key(k: Any, where: str) -> str:
    """`k` as a TOML key, at `where` (its dotted path)."""
    k = str(k)
    # (a bare key is ASCII letters, digits, '_' and '-' only)
    if k and all(c.isascii() and (c.isalnum() or c in "_-") for c in k):
        return k
    return toml_string(k, where)


def dict_to_toml(config: Mapping[str, Any]) -> str:
    """TOML text of a config dict: top-level tables become [sections], deeper ones inline tables.

    Floats are written with their shortest round-trip text, so the parsed values are exactly
    those of the dict.
    """
    lines = []
    budget = _Budget()
    for k, v in config.items():
        if not isinstance(v, Mapping):
            lines.append(f"{_key(k, str(k))} = {_value(v, str(k), budget)}")
    for k, v in config.items():
        if isinstance(v, Mapping):
            lines.append(f"[{_key(k, str(k))}]")
            for kk, vv in v.items():
                lines.append(f"{_key(kk, f'{k}.{kk}')} = {_value(vv, f'{k}.{kk}', budget)}")
    return "\n".join(lines) + "\n"


def config_text(config: ConfigLike) -> str:
    """The TOML text of `config`: a dict, a TOML string, or a path to a TOML file.

    A string that contains a newline, or contains '=' and names no file, is TOML text; any
    other string is a path (``"runs/a=3/job.toml"`` too, where that file exists), as are bytes
    and an os.PathLike.
    """
    if isinstance(config, Mapping):
        return _unicode(dict_to_toml(config))
    if isinstance(config, bytes):  # always a path (as os.fsencode gives it), never TOML text
        config = Path(os.fsdecode(config))
    if isinstance(config, (str, os.PathLike)):
        if isinstance(config, str) and ("\n" in config or ("=" in config and not os.path.isfile(config))):
            return _unicode(config)
        path = Path(config)

        def refused(why: str) -> ConfigError:
            return config_error("CONFIG", why)

        if "\0" in os.fsdecode(path):
            raise refused(f"{show(os.fsdecode(path))}: contains a NUL character: not a path")
        # as the CLI reads it: a regular file (a FIFO would wait, /dev/zero never end), at most
        # CONFIG_LIMIT bytes
        try:
            with open(path, "rb", opener=lambda p, flags: os.open(p, flags | getattr(os, "O_NONBLOCK", 0))) as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    raise refused(f"{path}: is not a regular file")
                data = f.read(CONFIG_LIMIT + 1)
        except OSError as e:
            raise refused(f"cannot read {path}: {e.strerror or e}") from None
        if len(data) > CONFIG_LIMIT:
            raise refused(f"{path}: is larger than {CONFIG_LIMIT} bytes: not a config")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise refused(f"{path}: is not UTF-8 text") from None
    raise config_error("config", f"must be a dict, TOML text or a path (str, bytes or os.PathLike), got {show(config)}")


def _unicode(text: str) -> str:
    """Config text that can be handed on as UTF-8: a lone surrogate (from a file name decoded
    with surrogateescape, or an escape) is refused naming the config."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise config_error("CONFIG", f"is not valid Unicode text: {e.reason} at character {e.start}") from None
    return text
