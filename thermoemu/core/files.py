"""Files: checksums, atomic writes, the user cache folder and the package version.

Machinery that knows no physics; catalogs, model artifacts, the Saha table and the generated
nuclear-network modules all write through it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

__all__ = ["file_sha256", "write_json_atomic", "cache_dir", "package_version"]


def file_sha256(path, block=1 << 20):
    """SHA-256 hex digest of a file, read in blocks of ``block`` bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def write_json_atomic(path, obj, *, indent=1):
    """Write ``obj`` as JSON (sorted keys) to ``path`` under a temporary name, then rename it."""
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(obj, indent=indent, sort_keys=True))
    os.replace(tmp, path)


def cache_dir():
    """The user's thermoemu cache directory (created on demand by the writers).

    ``$THERMOEMU_CACHE`` if set, else ``$XDG_CACHE_HOME/thermoemu`` or ``~/.cache/thermoemu``.
    """
    if os.environ.get("THERMOEMU_CACHE"):
        return Path(os.environ["THERMOEMU_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "thermoemu"


def package_version():
    """The thermoemu version recorded in catalogs, artifacts and tables."""
    from .._version import __version__
    return __version__
