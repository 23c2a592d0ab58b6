"""The Trainer: the training loop every method plugs into.

It owns the data (split, corrupted train split, meta split), the network, its optimiser and LR
schedule, AMP, gradient clipping, evaluation on clean validation labels every ``--eval-every``
steps, atomic checkpoints (``last.pt``, ``best.pt`` by validation Dice), logs, figures and the final
test evaluation. A method (``noisyseg_ext.methods``) computes each step's loss.

Exact resume: the data of step k is a function of (seed, k) only (``BatchOrder`` and per-position
augmentation draws), and a checkpoint holds the network, the method's state, the optimiser, the
scheduler, the GradScaler, every RNG state and the loss accumulators; on the CPU a run stopped after
step k and resumed ends bit-identical to an uninterrupted one (python_tests/test_trainer_resume.py).

Python use::

    from noisyseg_ext.training import Trainer, make_config
    cfg = make_config(data="hc18-sample", method="baseline", noise="dilation", ratio=0.4, steps=300,
                      out="runs/x")
    results = Trainer(cfg).fit()        # results["dice"], results["hd95"], ...
    Trainer(cfg, net=my_module)         # any nn.Module (N, C_in, *sp) -> (N, C, *sp)
"""

from __future__ import annotations

import math
import os
import random
import time
from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor, nn

from noisyseg_ext.errors import CheckpointError, ConfigError, DataError, TrainingDiverged
from noisyseg_ext.methods.base import Method, TrainContext
from noisyseg_ext.methods.losses import segmentation_loss
from noisyseg_ext.methods.registry import get_method
from noisyseg_ext.ops import label_checks
from noisyseg_ext.training import distributed, run_folder
from noisyseg_ext.training.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from noisyseg_ext.training.config import Config, default_out
from noisyseg_ext.training.evaluation import EvalResult, evaluate
from noisyseg_ext.training.precision import autocast_factory, grad_scaler
from noisyseg_ext.training.schedule import build_optimizer, build_scheduler

SPLIT_NAMES = ("train", "meta", "val", "test")


