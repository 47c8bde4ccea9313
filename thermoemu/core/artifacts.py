"""Model artifacts shared by every wing: a folder of safetensors weights plus a JSON manifest.

Loading never unpickles: weights are read with :func:`safetensors.torch.load_file`, which parses a
JSON header and raw tensor bytes and executes no code, after their SHA-256 is checked against the
manifest. A pickle (``torch.save``) in place of a safetensors file is refused. Each wing names its
artifact ``format`` and ``format_version``; :func:`read_manifest` refuses any other.
"""

from __future__ import annotations

import json
from pathlib import Path

from .files import file_sha256

__all__ = ["ArtifactError", "MANIFEST", "read_manifest", "load_weights"]

MANIFEST = "manifest.json"


class ArtifactError(ValueError):
    """A model artifact that is missing, unsafe, corrupted or incompatible."""


def read_manifest(model_dir, *, fmt, version):
    """The manifest of a model set, checked for format ``fmt`` and major ``version``; raises
    :class:`ArtifactError`."""
    model_dir = Path(model_dir)
    path = model_dir / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{model_dir} is not a thermoemu model set: {MANIFEST} not found")
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArtifactError(f"{path} is not valid JSON ({err}); thermoemu manifests are JSON") from err
    if manifest.get("format") != fmt:
        raise ArtifactError(f"{path}: format = {manifest.get('format')!r}, expected {fmt!r}")
    if manifest.get("format_version") != version:
        raise ArtifactError(f"{path}: format_version = {manifest.get('format_version')!r}; this thermoemu "
                            f"reads format_version {version} only (retrain or use a matching release)")
    return manifest


def load_weights(path, expected_sha256, *, device=None):
    """The tensors of a ``.safetensors`` file whose SHA-256 matches the manifest's; never unpickles."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ArtifactError(f"{path}: weights must be a .safetensors file; thermoemu never unpickles "
                            f"model files (.pt, .pth, .pkl)")
    if not path.is_file():
        raise ArtifactError(f"{path}: weight file listed in the manifest is missing")
    digest = file_sha256(path)
    if digest != expected_sha256:
        raise ArtifactError(f"{path}: sha256 {digest[:12]}... does not match the manifest "
                            f"({expected_sha256[:12]}...); the file was modified or replaced")
    try:
        return load_file(str(path)) if device is None else load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as err:
        raise ArtifactError(f"{path} is not a safetensors file ({err}); thermoemu never unpickles model "
                            f"files, so pickled weights (torch.save) are refused") from err
