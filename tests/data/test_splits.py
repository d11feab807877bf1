"""bayesstruct.data.splits: seeded stratified splits, standardisation, subsampling and class
selection of data.load."""

from __future__ import annotations

import pytest
import torch

from bayesstruct import data


@pytest.mark.parametrize("name", ["digits", "wine", "breast_cancer", "iris"])
def test_sklearn_splits(name):
    ds = data.load(name, seed=3)
    n_total = len(ds.train) + len(ds.val) + len(ds.test)
    from sklearn import datasets as skd

    assert n_total == len(getattr(skd, f"load_{name}")().target)
    assert ds.train.x.dtype == torch.float32 and ds.train.y.dtype == torch.int64
    assert tuple(ds.train.x.shape[1:]) == ds.input_shape
    # every class in every split, proportions close to the whole (stratified)
    for s in (ds.train, ds.val, ds.test):
        assert set(s.y.tolist()) == set(range(ds.n_classes))
    assert abs(len(ds.test) / n_total - 0.2) < 0.02
    # no example appears in two splits
    rows = [tuple(r) for s in (ds.train, ds.val, ds.test) for r in s.x.flatten(1).tolist()]
    assert len(set(rows)) == len({tuple(r) for r in rows})


def test_digits_shape_and_determinism():
    a, b, c = data.load("digits", seed=0), data.load("digits", seed=0), data.load("digits", seed=1)
    assert a.input_shape == (1, 8, 8) and a.n_classes == 10
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert not torch.equal(a.train.y, c.train.y)


def test_standardisation_fitted_on_train_only():
    ds = data.load("wine", seed=0)
    raw = data.load("wine", seed=0, standardize=False)
    mean, std = raw.train.x.mean(0), raw.train.x.std(0, unbiased=False)
    torch.testing.assert_close(ds.train.x.mean(0), torch.zeros(13), atol=1e-5, rtol=0)
    torch.testing.assert_close(ds.train.x.std(0, unbiased=False), torch.ones(13), atol=1e-4,
                               rtol=0)
    torch.testing.assert_close(ds.test.x, (raw.test.x - mean) / std, atol=1e-4, rtol=1e-4)


def test_constant_features_only_centred():
    ds = data.load("digits", seed=0)  # digits has always-zero corner pixels
    assert torch.isfinite(ds.train.x).all() and torch.isfinite(ds.test.x).all()


def test_train_size_subsample():
    ds = data.load("digits", seed=0, train_size=100)
    assert len(ds.train) == 100
    with pytest.raises(ValueError, match="train_size"):
        data.load("digits", train_size=10**6)


def test_unknown_name():
    with pytest.raises(ValueError, match="allowed: digits"):
        data.load("cifar-100")


def test_class_selection_relabels_in_the_order_given():
    full = data.load("digits", seed=0, standardize=False)
    two = data.load("digits", seed=0, classes=[7, 1], standardize=False)
    assert two.n_classes == 2 and two.classes == ("7", "1")
    for split in (two.train, two.val, two.test):
        assert set(split.y.tolist()) == {0, 1}
    n = sum(len(s) for s in (two.train, two.val, two.test))
    assert n == sum(int(((s.y == 7) | (s.y == 1)).sum()) for s in (full.train, full.val,
                                                                   full.test))
    # the images of label 0 after relabelling are sevens: their mean matches the sevens'
    sevens = torch.cat([s.x[s.y == 7] for s in (full.train, full.val, full.test)])
    mine = torch.cat([s.x[s.y == 0] for s in (two.train, two.val, two.test)])
    torch.testing.assert_close(mine.mean(0), sevens.mean(0))
    for bad in ([3], [1, 1], [0, 10]):
        with pytest.raises(ValueError, match="distinct labels in 0..9"):
            data.load("digits", classes=bad)
