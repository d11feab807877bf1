"""Every kind of zoo run end to end on a GPU: each network family x prior pair, the MAP and
empirical-Bayes recipes, the pruning comparison and the architecture search, at a tiny budget
with ``device=cuda``. What this catches is a tensor left on the GPU where the analysis hands it
to NumPy, or one created on the CPU where the model lives on the GPU; their CPU twins run in
the tests of each module. Marked ``cuda``: skipped without a CUDA device, run by
``make gpu-check``."""

from __future__ import annotations

import json
import math

import pytest

from bayesstruct import runner
from bayesstruct.config import resolve

pytestmark = pytest.mark.cuda

TINY = ["device=cuda", "inference.epochs=1", "inference.num_draws=2"]
DIGITS = ["data.name=digits", "pruning.mc_samples=2"]
FMNIST = ["data.train_size=512", "pruning.mc_samples=0"]

#: (entry, recipe or None for the entry's own, overrides): one entry per network x prior pair
FITS = [
    ("ard-logreg-digits", None, []),
    ("lenet300-gaussian-digits", "svi-map", []),
    ("lenet300-gaussian-digits", None, []),
    ("lenet5-ard-digits", None, []),
    ("lenet300-sparsevd", None, DIGITS),
    ("lenet300-bc-gnj", None, DIGITS),
    ("lenet300-bc-horseshoe", None, DIGITS),
    ("lenet5-bc-horseshoe", None, DIGITS),
    ("ibp-mlp", None, DIGITS),
    ("rnn-digits", None, []),
    ("resnet-ard-fashion-mnist", None, FMNIST),
    ("resnet-bc-gnj-fashion-mnist", None, FMNIST),
    ("resnet-ard-slim-fashion-mnist", None, FMNIST),
    ("lstm-fashion-mnist", None, FMNIST),
    ("conv1d-fashion-mnist", None, FMNIST),
]


@pytest.mark.parametrize(("entry", "recipe", "overrides"), FITS,
                         ids=[f"{e}-{r or 'own'}" for e, r, _ in FITS])
def test_fit_runs_on_cuda(entry, recipe, overrides, tmp_path, request):
    cfg = resolve(entry, recipe, [*TINY, *overrides])
    if cfg.data.name == "fashion-mnist":
        request.getfixturevalue("fashion_mnist")  # skips, with the reason, when absent
    m = runner.run(cfg, tmp_path / "run", progress=False, echo=lambda *_: None)
    assert math.isfinite(m["final_loss_per_example"])
    assert 0.0 <= m["test_acc"] <= 1.0
    assert (tmp_path / "run" / "posterior.nc").is_file()
    on_disk = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert on_disk["test_acc"] == m["test_acc"]


def test_compare_runs_on_cuda(tmp_path):
    cfg = resolve("logreg-prune-compare", None, [*TINY, "data.name=digits"])
    runner.run(cfg, tmp_path / "run", progress=False, echo=lambda *_: None)
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_nas_runs_on_cuda(tmp_path):
    cfg = resolve("nas-digits", None, ["device=cuda", "nas.epochs=1", "nas.retrain_epochs=1",
                                       "nas.random_samples=1", "nas.spos_candidates=2"])
    runner.run(cfg, tmp_path / "run", progress=False, echo=lambda *_: None)
    assert (tmp_path / "run" / "metrics.json").is_file()
