"""SGLD / pSGLD per-chain checkpoints: a resumed run gives the uninterrupted run's draws."""

from __future__ import annotations

import numpy as np
import pytest

from bayesstruct.errors import CheckpointError
from bayesstruct.files import load_checkpoint
from bayesstruct.inference.sgld import psgld, sgld
from tests.inference.test_sgld import _linear_model

KW = dict(num_samples=15, burn_in=10, thin=2, num_chains=3, batch_size=50, lr=1e-4,
          progress=False)


def _arrays(post):
    out = {f"posterior/{k}": v.values for k, v in post.posterior.data_vars.items()}
    out.update({f"sample_stats/{k}": v.values for k, v in post.sample_stats.data_vars.items()})
    return out


@pytest.mark.parametrize("engine", [sgld, psgld], ids=["sgld", "psgld"])
def test_resume_after_a_lost_chain_is_bit_identical(engine, tmp_path):
    model, split = _linear_model()
    full = engine(model, split, checkpoint_dir=tmp_path, seed=3, **KW)
    assert sorted(p.name for p in tmp_path.glob("chain-*.pt")) == [
        "chain-0.pt", "chain-1.pt", "chain-2.pt"]
    blob = load_checkpoint(tmp_path / "chain-1.pt")
    np.testing.assert_array_equal(blob["draws"]["fc1.weight"].numpy(),
                                  full.posterior["fc1.weight"].values[1])

    # the run was "interrupted" before chain 2 finished (and chain 1 too: a chain's draws must
    # not depend on the chains run before it in this process)
    (tmp_path / "chain-2.pt").unlink()
    (tmp_path / "chain-1.pt").unlink()
    model, split = _linear_model()
    resumed = engine(model, split, checkpoint_dir=tmp_path, resume=True, seed=3, **KW)
    a, b = _arrays(full), _arrays(resumed)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert (tmp_path / "chain-2.pt").is_file()

    # without resume the chains are re-run (and the same again: seeded per chain)
    again = engine(model, split, checkpoint_dir=tmp_path, seed=3, **KW)
    for k in a:
        np.testing.assert_array_equal(a[k], _arrays(again)[k], err_msg=k)


@pytest.mark.parametrize("change", [{"lr": 2e-4}, {"seed": 4}, {"burn_in": 12}])
def test_resume_with_other_settings_is_refused(change, tmp_path):
    model, split = _linear_model()
    kw = {**KW, "num_chains": 1, "num_samples": 3, "burn_in": 2, "seed": 3}
    sgld(model, split, checkpoint_dir=tmp_path, **kw)
    with pytest.raises(CheckpointError, match="other settings") as err:
        sgld(model, split, checkpoint_dir=tmp_path, resume=True, **{**kw, **change})
    assert isinstance(err.value, ValueError)
    (name, value), = change.items()
    assert name in str(err.value) and repr(value) in str(err.value)


def test_sgld_checkpoint_is_not_a_psgld_one(tmp_path):
    model, split = _linear_model()
    kw = {**KW, "num_chains": 1, "num_samples": 3, "burn_in": 2}
    sgld(model, split, checkpoint_dir=tmp_path, **kw)
    with pytest.raises(CheckpointError, match="other settings.*engine: 'sgld' -> 'psgld'"):
        psgld(model, split, checkpoint_dir=tmp_path, resume=True, **kw)


def test_an_unreadable_chain_file_is_named(tmp_path):
    model, split = _linear_model()
    (tmp_path / "chain-0.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="chain-0.pt"):
        sgld(model, split, checkpoint_dir=tmp_path, resume=True,
             **{**KW, "num_chains": 1, "num_samples": 3, "burn_in": 2})
