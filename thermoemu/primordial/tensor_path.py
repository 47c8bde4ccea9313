"""One array path: the emulator's hot loop written once in torch, for numpy, torch and cupy arrays.

:meth:`Emulator.step_arrays <thermoemu.primordial.emulator.Emulator.step_arrays>` hands a call to
:func:`step_arrays` here (``wants_tensor_path``) when

* ``x``, ``n_H`` or ``dt`` is a torch tensor (on any device) or a cupy array, or
* the emulator's nets are on a CUDA device (``Emulator(device="cuda")``), or
* the emulator's ``array_path`` option is ``"torch"`` (``emulator.with_options(array_path="torch")``):
  numpy input through the torch loop on the nets' device. On the CPU this is the path that CI tests
  against the numpy loop, and it is the same code that runs on a GPU.

``array_path="numpy"`` keeps the numpy loop (numpy input only). Inputs are converted to float64
tensors on the nets' device: numpy arrays by a copy, torch tensors by ``.to``, cupy arrays by
``torch.from_dlpack`` (no host round trip when they are on the nets' GPU). Results come back as
the input's kind: numpy arrays for numpy input, torch tensors on the input's device for torch input,
cupy arrays (``cupy.from_dlpack``) for cupy input.

What runs on the nets' device (:func:`step_tensors`), for ``update`` "timescale" (OS25 eq. 8) and
"plain": region routing (the boundaries of :func:`thermoemu.primordial.sampling.region_of`), the
domain guard (the rule of ``Emulator.classify``: trained ranges with ``RANGE_SLACK``, H- and H2+
below their floor raised to it in the nets' input), the input scaling, the nets (float32, the
region's own modules), eq. 8 with tau capped at dt_max, equal substeps for dt > dt_max, the
conservation projection (the formula of :func:`~thermoemu.primordial.physics.network.project_abundances`)
and the ``LOG_FLOOR`` floor. The state is float64 throughout; only the nets' inputs and outputs are
float32, as on the numpy path, so the two paths agree to float32 rounding.

What does not: cells out of domain, cells whose emulated state is not finite and cells above the Saha
density (1e18 cm^-3). Only those cells are copied to the host and handled by the numpy code of the
numpy path (out-of-domain policy and reference solver, :func:`thermoemu.core.emulator.apply_fallback`;
the Saha table), with the same status codes, then written back.

The updates "tangent" and "shaped" need the reference network (numba, host) per cell, and so do
predictors other than DeepONets (``TENSOR_PREDICTORS``): torch and cupy input with them raises
ValueError naming what is allowed, and so does ``array_path="torch"``; with ``array_path="auto"`` and
numpy input they keep the numpy loop (the nets on the emulator's device, as before), with no host copy
to document because the data never left the host.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch

from ..constants import G_NEWTON, MASS_PER_H
from ..core.emulator import RANGE_SLACK, apply_fallback
from ..core.protocols import StepResult
from ..solvers.rosenbrock import integrate
from .models.features import LOG_FLOOR, VARIABLES, timescales_from_targets
from .physics.network import CONSERVATION_MATRIX, CONSERVATION_TARGET
from .saha_table import SAHA_MIN_DENSITY, load_saha_table
from .sampling import REGIONS

__all__ = ["ARRAY_PATHS", "TENSOR_PREDICTORS", "TENSOR_UPDATES", "array_kind", "check_supported", "classify",
           "project_abundances", "region_of", "step_arrays", "step_tensors", "wants_tensor_path"]

#: Values of the emulator's ``array_path`` option.
ARRAY_PATHS = ("auto", "numpy", "torch")
#: Updates the tensor path runs (the others need the reference network on the host).
TENSOR_UPDATES = ("timescale", "plain")
#: Predictor kinds the tensor path runs (DeepONets: nets only, no physics step on the host).
TENSOR_PREDICTORS = ("fused", "deeponet")
_TRACE = (VARIABLES.index("H-"), VARIABLES.index("H2+"))
#: log10 n_H [cm^-3] edges of the regions (OS25 Table 1), as in ``sampling.region_of``.
_EDGES = [float(REGIONS[r]["n_H"][0]) for r in range(5)] + [float(REGIONS[4]["n_H"][1])]


# ----------------------------------------------------------------------------- array kinds
def array_kind(a):
    """``"torch"``, ``"cupy"`` or ``"numpy"`` (anything else: numpy arrays, lists, scalars)."""
    if isinstance(a, torch.Tensor):
        return "torch"
    if type(a).__module__.split(".")[0] == "cupy":
        return "cupy"
    return "numpy"


def _input_kind(*arrays):
    """The kind of the first torch / cupy array among ``arrays`` and that array (results follow it)."""
    for a in arrays:
        kind = array_kind(a)
        if kind != "numpy":
            return kind, a
    return "numpy", None


def _n_H_of(cells):
    """n_H from a Stepper's ``cells`` mapping or a bare array (as ``physics.network.as_cells``)."""
    return cells["n_H"] if isinstance(cells, Mapping) else cells


