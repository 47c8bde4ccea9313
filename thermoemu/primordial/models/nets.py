"""torch modules of the emulators: DeepONet (per variable and fused) and the DGM timescale net.

Architectures follow Ono & Sugimura (2025, hereafter OS25), section 2.2 (DeepONet, their eqs. 3-4)
and section 2.3.2 (DGM, their eqs. 9-15, after Sirignano & Spiliopoulos 2018). All modules take
*scaled* inputs (see :mod:`thermoemu.primordial.models.features`) and return scaled outputs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

__all__ = ["NetConfig", "MLP", "DeepONet", "FusedDeepONet", "DGMNet", "ResidualNet", "build_net"]

KINDS = ("deeponet", "fused", "dgm", "residual")


@dataclass(frozen=True)
class NetConfig:
    """Size of one network.

    Parameters
    ----------
    kind : {"deeponet", "fused", "dgm", "residual"}
        ``deeponet``: one target per net (OS25); ``fused``: one branch and one trunk for all
        targets (ours); ``dgm``: the timescale net; ``residual``: a small MLP that corrects the
        physics step (:mod:`thermoemu.primordial.physics_step`; ours, "physics-first").
    layers : int
        Hidden layers of the branch and trunk nets (DeepONet) or DGM layers. OS25: 10.
    width : int
        Neurons per layer. OS25: 128.
    latent : int
        Length p of the branch and trunk output vectors (DeepONet); ignored for DGM.
    n_inputs : int
        Branch / DGM inputs (8: log n_H, log T0, six log y0).
    n_outputs : int
        Targets of this net (1 for a per-variable DeepONet, 7 otherwise).
    anchored : bool
        DeepONet only: return ``Y(t) - Y(0)`` so that the predicted change vanishes exactly at
        dt = 0 (ours; the bias of eq. 4 cancels). Needs the scaled trunk input of dt = 0 in the
        buffer ``t_zero``.
    linear_skip : bool
        DeepONet only: the branch is ``MLP(X) + X A`` (a linear path from the inputs), so that
        outputs linear in the inputs, such as the ``-log10 y0`` of a fast species relaxing to
        equilibrium, are represented exactly (ours).
    substeps : int
        Residual nets only: substeps of the physics step the net corrects.
    uniform_substeps : int
        Residual nets only: of those substeps, how many at the end are equal (1: all geometric;
        :func:`thermoemu.primordial.physics_step.substep_fractions`).
    """

    kind: str = "fused"
    layers: int = 10
    width: int = 128
    latent: int = 128
    n_inputs: int = 8
    n_outputs: int = 7
    anchored: bool = False
    linear_skip: bool = False
    substeps: int = 1
    uniform_substeps: int = 1

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"NetConfig.kind = {self.kind!r}; allowed: {', '.join(map(repr, KINDS))}")
        for name in ("layers", "width", "latent", "n_inputs", "n_outputs", "substeps", "uniform_substeps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"NetConfig.{name} = {value!r}; must be a positive integer")
        if self.uniform_substeps > self.substeps:
            raise ValueError(f"NetConfig.uniform_substeps = {self.uniform_substeps!r}; must be <= substeps = "
                             f"{self.substeps}")

    def to_dict(self):
        return asdict(self)


class MLP(nn.Module):
    """Fully connected ReLU net, ``phi_l = ReLU(phi_{l-1} W_l + b_l)`` (OS25 eq. 3), linear last layer."""

    def __init__(self, n_in, width, layers, n_out):
        super().__init__()
        sizes = [n_in] + [width] * layers
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.out = nn.Linear(width, n_out)

    def forward(self, x):
        for layer in self.hidden:
            x = torch.relu(layer(x))
        return self.out(x)


class Branch(nn.Module):
    """Branch net: an :class:`MLP`, optionally plus a linear path from the inputs."""

    def __init__(self, n_in, width, layers, n_out, linear_skip):
        super().__init__()
        self.mlp = MLP(n_in, width, layers, n_out)
        self.skip = nn.Linear(n_in, n_out, bias=False) if linear_skip else None

    def forward(self, x):
        out = self.mlp(x)
        return out if self.skip is None else out + self.skip(x)


def _branch(config, n_out):
    if config.linear_skip:
        return Branch(config.n_inputs, config.width, config.layers, n_out, True)
    return MLP(config.n_inputs, config.width, config.layers, n_out)


class DeepONet(nn.Module):
    """OS25 DeepONet for one target: ``Y = B_net(X) . T_net(t) + b`` (their eq. 4)."""

    def __init__(self, config: NetConfig):
        super().__init__()
        self.config = config
        self.branch = _branch(config, config.latent)
        self.trunk = MLP(1, config.width, config.layers, config.latent)
        self.bias = nn.Parameter(torch.zeros(config.n_outputs))
        self.register_buffer("t_zero", torch.zeros(1))

    def _trunk(self, t):
        tr = self.trunk(t.reshape(-1, 1)).reshape(t.shape + (-1,))
        if self.config.anchored:
            tr = tr - self.trunk(self.t_zero.reshape(1, 1))[0]
        return tr

    def forward(self, x, t):
        """Scaled branch inputs ``x`` (N, 8) and trunk inputs ``t`` (N, K) -> outputs (N, K)."""
        b = self.branch(x)  # (N, p)
        out = torch.einsum("np,nkp->nk", b, self._trunk(t))  # (N, K)
        return out if self.config.anchored else out + self.bias[0]


class FusedDeepONet(nn.Module):
    """One branch and one trunk for all K targets: ``Y_k = B_k(X) . T_net(t_k) + b_k``.

    The branch emits K vectors of length p (the multi-output DeepONet of Lu et al. 2022, "split
    branch"); the trunk is shared, so each target can be evaluated at its own time ``t_k``, which
    the timescale-based update needs.
    """

    def __init__(self, config: NetConfig):
        super().__init__()
        self.config = config
        self.branch = _branch(config, config.latent * config.n_outputs)
        self.trunk = MLP(1, config.width, config.layers, config.latent)
        self.bias = nn.Parameter(torch.zeros(config.n_outputs))
        self.register_buffer("t_zero", torch.zeros(1))

    _trunk = DeepONet._trunk

    def forward(self, x, t):
        """Scaled branch inputs ``x`` (N, 8), trunk inputs ``t`` (N, K) -> outputs (N, K)."""
        k, p = self.config.n_outputs, self.config.latent
        b = self.branch(x).reshape(-1, k, p)
        out = (b * self._trunk(t)).sum(-1)
        return out if self.config.anchored else out + self.bias


class DGMLayer(nn.Module):
    """One DGM layer (OS25 eqs. 10-14): gates Z, G, R and candidate H."""

    def __init__(self, n_in, width):
        super().__init__()
        self.U = nn.Linear(n_in, 4 * width)  # U^(z,g,r,h) and b^(z,g,r,h)
        self.W_zgr = nn.Linear(width, 3 * width, bias=False)
        self.W_h = nn.Linear(width, width, bias=False)

    def forward(self, x, phi):
        ux = self.U(x)
        uz, ug, ur, uh = ux.chunk(4, dim=-1)
        wz, wg, wr = self.W_zgr(phi).chunk(3, dim=-1)
        z = torch.sigmoid(uz + wz)
        g = torch.sigmoid(ug + wg)
        r = torch.sigmoid(ur + wr)
        h = torch.sigmoid(uh + self.W_h(phi * r))
        return (1.0 - g) * h + z * phi


class DGMNet(nn.Module):
    """OS25 DGM timescale net: ``phi_0 = sigma(X U_0 + b_0)``, DGM layers, linear output (eq. 15)."""

    def __init__(self, config: NetConfig):
        super().__init__()
        self.config = config
        self.first = nn.Linear(config.n_inputs, config.width)
        self.layers = nn.ModuleList(DGMLayer(config.n_inputs, config.width) for _ in range(config.layers))
        self.out = nn.Linear(config.width, config.n_outputs)

    def forward(self, x):
        phi = torch.sigmoid(self.first(x))
        for layer in self.layers:
            phi = layer(x, phi)
        return self.out(phi)


class ResidualNet(nn.Module):
    """Small SiLU MLP from the scaled residual inputs to the scaled corrections (ours).

    Inputs and targets: :func:`thermoemu.primordial.models.features.residual_inputs` and
    ``residual_targets``. The net only learns what the physics step and the trace closures miss.
    """

    def __init__(self, config: NetConfig):
        super().__init__()
        self.config = config
        sizes = [config.n_inputs] + [config.width] * config.layers
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.out = nn.Linear(config.width, config.n_outputs)

    def forward(self, x):
        for layer in self.hidden:
            x = torch.nn.functional.silu(layer(x))
        return self.out(x)


def build_net(config: NetConfig) -> nn.Module:
    """The module for a :class:`NetConfig`."""
    return {"deeponet": DeepONet, "fused": FusedDeepONet, "dgm": DGMNet, "residual": ResidualNet}[config.kind](config)
