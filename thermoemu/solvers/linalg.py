"""Batched dense LU factorization for many small systems, vectorized over the last axis.

Matrices are laid out ``(n, n, n_cells)`` so that every elementary operation is one vector
operation over cells (numpy or cupy). For the 7x7 systems of the primordial network this is
several times faster than looping LAPACK over cells.
"""

from __future__ import annotations

import numpy as np

#: A row swap is made only where |pivot| < PIVOT_THRESHOLD * max |column| (threshold pivoting).
PIVOT_THRESHOLD = 0.1


def lu_factor(A, pivot_rows=None):
    """LU factorization with partial pivoting of each ``A[:, :, c]``.

    Parameters
    ----------
    A : ndarray, shape (n, n, m)
        Overwritten with L (unit lower, below the diagonal) and U.
    pivot_rows : int, optional
        Pivots for the first ``pivot_rows`` columns are searched among the first ``pivot_rows``
        rows only (default: all rows). The solvers pass ``n - 1``: the temperature equation, in
        K s^-1 against abundances per H nucleus, is never compared with the abundance rows, so it
        cannot become the pivot of a trace species' column (whose increments it would then carry
        with round-off of its own size); among the abundance rows, pivoting on raw magnitudes
        bounds the multipliers, which keeps hydrogen nuclei and charge to round-off.

    Returns
    -------
    A : ndarray
        The factors, in place.
    perm : ndarray of intp, shape (n, m)
        Row permutation: row ``i`` of the factored system is original row ``perm[i]``.
    """
    n, _, m = A.shape
    rows = n if pivot_rows is None else int(pivot_rows)
    perm = np.broadcast_to(np.arange(n)[:, None], (n, m)).copy()
    for k in range(n):
        if k < rows - 1:
            column = np.abs(A[k:rows, k])
            # threshold pivoting: swap only where the diagonal is small against the column
            need = column[0] < PIVOT_THRESHOLD * column.max(axis=0)
            if need.any():
                c = np.nonzero(need)[0]
                p = k + np.argmax(column[:, c], axis=0)
                row_k = A[k][:, c]
                A[k, :, c] = A[p, :, c]
                A[p, :, c] = row_k.T
                perm_k = perm[k, c]
                perm[k, c] = perm[p, c]
                perm[p, c] = perm_k
        pivot = A[k, k]
        lower = A[k + 1:, k] / pivot
        A[k + 1:, k] = lower
        A[k + 1:, k + 1:] -= lower[:, None, :] * A[k, k + 1:][None, :, :]
    return A, perm


def lu_solve(lu, perm, b):
    """Solve ``A x = b`` with the factors of :func:`lu_factor`; ``b`` shaped (n, m)."""
    n, _, m = lu.shape
    x = np.take_along_axis(b, perm, axis=0)
    for i in range(1, n):
        x[i] -= (lu[i, :i] * x[:i]).sum(axis=0)
    for i in range(n - 1, -1, -1):
        if i < n - 1:
            x[i] -= (lu[i, i + 1:] * x[i + 1:]).sum(axis=0)
        x[i] /= lu[i, i]
    return x
