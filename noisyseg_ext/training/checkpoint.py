"""Checkpoints: written atomically, read with clear errors, holding everything an exact resume needs.

A checkpoint is one ``torch.save`` file (a dict): ``format`` / ``format_version`` / ``package_version``,
``step`` (steps completed), ``config`` (the run's options), ``data_info`` (classes, channels, dims,
size multiple: what ``noisyseg eval`` / ``predict`` need to rebuild the network), ``net`` (the
network's state dict), ``eval_nets`` (state dict of every evaluable network, e.g. ``student`` and
``teacher``), ``method`` (the method's modules, optimisers, extra state), ``optimizer``,
``scheduler``, ``scaler`` (fp16 GradScaler or None), ``rng`` (every random generator's state),
``trainer`` (best-so-far, timers, loss accumulators).

Atomic write: the file is written to a temporary name in the same folder, flushed and fsync'ed, then
renamed over the target (``os.replace`` is atomic on POSIX and Windows), and the folder is fsync'ed,
so a crash leaves either the old or the new checkpoint, never a truncated one.
"""

from __future__ import annotations

import os
import pickle
import random
import tempfile
import zipfile
from typing import Any

import numpy as np
import torch

from noisyseg_ext.errors import CheckpointError

FORMAT = "noisyseg-checkpoint"
FORMAT_VERSION = 1


def rng_state() -> dict[str, Any]:
    """The state of every random generator a run draws from: torch (CPU and each CUDA device),
    NumPy's global generator and Python's ``random``."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restores :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str, write) -> None:
    """Calls ``write(file)`` on a temporary file beside ``path``, fsyncs it and renames it to ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(folder)


def atomic_write_text(path: str, text: str) -> None:
    """Writes ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, lambda f: f.write(text.encode("utf-8")))


def save_checkpoint(path: str, payload: dict[str, Any]) -> None:
    """Writes ``payload`` (plus the format tags) to ``path`` atomically."""
    from noisyseg_ext import __version__

    blob = {"format": FORMAT, "format_version": FORMAT_VERSION, "package_version": __version__, **payload}
    atomic_write_bytes(path, lambda f: torch.save(blob, f))


def load_checkpoint(path: str, map_location="cpu") -> dict[str, Any]:
    """Reads a checkpoint written by :func:`save_checkpoint`.

    Raises CheckpointError (one line, naming the file) when it is missing, truncated, corrupt, not a
    noisyseg checkpoint, or of a newer format.
    """
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        # weights_only=False: the checkpoint holds NumPy / Python RNG states and the config. Only load
        # checkpoints you trust (as with any pickle).
        blob = torch.load(path, map_location=map_location, weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError,
            AttributeError, ImportError, IndexError, KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a noisyseg checkpoint")
    if int(blob.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {blob['format_version']}; this noisyseg_ext "
                              f"reads up to {FORMAT_VERSION}: upgrade the package")
    return blob
