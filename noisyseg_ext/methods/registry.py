"""The registry of training methods: ``--method NAME`` -> a :class:`~noisyseg_ext.methods.base.Method`
subclass. A new method is one class decorated with :func:`register_method` in a module listed in
``_METHOD_MODULES`` (imported when the registry is first read)."""

from __future__ import annotations

import importlib

from noisyseg_ext.errors import ConfigError

_REGISTERED: dict[str, type] = {}

# Modules whose import registers methods; extend when adding a module.
_METHOD_MODULES = ("noisyseg_ext.methods.supervised", "noisyseg_ext.methods.mean_teacher",
                   "noisyseg_ext.methods.meta.mwnet", "noisyseg_ext.methods.meta.l2rw",
                   "noisyseg_ext.methods.meta.mcpm")


def register_method(cls: type) -> type:
    """Class decorator: registers ``cls`` under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in _REGISTERED and _REGISTERED[cls.name] is not cls:
        raise ValueError(f"method {cls.name!r} registered twice ({_REGISTERED[cls.name].__name__}, {cls.__name__})")
    _REGISTERED[cls.name] = cls
    dict.__setitem__(METHODS, cls.name, cls)  # also when registered after the first read
    return cls


class _Methods(dict):
    """A dict that imports the method modules on first access."""

    _loaded = False

    def _load(self) -> None:
        if not self._loaded:
            type(self)._loaded = True
            for mod in _METHOD_MODULES:
                importlib.import_module(mod)
            self.update(_REGISTERED)

    def __getitem__(self, k):
        self._load()
        return super().__getitem__(k)

    def __contains__(self, k):
        self._load()
        return super().__contains__(k)

    def __iter__(self):
        self._load()
        return super().__iter__()

    def __len__(self):
        self._load()
        return super().__len__()

    def keys(self):
        self._load()
        return super().keys()

    def values(self):
        self._load()
        return super().values()

    def items(self):
        self._load()
        return super().items()


METHODS: dict[str, type] = _Methods()


def get_method(name: str) -> type:
    """The Method class registered as ``name``; ConfigError listing the known ones otherwise."""
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; choose one of {', '.join(sorted(METHODS))}")
    return METHODS[name]
