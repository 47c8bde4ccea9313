"""Random initial states of the density regions of Ono & Sugimura (2025, Table 1).

Each variable is drawn log-uniformly in its region range; then hydrogen nuclei are conserved by
scaling all hydrogen-bearing abundances by the same factor, and charge by setting y(e-) =
y(H+) + y(H2+) - y(H-). Draws where that leaves y(e-) <= 0 are redrawn.
"""

from __future__ import annotations

import numpy as np

from .physics.network import CONSERVATION_MATRIX

#: Table 1 of Ono & Sugimura (2025): log10 ranges per region.
REGIONS = {
    0: {"n_H": (-3, 4), "temperature": (1.3, 4.5), "H": (-6, 0), "H2": (-8, -0.3), "ion": (-10, 0), "trace": (-19, -8)},
    1: {"n_H": (4, 8), "temperature": (1.3, 4.5), "H": (-6, 0), "H2": (-6, -0.3), "ion": (-10, 0), "trace": (-20, -9)},
    2: {"n_H": (8, 12), "temperature": (1.3, 4.0), "H": (-6, 0), "H2": (-6, -0.3), "ion": (-12, -1), "trace": (-21, -10)},
    3: {"n_H": (12, 15), "temperature": (1.3, 4.0), "H": (-6, 0), "H2": (-6, -0.3), "ion": (-14, -3), "trace": (-21, -10)},
    4: {"n_H": (15, 18), "temperature": (1.3, 4.0), "H": (-6, 0), "H2": (-6, -0.3), "ion": (-15, -4), "trace": (-22, -11)},
}


def region_of(n_H):
    """Region index (0-4) of each n_H [cm^-3]; -1 outside 1e-3..1e18."""
    logn = np.log10(np.asarray(n_H, dtype=float))
    edges = np.array([REGIONS[r]["n_H"][0] for r in range(5)] + [REGIONS[4]["n_H"][1]])
    r = np.searchsorted(edges, logn, side="right") - 1
    return np.where((logn >= edges[0]) & (logn <= edges[-1]), np.minimum(r, 4), -1)


def sample_region(region, n, rng):
    """Draw ``n`` conserved states of a region of OS25 Table 1.

    Parameters
    ----------
    region : int
        0-4.
    n : int
    rng : numpy.random.Generator

    Returns
    -------
    n_H, x
        As :func:`sample_states`.
    """
    if region not in REGIONS:
        raise ValueError(f"region must be one of {sorted(REGIONS)}, got {region!r}")
    return sample_states(REGIONS[region], n, rng)


#: Keys of a log10 range table (:data:`REGIONS` entries, catalog specs).
RANGE_KEYS = ("n_H", "temperature", "H", "H2", "ion", "trace")


def sample_states(ranges, n, rng):
    """Draw ``n`` conserved states, every variable log-uniform in its range.

    Parameters
    ----------
    ranges : mapping
        log10 ranges ``(lo, hi)`` for ``n_H`` [cm^-3], ``temperature`` [K], ``H``, ``H2``,
        ``ion`` (H+; e- then follows from charge) and ``trace`` (H- and H2+).
    n : int
    rng : numpy.random.Generator

    Returns
    -------
    n_H : ndarray (n,)
        [cm^-3]
    x : ndarray (7, n)
        Abundances in network order and temperature [K].
    """
    n_H = np.empty(0)
    x = np.empty((7, 0))
    while x.shape[1] < n:
        m = 2 * (n - x.shape[1]) + 8

        def draw(key):
            lo, hi = ranges[key]
            return 10.0 ** rng.uniform(lo, hi, m)

        y = np.vstack([draw("H"), draw("H2"), np.zeros(m), draw("ion"), draw("trace"), draw("trace")])
        y /= CONSERVATION_MATRIX[0] @ y  # hydrogen nuclei
        y[2] = y[3] + y[5] - y[4]  # charge
        ok = y[2] > 0
        nh = draw("n_H")[ok]
        T = draw("temperature")[ok]
        n_H = np.concatenate([n_H, nh])
        x = np.concatenate([x, np.vstack([y[:, ok], T])], axis=1)
    return n_H[:n], x[:, :n]


__all__ = ["RANGE_KEYS", "REGIONS", "region_of", "sample_region", "sample_states"]
