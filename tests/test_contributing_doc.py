"""docs/contributing.md names only files, registries and tests that exist, and its four
worked registrations match the code."""

from __future__ import annotations

import re
from pathlib import Path

from bayesstruct import experiments, inference, layers, priors

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "contributing.md").read_text()


def test_every_path_it_names_exists():
    paths = set(re.findall(r"`((?:bayesstruct|tests|benchmarks|models|inference)/[\w/]+\.\w+)`",
                           DOC))
    paths = {p for p in paths if "<" not in p and "laplace" not in p}  # the worked example
    assert len(paths) > 15
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, missing


def test_every_contract_test_it_names_is_a_real_loop_over_its_registry():
    for path, registry in [("tests/inference/test_registry.py", "ENGINES"),
                           ("tests/priors/test_registry.py", "PRIORS"),
                           ("tests/layers/test_families.py", "FAMILIES"),
                           ("tests/experiments/test_registry.py", "EXPERIMENTS")]:
        assert path in DOC and registry in (ROOT / path).read_text()


def test_the_registration_forms_it_shows_are_the_ones_the_code_uses():
    assert "@register_engine(" in DOC and inference.register_engine
    assert "config=" in DOC and priors.Gaussian.Config is priors.GaussianConfig
    assert "LayerFamily, types=" in DOC and layers.Linear in layers.FAMILIES
    assert "@register_experiment(" in DOC and "fit" in experiments.EXPERIMENTS
    # the worked layer-family example is the real module's code
    linear = (ROOT / "bayesstruct" / "layers" / "linear.py").read_text()
    for line in ("return F.linear(x, weight, bias)",
                 'out = torch.einsum("...oi,...i->...o", weight, x)',
                 "return layer.in_features, layer.out_features",
                 "return layer.weight.reshape(layer.out_features, n, -1)",
                 'set_param(layer, "weight", w.reshape(layer.out_features, -1))',
                 'keep_rows(layer, keep, "out_features")'):
        assert line in DOC and line in linear