def seed_everything(seed: int) -> None:
    """Seeds torch (CPU and CUDA), NumPy's and Python's global generators."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def data_info(data, net: nn.Module) -> dict[str, Any]:
    """What eval / predict need to rebuild the network and prepare images like the training run."""
    from noisyseg_ext.nets import size_multiple

    return {"num_classes": int(data.num_classes), "in_channels": int(data.in_channels), "dims": int(data.dims),
            "size_multiple": int(size_multiple(net))}


class Trainer:
    """Trains ``config.method`` on ``config.data``; see the module docstring.

    Args:
        config: a :class:`~noisyseg_ext.training.config.Config` (``make_config(...)``).
        data: a ``SegmentationSet`` to use instead of loading ``config.data``.
        net: any ``nn.Module`` mapping (N, C_in, *spatial) to (N, num_classes, *spatial) logits, instead of
            ``--net`` (a ``size_multiple`` attribute, when present, says what sizes it accepts).
        log: where progress lines go (default print; only rank 0 prints).
    """

    def __init__(self, config: Config, *, data=None, net: Optional[nn.Module] = None, log=print):
        from noisyseg_ext import data as data_mod
        from noisyseg_ext.nets import build_net, size_multiple

        self.config = config
        self.dist = distributed.from_environment()
        self.device = distributed.resolve_device(config.device, self.dist)
        distributed.init_process_group(self.dist, self.device)
        self.log = log if self.dist.is_main and not config.quiet else (lambda *a, **k: None)
        self.out = config.out or default_out(config)
        self.method_cls = get_method(config.method)
        if config.batch % self.dist.world_size:
            raise ConfigError(f"--batch {config.batch} is not divisible by the {self.dist.world_size} processes")

        if self.dist.is_main:
            run_folder.prepare(self.out, config.to_dict(), resume=config.resume, overwrite=config.overwrite,
                               differences=lambda saved: config.differences(Config(saved)))
        distributed.barrier(self.dist)

        seed_everything(config.seed)
        self.data = data if data is not None else data_mod.load_dataset(
            config.data, size=config.size, subject_regex=config.subject_regex, noisy_masks=config.noisy_masks,
            normalize=config.normalize)
        if config.patch is None:
            self.data.require_same_size()  # before the split: the clearest place for this error
        self.splits = self._splits(data_mod)
        for name in ("train", "val", "test"):
            if not self.splits[name]:
                raise DataError(f"the {name} split is empty ({len(self.data)} images): use more data or other "
                                "--*-fraction values")
        if self.method_cls.needs_meta and not self.splits["meta"]:
            raise ConfigError(f"method {config.method} needs a clean meta split: set --meta-fraction > 0")

        seed_everything(config.seed)  # the initialisation does not depend on what loading drew
        self.net = (net if net is not None else build_net(
            config.net, in_channels=self.data.in_channels, num_classes=self.data.num_classes, dims=self.data.dims,
            base=config.base, depth=config.depth, norm=config.norm, dropout=config.dropout)).to(self.device)
        self.multiple = size_multiple(self.net)
        self._check_patch()

        self.train_set = data_mod.TrainSet(
            self.data.subset(self.splits["train"]), noise=config.noise, ratio=config.ratio, seed=config.seed,
            noise_params=config.noise_params, augment=config.augment, patch=config.patch, fg_ratio=config.fg_ratio,
            pad_multiple=self.multiple)
        self.order = data_mod.BatchOrder(len(self.train_set), config.batch, config.seed, rank=self.dist.rank,
                                         world_size=self.dist.world_size)
        self.meta_set = self.meta_order = None
        if self.method_cls.needs_meta:
            meta_batch = getattr(config, "meta_batch", None) or config.batch
            self.meta_set = data_mod.TrainSet(
                self.data.subset(self.splits["meta"]), noise="none", ratio=0.0, seed=config.seed + 1,
                noise_params={}, augment=config.augment, patch=config.patch, fg_ratio=config.fg_ratio,
                pad_multiple=self.multiple)
            self.meta_order = data_mod.BatchOrder(len(self.meta_set), meta_batch, config.seed + 1,
                                                  rank=self.dist.rank, world_size=self.dist.world_size)
        self.val_data = self.data.subset(self.splits["val"])
        self.test_data = self.data.subset(self.splits["test"])

        self.model = distributed.wrap(self.net, self.dist, self.device)
        self.optimizer = build_optimizer(self.net, config)
        self.scheduler = build_scheduler(self.optimizer, config)
        self.scaler = grad_scaler(config.amp, self.device)
        self.autocast = autocast_factory(config.amp, self.device)
        self.ctx = TrainContext(
            net=self.net, model=self.model, optimizer=self.optimizer, config=config, device=self.device,
            num_classes=self.data.num_classes, dims=self.data.dims, max_steps=config.steps,
            loss_fn=lambda logits, target, weight=None: segmentation_loss(logits, target, weight, kind=config.loss),
            autocast=self.autocast, meta_batch=self._meta_batch, rank=self.dist.rank,
            world_size=self.dist.world_size)
        self.method: Method = self.method_cls(self.ctx).to(self.device)
        self.eval_model = self.method_cls.default_eval_model if config.eval_model == "auto" else config.eval_model
        if self.eval_model not in self.method.eval_models():
            raise ConfigError(f"--eval-model {self.eval_model}: method {config.method} has only "
                              f"{', '.join(self.method.eval_models())}")

        self.step = 0                 # steps completed
        self.train_seconds = 0.0
        self.best = {"step": None, "val_dice": -math.inf}
        self._sums: dict[str, Tensor] = {}   # log sums since the last evaluation (device tensors)
        self._count = 0
        self._bad_step: Optional[Tensor] = None  # first step whose loss was not finite (device)
        self._diag_batch: Optional[dict[str, Tensor]] = None
        if config.resume:
            self._load(run_folder.checkpoint_path(self.out, "last"))
        elif self.dist.is_main:
            self._write_run_files()

    # -- setup helpers ----------------------------------------------------------------------------

    def _splits(self, data_mod) -> dict[str, list[int]]:
        cfg = self.config
        saved = os.path.join(self.out, "splits.json")
        if cfg.resume and os.path.isfile(saved):
            return data_mod.load_splits(saved, self.data)
        if cfg.splits:
            return data_mod.load_splits(cfg.splits, self.data)
        return data_mod.make_splits(self.data, seed=cfg.seed, meta_fraction=cfg.meta_fraction,
                                    val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction)

    def _check_patch(self) -> None:
        patch = self.config.patch
        if patch is None:
            return
        if len(patch) != self.data.dims:
            raise ConfigError(f"--patch {'x'.join(map(str, patch))} has {len(patch)} sizes; the data is {self.data.dims}D")
        if any(p % self.multiple for p in patch):
            raise ConfigError(f"--patch {'x'.join(map(str, patch))}: every size must be divisible by "
                              f"{self.multiple} (the network's size multiple)")

    def _write_run_files(self) -> None:
        from noisyseg_ext import __version__
        from noisyseg_ext import data as data_mod

        run_folder.write_json(os.path.join(self.out, "config.json"), {**self.config.to_dict(), "version": __version__})
        data_mod.save_splits(os.path.join(self.out, "splits.json"), self.splits, self.data)
        self.metrics_log = run_folder.MetricsLog(os.path.join(self.out, "metrics.csv"))
        self._corruption_figure()

    def _meta_batch(self, step: int) -> Optional[dict[str, Tensor]]:
        if self.meta_set is None:
            return None
        batch = self.meta_set.batch(self.meta_order.positions(step), self.meta_order)
        return {"image": batch["image"].to(self.device, non_blocking=True),
                "label": batch["clean"].to(self.device, non_blocking=True)}

    def _to_device(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    # -- the loop ---------------------------------------------------------------------------------

    def fit(self, until: Optional[int] = None) -> dict[str, Any]:
        """Trains from the current step to ``--steps``, evaluating and checkpointing on the way; then
        evaluates the final network on the test split, writes results.json and figures, prints the
        table, and returns the results (rank 0; other ranks return {}).

        ``until``: stop after that many steps in all (a checkpoint is written there) and return {}
        without the final evaluation; a later ``Trainer(config.replace(resume=True)).fit()`` continues
        exactly where this one stopped."""
        from tqdm import tqdm

        from noisyseg_ext import data as data_mod

        cfg = self.config
        if self.device.type == "cuda":
            # The dataset's labels were checked at load time: the ops need not wait for their checks.
            previous_mode = label_checks.set_label_check_mode("deferred")
        else:
            previous_mode = label_checks.get_label_check_mode()
        self.net.train()
        self.method.train()
        checkpoint_every = cfg.checkpoint_every or cfg.eval_every
        batches = data_mod.train_batches(self.train_set, self.order, self.step, workers=cfg.workers)
        bar = tqdm(total=cfg.steps, initial=self.step, desc=f"{cfg.method}", unit="step", dynamic_ncols=True,
                   disable=cfg.quiet or not self.dist.is_main)
        try:
            stop = cfg.steps if until is None else min(until, cfg.steps)
            while self.step < stop:
                t0 = time.perf_counter()
                batch = self._to_device(next(batches))
                self._train_step(batch, self.step)
                self.step += 1
                if self.device.type == "cuda" and (self.step % cfg.log_every == 0 or self.step % cfg.eval_every == 0
                                                   or self.step == cfg.steps):
                    torch.cuda.synchronize(self.device)
                self.train_seconds += time.perf_counter() - t0
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    self._check_finite()
                    label_checks.check_deferred()
                    bar.set_postfix(loss=f"{self._mean_logs().get('loss', math.nan):.4f}", refresh=False)
                evaluate_now = self.step % cfg.eval_every == 0 or self.step == cfg.steps
                if evaluate_now:
                    self._check_finite()
                    self._evaluation_row()
                if evaluate_now or self.step % checkpoint_every == 0:
                    self._check_finite()
                    self._save("last")
            if self.step < cfg.steps and self.step % checkpoint_every:  # stopped early by ``until``
                self._check_finite()
                self._save("last")
        finally:
            bar.close()
            label_checks.set_label_check_mode(previous_mode)
        if self.step < cfg.steps:
            return {}
        results = self._final() if self.dist.is_main else {}
        distributed.barrier(self.dist)
        return results

    def _train_step(self, batch: dict[str, Tensor], step: int) -> None:
        cfg = self.config
        with self.autocast():
            out = self.method.training_step(batch, step)
        if "loss" not in out:
            raise RuntimeError(f"method {cfg.method}: training_step returned no 'loss' ({sorted(out)})")
        loss = out["loss"]
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            if cfg.clip > 0:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg.clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            if cfg.clip > 0:
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg.clip)
            self.optimizer.step()
        self.scheduler.step()
        self.method.after_step(step)
        self._accumulate(out, step)

    def _accumulate(self, out: dict[str, Tensor], step: int) -> None:
        """Adds the step's logs to device sums (no read-back) and tracks the first non-finite loss."""
        loss = out["loss"].detach().float()
        finite = torch.isfinite(loss)
        if self.device.type == "cpu":
            if not bool(finite):  # free on the CPU: stop at once, before another step
                self._bad_step = torch.tensor(step)
                self._check_finite()
        else:
            here = torch.where(finite, torch.full_like(loss, -1), torch.full_like(loss, float(step)))
            self._bad_step = here if self._bad_step is None else torch.where(self._bad_step >= 0, self._bad_step, here)
        for k, v in out.items():
            v = v.detach().float() if isinstance(v, Tensor) else torch.tensor(float(v))
            self._sums[k] = self._sums[k] + v if k in self._sums else v.clone()
        self._count += 1

    def _mean_logs(self) -> dict[str, float]:
        if not self._count:
            return {}
        return {k: float(v) / self._count for k, v in self._sums.items()}

    def _check_finite(self) -> None:
        if self._bad_step is None:
            return
        bad = int(self._bad_step)
        if bad < 0:
            return
        last = run_folder.checkpoint_path(self.out, "last")
        kept = f"the last good checkpoint is {last}" if os.path.isfile(last) else "no checkpoint was written yet"
        raise TrainingDiverged(f"the loss became NaN or infinite at step {bad + 1} of {self.config.steps} "
                               f"(method {self.config.method}, lr {self.ctx.lr():g}); stopped; {kept}")

    # -- evaluation -------------------------------------------------------------------------------

    def evaluate(self, split: str = "val", model: Optional[str] = None, *, surface: bool = True,
                 keep_predictions: bool = False) -> EvalResult:
        """Metrics of a network (``model``: student / teacher, default ``--eval-model``) on the clean
        labels of ``split`` (val or test)."""
        data = {"val": self.val_data, "test": self.test_data}[split]
        net = self.method.eval_models()[model or self.eval_model]
        return evaluate(net, data, device=self.device, multiple=self.multiple,
                        patch=self.config.patch if self.data.dims == 3 else None, overlap=self.config.overlap,
                        batch=self.config.eval_batch, autocast=self.autocast if self.config.amp != "off" else None,
                        surface=surface, keep_predictions=keep_predictions)

    def _diagnostic_batch(self) -> dict[str, Tensor]:
        """A fixed batch of training images (the first ``--batch`` of the train split, without
        augmentation) with noisy and clean labels, for the methods' diagnostics and figures."""
        if self._diag_batch is None:
            n = min(self.config.batch, len(self.train_set))
            self._diag_batch = self._to_device(self.train_set.fixed_batch(list(range(n))))
        return self._diag_batch

    def _evaluation_row(self) -> None:
        if not self.dist.is_main:
            return
        from noisyseg_ext.figures import plot_progress

        result = self.evaluate("val")
        row: dict[str, Any] = {"step": self.step, "lr": self.ctx.lr(), "train_seconds": round(self.train_seconds, 3)}
        row.update({f"train_{k}": v for k, v in self._mean_logs().items()})
        row.update({f"val_{k}": v for k, v in result.mean.items()})
        diag = self._diagnostic_batch()
        with torch.no_grad():
            row.update(self.method.diagnostics(diag, self.step))
        figure = os.path.join(self.out, "figures", "method", f"step_{self.step:06d}.png")
        self.method.save_figure(diag, self.step, figure)
        self._sums, self._count = {}, 0
        self.metrics_log.append(row)
        self.tensorboard.scalars(self.step, row)
        plot_progress(self.metrics_log.rows, os.path.join(self.out, "figures", "progress.png"))
        dice = result.mean.get("dice", math.nan)
        if not math.isnan(dice) and dice > self.best["val_dice"]:
            self.best = {"step": self.step, "val_dice": dice}
            self._save("best")
        self.log(f"step {self.step}: val Dice {dice:.4f} (best {self.best['val_dice']:.4f} at step {self.best['step']})")

    @property
    def tensorboard(self) -> run_folder.TensorBoardLog:
        if not hasattr(self, "_tensorboard"):
            self._tensorboard = run_folder.TensorBoardLog(self.out)
        return self._tensorboard

    def _final(self) -> dict[str, Any]:
        from noisyseg_ext.figures import plot_overlays
        from noisyseg_ext.training.report import format_results_table

        result = self.evaluate("test", keep_predictions=True)
        results = {k: result.mean[k] for k in result.mean}
        results.update({f"{k}_std": result.std[k] for k in result.std})
        results.update({
            "model": self.eval_model, "method": self.config.method, "noise": self.config.noise,
            "ratio": self.config.ratio, "seed": self.config.seed, "steps": self.step,
            "train_seconds": round(self.train_seconds, 3), "best_step": self.best["step"],
            "best_val_dice": self.best["val_dice"] if self.best["step"] is not None else None,
            "noise_dice": self.train_set.noise_dice, "num_test": len(result.rows),
            "miou_includes_background": True, "per_image": result.rows})
        others = {}
        for name in self.method.eval_models():  # e.g. the teacher beside the student: means only
            if name != self.eval_model:
                other = self.evaluate("test", name)
                others[name] = {**other.mean, **{f"{k}_std": v for k, v in other.std.items()}}
        if others:
            results["other_models"] = others
        run_folder.write_json(os.path.join(self.out, "results.json"), results)
        k = min(8, len(result.rows))
        plot_overlays([self.test_data.images[i] for i in range(k)], result.predictions[:k],
                      [self.test_data.masks[i] for i in range(k)], [r["dice"] for r in result.rows[:k]],
                      os.path.join(self.out, "figures", "test_overlays.png"), names=self.test_data.names[:k])
        self.tensorboard.close()
        if not self.config.quiet:
            print(format_results_table(results, title=f"{self.config.method} on the test split "
                                                      f"({len(result.rows)} images, {self.eval_model}, step {self.step})"))
        return results

    def _corruption_figure(self) -> None:
        from noisyseg_ext.figures import plot_corruption

        corrupted = [r.index for r in self.train_set.records if r.corrupted][:8]
        if not corrupted:
            return
        ts = self.train_set
        plot_corruption([ts.data.images[i] for i in corrupted], [ts.clean[i] for i in corrupted],
                        [ts.noisy[i] for i in corrupted], os.path.join(self.out, "figures", "corruption.png"),
                        names=[ts.data.names[i] for i in corrupted])

    # -- checkpoints ------------------------------------------------------------------------------

    def _save(self, which: str) -> None:
        if not self.dist.is_main:
            return
        payload = {
            "step": self.step, "config": self.config.to_dict(), "data_info": data_info(self.data, self.net),
            "net": self.net.state_dict(),
            "eval_nets": {k: m.state_dict() for k, m in self.method.eval_models().items()},
            "eval_model": self.eval_model, "method": self.method.method_state(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None, "rng": rng_state(),
            "trainer": {"train_seconds": self.train_seconds, "best": dict(self.best),
                        "sums": {k: v.cpu() for k, v in self._sums.items()}, "count": self._count},
        }
        save_checkpoint(run_folder.checkpoint_path(self.out, which), payload)

    def _load(self, path: str) -> None:
        blob = load_checkpoint(path, map_location=self.device)
        try:
            self.net.load_state_dict(blob["net"])
            self.method.load_method_state(blob["method"])
            self.optimizer.load_state_dict(blob["optimizer"])
            self.scheduler.load_state_dict(blob["scheduler"])
            if self.scaler is not None and blob["scaler"] is not None:
                self.scaler.load_state_dict(blob["scaler"])
            set_rng_state({k: (v.cpu() if isinstance(v, Tensor) else v) for k, v in blob["rng"].items()})
            t = blob["trainer"]
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {path} does not fit this run ({type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0]})") from None
        self.step = int(blob["step"])
        self.train_seconds = float(t["train_seconds"])
        self.best = dict(t["best"])
        self._sums = {k: v.to(self.device) for k, v in t["sums"].items()}
        self._count = int(t["count"])
        if self.dist.is_main:
            self.metrics_log = run_folder.MetricsLog(os.path.join(self.out, "metrics.csv"), keep_until_step=self.step)
        self.log(f"resumed {self.out} at step {self.step}")
