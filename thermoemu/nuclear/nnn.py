"""Nuclear neural networks (NNN; Grichener et al. 2025, sections 2.3-2.4).

One deep MLP per dt maps (log10 T, log10 rho, X_i) to the composition after dt (a log-softmax
over the isotopes, so it sums to one), ``e_nuc / 1e16 erg g^-1`` and ``eps_nu / 1e16 erg g^-1
s^-1``. Hidden layers: the first ``first_width`` wide (seed: 1024), the rest ``width`` (2048),
ReLU; ``layers`` hidden layers in all (seed: 9 to 12, configurable). Loss: L1 on ln X (targets
floored at ``LOG_X_FLOOR``) and on the scaled energies; Adam, lr 1e-4, batch 512, early stopping on
the validation loss, through the same training loop (:func:`thermoemu.core.training.fit`,
checkpoints and resume) and the same artifact rules (safetensors + a JSON manifest with sha256,
never unpickled) as the primordial emulators.

A model set folder::

    MODEL_DIR/manifest.json     format "thermoemu-nnn", network, isotopes, per dt: file, sha256,
                                config, input scaling, catalog hash, metrics
    MODEL_DIR/nnn-dt<k>.safetensors
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..core.artifacts import MANIFEST, ArtifactError, load_weights, read_manifest
from ..core.catalog import SPLIT_FRACTIONS, open_catalog
from ..core.files import file_sha256, package_version, write_json_atomic
from ..core.training import TrainSettings, fit, torch_device
from .network import nucleus_charge_mass

__all__ = ["NNNConfig", "NNN", "train_nnn", "save_nnn", "load_nnn_set", "NNN_FORMAT", "ENERGY_SCALE", "LOG_X_FLOOR"]

NNN_FORMAT = "thermoemu-nnn"
NNN_FORMAT_VERSION = 1
#: Energies are divided by this before training (seed 000, section 2.3) [erg g^-1 (s^-1)].
ENERGY_SCALE = 1e16
#: Mass fractions below this are floored in the ln X target.
LOG_X_FLOOR = 1e-30
#: Offset under the logarithm of the residual variant's prior ln(X0 + floor).
RESIDUAL_FLOOR = 1e-12
#: Scales of the "change" target (our design): each change v is learned as asinh(v / scale) / CHANGE_DIVISOR,
#: logarithmic above the scale and linear below, so a change of 1e-9 counts as much as one of 0.1
#: (mass fractions [1], Ye [1], e_nuc [erg g^-1], eps_nu [erg g^-1 s^-1]).
CHANGE_SCALES = {"mass_fraction": 1e-10, "ye": 1e-10, "e_nuc": 1e8, "eps_nu": 1e6}
#: Divides the asinh-scaled targets so that they are of order one (asinh(1 / 1e-10) = 23.7).
CHANGE_DIVISOR = 10.0
#: Scaled outputs are clipped to +-this before sinh (sinh(10 x 7) ~ 1e30: far beyond any real change,
#: short of overflow).
CHANGE_CLIP = 7.0
#: Weight floor of the projection of a "change" prediction onto sum X = 1 and the predicted Ye.
PROJECTION_FLOOR = 1e-8
TARGETS = ("composition", "change", "hybrid")
#: Gates a hybrid NNN may choose between (sum_i |dX_i| predicted by its change head); chosen on the validation split.
GATE_CANDIDATES = (0.0, 1e-6, 1e-5, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0)
ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU}


@dataclass(frozen=True)
class NNNConfig:
    """Layout of one NNN: ``layers`` hidden ReLU layers, the first ``first_width`` wide.

    ``residual=True`` (our variant, not the seed's) adds ln(X0 + RESIDUAL_FLOOR) to the logits
    before the softmax, so the net learns the change of the composition over dt rather than the
    composition itself.

    ``mass_loss_weight`` (our variant; the seed's loss is 0) adds ``mass_loss_weight * sum_i
    |X_i,pred - X_i,target|`` (mean over samples) to the L1 loss on ln X. The L1 on ln X weighs
    every isotope alike, so trace isotopes at X ~ 1e-20 dominate it, while the errors that decide
    Ye and e_nuc (seed 000 Eqs. 6-7) are those of the abundant ones; the extra term weighs them by
    mass. ``energy_loss_weight`` (seed: 1) multiplies the L1 terms of the two scaled energies.

    ``log_inputs=True`` (our variant) feeds the net, beside X, the logarithmic abundances
    ``1 - ln(X + RESIDUAL_FLOOR) / ln(RESIDUAL_FLOOR)`` (0 for X = 0, 1 for X = 1): the outputs are
    logarithms, and a ReLU net reaches ln X of trace isotopes poorly from X alone.

    ``target="change"`` (our design, issue 27; the seed's is ``"composition"``): the net predicts the
    changes over dt, X - X0 per isotope, Ye - Ye0, and e_nuc and eps_nu, each as
    ``asinh(v / CHANGE_SCALES[..]) / CHANGE_DIVISOR`` with an L1 loss, so that where little changes the
    prediction is X0 plus a small learned change (a zero output is "nothing changes" exactly), and
    small changes weigh as much as large ones; ``mass_loss_weight`` then adds sum_i |dX_i| in mass
    fraction. The composition X0 + dX is projected onto sum X = 1 and onto the predicted Ye (the
    smallest change weighted by X + PROJECTION_FLOOR, negative fractions clipped), so Ye comes from the
    net's own Ye output, not from 80 summed errors.

    ``target="hybrid"`` (our design, issue 27, shipped): both heads on one trunk, trained on the sum of
    their losses (the mass weight on the composition head's). Where the change head predicts a small
    change (sum_i |dX_i| below the ``gate`` chosen on the validation split at training), X and e_nuc
    come from it, elsewhere from the composition head (logarithms of changes resolve small changes,
    the end composition large ones); Ye always from the change head (the composition is projected
    onto it); eps_nu from the composition head.

    ``activation``: "relu" (seed) or "silu".
    """

    n_isotopes: int
    layers: int = 9
    first_width: int = 1024
    width: int = 2048
    residual: bool = False
    mass_loss_weight: float = 0.0
    energy_loss_weight: float = 1.0
    log_inputs: bool = False
    target: str = "composition"
    activation: str = "relu"

    def __post_init__(self):
        if self.target not in TARGETS:
            raise ValueError(f"NNNConfig.target = {self.target!r}; choose one of {', '.join(TARGETS)}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"NNNConfig.activation = {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        if self.target == "change" and self.residual:
            raise ValueError("NNNConfig.residual applies to target='composition' or 'hybrid' only")
        for name in ("n_isotopes", "layers", "first_width", "width"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"NNNConfig.{name} = {getattr(self, name)!r}; must be >= 1")
        for name in ("mass_loss_weight", "energy_loss_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"NNNConfig.{name} = {getattr(self, name)!r}; must be >= 0")


class NNN(nn.Module):
    """The MLP. ``forward(u)`` with u = (scaled log T, scaled log rho, X) returns
    (ln X after dt (N, isotopes), scaled [e_nuc, eps_nu] (N, 2))."""

    def __init__(self, config: NNNConfig):
        super().__init__()
        self.config = config
        n = config.n_isotopes
        widths = [config.first_width] + [config.width] * (config.layers - 1)
        layers, prev = [], n + 2 + (n if config.log_inputs else 0)
        act = ACTIVATIONS[config.activation]
        for w in widths:
            layers += [nn.Linear(prev, w), act()]
            prev = w
        self.hidden = nn.Sequential(*layers)
        self.out = nn.Linear(prev, {"composition": n + 2, "change": n + 3, "hybrid": 2 * n + 5}[config.target])
        # input scaling of log10 T and log10 rho (set from the catalog, stored with the weights)
        self.register_buffer("shift", torch.zeros(2, dtype=torch.float64))
        self.register_buffer("scale", torch.ones(2, dtype=torch.float64))
        if config.target != "composition":  # Z/A of the isotopes (the Ye of a composition), stored with the weights
            self.register_buffer("z_over_a", torch.zeros(n, dtype=torch.float64))
        if config.target == "hybrid":  # sum_i |dX_i| below which the change head answers (set at training)
            self.register_buffer("gate", torch.zeros((), dtype=torch.float64))

    def encode_targets(self, X0, raw):
        """Training targets from the initial mass fractions X0 (N, n) and the catalog's outcome ``raw``
        (N, n + 3): mass fractions after dt, Ye after dt, e_nuc [erg g^-1], eps_nu [erg g^-1 s^-1]."""
        n = self.config.n_isotopes
        X, ye, e, nu = raw[:, :n], raw[:, n], raw[:, n + 1], raw[:, n + 2]
        composition = np.concatenate([np.log(np.maximum(X, LOG_X_FLOOR)), e[:, None] / ENERGY_SCALE,
                                      nu[:, None] / ENERGY_SCALE], axis=1)
        if self.config.target == "composition":
            return composition
        ye0 = X0 @ self.z_over_a.double().cpu().numpy()
        c = CHANGE_SCALES
        change = np.concatenate([np.arcsinh((X - X0) / c["mass_fraction"]), np.arcsinh((ye - ye0) / c["ye"])[:, None],
                                 np.arcsinh(e / c["e_nuc"])[:, None], np.arcsinh(nu / c["eps_nu"])[:, None]],
                                axis=1) / CHANGE_DIVISOR
        return change if self.config.target == "change" else np.concatenate([composition, change], axis=1)

    def forward(self, u):
        z = self.out(self.hidden(u))
        n = self.config.n_isotopes
        if self.config.target == "change":
            return z  # scaled changes (see encode_targets); decoded by predict
        logits = z[:, :n]
        if self.config.residual:
            logits = logits + torch.log(u[:, 2:2 + n].clamp_min(0) + RESIDUAL_FLOOR)
        if self.config.target == "hybrid":  # [ln X, energies, scaled changes]
            return torch.cat([torch.log_softmax(logits, dim=1), z[:, n:]], dim=1)
        return torch.log_softmax(logits, dim=1), z[:, n:]

    def features(self, log_T, log_rho, X):
        """Network input from log10 T [K], log10 rho [g cm^-3] and mass fractions (numpy or torch)."""
        device = self.shift.device
        t = torch.as_tensor(np.stack([log_T, log_rho], axis=1) if isinstance(log_T, np.ndarray)
                            else torch.stack([log_T, log_rho], dim=1), dtype=torch.float64, device=device)
        tx = (t - self.shift) / self.scale
        X = torch.as_tensor(X, dtype=torch.float64, device=device)
        parts = [tx, X]
        if self.config.log_inputs:
            parts.append(1.0 - torch.log(X.clamp_min(0) + RESIDUAL_FLOOR) / np.log(RESIDUAL_FLOOR))
        return torch.cat(parts, dim=1).to(self.out.weight.dtype)

    def _decode_hybrid(self, out, X0, gate=None):
        return _decode_hybrid_outputs(out, X0, self.z_over_a.double().cpu().numpy(),
                                      float(self.gate) if gate is None else gate)

    @torch.inference_mode()
    def predict(self, temperature, density, mass_fraction):
        """Mass fractions (N, isotopes), e_nuc [erg g^-1] and eps_nu [erg g^-1 s^-1] after this model's dt.

        eps_nu, a loss rate, is floored at 0 (the linear output can go slightly negative); e_nuc
        keeps its sign (photodisintegration can absorb energy).
        """
        X0 = np.asarray(mass_fraction, float)
        u = self.features(np.log10(np.asarray(temperature, float)), np.log10(np.asarray(density, float)),
                          X0).to(self.out.weight.device)
        if self.config.target == "change":
            return decode_changes(self(u).double().cpu().numpy(), X0, self.z_over_a.double().cpu().numpy())
        if self.config.target == "hybrid":
            return self._decode_hybrid(self(u).double().cpu().numpy(), X0)
        logX, e = self(u)
        e = e.double().cpu().numpy() * ENERGY_SCALE
        return np.exp(logX.double().cpu().numpy()), e[:, 0], np.maximum(e[:, 1], 0.0)


def _change_head(z, X0, z_over_a):
    """dX (N, n), Ye after dt, e_nuc [erg g^-1] and eps_nu [erg g^-1 s^-1] from the scaled changes ``z``
    (N, n + 3) of a change head (see :meth:`NNN.encode_targets`)."""
    n = X0.shape[1]
    c = CHANGE_SCALES
    v = np.sinh(np.clip(z, -CHANGE_CLIP, CHANGE_CLIP) * CHANGE_DIVISOR)
    return (c["mass_fraction"] * v[:, :n], X0 @ z_over_a + c["ye"] * v[:, n], c["e_nuc"] * v[:, n + 1],
            np.maximum(c["eps_nu"] * v[:, n + 2], 0.0))


def _decode_hybrid_outputs(out, X0, z_over_a, gate):
    """X, e_nuc and eps_nu of a hybrid NNN's raw outputs: X and e_nuc from the change head where it predicts
    sum_i |dX_i| < ``gate``, from the composition head elsewhere, each composition projected onto the
    change head's Ye (only the rows that use it); eps_nu from the composition head."""
    n = X0.shape[1]
    dX, ye, e_change, _ = _change_head(out[:, n + 2:], X0, z_over_a)
    small = np.abs(dX).sum(axis=1) < gate
    X = np.empty_like(X0)
    if small.any():
        X[small] = project_composition(X0[small] + dX[small], z_over_a, ye[small])
    if not small.all():
        X[~small] = project_composition(np.exp(out[~small, :n]), z_over_a, ye[~small])
    e = np.where(small, e_change, out[:, n] * ENERGY_SCALE)
    return X, e, np.maximum(out[:, n + 1] * ENERGY_SCALE, 0.0)


def project_composition(X, z_over_a, ye, iterations=40, tolerance=1e-13):
    """Mass fractions near ``X`` (N, n) that sum to one, are non-negative and have electron fraction ``ye``
    (N,): the change minimizing sum_i dX_i^2 / w_i with w_i = max(X_i, 0) + PROJECTION_FLOOR, repeated
    after clipping negative fractions until both constraints hold to ``tolerance`` (at most
    ``iterations`` times; typically 1-3). Vectorized over cells (a 2 x 2 solve each)."""
    X = np.maximum(X, 0.0)
    for _ in range(iterations):
        if (np.abs(1.0 - X.sum(axis=1)).max(initial=0.0) < tolerance
                and np.abs(ye - X @ z_over_a).max(initial=0.0) < tolerance):
            break
        w = X + PROJECTION_FLOOR
        r = np.stack([1.0 - X.sum(axis=1), ye - X @ z_over_a], axis=1)
        wz = w @ z_over_a
        M = np.empty((len(X), 2, 2))
        M[:, 0, 0], M[:, 0, 1] = w.sum(axis=1), wz
        M[:, 1, 0], M[:, 1, 1] = wz, w @ z_over_a**2
        M[:, 1, 1] *= 1.0 + 1e-12  # Z/A all alike (a ridge; the Ye constraint then yields)
        lam = np.linalg.solve(M, r[:, :, None])[:, :, 0]
        X = np.maximum(X + w * (lam[:, :1] + lam[:, 1:] * z_over_a), 0.0)
    return X / X.sum(axis=1, keepdims=True)


def decode_changes(z, X0, z_over_a):
    """Mass fractions, e_nuc [erg g^-1] and eps_nu [erg g^-1 s^-1] from the scaled changes ``z`` (N, n + 3)
    of a ``target="change"`` NNN (see :meth:`NNN.encode_targets`)."""
    dX, ye, e_nuc, eps_nu = _change_head(z, X0, z_over_a)
    return project_composition(X0 + dX, z_over_a, ye), e_nuc, eps_nu


def _l1_loss(n_iso, mass_loss_weight=0.0, energy_loss_weight=1.0, change=False):
    def loss(pred, target):
        # pred is the concatenation [ln X, energies] (see train_nnn's forward), or the scaled changes
        if energy_loss_weight == 1.0:
            value = (pred - target).abs().mean()
        else:  # the same mean over all columns, the energy columns (and Ye's change) weighted
            d = (pred - target).abs()
            value = (d[:, :n_iso].sum(1) + energy_loss_weight * d[:, n_iso:].sum(1)).mean() / d.shape[1]
        if mass_loss_weight and change:  # sum_i |dX_i| in mass fraction: what Eqs. 4-6 measure
            scale = CHANGE_SCALES["mass_fraction"]
            value = value + mass_loss_weight * scale * (torch.sinh(pred[:, :n_iso] * CHANGE_DIVISOR)
                                                        - torch.sinh(target[:, :n_iso] * CHANGE_DIVISOR)).abs().sum(1).mean()
        elif mass_loss_weight:
            value = value + mass_loss_weight * (pred[:, :n_iso].exp() - target[:, :n_iso].exp()).abs().sum(1).mean()
        return value
    return loss


def _hybrid_loss(n_iso, mass_loss_weight=0.0, energy_loss_weight=1.0):
    """The composition head's loss (with the mass weight) plus the change head's (without it)."""
    composition = _l1_loss(n_iso, mass_loss_weight, energy_loss_weight)
    change = _l1_loss(n_iso, 0.0, energy_loss_weight, change=True)

    def loss(pred, target):
        return (composition(pred[:, :n_iso + 2], target[:, :n_iso + 2])
                + change(pred[:, n_iso + 2:], target[:, n_iso + 2:]))
    return loss


def choose_gate(model, arrays):
    """The gate of a hybrid NNN: of :data:`GATE_CANDIDATES`, the one with the smallest mean sum_i |dX_i| on
    ``arrays`` (the validation split; ties to the smaller). Sets it on the model and returns it."""
    logT, logr, X0, raw = arrays
    n = model.config.n_isotopes
    with torch.inference_mode():
        out = model(model.features(logT, logr, X0).to(model.out.weight.device)).double().cpu().numpy()
    X_change = model._decode_hybrid(out, X0, gate=np.inf)[0]   # the change head everywhere
    X_comp = model._decode_hybrid(out, X0, gate=0.0)[0]        # the composition head everywhere
    predicted = np.abs(_change_head(out[:, n + 2:], X0, model.z_over_a.double().cpu().numpy())[0]).sum(axis=1)
    err_change = np.abs(X_change - raw[:, :n]).sum(axis=1)
    err_comp = np.abs(X_comp - raw[:, :n]).sum(axis=1)
    scores = [np.where(predicted < g, err_change, err_comp).mean() for g in GATE_CANDIDATES]
    gate = float(GATE_CANDIDATES[int(np.argmin(scores))])
    model.gate.fill_(gate)
    return gate


def _dt_arrays(ds, k):
    """Inputs and outcome of the k-th dt of an opened nuclear catalog (successful samples only):
    log10 T, log10 rho, X0 and (N, n + 3) columns X after dt, Ye after dt, e_nuc, eps_nu."""
    ok = ds["success"].values.astype(bool)
    X0 = ds["initial_mass_fraction"].values[ok]
    X = ds["mass_fraction"].values[ok, k]
    logT = np.log10(ds["temperature"].values[ok])
    logr = np.log10(ds["density"].values[ok])
    raw = np.concatenate([X, ds["ye"].values[ok, k, None], ds["e_nuc"].values[ok, k, None],
                          ds["eps_nu"].values[ok, k, None]], axis=1)
    return logT, logr, X0, raw


def train_nnn(catalog_dir, dt, out, *, config=None, settings=None, checkpoint_dir=None, progress=True,
              fractions=None):
    """Train the NNN for one dt of a nuclear catalog and add it to the model set ``out``.

    Parameters
    ----------
    catalog_dir : path or sequence of paths
        Built nuclear catalog(s) (``thermoemu build`` of a ``network.kind: nuclear`` spec); several
        catalogs of one network are concatenated split by split.
    dt : float
        One of the catalog's dt values [s].
    out : path
        Model set folder (created; other dt already there are kept).
    config : NNNConfig or dict, optional
        Default: the seed's widths with 9 layers. A dict gives NNNConfig's fields except
        ``n_isotopes``, which then comes from the catalog.
    settings : TrainSettings, optional
        Default: Adam lr 1e-4, batch 512 (seed 000), patience 20.
    fractions : (train, validation, test), optional
        Split of the catalog by sample id (default: the catalog default 0.9/0.05/0.05).

    Returns
    -------
    dict
        The manifest entry of this dt (file, metrics, ...).
    """

    catalog_dirs = [catalog_dir] if isinstance(catalog_dir, (str, Path)) else list(catalog_dir)
    if not catalog_dirs:
        raise ValueError("train_nnn needs at least one catalog folder")
    isotopes, arrays, indexes = _catalog_arrays(catalog_dirs, dt, fractions or SPLIT_FRACTIONS)
    settings = settings or TrainSettings(lr=1e-4, batch_size=512, patience=20, l1=0.0, l2=0.0)
    torch.manual_seed(settings.seed)
    if isinstance(config, dict):
        config = NNNConfig(**{"n_isotopes": len(isotopes), **config})
    config = config or NNNConfig(n_isotopes=len(isotopes))
    if config.n_isotopes != len(isotopes):
        raise ValueError(f"config.n_isotopes = {config.n_isotopes} but the catalog has {len(isotopes)} isotopes")
    device = torch_device(settings)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    for name in ("train", "validation"):
        if len(arrays[name][0]) == 0:
            raise ValueError(f"the {name} split of {', '.join(map(str, catalog_dirs))} is empty; "
                             f"build more samples or pass fractions=")
    model = NNN(config).to(device)
    logT, logr = arrays["train"][0], arrays["train"][1]
    model.shift.copy_(torch.tensor([logT.mean(), logr.mean()], dtype=torch.float64))
    model.scale.copy_(torch.tensor([max(logT.std(), 1e-3), max(logr.std(), 1e-3)], dtype=torch.float64))
    if config.target != "composition":
        Z, A = nucleus_charge_mass(isotopes)
        model.z_over_a.copy_(torch.as_tensor(Z / A, dtype=torch.float64))

    def tensors(a):
        u = model.features(a[0], a[1], a[2]).to(device)
        return u, torch.as_tensor(model.encode_targets(a[2], a[3]), dtype=torch.float32, device=device)

    train, valid = tensors(arrays["train"]), tensors(arrays["validation"])

    def forward(u):
        if config.target != "composition":
            return model(u)
        logX, e = model(u)
        return torch.cat([logX, e], dim=1)

    checkpoint_dir = Path(checkpoint_dir or Path(out) / "checkpoints")
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    c = config
    # the stem names the layout and the data (a changed catalog or variant never resumes another's
    # checkpoint); no dots: the loop derives its file names with Path.with_suffix
    data_key = hashlib.sha256(json.dumps([[i["spec_sha256"], i["samples_written"]] for i in indexes]
                                         + [c.residual] + ([c.mass_loss_weight] if c.mass_loss_weight else [])
                                         + ([c.energy_loss_weight] if c.energy_loss_weight != 1.0 else [])
                                         + (["log_inputs"] if c.log_inputs else [])
                                         + ([c.target] if c.target != "composition" else [])
                                         + ([c.activation] if c.activation != "relu" else []))
                              .encode()).hexdigest()[:8]
    ckpt = checkpoint_dir / f"nnn-dt{dt:g}-L{c.layers}-W{c.first_width}-{c.width}-{data_key}".replace(".", "p")
    state = fit(model, forward, train, valid, settings.l1, settings.l2, settings, ckpt,
                 f"NNN dt={dt:g} s", progress, loss_fn=_hybrid_loss(len(isotopes), c.mass_loss_weight, c.energy_loss_weight)
                 if c.target == "hybrid" else _l1_loss(len(isotopes), c.mass_loss_weight, c.energy_loss_weight,
                                                        change=c.target == "change"))
    if c.target == "hybrid":
        choose_gate(model, arrays["validation"])
    domain = training_domain(arrays["train"], isotopes)
    metrics = evaluate_arrays(model, arrays["test"])
    metrics.update(epochs=state["epoch"], best_validation_loss=state["best"], train_wall_s=round(state["wall_s"], 1),
                   train_samples=int(len(arrays["train"][0])), test_samples=int(len(arrays["test"][0])))
    index = indexes[0]
    return save_nnn(out, dt, model, network=index["network"], rate_set_version=index["rate_set_version"],
                    isotopes=isotopes, metadata={"catalog": ",".join(i["name"] for i in indexes),
                                                 "catalog_spec_sha256": ",".join(i["spec_sha256"] for i in indexes),
                                                 "screening": bool(index.get("network_options", {}).get("screening", True)),
                                                 "domain": domain, "metrics": metrics, "history": state["history"]})


def _catalog_arrays(catalog_dirs, dt, fractions):
    """Isotopes, per-split arrays (concatenated over the catalogs) and the catalogs' indexes; the
    catalogs must share network, rate set, screening and isotope list, and hold ``dt``."""

    isotopes, indexes, parts = None, [], {"train": [], "validation": [], "test": []}
    for folder in catalog_dirs:
        with open(Path(folder) / "index.json") as f:
            index = json.load(f)
        with open_catalog(folder, fractions=fractions) as lazy:  # closed here, not left to the GC
            cat = lazy.load()
        dts = cat["dt"].values
        matches = np.flatnonzero(np.isclose(dts, dt, rtol=1e-9, atol=0))
        if matches.size == 0:
            raise ValueError(f"dt = {dt!r} s is not in the catalog {folder}; it has dt = {dts.tolist()} s")
        names = [str(i) for i in cat["isotope"].values]
        if indexes:
            first = indexes[0]
            for key in ("network", "rate_set_version", "network_options"):
                if index.get(key) != first.get(key):
                    raise ValueError(f"catalog {folder} has {key} = {index.get(key)!r}, but {catalog_dirs[0]} has "
                                     f"{first.get(key)!r}; train on catalogs of one network")
            if names != isotopes:
                raise ValueError(f"catalog {folder} has another isotope list than {catalog_dirs[0]}")
        isotopes = names
        indexes.append(index)
        split = cat["split"].values
        for name, code in (("train", 0), ("validation", 1), ("test", 2)):
            parts[name].append(_dt_arrays(cat.isel(sample=np.flatnonzero(split == code)), int(matches[0])))
    arrays = {name: tuple(np.concatenate([p[i] for p in ps]) for i in range(4)) for name, ps in parts.items()}
    return isotopes, arrays, indexes


def training_domain(arrays, isotopes):
    """Ranges of the training inputs: temperature [K], density [g cm^-3] and Ye, each [lo, hi]."""

    logT, logr, X0 = arrays[0], arrays[1], arrays[2]
    Z, A = nucleus_charge_mass(isotopes)
    ye = X0 @ (Z / A)
    return {"temperature": [float(10.0 ** logT.min()), float(10.0 ** logT.max())],
            "density": [float(10.0 ** logr.min()), float(10.0 ** logr.max())],
            "ye": [float(ye.min()), float(ye.max())]}


def evaluate_arrays(model, arrays):
    """Seed 000 style errors on held-out arrays: mean |dX| over isotopes and samples, mean |dYe|
    relative, mean |d e_nuc| and |d eps_nu| relative to the mean magnitude."""
    logT, logr, X0, raw = arrays
    if len(logT) == 0:
        return {}
    n = model.config.n_isotopes
    X_pred, e_pred, nu_pred = model.predict(10.0**logT, 10.0**logr, X0)
    X_true, e_true, nu_true = raw[:, :n], raw[:, n + 1], raw[:, n + 2]
    return {"mean_abs_dX": float(np.abs(X_pred - X_true).mean()),
            "mean_rel_e_nuc": float(np.abs(e_pred - e_true).mean() / max(np.abs(e_true).mean(), 1e-300)),
            "mean_rel_eps_nu": float(np.abs(nu_pred - nu_true).mean() / max(np.abs(nu_true).mean(), 1e-300))}


def _config_record(config):
    """The config as stored in a manifest; variant fields at their default are left out, so sets
    that do not use them load in versions that predate them."""
    record = asdict(config)
    for key, default in (("log_inputs", False), ("target", "composition"), ("activation", "relu")):
        if record[key] == default:
            del record[key]
    return record


def save_nnn(model_dir, dt, model: NNN, *, network, rate_set_version, isotopes, metadata):
    """Write one dt's weights (safetensors) and add it to the folder's manifest (atomically)."""
    from safetensors.torch import save_file

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / MANIFEST
    manifest = json.loads(path.read_text()) if path.is_file() else {
        "format": NNN_FORMAT, "format_version": NNN_FORMAT_VERSION, "network": network,
        "rate_set_version": rate_set_version, "isotopes": list(isotopes), "models": {}}
    if manifest.get("network") != network or manifest.get("isotopes") != list(isotopes):
        raise ArtifactError(f"{model_dir} holds NNNs of network {manifest.get('network')!r}; "
                            f"cannot add one for {network!r}")
    name = f"nnn-dt{dt:g}.safetensors"
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = model_dir / (name + ".part")
    save_file(tensors, str(tmp), metadata={"format": NNN_FORMAT, "dt_s": repr(float(dt))})
    tmp.replace(model_dir / name)
    entry = {"file": name, "sha256": file_sha256(model_dir / name), "dt_s": float(dt),
             "config": _config_record(model.config), "thermoemu_version": package_version(), **metadata}
    manifest["models"][f"{dt:g}"] = entry
    write_json_atomic(path, manifest)
    return entry


def load_nnn_set(model_dir, *, network=None, device="cpu"):
    """Load every dt of an NNN model set: ``{dt [s]: NNN}`` (:class:`~thermoemu.nuclear.physics_first.PhysicsFirstNNN`
    where the manifest records ``physics``); refuses pickles, modified weights and a set for another
    network or format."""
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir, fmt=NNN_FORMAT, version=NNN_FORMAT_VERSION)
    if network is not None and manifest["network"] != network:
        raise ArtifactError(f"{model_dir} holds NNNs for network {manifest['network']!r}, not {network!r}")
    models = {}
    for entry in manifest["models"].values():
        tensors = load_weights(model_dir / entry["file"], entry["sha256"])
        model = NNN(NNNConfig(**entry["config"]))
        model.load_state_dict(tensors)
        model = model.to(device).eval()
        if "physics" in entry:  # a physics-first set (issue 27): the network's step where it is good
            from .physics_first import PhysicsFirstNNN, physics_settings
            settings = physics_settings(entry, f"{model_dir}, dt = {entry['dt_s']:g} s")
            model = PhysicsFirstNNN(model, entry["dt_s"], manifest["network"], entry.get("screening", True),
                                    **settings, isotopes=manifest["isotopes"])
        models[float(entry["dt_s"])] = model
    return models, manifest
