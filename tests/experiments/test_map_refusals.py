"""A MAP fit (guide 'delta') is refused before any training, with the field named, where it
cannot work: a pruning criterion that reads the posterior's noise, and a prior the guide
cannot hold (ARD with empirical Bayes). Before, the first failed after training with a
traceback and the second with a traceback at the guide's setup."""

import pytest

from bayesstruct import config
from bayesstruct.errors import ConfigError
from bayesstruct.experiments.fit import run_fit


@pytest.mark.parametrize("criterion", ["unit", "rho", "log_alpha"])
def test_a_noise_criterion_with_a_map_fit_is_refused_up_front(criterion, tmp_path):
    cfg = config.resolve("ard-logreg-digits", "svi-map",
                         [f"pruning.criterion={criterion}", "prior.hyper=gamma"])
    with pytest.raises(ConfigError, match=rf"pruning.criterion: '{criterion}' reads the "
                                          r"posterior's noise.*allowed with it: magnitude"):
        run_fit(cfg, tmp_path / "run", progress=False, echo=lambda *_: None)
    assert not (tmp_path / "run").exists()


def test_a_prior_the_map_guide_cannot_hold_is_a_config_error(tmp_path):
    cfg = config.resolve("ard-logreg-digits", "svi-map", ["inference.epochs=1"])
    with pytest.raises(ConfigError, match=r"inference.guide: guide 'delta' with prior ard "
                                          r"\(hyper=empirical_bayes\) collapses"):
        run_fit(cfg, tmp_path / "run", progress=False, echo=lambda *_: None)
    assert not (tmp_path / "run").exists()
    # the same recipe with a prior it can hold trains
    ok = config.resolve("ard-logreg-digits", "svi-map", ["inference.epochs=1",
                                                         "prior.hyper=gamma"])
    metrics = run_fit(ok, tmp_path / "ok", progress=False, echo=lambda *_: None)
    assert metrics["test_acc"] > 0.3  # chance is 0.1
