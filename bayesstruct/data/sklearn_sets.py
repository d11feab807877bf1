"""scikit-learn's bundled classification sets (``digits``, ``wine``, ``breast_cancer``,
``iris``) and the seeded synthetic ``circles``: no files, no network; used by the fast tests."""

from __future__ import annotations

import numpy as np

__all__ = ["CIRCLES", "load_sklearn"]

#: ``circles``: scikit-learn's ``make_circles`` (two noisy concentric rings in 2-D, seeded),
#: the synthetic set of the kernel-width hypergradient experiment: no linear boundary exists
CIRCLES = {"n_samples": 600, "noise": 0.2, "factor": 0.5, "random_state": 0}


def load_sklearn(name: str) -> tuple[np.ndarray, np.ndarray, tuple[int, ...], tuple[str, ...]]:
    """``(x, y, input_shape, class names)`` of scikit-learn set ``name`` (x float32, y int64)."""
    from sklearn import datasets as skd

    if name == "circles":
        x, y = skd.make_circles(**CIRCLES)
        return x.astype(np.float32), y.astype(np.int64), (2,), ("outer", "inner")
    bunch = getattr(skd, f"load_{name}")()
    x = np.asarray(bunch.data, dtype=np.float32)
    y = np.asarray(bunch.target, dtype=np.int64)
    names = tuple(str(t) for t in bunch.target_names)
    if name == "digits":
        return x.reshape(-1, 1, 8, 8), y, (1, 8, 8), names
    return x, y, (x.shape[1],), names