def check_supported(emulator):
    """Raise ValueError unless the tensor path runs this emulator: ``update`` "timescale" or "plain" (the
    message names the update and the allowed ones) and DeepONet predictors (``TENSOR_PREDICTORS``)."""
    if emulator.update not in TENSOR_UPDATES:
        raise ValueError(f"update = {emulator.update!r} needs the reference network on the host; the tensor path "
                         f"(torch / cupy input, array_path='torch') takes update "
                         f"{' or '.join(map(repr, TENSOR_UPDATES))}")
    kinds = sorted({m.predictor_config.kind for m in emulator.regions.values()} - set(TENSOR_PREDICTORS))
    if kinds:
        raise ValueError(f"predictor kind(s) {kinds} need the host; the tensor path (torch / cupy input, "
                         f"array_path='torch') runs predictors {' or '.join(map(repr, TENSOR_PREDICTORS))}")


def _supported(emulator):
    try:
        check_supported(emulator)
    except ValueError:
        return False
    return True


def _nets_device(emulator):
    return torch.device(next(iter(emulator.regions.values())).device)


def host_round_trip_needed(cells, x, dt):
    """True if any of the arrays is a torch tensor or a cupy array."""
    return _input_kind(x, _n_H_of(cells), dt)[0] != "numpy"


def step_on_host(emulator, cells, x, dt):
    """``emulator.step_arrays`` for torch / cupy input of a set the tensor path does not run (physics-first:
    its physics step is numba on the host): the arrays are copied to numpy, stepped, and the results
    copied back to the input's kind and device."""
    kind, like = _input_kind(x, _n_H_of(cells), dt)
    home = _home_device(kind, like)

    def host(a):
        return _to_tensor(a, torch.device("cpu")).numpy() if array_kind(a) != "numpy" else a

    n_H = host(_n_H_of(cells))
    res = emulator.with_options(array_path="numpy").step_arrays({"n_H": n_H}, host(x), host(dt))
    out = {name: _from_tensor(torch.as_tensor(np.asarray(getattr(res, name))), kind, home)
           for name in ("x", "success", "out_of_domain", "status")}
    return type(res)(out["x"], out["success"], out["out_of_domain"], out["status"], res.extra)


def wants_tensor_path(emulator, cells, x, dt):
    """Whether ``emulator.step_arrays(cells, x, dt)`` runs on the tensor path (module docstring).

    Raises
    ------
    ValueError
        For torch / cupy input with ``array_path="numpy"``.
    """
    path = getattr(emulator, "array_path", "auto")
    kind, _ = _input_kind(x, _n_H_of(cells), dt)
    if path == "numpy":
        if kind != "numpy":
            raise ValueError(f"array_path = 'numpy' takes numpy arrays, got {kind} input; "
                             "use array_path='auto' or 'torch' for torch tensors and cupy arrays")
        return False
    if path == "torch" or kind != "numpy":
        return True
    return _nets_device(emulator).type == "cuda" and _supported(emulator)


def _to_tensor(a, device):
    """float64 tensor on ``device`` from a numpy / torch / cupy array or a scalar (cupy by DLPack)."""
    kind = array_kind(a)
    if kind == "torch":
        return a.to(device=device, dtype=torch.float64)
    if kind == "cupy":
        return torch.from_dlpack(a).to(device=device, dtype=torch.float64)
    a = np.asarray(a, dtype=float)
    if not a.flags.writeable:  # e.g. broadcast views of apply_stepper: torch refuses to share read-only memory
        a = a.copy()
    return torch.as_tensor(a, dtype=torch.float64, device=device)


def _home_device(kind, like):
    """The device the results go back to: the input's (cupy: its CUDA device), CPU for numpy."""
    if kind == "torch":
        return like.device
    if kind == "cupy":
        return torch.device("cuda", like.device.id)
    return torch.device("cpu")


def _from_tensor(t, kind, home):
    """``t`` as the input's kind on its device; bool tensors cross DLPack as uint8."""
    t = t.to(home)
    if kind == "torch":
        return t
    if kind == "cupy":
        import cupy

        if t.dtype == torch.bool:
            return cupy.from_dlpack(t.to(torch.uint8).contiguous()).astype(bool)
        return cupy.from_dlpack(t.contiguous())
    return t.numpy()


