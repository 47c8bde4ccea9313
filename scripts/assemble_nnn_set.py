"""Assemble one NNN model set from the dt of several (trained in separate runs).

    python scripts/assemble_nnn_set.py OUT SET:DT[,DT...] [SET:DT ...]

Copies each named dt's weights and manifest entry from SET into OUT (created; refused if it exists);
the sets must hold NNNs of one network and isotope list. The weights are copied byte for byte, and
their sha256 is checked on the next load. Example (the shipped issue-27 set)::

    python scripts/assemble_nnn_set.py results/nnn-mesa80-27 results/nnn-hybrid-traj:1e-3 \\
        results/nnn-hybrid-traj2:0.1,10
"""

import json
import shutil
import sys
from pathlib import Path

from thermoemu.core.artifacts import MANIFEST
from thermoemu.core.files import write_json_atomic


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        raise SystemExit(__doc__)
    out = Path(argv[0])
    if out.exists():
        raise SystemExit(f"{out} exists; choose a new folder")
    merged = None
    for item in argv[1:]:
        folder, _, dts = item.rpartition(":")
        manifest = json.loads((Path(folder) / MANIFEST).read_text())
        if merged is None:
            merged = {**manifest, "models": {}}
        elif (manifest["network"], manifest["isotopes"]) != (merged["network"], merged["isotopes"]):
            raise SystemExit(f"{folder} holds NNNs of another network or isotope list")
        for dt in dts.split(","):
            key = f"{float(dt):g}"
            if key not in manifest["models"]:
                raise SystemExit(f"{folder} holds dt = {sorted(manifest['models'])} s, not {key}")
            entry = manifest["models"][key]
            out.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(folder) / entry["file"], out / entry["file"])
            merged["models"][key] = entry
    write_json_atomic(out / MANIFEST, merged)
    print(f"wrote {out}: dt = {', '.join(merged['models'])} s")


if __name__ == "__main__":
    main()
