"""The shared training loop: Adam with plateau-reduced learning rate, early stopping on the validation loss
with the best weights restored, wall-clock budgets, and a checkpoint after every epoch (safetensors
weights; optimizer state read back with ``torch.load(weights_only=True)``), so that an interrupted
run resumes where it stopped. Every wing's nets train through :func:`fit`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass

import torch

__all__ = ["TrainSettings", "fit", "torch_device", "mse", "change_weighted_mse"]


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings (defaults follow OS25 where they state one).

    Parameters
    ----------
    max_epochs : int
    batch_size : int
        OS25 use 1e5 on 5e8 samples; our catalogs are smaller, so smaller batches.
    lr : float
        Initial Adam learning rate (OS25: 1e-3).
    lr_factor, lr_patience : float, int
        ReduceLROnPlateau on the validation loss.
    patience : int
        Early stopping: epochs without a better validation loss.
    min_lr : float
    l1, l2 : float
        Regularisation of the predictor (OS25: 1e-8, 1e-8).
    l1_timescale, l2_timescale : float
        Regularisation of the DGM net (OS25: 1e-6, 1e-7).
    seed : int
    max_minutes : float or None
        Wall-clock budget per network; training stops (keeping the best weights) when spent. The
        budget counts all runs of a network: resuming a checkpoint with a larger budget trains on
        for the difference.
    timescale_max_minutes : float or None
        Budget of the timescale (DGM) net; ``None``: the same as ``max_minutes``.
    device : str or None
        ``None``: CUDA if available, else CPU.
    threads : int or None
        torch CPU threads.
    change_weight_floor : float or None
        Predictor only (ours): weight each squared error by ``1 / (|y| + floor)``, ``y`` the scaled
        target change, so that small changes, the ones the timescale update reads at dt ~ tau_eps,
        count more than in the plain MSE. ``None``: OS25's unweighted MSE.
    """

    max_epochs: int = 300
    batch_size: int = 1024
    lr: float = 1e-3
    lr_factor: float = 0.5
    lr_patience: int = 8
    patience: int = 25
    min_lr: float = 1e-6
    l1: float = 1e-8
    l2: float = 1e-8
    l1_timescale: float = 1e-6
    l2_timescale: float = 1e-7
    seed: int = 0
    max_minutes: float | None = None
    timescale_max_minutes: float | None = None
    device: str | None = None
    threads: int | None = None
    change_weight_floor: float | None = None

    def __post_init__(self):
        for name in ("max_epochs", "batch_size", "lr_patience", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainSettings.{name} = {getattr(self, name)!r}; must be >= 1")
        if not 0 < self.lr < 1:
            raise ValueError(f"TrainSettings.lr = {self.lr!r}; must be in (0, 1)")
        if not 0 < self.lr_factor < 1:
            raise ValueError(f"TrainSettings.lr_factor = {self.lr_factor!r}; must be in (0, 1)")
        if self.change_weight_floor is not None and not self.change_weight_floor > 0:
            raise ValueError(f"TrainSettings.change_weight_floor = {self.change_weight_floor!r}; must be > 0 or None")
        for name in ("max_minutes", "timescale_max_minutes"):
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise ValueError(f"TrainSettings.{name} = {getattr(self, name)!r} minutes; must be > 0 or None")


def regularisation(module, l1, l2):
    params = [p for p in module.parameters()]
    return l1 * sum(p.abs().sum() for p in params) + l2 * sum((p * p).sum() for p in params)


def torch_device(settings):
    """The torch device of ``settings.device``; ``None``: CUDA if available, else CPU."""
    if settings.device:
        return torch.device(settings.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def mse(pred, target):
    """Mean squared error per output, summed over outputs (OS25)."""
    return ((pred - target) ** 2).mean(dim=0).sum()


def change_weighted_mse(floor):
    """MSE with each squared error weighted by ``1 / (|target| + floor)``, summed over outputs."""
    def loss(pred, target):
        return ((pred - target) ** 2 / (target.abs() + floor)).mean(dim=0).sum()
    return loss


def fit(module, forward, train, valid, l1, l2, settings, checkpoint, label, progress, loss_fn=mse):
    """Generic loop; ``train``/``valid`` are tuples of tensors, the last one the target.

    ``loss_fn(pred, target)`` is the data loss (default: MSE summed over outputs); the validation
    loss that drives early stopping and the learning-rate schedule is the same function.
    """
    device = next(module.parameters()).device
    opt = torch.optim.Adam(module.parameters(), lr=settings.lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=settings.lr_factor,
                                                       patience=settings.lr_patience, min_lr=settings.min_lr)
    state = {"epoch": 0, "best": float("inf"), "best_epoch": -1, "history": [], "wall_s": 0.0}
    best_weights = None
    ckpt_w, ckpt_o, ckpt_j = (checkpoint.with_suffix(s) for s in (".safetensors", ".optim", ".json"))
    if ckpt_j.is_file() and ckpt_w.is_file() and ckpt_o.is_file():
        from safetensors.torch import load_file
        saved = json.loads(ckpt_j.read_text())
        tensors = load_file(str(ckpt_w), device=str(device))
        module.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("last.")})
        best_weights = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
        packed = torch.load(ckpt_o, map_location=device, weights_only=True)
        opt.load_state_dict(packed["optimizer"])
        sched.load_state_dict(packed["scheduler"])
        sched.patience = settings.lr_patience  # this run's settings, not the checkpoint's
        state = saved
        if progress:
            print(f"{label}: resumed at epoch {state['epoch']} (best validation loss {state['best']:.4g})",
                  file=sys.stderr)
    gen = torch.Generator(device="cpu").manual_seed(settings.seed + state["epoch"])
    n = len(train[0])
    t_start = time.perf_counter() - state["wall_s"]
    stale = state["epoch"] - 1 - state["best_epoch"]
    budget_s = None if settings.max_minutes is None else 60 * settings.max_minutes
    while state["epoch"] < settings.max_epochs and stale < settings.patience:
        if budget_s is not None and state["wall_s"] > budget_s:  # a resumed run whose budget is spent
            break
        module.train()
        perm = torch.randperm(n, generator=gen).to(device)
        total = 0.0
        for i in range(0, n, settings.batch_size):
            idx = perm[i:i + settings.batch_size]
            pred = forward(*(a[idx] for a in train[:-1]))
            mse = loss_fn(pred, train[-1][idx])
            loss = mse + regularisation(module, l1, l2)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += mse.item() * len(idx)
        module.eval()
        with torch.inference_mode():
            vpred = torch.cat([forward(*(a[j:j + 65536] for a in valid[:-1])) for j in range(0, len(valid[0]), 65536)])
            vloss = float(loss_fn(vpred, valid[-1]))
        sched.step(vloss)
        state["epoch"] += 1
        state["history"].append([total / n, vloss, opt.param_groups[0]["lr"]])
        if vloss < state["best"]:
            state["best"], state["best_epoch"] = vloss, state["epoch"] - 1
            best_weights = {k: v.detach().clone() for k, v in module.state_dict().items()}
        stale = state["epoch"] - 1 - state["best_epoch"]
        state["wall_s"] = time.perf_counter() - t_start
        _save_checkpoint(module, best_weights, opt, sched, state, ckpt_w, ckpt_o, ckpt_j)
        if progress:
            sys.stderr.write(f"\r{label}: epoch {state['epoch']:4d}  train {total / n:.4g}  validation {vloss:.4g}"
                             f"  best {state['best']:.4g}  lr {opt.param_groups[0]['lr']:.1e}  "
                             f"{state['wall_s']:.0f} s   ")
            sys.stderr.flush()
    if progress:
        sys.stderr.write("\n")
    module.load_state_dict(best_weights)
    return state


def _save_checkpoint(module, best, opt, sched, state, ckpt_w, ckpt_o, ckpt_j):
    from safetensors.torch import save_file
    tensors = {"last." + k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    tensors.update({"best." + k: v.detach().cpu().contiguous() for k, v in best.items()})
    save_file(tensors, str(ckpt_w) + ".part")
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, str(ckpt_o) + ".part")
    ckpt_j.with_suffix(".json.part").write_text(json.dumps(state))
    os.replace(str(ckpt_w) + ".part", ckpt_w)
    os.replace(str(ckpt_o) + ".part", ckpt_o)
    os.replace(ckpt_j.with_suffix(".json.part"), ckpt_j)


