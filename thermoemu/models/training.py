"""Training of one region's emulator from a built catalog (OS25 sections 2.2 and 2.3.2).

Adam with initial learning rate 1e-3, reduced on plateau of the validation loss; loss = MSE
(summed over outputs, OS25 eq. 17) + L1 + L2 on all weights and biases (eq. 6; lambda_1 = lambda_2
= 1e-8 for DeepONet, 1e-6 and 1e-7 for DGM); early stopping on the validation loss with the best
weights restored; a checkpoint after every epoch (safetensors weights, optimizer state read back
with ``torch.load(weights_only=True)``), so an interrupted run resumes; fixed seeds; CUDA when
available.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..catalog import open_catalog
from ..catalog_spec import load_spec
from ..reference import default_network, free_fall_time
from .artifact import save_region
from .features import (VARIABLES, Scaling, branch_inputs, log_state, timescale_targets, trunk_inputs)
from .nets import NetConfig
from .region import RegionModel

__all__ = ["TrainSettings", "CatalogArrays", "load_catalog_arrays", "train_region", "relative_error_fractions"]


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


@dataclass
class CatalogArrays:
    """One split of a catalog as plain arrays (successful samples only)."""

    n_H: np.ndarray          # (N,) cm^-3
    x0: np.ndarray           # (7, N) initial abundances and T [K]
    dt: np.ndarray           # (N,) s
    x1: np.ndarray           # (7, N) state after dt
    tau: np.ndarray | None   # (N, 7) s
    tau_sign: np.ndarray | None
    dt_max: np.ndarray       # (N,) s

    def __len__(self):
        return len(self.n_H)


def load_catalog_arrays(catalog_dir, split):
    """Read a split of a built catalog into memory; failed integrations are dropped."""
    with open_catalog(catalog_dir, split=split) as lazy:  # closed here, not left to the GC
        ds = lazy.compute()
    ok = ds["success"].values.astype(bool)
    x0 = np.concatenate([ds["initial_abundance"].transpose("species", "sample").values,
                         ds["initial_temperature"].values[None]], axis=0)[:, ok]
    x1 = np.concatenate([ds["abundance"].transpose("species", "sample").values,
                         ds["temperature"].values[None]], axis=0)[:, ok]
    tau = sign = None
    if "tau_eps" in ds:
        order = [list(ds["variable"].values).index(v) for v in VARIABLES]
        tau = ds["tau_eps"].transpose("sample", "variable").values[ok][:, order]
        sign = ds["tau_sign"].transpose("sample", "variable").values[ok][:, order]
    good = np.isfinite(x1).all(axis=0) & (x1 >= 0).all(axis=0)
    return CatalogArrays(n_H=ds["n_H"].values[ok][good], x0=x0[:, good], dt=ds["dt"].values[ok][good],
                         x1=x1[:, good], tau=None if tau is None else tau[good],
                         tau_sign=None if sign is None else sign[good], dt_max=ds["dt_max"].values[ok][good])


def relative_error_fractions(log_true, log_pred, thresholds=(0.05, 0.10)):
    """OS25 eq. 19 ``|10^Yt - 10^Yp| / 10^Yt`` per variable; fraction below each threshold.

    Returns an array (len(thresholds), n_variables).
    """
    rel = np.abs(1.0 - 10.0 ** (np.asarray(log_pred) - np.asarray(log_true)))
    return np.array([(rel < t).mean(axis=0) for t in thresholds])


class _Separate(nn.Module):
    """Seven per-variable DeepONets trained side by side (their losses are independent)."""

    def __init__(self, nets):
        super().__init__()
        self.nets = nn.ModuleList(nets)

    def forward(self, x, t):
        return torch.cat([net(x, t) for net in self.nets], dim=1)


def _regularisation(module, l1, l2):
    params = [p for p in module.parameters()]
    return l1 * sum(p.abs().sum() for p in params) + l2 * sum((p * p).sum() for p in params)


def _device(settings):
    if settings.device:
        return torch.device(settings.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _mse(pred, target):
    """Mean squared error per output, summed over outputs (OS25)."""
    return ((pred - target) ** 2).mean(dim=0).sum()


def _change_weighted_mse(floor):
    """MSE with each squared error weighted by ``1 / (|target| + floor)``, summed over outputs."""
    def loss(pred, target):
        return ((pred - target) ** 2 / (target.abs() + floor)).mean(dim=0).sum()
    return loss


def _fit(module, forward, train, valid, l1, l2, settings, checkpoint, label, progress, loss_fn=_mse):
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
            loss = mse + _regularisation(module, l1, l2)
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


def _checkpoint_name(region, config):
    c = config
    return f"region{region}-{c.kind}-L{c.layers}-W{c.width}-P{c.latent}"


def _observed_ranges(data):
    ranges = {"n_H": [float(data.n_H.min()), float(data.n_H.max())]}
    for i, v in enumerate(VARIABLES):
        ranges[v] = [float(data.x0[i].min()), float(data.x0[i].max())]
    return ranges


def train_region(spec, catalog_dir, out, *, predictor=NetConfig(kind="fused"), timescale=NetConfig(kind="dgm"),
                 settings=TrainSettings(), checkpoint_dir=None, progress=True):
    """Train one region's predictor and timescale net from a built catalog and save the artifact.

    Parameters
    ----------
    spec : str, path or CatalogSpec
        The catalog spec the catalog was built from (region number, eps, dt_max rule).
    catalog_dir : path
        A built catalog (:func:`thermoemu.build_catalog`); its train and validation splits are used.
    out : path
        Model folder; the region is added to its manifest. Checkpoints go to ``out/checkpoints``.
    predictor, timescale : NetConfig
        ``predictor.kind`` is ``"fused"`` (one net, seven outputs) or ``"deeponet"`` (seven nets,
        OS25); ``timescale`` is a ``"dgm"`` config, or None to skip the timescale net.
    settings : TrainSettings
    checkpoint_dir : path, optional
        Where per-epoch checkpoints go (default ``out/checkpoints``); re-running with the same
        folder resumes an interrupted training.
    progress : bool

    Returns
    -------
    RegionModel
    """
    spec = load_spec(spec) if not hasattr(spec, "raw") else spec
    network = default_network()
    region = int(spec.name.rsplit("r", 1)[-1]) if spec.name.rsplit("r", 1)[-1].isdigit() else 0
    index = json.loads((Path(catalog_dir) / "index.json").read_text())
    if index.get("spec_sha256") != spec.content_hash():
        raise ValueError(f"catalog {catalog_dir} was built from another spec (spec_sha256 "
                         f"{index.get('spec_sha256', '?')[:12]}..., {spec.name} is {spec.content_hash()[:12]}...)")
    if settings.threads:
        torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    device = _device(settings)
    out = Path(out)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else out / "checkpoints"
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    train, valid = load_catalog_arrays(catalog_dir, "train"), load_catalog_arrays(catalog_dir, "validation")
    if len(train) == 0 or len(valid) == 0:
        raise ValueError(f"catalog {catalog_dir} has no successful samples in its train or validation split")

    def arrays(d):
        xb = branch_inputs(d.n_H, d.x0)
        t = trunk_inputs(d.dt)
        r = log_state(d.x1) - np.concatenate([xb[:, 2:], xb[:, 1:2]], axis=1)
        return xb, t, r
    xb, t, r = arrays(train)
    vxb, vt, vr = arrays(valid)
    pscale = Scaling.fit(xb, t, r)
    if predictor.anchored:  # the scaled change must be 0 at dt = 0
        pscale.y_mean = [0.0] * len(pscale.y_mean)
    eps = spec.timescale_eps or 0.1
    tscale = None
    if timescale is not None:
        yt = timescale_targets(train.tau, train.tau_sign, free_fall_time(train.n_H), eps)
        vyt = timescale_targets(valid.tau, valid.tau_sign, free_fall_time(valid.n_H), eps)
        tscale = Scaling.fit(xb, t, yt)
    model = RegionModel.new(region, _observed_ranges(train), predictor, pscale, timescale, tscale,
                            eps=eps, dt_max_over_t_ff=spec.dt_max_over_t_ff).to(device)

    def tensor(a):
        return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=device)

    pred_module = model.predictors[0] if len(model.predictors) == 1 else _Separate(model.predictors)
    t0 = time.perf_counter()
    pstate = _fit(pred_module, pred_module,
                  (tensor(pscale.scale_x(xb)), tensor(pscale.scale_t(t)[:, None]), tensor(pscale.scale_y(r))),
                  (tensor(pscale.scale_x(vxb)), tensor(pscale.scale_t(vt)[:, None]), tensor(pscale.scale_y(vr))),
                  settings.l1, settings.l2, settings, checkpoint_dir / _checkpoint_name(region, predictor),
                  f"region {region} {predictor.kind}", progress,
                  loss_fn=_mse if settings.change_weight_floor is None else _change_weighted_mse(settings.change_weight_floor))
    tstate = None
    if timescale is not None:
        tsettings = settings if settings.timescale_max_minutes is None else replace(
            settings, max_minutes=settings.timescale_max_minutes)
        tstate = _fit(model.timescale_net, model.timescale_net,
                      (tensor(tscale.scale_x(xb)), tensor(tscale.scale_y(yt))),
                      (tensor(tscale.scale_x(vxb)), tensor(tscale.scale_y(vyt))),
                      settings.l1_timescale, settings.l2_timescale, tsettings,
                      checkpoint_dir / _checkpoint_name(region, timescale), f"region {region} dgm", progress)
    model.eval()
    # accuracy on the validation split (the test split is kept for `thermoemu evaluate`)
    log_pred = model.predict_log(valid.n_H, valid.x0, valid.dt)
    fractions = relative_error_fractions(log_state(valid.x1), log_pred)
    metrics = {"validation_samples": len(valid), "train_samples": len(train),
               "validation_fraction_below_5pct": dict(zip(VARIABLES, fractions[0].round(4).tolist())),
               "validation_fraction_below_10pct": dict(zip(VARIABLES, fractions[1].round(4).tolist())),
               "predictor_epochs": pstate["epoch"], "predictor_best_validation_loss": pstate["best"],
               "predictor_history": pstate["history"]}
    if tstate is not None:
        ytp = model.timescale_net(torch.as_tensor(tscale.scale_x(vxb), dtype=torch.float32, device=device))
        ytp = tscale.unscale_y(ytp.detach().cpu().numpy())
        metrics.update({"timescale_epochs": tstate["epoch"], "timescale_best_validation_loss": tstate["best"],
                        "timescale_history": tstate["history"],
                        "timescale_fraction_error_below_0.1": dict(zip(VARIABLES, (np.abs(ytp - vyt) < 0.1).mean(0).round(4).tolist()))})
    metrics["wall_s"] = round(time.perf_counter() - t0, 1)
    metrics["device"] = str(device)
    metrics["parameters"] = model.n_parameters()
    meta = {"catalog": {"name": index["name"], "spec_sha256": index["spec_sha256"], "samples": index["samples"],
                        "samples_written": index["samples_written"],
                        "shards_sha256": {sh["file"]: sh["sha256"] for sh in index["shards"]}},
            "training": {"settings": asdict(settings), **metrics}}
    save_region(out, model.to("cpu"), network=network, metadata=meta)
    return model
