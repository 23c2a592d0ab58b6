"""A run's configuration: every option of :func:`~noisyseg_ext.training.options.all_options` with
its value, checked once, readable as attributes (``config.lr``) and written to ``config.json``.

Sources, later ones winning: the options' defaults, a ``--config`` file (YAML or JSON, keys as the
options' names with ``_`` or ``-``), then explicit overrides (the command line, or keyword
arguments of :func:`make_config`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, Iterator, Optional

from noisyseg_ext.errors import ConfigError
from noisyseg_ext.training.options import RESUME_FREE, Option, all_options


def _options() -> dict[str, Option]:
    return {o.name: o for o in all_options()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


class Config(Mapping):
    """Immutable mapping option name -> value, also readable as attributes."""

    def __init__(self, values: Mapping[str, Any]):
        options = _options()
        unknown = sorted(set(values) - set(options))
        if unknown:
            raise ConfigError(f"unknown option(s): {', '.join(unknown)}")
        full = {name: o.default for name, o in options.items()}
        full.update(values)
        object.__setattr__(self, "_values", full)
        self._check()

    def _check(self) -> None:
        from noisyseg_ext.methods.registry import METHODS

        v = self._values
        if v["method"] not in METHODS:
            raise ConfigError(f"unknown method {v['method']!r}; choose one of {', '.join(sorted(METHODS))}")
        total = v["meta_fraction"] + v["val_fraction"] + v["test_fraction"]
        if total >= 1.0:
            raise ConfigError(f"--meta-fraction + --val-fraction + --test-fraction = {total:g} leaves no training "
                              "split (must be < 1)")

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"Config has no option {name!r}") from None

    def __setattr__(self, name, value):
        raise AttributeError("Config is immutable: use config.replace(name=value)")

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Config({self._values!r})"

    def replace(self, **changes) -> "Config":
        """A copy with ``changes`` applied (each parsed and checked like a command-line value)."""
        return Config({**self._values, **convert(changes)})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples as lists)."""
        return {k: _jsonable(v) for k, v in self._values.items()}

    def differences(self, other: "Config", ignore=RESUME_FREE) -> list[str]:
        """Names of the options whose values differ (``ignore``-d ones excepted), sorted."""
        a, b = self.to_dict(), other.to_dict()
        return sorted(k for k in set(a) | set(b) if k not in ignore and a.get(k) != b.get(k))


def convert(values: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """Parse and check each value by its option (keys may use '-' for '_'); raises ConfigError for an
    unknown key or a bad value."""
    options = _options()
    out = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in options:
            src = f" in {where}" if where else ""
            raise ConfigError(f"unknown option {key!r}{src}")
        out[name] = options[name].convert(value, where)
    return out


def read_config_file(path: str) -> dict[str, Any]:
    """The options of a YAML (.yaml / .yml) or JSON file, parsed and checked."""
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path} does not exist")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if path.endswith((".yaml", ".yml")):
            import yaml

            raw = yaml.safe_load(text) or {}
        else:
            raw = json.loads(text)
    except Exception as exc:  # a parse error of either format
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of option names to values")
    raw.pop("version", None)  # config.json records the package version; it is not an option
    return convert(raw, where=path)


def make_config(config_file: Optional[str] = None, **overrides) -> Config:
    """A checked :class:`Config`: defaults, then ``config_file`` (YAML / JSON), then ``overrides``.

    Example::

        cfg = make_config(data="hc18-sample", method="baseline", noise="dilation", ratio=0.4, steps=300)
    """
    values = read_config_file(config_file) if config_file else {}
    values.update(convert(overrides))
    return Config(values)


def default_out(config: Config) -> str:
    """The run folder when --out is not given: runs/<method>-<noise>-<ratio>-s<seed>."""
    noise = "clean" if config.noise == "none" else f"{config.noise}-{config.ratio:g}"
    return os.path.join("runs", f"{config.method}-{noise}-s{config.seed}")
