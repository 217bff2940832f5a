"""Take molstrata's QM9 to a machine that has no qm9pack (the lent GPU machine), for benchmarks.

    python bench/carry_qm9.py pack FILE                 # here: the QM9 cache, compressed
    python bench/carry_qm9.py unpack FILE --site DIR    # there: a stand-in qm9pack + the cache

qm9pack's CSVs (224 MB) are too large to travel, and the GPU image cannot install packages.
`pack` writes the arrays molstrata parsed from them (its QM9 cache) compressed, with
the positions rounded to float32 (at most 1e-6 Å off: the models compute in float32 anyway)
and the target alone (U0 unless --target says; the other properties come back as NaN), which
brings 91 MB down to about 30; `unpack` makes an empty stand-in package `qm9pack` under DIR
(put DIR on PYTHONPATH) and writes the arrays as molstrata's cache for it (MOLSTRATA_CACHE_DIR),
so that `molstrata train` on the default dataset reads the same molecules, ids and energies
as here, from the cache, without ever parsing a CSV. A benchmark aid only: never part of molstrata.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def pack(path: Path, target: str) -> None:
    from molstrata.data import qm9

    qm9.load_qm9(progress=False)  # builds the cache when it is missing
    keep = ["numbers", "positions", "offsets", "ids", "smiles", f"property/{target}"]
    with np.load(qm9.cache_path(), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in keep}
    arrays["positions"] = arrays["positions"].astype(np.float32)
    np.savez_compressed(path, **arrays)
    print(f"{path}: {path.stat().st_size / 2**20:.1f} MiB, {len(arrays['ids']):,} molecules")


def unpack(path: Path, site: Path) -> None:
    package = site / "qm9pack"
    (package / "data").mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text('"""Stand-in for qm9pack: molstrata reads its cache."""\n')
    sys.path.insert(0, str(site))
    from molstrata.data import cache, qm9

    for name in qm9.PARTS:
        (package / "data" / name).touch()
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["positions"] = arrays["positions"].astype(np.float64)
    for name in qm9.QM9_PROPERTIES:
        arrays.setdefault(f"property/{name}", np.full(len(arrays["ids"]), np.nan))
    cache.save(qm9.cache_path(), arrays, qm9.cache_key(qm9.data_dir()))
    molecules = qm9.load_qm9(progress=False)
    print(f"QM9 cache at {qm9.cache_path()}: {len(molecules):,} molecules")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["pack", "unpack"])
    parser.add_argument("file", type=Path)
    parser.add_argument("--site", type=Path, help="unpack: folder for the stand-in qm9pack")
    parser.add_argument("--target", default="U0", help="pack: the property to carry")
    args = parser.parse_args()
    if args.action == "pack":
        pack(args.file, args.target)
    else:
        if args.site is None:
            parser.error("unpack needs --site DIR")
        unpack(args.file, args.site)


if __name__ == "__main__":
    main()