# ----------------------------------------------------------------------------- the hot loop
def _free_fall_time(n_H):
    """``sqrt(3 pi / (32 G rho))`` [s], rho = (1 + 4 y_He) n_H m_H; the formula of ``free_fall_time``."""
    return torch.sqrt(3.0 * math.pi / (32.0 * G_NEWTON * MASS_PER_H * n_H))


def region_of(n_H):
    """Region index (0-4) of each n_H [cm^-3] (float64 tensor), -1 outside 1e-3..1e18 (``sampling.region_of``)."""
    logn = torch.log10(n_H)
    edges = torch.tensor(_EDGES, dtype=n_H.dtype, device=n_H.device)
    r = torch.searchsorted(edges, logn.contiguous(), right=True) - 1
    inside = (logn >= edges[0]) & (logn <= edges[-1])
    return torch.where(inside, torch.clamp(r, max=4), torch.full_like(r, -1))


def classify(emulator, n_H, x):
    """Region (-1 if none loaded), inside and clamped per cell: the rule of ``Emulator.classify``.

    Parameters
    ----------
    n_H : tensor (N,)
        [cm^-3]
    x : tensor (7, N)
        Abundances (network order) and temperature [K].

    Returns
    -------
    region : tensor of int64 (N,)
    inside, clamped : tensor of bool (N,)
    """
    region = region_of(n_H)
    loaded = torch.zeros_like(region, dtype=torch.bool)
    for r in emulator.regions:
        loaded |= region == r
    region = torch.where(loaded, region, torch.full_like(region, -1))
    inside = region >= 0
    clamped = torch.zeros_like(inside)
    for r, m in emulator.regions.items():
        sel = region == r
        ok = torch.ones_like(inside)
        low = torch.zeros_like(inside)
        for i, v in enumerate(VARIABLES):
            lo, hi = m.ranges[v]
            ok &= x[i] <= hi * (1 + RANGE_SLACK)
            below = x[i] < lo * (1 - RANGE_SLACK)
            if i in _TRACE:
                low |= below
            else:
                ok &= ~below
        inside = torch.where(sel, ok, inside)
        clamped = torch.where(sel, ok & low, clamped)
    return region, inside, clamped


class _Region:
    """One region's nets, scalings and trained floors as tensors on the nets' device."""

    def __init__(self, m, device):
        def t(v):
            return torch.as_tensor(np.asarray(v, dtype=float), dtype=torch.float64, device=device)

        self.m = m
        p, s = m.predictor_scaling, m.timescale_scaling
        self.x_mean, self.x_std, self.t_mean, self.t_std = t(p.x_mean), t(p.x_std), float(p.t_mean), float(p.t_std)
        self.y_mean, self.y_std = t(p.y_mean), t(p.y_std)
        if s is not None:
            self.tx_mean, self.tx_std, self.ty_mean, self.ty_std = t(s.x_mean), t(s.x_std), t(s.y_mean), t(s.y_std)
        self.floors = [float(m.ranges[VARIABLES[i]][0]) for i in _TRACE]
        self.dt_max_over_t_ff = float(m.dt_max_over_t_ff)

    def clamp_trace(self, x):
        """Copy of ``x`` (7, N) with H- and H2+ raised to the trained floor (the nets' input only)."""
        out = x.clone()
        for i, lo in zip(_TRACE, self.floors):
            out[i] = torch.clamp(out[i], min=lo)
        return out

    @staticmethod
    def branch_inputs(n_H, x0):
        """(N, 8): log10 n_H, log10 T0, log10 y0 (``features.branch_inputs``)."""
        return torch.cat([torch.log10(n_H)[:, None], torch.log10(torch.clamp(x0[6], min=LOG_FLOOR))[:, None],
                          torch.log10(torch.clamp(x0[:6], min=LOG_FLOOR)).T], dim=1)

    def predict_log(self, n_H, x0, t):
        """log10 of the state (N, 7) after times ``t`` (N,) or (N, 7) [s] (``RegionModel.predict_log``)."""
        xb = self.branch_inputs(n_H, x0)
        t = t.reshape(len(n_H), -1).expand(len(n_H), 7)
        xs = ((xb - self.x_mean) / self.x_std).to(torch.float32)
        ts = ((torch.log10(1.0 + t) - self.t_mean) / self.t_std).to(torch.float32)
        nets = self.m.predictors
        with torch.inference_mode():
            if len(nets) == 1:
                r = nets[0](xs, ts)
            else:
                r = torch.cat([net(xs, ts[:, i:i + 1]) for i, net in enumerate(nets)], dim=1)
        r = r.to(torch.float64) * self.y_std + self.y_mean
        return torch.cat([xb[:, 2:], xb[:, 1:2]], dim=1) + r

    def timescales(self, n_H, x0, t_ff):
        """tau_eps [s] (N, 7) from the DGM net (``RegionModel.timescales``)."""
        if self.m.timescale_net is None:
            raise ValueError(f"region {self.m.region} has no timescale net")
        xs = ((self.branch_inputs(n_H, x0) - self.tx_mean) / self.tx_std).to(torch.float32)
        with torch.inference_mode():
            y = self.m.timescale_net(xs).to(torch.float64)
        return timescales_from_targets(y * self.ty_std + self.ty_mean, t_ff, self.m.eps, xp=torch)


