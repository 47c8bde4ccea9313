"""One density region's trained emulator: state predictor (DeepONet) plus timescale net (DGM).

Plain arrays in, plain arrays out: numpy at the edges, torch inside. The region knows its input
scaling and its trained ranges; routing, the timescale-based update and the domain guard live in
:mod:`thermoemu.primordial.emulator`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..closures import close_trace_species
from ..physics.network import free_fall_time
from ..physics_step import PHYSICS_TRUST, backward_euler_answer, physics_step
from .features import Scaling, branch_inputs, log_state, residual_inputs, timescales_from_targets, trunk_inputs
from .nets import NetConfig, build_net

__all__ = ["RegionModel"]


@dataclass
class RegionModel:
    """Trained models of one density region.

    Attributes
    ----------
    region : int
    ranges : dict
        Trained ranges, ``{"n_H": [lo, hi], "temperature": [lo, hi], "H": [lo, hi], ...}`` in
        cm^-3, K and abundance (linear values).
    predictor_config : NetConfig
    predictors : list of torch.nn.Module
        One fused net, or seven per-variable DeepONets (network order).
    predictor_scaling : Scaling
    timescale_config : NetConfig or None
    timescale_net : torch.nn.Module or None
    timescale_scaling : Scaling or None
    eps : float
        The epsilon of tau_eps the DGM net was trained on.
    dt_max_over_t_ff : float
        The largest trained step, as a multiple of the free-fall time at the cell's n_H.
    metadata : dict
        Everything else from the artifact (catalog hash, training metrics, ...).
    network : PrimordialNetwork or None
        The reference network; residual (physics-first) predictors step it.
    physics_trust : float
        Physics-first models: the physics step's estimated error below which its result is the answer and
        the net is not applied (default ``PHYSICS_TRUST``; a region may record its own, chosen by
        measurement: docs/emulator.md). Nets are trained where the error is at least ``PHYSICS_TRUST``, so
        a larger value applies them on a subset of the states they were trained on.
    backward_euler_change : float or None
        Physics-first models: where set, cells the net would correct take the network's backward-Euler
        step instead wherever its Newton iteration converges and no variable changes by more than this
        (relative; :func:`~thermoemu.primordial.physics_step.backward_euler_answer`). None (default): the
        net corrects every cell the physics step's error estimate does not trust. The shipped region 4
        records 0.1 (docs/emulator.md).
    """

    region: int
    ranges: dict
    predictor_config: NetConfig
    predictors: list
    predictor_scaling: Scaling
    timescale_config: NetConfig | None = None
    timescale_net: torch.nn.Module | None = None
    timescale_scaling: Scaling | None = None
    eps: float = 0.1
    dt_max_over_t_ff: float = 10 ** 0.5
    metadata: dict = field(default_factory=dict)
    device: str = "cpu"
    network: object = None
    physics_trust: float = PHYSICS_TRUST
    backward_euler_change: float | None = None

    @property
    def residual(self):
        """True for a physics-first model (a residual net over the physics step, no DGM net)."""
        return self.predictor_config.kind == "residual"

    @classmethod
    def new(cls, region, ranges, predictor_config, predictor_scaling, timescale_config=None,
            timescale_scaling=None, **kwargs):
        """Fresh (untrained) modules for the given configurations."""
        if predictor_config.kind == "deeponet":
            one = NetConfig(**{**predictor_config.to_dict(), "n_outputs": 1})
            predictors = [build_net(one) for _ in range(7)]
        else:
            predictors = [build_net(predictor_config)]
        for net in predictors:  # the scaled trunk input of dt = 0, for anchored DeepONets
            if hasattr(net, "t_zero"):
                net.t_zero.fill_(float(predictor_scaling.scale_t(0.0)))
        timescale_net = build_net(timescale_config) if timescale_config is not None else None
        return cls(region=region, ranges=ranges, predictor_config=predictor_config,
                   predictors=predictors, predictor_scaling=predictor_scaling,
                   timescale_config=timescale_config, timescale_net=timescale_net,
                   timescale_scaling=timescale_scaling, **kwargs)

    # -- parameters, for artifacts -----------------------------------------------------------
    def state_tensors(self):
        """Flat ``{name: tensor}`` of every weight (names as stored in the safetensors file)."""
        out = {}
        for i, net in enumerate(self.predictors):
            prefix = "predictor." if len(self.predictors) == 1 else f"predictor.{i}."
            out.update({prefix + k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()})
        if self.timescale_net is not None:
            out.update({"timescale." + k: v.detach().cpu().contiguous()
                        for k, v in self.timescale_net.state_dict().items()})
        return out

    def load_tensors(self, tensors):
        """Fill the modules from ``{name: tensor}``; every expected name must be present."""
        for i, net in enumerate(self.predictors):
            prefix = "predictor." if len(self.predictors) == 1 else f"predictor.{i}."
            own = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            if hasattr(net, "t_zero"):
                own.setdefault("t_zero", net.t_zero)  # older artifacts: not anchored, value unused
            net.load_state_dict(own, strict=True)
        if self.timescale_net is not None:
            self.timescale_net.load_state_dict({k[len("timescale."):]: v for k, v in tensors.items()
                                                if k.startswith("timescale.")}, strict=True)

    def to(self, device):
        for net in self.predictors:
            net.to(device)
        if self.timescale_net is not None:
            self.timescale_net.to(device)
        self.device = str(device)
        return self

    def eval(self):
        for net in self.predictors:
            net.eval()
        if self.timescale_net is not None:
            self.timescale_net.eval()
        return self

    # -- inference --------------------------------------------------------------------------
    def _tensor(self, a):
        return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=self.device)

    def predict_log(self, n_H, x0, t):
        """Predicted ``log10 x`` after times ``t``.

        Parameters
        ----------
        n_H : ndarray (N,)
            [cm^-3]
        x0 : ndarray (7, N)
            Initial state in network order (abundances, then temperature [K]).
        t : ndarray (N,) or (N, 7)
            Time per cell, or per cell and variable [s].

        Returns
        -------
        ndarray (N, 7)
            log10 of the abundances and temperature [K] after ``t``.
        """
        if self.residual:
            return self._predict_residual(n_H, x0, t)
        s = self.predictor_scaling
        xb = branch_inputs(n_H, x0)
        t = np.broadcast_to(np.asarray(t, dtype=float).reshape(len(n_H), -1), (len(n_H), 7))
        xs = self._tensor(s.scale_x(xb))
        ts = self._tensor(s.scale_t(trunk_inputs(t)))
        with torch.inference_mode():
            if len(self.predictors) == 1:
                r = self.predictors[0](xs, ts)
            else:
                r = torch.cat([net(xs, ts[:, i:i + 1]) for i, net in enumerate(self.predictors)], dim=1)
        r = s.unscale_y(r.cpu().numpy().astype(float))
        log0 = np.concatenate([xb[:, 2:], xb[:, 1:2]], axis=1)  # network order
        return log0 + r

    def physics_base(self, n_H, x0, dt):
        """The physics step a residual net corrects, (7, N), the substeps per cell and its estimated
        local error (:func:`~thermoemu.primordial.physics_step.physics_step`)."""
        with np.errstate(all="ignore"):
            return physics_step(self.network, n_H, x0, dt, self.predictor_config.substeps,
                                uniform=self.predictor_config.uniform_substeps, return_substeps=True,
                                return_error=True)

    def residual_correction(self, n_H, x0, dt, x_base, substeps):
        """The net's corrections [dex], (N, 7) (targets of ``features.residual_targets``)."""
        s = self.predictor_scaling
        inputs = residual_inputs(n_H, x0, dt, free_fall_time(n_H), x_base, substeps)
        with torch.inference_mode():
            r = self.predictors[0](self._tensor(s.scale_x(inputs)))
        return s.unscale_y(r.cpu().numpy().astype(float))

    def _predict_residual(self, n_H, x0, t):
        """log10 x(t) (N, 7) of a physics-first model: physics step, slow corrections (where the step's
        estimated error is at least PHYSICS_TRUST), trace closure."""
        if self.network is None:
            raise ValueError(f"region {self.region}: a residual model needs the network (load it with load_model_set)")
        t = np.asarray(t, dtype=float)
        if t.ndim == 2:  # one time per cell: residual models serve the plain update only
            if not np.all(t == t[:, :1]):
                raise ValueError(f"region {self.region} is a physics-first model: it predicts the state at one "
                                 f"time per cell (update='plain'), not per variable")
            t = t[:, 0]
        dt = np.broadcast_to(t, np.shape(n_H))
        n_H = np.asarray(n_H, dtype=float)
        x0 = np.asarray(x0, dtype=float)
        x_base, substeps, error = self.physics_base(n_H, x0, dt)
        r = np.zeros((len(dt), 7))
        corrected = ~(error < self.physics_trust)  # where the physics step is accurate on its own, no net
        if self.backward_euler_change is not None and corrected.any():
            c = np.flatnonzero(corrected)
            x_be, answer = backward_euler_answer(self.network, n_H[c], x0[:, c], dt[c], self.backward_euler_change,
                                                 physics=x_base[:, c])
            x_base = x_base.copy()
            x_base[:, c[answer]] = x_be[:, answer]
            corrected[c[answer]] = False
        if corrected.any():
            r[corrected] = self.residual_correction(n_H[corrected], x0[:, corrected], dt[corrected],
                                                    x_base[:, corrected], substeps[corrected])
        x = x_base.copy()
        if corrected.any():  # the physics step closed the trace species already; redo it where the net moved x
            c = np.flatnonzero(corrected)
            xc = x_base[:, c] * 10.0 ** r[c].T
            with np.errstate(all="ignore"):
                xc = close_trace_species(self.network, n_H[c], xc, x0[:, c], dt[c])
            xc[4:6] = xc[4:6] * 10.0 ** r[c, 4:6].T  # the learned correction of the closure
            x[:, c] = xc
        return log_state(x)

    def timescales(self, n_H, x0, t_ff):
        """tau_eps per variable [s] from the DGM net (OS25 eq. 16 inverted), shape (N, 7)."""
        if self.timescale_net is None:
            raise ValueError(f"region {self.region} has no timescale net")
        s = self.timescale_scaling
        xs = self._tensor(s.scale_x(branch_inputs(n_H, x0)))
        with torch.inference_mode():
            y = self.timescale_net(xs).cpu().numpy().astype(float)
        return timescales_from_targets(s.unscale_y(y), np.asarray(t_ff, dtype=float), self.eps)

    def n_parameters(self):
        nets = list(self.predictors) + ([self.timescale_net] if self.timescale_net is not None else [])
        return sum(p.numel() for net in nets for p in net.parameters())
