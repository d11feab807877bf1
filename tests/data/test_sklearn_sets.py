"""bayesstruct.data.sklearn_sets: the seeded synthetic ``circles`` set."""

from __future__ import annotations

from bayesstruct import data


def test_circles_is_the_seeded_synthetic_two_ring_set():
    """The kernel-width experiment's synthetic data (seed 002): two noisy rings, no linear
    boundary (a linear classifier is near chance), the same points for every seed of splits."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    ds = data.load("circles", seed=0, val_fraction=0.33, test_fraction=0.33)
    assert ds.input_shape == (2,) and ds.n_classes == 2
    assert len(ds.train) + len(ds.val) + len(ds.test) == 600
    lin = LogisticRegression().fit(ds.train.x.numpy(), ds.train.y.numpy())
    auc = roc_auc_score(ds.test.y.numpy(), lin.predict_proba(ds.test.x.numpy())[:, 1])
    assert abs(auc - 0.5) < 0.1
    radius = ds.train.x.norm(dim=1)
    assert float(radius[ds.train.y == 1].mean()) < float(radius[ds.train.y == 0].mean())
