"""Mean-teacher uncertainty from T perturbed passes, fused (math in csrc/pint/pint_math.h).

* ``noisyseg::mc_uncertainty``   stacked teacher logits (T, N, C, *spatial) in one read;
* ``noisyseg::mc_accumulate``    one pass (N, C, *spatial) added into running softmax sums;
* ``noisyseg::mc_finalize``      mean, pixel and image uncertainty from the running sums.

The stacked kernel adds the T softmax outputs in the order the streaming form does, so
:class:`UncertaintyAccumulator` gives bit-identical results on the same device. No gradient flows
into the teacher: inputs are detached and the ops have no autograd formula.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor

from noisyseg_ext.ops import _checks, _direct, _kernels, label_checks, reference
from noisyseg_ext.ops._kernels import C as _C


class McUncertainty(NamedTuple):
    """Result of :func:`mc_uncertainty` / :meth:`UncertaintyAccumulator.result`.

    mean_prob: (N, C, *spatial) mean softmax over the passes; pixel: (N, *spatial) entropy of
    mean_prob; image: (N,) mean of pixel over the non-ignored pixels. All in the accumulation
    dtype: float32 for float16 / bfloat16 / float32 logits, float64 for float64.
    """

    mean_prob: Tensor
    pixel: Tensor
    image: Tensor


def _image_parts(n: int, s: int) -> int:
    """Number of parts, a multiple of n aligned with the images, so that the partial sums of one
    part belong to one image (the kernel call takes parts / n per image); fixed by the problem size
    only."""
    return n * max(1, -(-_kernels.num_parts(n * s) // max(n, 1)))


def _launch_args(x: Tensor, n: int, c: int, s: int, target: Optional[Tensor], ignore_index: int,
                 normalize: bool):
    a = _C.PintArgs()
    a.dtype = _kernels.DTYPE_CODES[x.dtype]
    a.x = _kernels.ptr(x)
    if target is not None:
        a.target, a.label_dtype = _kernels.ptr(target), _kernels.DTYPE_CODES[target.dtype]
    a.N, a.C, a.S = n, c, s
    a.ignore_index, a.normalize = ignore_index, normalize
    return a


def _image_outputs(n: int, s: int, acc: torch.dtype, device: torch.device, target: Optional[Tensor]):
    """image (N,), per-image partial sums and, with a target, bad (N,): each image's number of
    labels outside [0, C) and not ignore_index (written by the kernel call)."""
    parts = _image_parts(n, s)
    image = torch.empty((n,), dtype=acc, device=device)
    # [sum of u, valid pixels, labels out of range]; every part writes its row
    partials = torch.empty((parts, 3), dtype=torch.float64, device=device)
    bad = None if target is None else torch.empty((n,), dtype=acc, device=device)
    return image, partials, bad


def _check_labels(bad: Optional[Tensor], target: Optional[Tensor], c: int, ignore_index: int) -> None:
    """Raises for labels out of range counted in bad (see label_checks for when it is read)."""
    if bad is not None:
        label_checks.record("mc_uncertainty", bad,
                            lambda: _checks.raise_bad_label("mc_uncertainty", target, c, ignore_index))


# ----------------------------------------------------------------------------------------------
# stacked

def _stacked_impl(teacher_logits: Tensor, target: Optional[Tensor], ignore_index: int,
                  normalize: bool) -> tuple[Tensor, Tensor, Tensor]:
    x = teacher_logits.contiguous()
    target = None if target is None else target.contiguous()
    t, n, c = x.shape[:3]
    spatial = tuple(x.shape[3:])
    s = x[0, 0, 0].numel() if x.numel() else 0
    acc = _kernels.acc_dtype(x.dtype)
    mean = torch.empty((n, c, *spatial), dtype=acc, device=x.device)
    u = torch.empty((n, *spatial), dtype=acc, device=x.device)
    image, partials, bad = _image_outputs(n, s, acc, x.device, target)
    a = _launch_args(x, n, c, s, target, ignore_index, normalize)
    a.T, a.parts = t, partials.shape[0]
    a.mean, a.u, a.image = _kernels.ptr(mean), _kernels.ptr(u), _kernels.ptr(image)
    a.partials, a.bad = _kernels.ptr(partials), _kernels.ptr(bad)
    _C.pint_mc_stacked(a, *_kernels.device_args(x))
    _check_labels(bad, target, c, ignore_index)
    return mean, u, image


_stacked = torch.library.custom_op("noisyseg::mc_uncertainty", _stacked_impl, mutates_args=())


@_stacked.register_fake
def _stacked_fake(teacher_logits, target, ignore_index, normalize):
    acc = _kernels.acc_dtype(teacher_logits.dtype)
    t, n, c = teacher_logits.shape[:3]
    spatial = tuple(teacher_logits.shape[3:])
    return (teacher_logits.new_empty((n, c, *spatial), dtype=acc), teacher_logits.new_empty((n, *spatial), dtype=acc),
            teacher_logits.new_empty((n,), dtype=acc))


# ----------------------------------------------------------------------------------------------
# streaming

def _accumulate_impl(sums: Tensor, logits: Tensor, first: bool) -> None:
    """sums (N, C, *spatial) accumulation dtype, contiguous: += softmax(logits, 1) (= when first).
    For C = 2 only class 1's running sum is kept (sums[:, 0] is scratch; mc_finalize takes
    mu_0 = 1 - mu_1)."""
    x = logits.contiguous()
    n, c = x.shape[:2]
    s = x[0, 0].numel() if x.numel() else 0
    a = _launch_args(x, n, c, s, None, -100, False)
    a.sums, a.first, a.parts = _kernels.ptr(sums), first, _kernels.num_parts(n * s)
    _C.pint_mc_accumulate(a, *_kernels.device_args(x))


_accumulate = torch.library.custom_op("noisyseg::mc_accumulate", _accumulate_impl, mutates_args=("sums",))


@_accumulate.register_fake
def _accumulate_fake(sums, logits, first):
    return None


def _finalize_impl(sums: Tensor, count: int, target: Optional[Tensor], ignore_index: int,
                   normalize: bool) -> tuple[Tensor, Tensor, Tensor]:
    sums = sums.contiguous()
    target = None if target is None else target.contiguous()
    n, c = sums.shape[:2]
    spatial = tuple(sums.shape[2:])
    s = sums[0, 0].numel() if sums.numel() else 0
    mean = torch.empty_like(sums)
    u = torch.empty((n, *spatial), dtype=sums.dtype, device=sums.device)
    image, partials, bad = _image_outputs(n, s, sums.dtype, sums.device, target)
    a = _launch_args(sums, n, c, s, target, ignore_index, normalize)
    a.x, a.sums, a.count, a.parts = 0, _kernels.ptr(sums), count, partials.shape[0]
    a.mean, a.u, a.image = _kernels.ptr(mean), _kernels.ptr(u), _kernels.ptr(image)
    a.partials, a.bad = _kernels.ptr(partials), _kernels.ptr(bad)
    _C.pint_mc_finalize(a, *_kernels.device_args(sums))
    _check_labels(bad, target, c, ignore_index)
    return mean, u, image


_finalize = torch.library.custom_op("noisyseg::mc_finalize", _finalize_impl, mutates_args=())


@_finalize.register_fake
def _finalize_fake(sums, count, target, ignore_index, normalize):
    n = sums.shape[0]
    return torch.empty_like(sums), sums.new_empty((n, *sums.shape[2:])), sums.new_empty((n,))


# ----------------------------------------------------------------------------------------------
# public API

def _check_target(op: str, target: Optional[Tensor], n: int, c: int, spatial: tuple, ignore_index: int) -> None:
    if target is None:
        return
    _checks.check_labels("target", target, op)
    _checks.check_shape("target", target, (n, *spatial), op, "target must be (N, *spatial)")
    if not isinstance(ignore_index, int):
        raise TypeError(f"{op}: ignore_index must be an int; got {type(ignore_index).__name__}")


def mc_uncertainty(teacher_logits: Tensor, *, normalize: bool = False, target: Optional[Tensor] = None,
                   ignore_index: int = -100) -> McUncertainty:
    """Mean prediction and entropy uncertainty of T perturbed teacher passes (UA-MT / PINT).

    Args:
        teacher_logits: (T, N, C, *spatial) float16 / bfloat16 / float32 / float64 scores of T
            passes, 1 to 3 spatial dims, T >= 1, CPU or CUDA. Detached: no gradient flows into
            the teacher.
        normalize: divide the entropy by ln C so that it lies in [0, 1] (no-op for C = 1).
        target: optional (N, *spatial) uint8 / int32 / int64 labels; pixels equal to
            ``ignore_index`` are left out of the image mean. A label outside [0, C) that is not
            ``ignore_index`` raises ValueError.
        ignore_index: see target.

    Returns:
        McUncertainty(mean_prob (N, C, *spatial), pixel (N, *spatial), image (N,)), all in the
        accumulation dtype (float32 for 16- and 32-bit logits, float64 for float64):
        mean_prob = mean over T of softmax over C; pixel = -sum_c mu_c log mu_c (0 log 0 = 0);
        image = mean of pixel over the non-ignored pixels (NaN for an image with none).
    """
    op = "mc_uncertainty"
    _checks.check_floating("teacher_logits", teacher_logits, op)
    if teacher_logits.dim() < 4 or teacher_logits.dim() > 6:
        raise ValueError(f"{op}: teacher_logits must be (T, N, C, *spatial) with 1 to 3 spatial dims; "
                         f"got shape {tuple(teacher_logits.shape)}")
    t, n, c = teacher_logits.shape[:3]
    if t == 0:
        raise ValueError(f"{op}: teacher_logits holds T = 0 passes (shape {tuple(teacher_logits.shape)})")
    if c == 0:
        raise ValueError(f"{op}: teacher_logits has C = 0 classes (shape {tuple(teacher_logits.shape)})")
    spatial = tuple(teacher_logits.shape[3:])
    _check_target(op, target, n, c, spatial, ignore_index)
    _checks.check_same_device(op, teacher_logits=teacher_logits, target=target)
    x = teacher_logits.detach()
    if not _kernels.use_kernel(op, x.device):
        return McUncertainty(*reference.mc_uncertainty(x, normalize=normalize, target=target, ignore_index=ignore_index))
    x = x.contiguous()
    op = _direct.pick(_stacked_impl, torch.ops.noisyseg.mc_uncertainty, x, target)
    return McUncertainty(*op(x, target, ignore_index, normalize))


class UncertaintyAccumulator:
    """Streaming :func:`mc_uncertainty`: add the teacher's passes one at a time.

    Memory O(N·C·V) (running softmax sums in the accumulation dtype: float32 for 16- and 32-bit
    logits, float64 for float64) instead of O(T·N·C·V) for the stacked logits. Each :meth:`add`
    reads the logits once (fused softmax + sum). :meth:`result` equals ``mc_uncertainty`` of the
    stacked passes (bit for bit on the same device and dtype). Inputs are detached.

    Example::

        acc = UncertaintyAccumulator()
        for _ in range(8):
            acc.add(teacher(perturb(x)))
        mu, u, U = acc.result(target)
    """

    def __init__(self, *, normalize: bool = False):
        self.normalize = normalize
        self.reset()

    def reset(self) -> None:
        """Forget every pass added so far."""
        self._sums: Optional[Tensor] = None
        self._dtype: Optional[torch.dtype] = None
        self.count = 0

    def add(self, logits: Tensor) -> None:
        """Add one pass: logits (N, C, *spatial) floating, 1 to 3 spatial dims; every pass must
        have the shape, dtype and device of the first."""
        op = "UncertaintyAccumulator.add"
        _checks.check_floating("logits", logits, op)
        if logits.dim() < 3 or logits.dim() > 5:
            raise ValueError(f"{op}: logits must be (N, C, *spatial) with 1 to 3 spatial dims; got shape {tuple(logits.shape)}")
        if logits.shape[1] == 0:
            raise ValueError(f"{op}: logits has C = 0 classes (shape {tuple(logits.shape)})")
        if self._sums is not None:
            if tuple(logits.shape) != tuple(self._sums.shape):
                raise ValueError(f"{op}: logits has shape {tuple(logits.shape)}, but earlier passes had {tuple(self._sums.shape)}")
            if logits.dtype != self._dtype or logits.device != self._sums.device:
                raise ValueError(f"{op}: logits is {logits.dtype} on {logits.device}, but earlier passes were "
                                 f"{self._dtype} on {self._sums.device}")
        x = logits.detach()
        first = self._sums is None
        if first:
            self._dtype = x.dtype
        if not _kernels.use_kernel("UncertaintyAccumulator", x.device):
            p = torch.softmax(x.to(_kernels.acc_dtype(x.dtype)), dim=1)
            self._sums = p if first else self._sums + p
        else:
            if first:
                self._sums = torch.empty(x.shape, dtype=_kernels.acc_dtype(x.dtype), device=x.device)
            x = x.contiguous()
            _direct.pick(_accumulate_impl, torch.ops.noisyseg.mc_accumulate, self._sums, x)(self._sums, x, first)
        self.count += 1

    def result(self, target: Optional[Tensor] = None, *, ignore_index: int = -100) -> McUncertainty:
        """McUncertainty of the passes added so far (see :func:`mc_uncertainty`; target and
        ignore_index as there). Raises ValueError when no pass was added."""
        op = "UncertaintyAccumulator.result"
        if self._sums is None:
            raise ValueError(f"{op}: no pass was added (T = 0)")
        n, c = self._sums.shape[:2]
        _check_target(op, target, n, c, tuple(self._sums.shape[2:]), ignore_index)
        _checks.check_same_device(op, sums=self._sums, target=target)
        if not _kernels.use_kernel("UncertaintyAccumulator", self._sums.device):
            return McUncertainty(*reference.mc_uncertainty_from_sums(self._sums, self.count, normalize=self.normalize,
                                                                     target=target, ignore_index=ignore_index))
        op = _direct.pick(_finalize_impl, torch.ops.noisyseg.mc_finalize, self._sums, target)
        return McUncertainty(*op(self._sums, self.count, target, ignore_index, self.normalize))
