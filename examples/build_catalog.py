"""Build a small Region-1 training catalog on a local dask cluster, then read it back.

Run: python examples/build_catalog.py  (about a minute on two cores). Re-running it resumes: the
finished shards are kept. For the full 1e5-sample catalogs: thermoemu build popiii-r1.
"""

import numpy as np

import thermoemu as te

if __name__ == "__main__":  # dask worker processes re-import this file
    index = te.build_catalog("popiii-r1", "example-catalog-r1", samples=4000, n_workers=2)
    print(f"{index['samples_written']} samples in {len(index['shards'])} shards, {index['failed']} failed")

    train = te.open_catalog("example-catalog-r1", split="train")
    print(train)
    # the DGM target of OS25 Eq. 16: Y = sign * log10(1 + eps t_ff / tau_eps)
    t_ff = train["dt_max"] / 10**0.5
    y_tau = train["tau_sign"] * np.log10(1 + 0.1 * t_ff / train["tau_eps"])
    print(y_tau.sel(variable="temperature").quantile([0.05, 0.5, 0.95]).values)
