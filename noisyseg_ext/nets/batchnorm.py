"""BatchNorm under ``torch.func``: what ``functional_call`` does to running statistics, and a context
that keeps a virtual (meta-learning) forward from touching them.

Measured with torch 2.13 (tested in ``python_tests/test_nets.py``), for a network with BatchNorm in
train mode:

* ``functional_call(net, {**params, **buffers}, x)``: the batch statistics normalise, and the
  running statistics (``running_mean``, ``running_var``, ``num_batches_tracked``) of the *passed*
  buffer tensors are updated in place; the module's own buffers are untouched.
* ``functional_call(net, params, x)`` (buffers not passed): the module's own buffers are updated,
  as in a plain call.
* ``torch.func.jvp`` (and the other ``torch.func`` transforms) refuse the in-place update of a
  buffer the function captures instead of taking as an input: "During a grad (vjp, jvp, grad, etc)
  transform, the function provided attempted to call in-place operation (aten::add_.Tensor) that
  would mutate a captured Tensor". That holds for the module's buffers and for a dict of cloned
  buffers closed over alike. Either run the forward inside :func:`batch_stats_only` (batch
  statistics, no update: what METHODS.md section 3 asks of a virtual step), or put the network in
  eval mode (running statistics, nothing updated), or use GroupNorm / InstanceNorm (no buffers).
  Should a jvp forward update running statistics after all, pass the floating buffers as jvp
  primals (zero tangents) and clone the integer ``num_batches_tracked`` inside the function: the
  passed buffers are then updated in place.

Plain autograd (``create_graph=True`` through ``functional_call``, the MW-Net / MCPM virtual step)
has no such restriction, but the virtual forward then still updates whichever buffers it used:
wrap it in :func:`batch_stats_only` as well.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


@contextmanager
def batch_stats_only(net: nn.Module) -> Iterator[nn.Module]:
    """Within the block, BatchNorm layers of ``net`` in train mode normalise with the batch's
    statistics and leave their running statistics (and ``num_batches_tracked``) unchanged; in eval
    mode they still use the running statistics. Restores the layers' settings on exit, also after an
    exception. Yields ``net``.

    Works by clearing ``track_running_stats`` for the duration, as
    ``torch.func.replace_all_batch_norm_modules_`` does permanently (torch's recipe for BatchNorm
    under ``vmap``); a temporary change keeps the real training step's statistics. Not thread-safe:
    do not run the same module concurrently in another thread.
    """
    layers = [m for m in net.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    for m in layers:
        m.track_running_stats = False
    try:
        yield net
    finally:
        for m in layers:
            m.track_running_stats = True
