"""Assemble one model set from regions trained into several folders (one training process per core).

    python scripts/assemble_model_set.py OUT SRC[:REGIONS] [SRC[:REGIONS] ...]

e.g. ``python scripts/assemble_model_set.py thermoemu/data/models/default results/pf-big-a:0,2 results/pf-big-b:3,4
results/models-physics-first-r1:1``. Copies each region's safetensors file and its manifest entry (checksum
checked); the sources must share network and rate set.
"""

import json
import shutil
import sys
from pathlib import Path

from thermoemu.core.files import file_sha256, package_version, write_json_atomic


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        raise SystemExit(__doc__)
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    manifest = None
    for arg in argv[1:]:
        src, _, regions = arg.partition(":")
        m = json.loads((Path(src) / "manifest.json").read_text())
        if manifest is None:
            manifest = {k: v for k, v in m.items() if k != "regions"} | {"regions": {}}
        elif (m["network"], m["rate_set_version"]) != (manifest["network"], manifest["rate_set_version"]):
            raise SystemExit(f"{src}: another network or rate set than the first source")
        for key in (regions.split(",") if regions else sorted(m["regions"])):
            entry = m["regions"][key]
            path = Path(src) / entry["file"]
            if file_sha256(path) != entry["sha256"]:
                raise SystemExit(f"{path}: checksum differs from its manifest")
            shutil.copyfile(path, out / entry["file"])
            manifest["regions"][key] = entry
    manifest["thermoemu_version"] = package_version()
    write_json_atomic(out / "manifest.json", manifest)
    print(f"{out}: regions {sorted(manifest['regions'])}")


if __name__ == "__main__":
    main()