def project_abundances(y):
    """Hydrogen-nucleus and charge conservation of abundances ``y`` (6, N), the smallest relative change:
    ``y' = y - W C^T (C W C^T)^-1 (C y - b)``, W = diag(y^2) (``network.project_abundances`` in torch)."""
    C = torch.as_tensor(CONSERVATION_MATRIX, dtype=y.dtype, device=y.device)[:, :, None]
    b = torch.as_tensor(CONSERVATION_TARGET, dtype=y.dtype, device=y.device)[:, None]
    w = y * y
    a11 = (C[0] ** 2 * w).sum(dim=0)
    a12 = (C[0] * C[1] * w).sum(dim=0)
    a22 = (C[1] ** 2 * w).sum(dim=0)
    r = torch.einsum("ij,jn->in", C[:, :, 0], y) - b
    det = a11 * a22 - a12 * a12
    ok = det > 1e-14 * torch.clamp(a11 * a22, min=1e-300)
    one = torch.ones_like(det)
    safe = torch.where(ok, det, one)
    l1 = torch.where(ok, (a22 * r[0] - a12 * r[1]) / safe, r[0] / torch.where(a11 > 0, a11, one))
    l2 = torch.where(ok, (a11 * r[1] - a12 * r[0]) / safe,
                     torch.where(a22 > 0, r[1] / torch.where(a22 > 0, a22, one), torch.zeros_like(det)))
    return y - w * (C[0] * l1 + C[1] * l2)


def _emulate(update, g, n_H, x0, dt):
    """One update of cells of one region with dt <= dt_max (``Emulator._emulate``); returns (7, N)."""
    xin = g.clamp_trace(x0)
    t_ff = _free_fall_time(n_H)
    if update == "plain":
        x_new = (10.0 ** g.predict_log(n_H, xin, dt)).T.contiguous()
    else:
        dt_max = g.dt_max_over_t_ff * t_ff
        tau = torch.minimum(g.timescales(n_H, xin, t_ff), dt_max[:, None])
        d = dt[:, None]
        pred = 10.0 ** g.predict_log(n_H, xin, torch.maximum(d, tau))  # eq. 8: x_pred(tau) if dt < tau, else x_pred(dt)
        frac = torch.where(d < tau, d / torch.where(tau > 0, tau, torch.ones_like(tau)), torch.ones_like(tau))
        x_new = (x0.T + frac * (pred - x0.T)).T.contiguous()
    floor = torch.tensor(LOG_FLOOR, dtype=x_new.dtype, device=x_new.device)
    x_new[:6] = torch.maximum(project_abundances(x_new[:6]), floor)  # maximum, not clamp: NaN stays NaN
    return x_new


