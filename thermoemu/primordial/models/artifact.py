"""Emulator artifacts: safetensors weights plus JSON metadata; loading never unpickles.

A model set is a folder::

    MODEL_DIR/
      manifest.json          format, network and rate-set version, package version, and per region:
                             file name, sha256, metadata (ranges, scaling, configs, catalog, metrics)
      region0.safetensors    weights of region 0 (the same metadata is embedded as a string)
      ...

Weights are read with :func:`safetensors.torch.load_file`, which parses a JSON header and raw
tensor bytes and executes no code. A pickle (``torch.save``) in place of a safetensors file is
refused, as is an artifact for another network, another rate set, or another format version.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ...core.artifacts import MANIFEST, ArtifactError, load_weights
from ...core.artifacts import read_manifest as _read_manifest
from ...core.emulator import resolve_model
from ...core.files import file_sha256, package_version, write_json_atomic
from ..physics_step import PHYSICS_TRUST, physics_constants
from .features import Scaling
from .nets import NetConfig
from .region import RegionModel

__all__ = ["ArtifactError", "FORMAT", "FORMAT_VERSION", "save_region", "load_model_set", "read_manifest",
           "default_model_dir", "resolve_model_dir"]

FORMAT = "thermoemu-emulator"
#: Major version of the artifact layout; loaders refuse other majors.
FORMAT_VERSION = 1


def default_model_dir():
    """The model set shipped inside the package (``thermoemu/data/models/default``)."""
    return Path(__file__).resolve().parents[2] / "data" / "models" / "default"


def resolve_model_dir(model):
    """``"default"`` -> the shipped set; otherwise a folder path."""
    return resolve_model(model, default_model_dir())


def read_manifest(model_dir, *, fmt=FORMAT, version=FORMAT_VERSION):
    """The manifest of a model set (primordial emulators by default); see :func:`thermoemu.core.artifacts.read_manifest`."""
    return _read_manifest(model_dir, fmt=fmt, version=version)


def save_region(model_dir, model: RegionModel, *, network, metadata):
    """Write one region's weights and add it to the folder's manifest (atomically).

    Parameters
    ----------
    model_dir : path
    model : RegionModel
    network : object with ``name`` and ``rate_set_version``
    metadata : dict
        JSON-ready: catalog provenance, training metrics, ... (merged into the region entry).
    """
    from safetensors.torch import save_file

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    entry = {
        "region": model.region,
        "ranges": model.ranges,
        "eps": model.eps,
        "dt_max_over_t_ff": model.dt_max_over_t_ff,
        **({"physics_trust": model.physics_trust} if model.residual else {}),
        **({"backward_euler_change": model.backward_euler_change}
           if model.residual and model.backward_euler_change is not None else {}),
        "predictor": {"config": model.predictor_config.to_dict(), "scaling": model.predictor_scaling.to_dict()},
        "timescale": (None if model.timescale_net is None else
                      {"config": model.timescale_config.to_dict(), "scaling": model.timescale_scaling.to_dict()}),
        **metadata,
    }
    name = f"region{model.region}.safetensors"
    tmp = model_dir / (name + ".part")
    save_file(model.state_tensors(), str(tmp), metadata={"thermoemu": json.dumps(entry, sort_keys=True)})
    os.replace(tmp, model_dir / name)
    path = model_dir / MANIFEST
    if path.is_file():
        manifest = read_manifest(model_dir)
        if manifest["network"] != network.name or manifest["rate_set_version"] != network.rate_set_version:
            raise ArtifactError(f"{model_dir} holds models of {manifest['network']} "
                                f"({manifest['rate_set_version']}); cannot add a region trained on "
                                f"{network.name} ({network.rate_set_version})")
    else:
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "network": network.name,
                    "rate_set_version": network.rate_set_version, "regions": {}}
    manifest["thermoemu_version"] = package_version()
    manifest["regions"][str(model.region)] = {"file": name, "sha256": file_sha256(model_dir / name), **entry}
    write_json_atomic(path, manifest)
    return model_dir / name


def load_model_set(model="default", *, network, device="cpu"):
    """Load every region of a model set.

    Parameters
    ----------
    model : str or path
        ``"default"`` (shipped with the package) or a model folder.
    network : object with ``name`` and ``rate_set_version``
        The network the caller integrates; the artifact must have been trained on it.
    device : str
        torch device for inference.

    Returns
    -------
    dict of int -> RegionModel
    """
    model_dir = resolve_model_dir(model)
    manifest = read_manifest(model_dir)
    if manifest["network"] != network.name:
        raise ArtifactError(f"{model_dir}: models were trained for network {manifest['network']!r}, "
                            f"not {network.name!r}")
    if manifest["rate_set_version"] != network.rate_set_version:
        raise ArtifactError(f"{model_dir}: models were trained with rate set {manifest['rate_set_version']!r}; "
                            f"this network uses {network.rate_set_version!r} (retrain on a new catalog)")
    regions = {}
    for key, entry in sorted(manifest["regions"].items()):
        try:
            pred = entry["predictor"]
            ts = entry["timescale"]
            model_region = RegionModel.new(
                int(key), entry["ranges"], NetConfig(**pred["config"]), Scaling.from_dict(pred["scaling"]),
                None if ts is None else NetConfig(**ts["config"]),
                None if ts is None else Scaling.from_dict(ts["scaling"]),
                eps=entry["eps"], dt_max_over_t_ff=entry["dt_max_over_t_ff"], network=network,
                physics_trust=float(entry.get("physics_trust", PHYSICS_TRUST)),
                backward_euler_change=(None if entry.get("backward_euler_change") is None
                                       else float(entry["backward_euler_change"])),
                metadata={k: v for k, v in entry.items() if k not in ("predictor", "timescale")})
        except (KeyError, TypeError, ValueError) as err:
            raise ArtifactError(f"{model_dir / MANIFEST}: region {key} entry is incomplete or invalid ({err!r})") from err
        if not model_region.physics_trust >= 0:
            raise ArtifactError(f"{model_dir / MANIFEST}: region {key} physics_trust = "
                                f"{entry.get('physics_trust')!r}; must be >= 0 (or Infinity)")
        change = model_region.backward_euler_change
        if change is not None and not (change > 0 and model_region.residual):
            raise ArtifactError(f"{model_dir / MANIFEST}: region {key} backward_euler_change = {change!r}; must be > 0 "
                                f"(and only a physics-first region may record it)")
        recorded = entry.get("physics_step")  # physics-first sets trained since it was recorded
        if recorded is not None and recorded != physics_constants():
            changed = sorted(k for k in set(recorded) | set(physics_constants())
                             if recorded.get(k) != physics_constants().get(k))
            raise ArtifactError(f"{model_dir}: region {key} was trained with other physics-step constants "
                                f"({', '.join(f'{k} = {recorded.get(k)!r}' for k in changed)}; this package has "
                                f"{', '.join(f'{k} = {physics_constants().get(k)!r}' for k in changed)}); retrain it")
        tensors = load_weights(model_dir / entry["file"], entry["sha256"])
        try:
            model_region.load_tensors(tensors)
        except RuntimeError as err:
            raise ArtifactError(f"{model_dir / entry['file']}: weights do not match the configuration in the "
                                f"manifest ({str(err).splitlines()[0]})") from err
        regions[int(key)] = model_region.to(device).eval()
    if not regions:
        raise ArtifactError(f"{model_dir}: the manifest lists no regions")
    return regions


def manifest_sha256(model_dir):
    """sha256 of the manifest (identifies a model set)."""
    return hashlib.sha256((Path(model_dir) / MANIFEST).read_bytes()).hexdigest()
