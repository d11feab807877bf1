"""Optimal Brain Surgeon on a quadratic loss, against the constrained minimum solved directly."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from bayesstruct.pruning import decide
from bayesstruct.pruning.obs import obs_path, obs_remove, obs_saliency


def _quadratic(p: int = 7, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(p, p, generator=g, dtype=torch.float64)
    h = a @ a.T + 0.5 * torch.eye(p, dtype=torch.float64)
    w = torch.randn(p, generator=g, dtype=torch.float64)
    return w, h


def _constrained_minimum(w_star, h, removed):
    """argmin of ``1/2 (w - w*)^T H (w - w*)`` subject to ``w_Q = 0``, solved on the kept
    coordinates: ``H_RR (w_R - w*_R) = H_RQ w*_Q``; and the loss there."""
    p = w_star.numel()
    q = torch.as_tensor(sorted(removed), dtype=torch.long)
    r = torch.as_tensor([i for i in range(p) if i not in set(removed)], dtype=torch.long)
    w = torch.zeros_like(w_star)
    w[r] = w_star[r] + torch.linalg.solve(h[r][:, r], h[r][:, q] @ w_star[q])
    d = w - w_star
    return w, float(0.5 * d @ h @ d)


def test_single_removal_matches_closed_form():
    w, h = _quadratic()
    h_inv = torch.linalg.inv(h)
    for q in range(w.numel()):
        new, loss = obs_remove(w, h_inv, [q])
        expected, expected_loss = _constrained_minimum(w, h, [q])
        torch.testing.assert_close(new, expected, rtol=1e-10, atol=1e-12)
        assert new[q] == 0.0
        # the saliency is the loss increase of that removal
        assert loss == pytest.approx(expected_loss, rel=1e-10)
        assert float(obs_saliency(w, h_inv.diagonal())[q]) == pytest.approx(expected_loss,
                                                                            rel=1e-10)
        # and the textbook update -(w_q / [H^-1]_qq) H^-1 e_q
        torch.testing.assert_close(new - w, -(w[q] / h_inv[q, q]) * h_inv[:, q], rtol=1e-10,
                                   atol=1e-12)


def test_joint_removal_matches_closed_form():
    w, h = _quadratic(p=9, seed=1)
    new, loss = obs_remove(w, torch.linalg.inv(h), [2, 5, 7])
    expected, expected_loss = _constrained_minimum(w, h, [2, 5, 7])
    torch.testing.assert_close(new, expected, rtol=1e-10, atol=1e-12)
    assert loss == pytest.approx(expected_loss, rel=1e-10)


def test_greedy_path_picks_the_cheapest_weight_and_keeps_the_constrained_optimum():
    w, h = _quadratic(p=8, seed=2)
    path = obs_path(w, h, counts=[1, 2, 3, 5], block=1)
    # first removal: the brute-force cheapest single weight
    costs = [_constrained_minimum(w, h, [q])[1] for q in range(8)]
    assert path.order[0] == int(np.argmin(costs))
    # step 2 is the cheapest addition to the first (brute force over the rest)
    costs2 = {q: _constrained_minimum(w, h, [path.order[0], q])[1] for q in range(8)
              if q != path.order[0]}
    assert path.order[1] == min(costs2, key=costs2.get)
    # after every recorded count the weights are the constrained minimum of the removed set,
    # i.e. the Schur-complement updates of H^-1 are exact
    for k in (1, 2, 3, 5):
        expected, loss = _constrained_minimum(w, h, list(path.order[:k]))
        torch.testing.assert_close(path.weights_at(k), expected, rtol=1e-9, atol=1e-11)
        assert path.loss_increase[k] == pytest.approx(loss, rel=1e-9)


def test_block_removal_is_the_joint_update():
    w, h = _quadratic(p=10, seed=3)
    path = obs_path(w, h, counts=[4, 8], block=4)
    for k in (4, 8):
        expected, _ = _constrained_minimum(w, h, list(path.order[:k]))
        torch.testing.assert_close(path.weights_at(k), expected, rtol=1e-9, atol=1e-11)
    # the first block is the 4 smallest saliencies at the start
    sal = obs_saliency(w, torch.linalg.inv(h).diagonal())
    assert set(path.order[:4]) == set(torch.argsort(sal)[:4].tolist())


def test_path_scores_reproduce_the_path_masks_through_decide():
    w, h = _quadratic(p=12, seed=4)
    counts = [0, 3, 6, 11]
    path = obs_path(w, h, counts, block=2)
    scores = {"w": path.scores(12)}
    for k in counts:
        keep = decide(scores, fraction=k / 12)["w"]
        assert set(np.flatnonzero(~keep)) == set(path.order[:k])
        assert torch.all(path.weights_at(k)[torch.as_tensor(~keep)] == 0)


def test_optimal_set_for_tiny_problem_is_found_one_at_a_time_when_greedy_is_optimal():
    """A diagonal Hessian decouples the weights: greedy OBS is then globally optimal, so its
    2-weight set matches the brute force over all pairs."""
    g = torch.Generator().manual_seed(5)
    h = torch.diag(torch.rand(6, generator=g, dtype=torch.float64) + 0.1)
    w = torch.randn(6, generator=g, dtype=torch.float64)
    best = min(itertools.combinations(range(6), 2),
               key=lambda s: _constrained_minimum(w, h, list(s))[1])
    assert set(obs_path(w, h, [2]).order) == set(best)


def test_bad_inputs_raise():
    w, h = _quadratic(p=4)
    with pytest.raises(ValueError, match="expected \\(4, 4\\)"):
        obs_path(w, h[:3, :3], [1])
    with pytest.raises(ValueError, match="counts must lie in 0..4"):
        obs_path(w, h, [5])
    with pytest.raises(ValueError, match="not positive definite"):
        obs_path(w, -h, [1])