def step_tensors(emulator, n_H, x, dt):
    """The emulator's step of the cells it handles on the tensor path (all on the nets' device).

    Parameters
    ----------
    emulator : Emulator
        With ``update`` "timescale" or "plain".
    n_H : tensor (N,)
        [cm^-3], float64.
    x : tensor (7, N)
        Abundances (network order) and temperature [K], float64.
    dt : tensor (N,)
        [s], >= 0, float64.

    Returns
    -------
    x_new : tensor (7, N)
        The emulated state where ``inside``; ``x`` elsewhere (those cells are the caller's: out of
        domain, or above the Saha density).
    inside, clamped : tensor of bool (N,)
        In the trained domain; inside with H- or H2+ raised to the trained floor (status 1).
    region : tensor of int64 (N,)
        Region of each cell, -1 where no loaded region holds its n_H.
    """
    check_supported(emulator)
    region, inside, clamped = classify(emulator, n_H, x)
    out = x.clone()
    for r, m in emulator.regions.items():
        sel = torch.nonzero(inside & (region == r)).flatten()
        if sel.numel() == 0:
            continue
        g = _Region(m, x.device)
        n_sel, dt_sel = n_H[sel], dt[sel]
        dt_max = g.dt_max_over_t_ff * _free_fall_time(n_sel)
        nsub = torch.clamp(torch.ceil(dt_sel / dt_max - 1e-12), min=1).to(torch.int64)
        h = dt_sel / nsub
        xs = out[:, sel]
        for k in range(int(nsub.max())):
            active = nsub > k
            if bool(active.all()):
                xs = _emulate(emulator.update, g, n_sel, xs, h)
            else:
                xs[:, active] = _emulate(emulator.update, g, n_sel[active], xs[:, active], h[active])
        out[:, sel] = xs
    return out, inside, clamped, region


def _describe(n_H, x):
    """``describe(k)`` of ``raise_out_of_domain``, worded as on the numpy path."""
    return lambda k: (f"n_H = {n_H[k]:.4g} cm^-3, T = {x[6, k]:.4g} K, "
                      f"abundances {dict(zip(VARIABLES[:6], np.round(x[:6, k], 12).tolist()))}")


def step_arrays(emulator, cells, x, dt):
    """``Emulator.step_arrays`` on the tensor path: numpy, torch or cupy arrays in, the same kind out.

    Parameters
    ----------
    emulator : Emulator
    cells : mapping ``{"n_H": array (N,)}`` or array (N,)
        n_H [cm^-3]
    x : array (7, N)
        Abundances (network order) and temperature [K].
    dt : array (N,) or float
        [s], >= 0.

    Returns
    -------
    StepResult
        ``x`` (7, N) float64, ``success``, ``out_of_domain`` (bool) and ``status`` (int8, the codes of
        ``EMU_STATUS``), as numpy arrays, torch tensors on the input's device or cupy arrays.
    """
    check_supported(emulator)
    kind, like = _input_kind(x, _n_H_of(cells), dt)
    home = _home_device(kind, like)
    device = _nets_device(emulator)
    n_H = _to_tensor(_n_H_of(cells), device).reshape(-1)
    x0 = _to_tensor(x, device).reshape(7, -1)
    dt = torch.broadcast_to(_to_tensor(dt, device), n_H.shape).clone()
    saha = n_H > SAHA_MIN_DENSITY
    if emulator.out_of_domain == "raise":
        _, inside, _ = classify(emulator, n_H, x0)
        n_h, x_h = n_H.cpu().numpy(), x0.cpu().numpy()
        emulator.raise_out_of_domain((~inside & ~saha).cpu().numpy(), _describe(n_h, x_h))
    out, inside, clamped, _ = step_tensors(emulator, n_H, x0, dt)
    status = clamped.to(torch.int8)
    success = torch.ones_like(inside)
    ood = ~inside & ~saha
    nonfinite = inside & ~torch.isfinite(out).all(dim=0)
    idx = torch.nonzero(~inside | nonfinite | saha).flatten()
    if idx.numel():  # only these cells go to the host, to the numpy path's own fallback and Saha code
        n_h, x_h, dt_h = n_H[idx].cpu().numpy(), x0[:, idx].cpu().numpy(), dt[idx].cpu().numpy()
        out_h, status_h = out[:, idx].cpu().numpy().copy(), status[idx].cpu().numpy().copy()
        success_h, saha_h = np.ones(idx.numel(), dtype=bool), saha[idx].cpu().numpy()
        network = emulator.network

        def reference(k):
            res = integrate(network, x_h[:, k], network.cell_parameters(n_h[k]), dt_h[k], emulator.settings)
            return res.x.T, res.success, ()

        apply_fallback(emulator.out_of_domain, out_h.T, success_h, status_h, ood[idx].cpu().numpy(),
                       nonfinite[idx].cpu().numpy(), reference)
        if saha_h.any():
            k = np.flatnonzero(saha_h & (dt_h > 0))
            spec, directory = emulator.saha_table
            out_h[:, k], _ = load_saha_table(spec, directory=directory).step(n_h[k], x_h[:, k])
            status_h[saha_h] = 6
        out[:, idx] = torch.from_numpy(out_h).to(device)
        status[idx] = torch.from_numpy(status_h).to(device)
        success[idx] = torch.from_numpy(success_h).to(device)
    return StepResult(*(_from_tensor(t, kind, home) for t in (out, success, ood, status)))
