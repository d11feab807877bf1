"""Data-parallel training on torch.distributed (gloo, 2 processes on CPU) against one process.

The gradient test spawns two ranks in-process; the run tests launch ``bayesstruct run
--nproc-per-node 2`` (torch.distributed.run) as a user does and compare its ``history.csv``
with a one-process run of the same global batch and seed.
"""

from __future__ import annotations

import csv
import gc
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from bayesstruct import guides, nets, parallel, priors
from bayesstruct.data import load as load_dataset
from bayesstruct.errors import ConfigError
from bayesstruct.models import BayesianNet

# priors whose fast path draws per-example noise in each of its places: the local
# reparameterisation's eps (all), per-example group scales (log-uniform unit level, horseshoe)
# and relaxed masks (IBP); ARD with its closed-form empirical Bayes
PRIORS = [("ard", {"per": "unit", "hyper": "empirical_bayes"}), ("log_uniform", {"level": "unit"}),
          ("horseshoe", {}), ("ibp", {})]
BATCH = 37  # split 19 / 18 over two ranks


def _model(kind: str, kw: dict, ds) -> tuple[BayesianNet, guides.MeanField]:
    torch.manual_seed(0)
    model = BayesianNet(nets.mlp([64, 16, 10]), priors.get(kind, **kw), num_data=len(ds.train))
    guide = guides.MeanField(model, init_scale=0.1)
    return model, guide


def _grads(world: int) -> dict[str, dict[str, torch.Tensor]]:
    """One step's gradients of every prior's -ELBO (and of a plain net's loss) on the first
    ``BATCH`` training digits, in this process's place among ``world`` ranks."""
    from bayesstruct.inference.svi import _Objective  # the module DDP wraps
    from bayesstruct.training.plain import regularised_loss

    ds = load_dataset("digits", seed=0)
    x, y = ds.train.x[:BATCH], ds.train.y[:BATCH]
    out = {}
    for kind, kw in PRIORS:
        model, guide = _model(kind, kw, ds)
        objective = parallel.wrap(_Objective(guide))
        torch.manual_seed(1)  # the noise: the same stream on every rank
        with parallel.shard_of(BATCH) as rows:
            objective(x[rows], y[rows]).backward()
        out[kind] = {k: p.grad.clone() for k, p in guide.named_parameters()}
    torch.manual_seed(0)
    net = nets.mlp([64, 16, 10])
    wrapped = parallel.wrap(net)
    with parallel.shard_of(BATCH) as rows:
        regularised_loss(wrapped, x[rows], y[rows], l1=1e-3, l2=1e-2).backward()
    out["plain"] = {k: p.grad.clone() for k, p in net.named_parameters()}
    return out


def _rank(rank: int, world: int, init: str, path: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        grads = _grads(world)
        if rank == 0:
            torch.save(grads, path)
    finally:
        gc.collect()  # the DDP wrappers before the group (parallel.session does the same)
        torch.distributed.destroy_process_group()


def test_shards_cover_the_batch_once():
    for total in (1, 2, 5, 37, 128):
        for world in (1, 2, 3, 8):
            parts = [parallel.shard(total, parallel.Ranks(r, world)) for r in range(world)]
            rows = [i for p in parts for i in range(p.start, p.stop)]
            assert rows == list(range(total))
            assert max(p.stop - p.start for p in parts) - min(p.stop - p.start
                                                              for p in parts) <= 1


def test_one_process_is_untouched():
    """Outside a process group: no wrapper, the whole batch, the plain N / B scale."""
    net = torch.nn.Linear(2, 2)
    assert parallel.wrap(net) is net and parallel.ranks() == parallel.Ranks()
    with parallel.shard_of(10) as rows:
        assert rows == slice(None)
        assert parallel.nll_scale(100, 10) == 10.0 and parallel.mean_scale(10) is None
        assert parallel.per_example(lambda n: torch.zeros(n), 10).shape == (10,)


def test_two_ranks_give_the_gradient_of_the_concatenated_batch(tmp_path):
    """gloo, 2 processes: the all-reduced gradient of one step equals the one-process gradient
    on the whole batch, for SVI under four priors and for plain training (rtol 1e-5)."""
    path = tmp_path / "grads.pt"
    init = f"file://{tmp_path / 'init'}"
    mp.spawn(_rank, args=(2, init, str(path)), nprocs=2, join=True)
    ranked = torch.load(path, weights_only=True)
    single = _grads(1)
    for what, grads in single.items():
        assert set(grads) == set(ranked[what])
        for k, g in grads.items():
            assert g.abs().sum() > 0, (what, k)  # a gradient that says something
            # two partial sums instead of one: float32 rounding of the largest terms, so the
            # absolute bound is relative to the tensor's scale
            torch.testing.assert_close(ranked[what][k], g, rtol=1e-5,
                                       atol=1e-5 * float(g.abs().max()), msg=f"{what}: {k}")


# -- through the command line ------------------------------------------------------------------
# ARD per input unit: its closed-form update averages over the unit's weights. (Per-weight ARD
# updates amplify float rounding: a change of summation order alone, such as another thread
# count, moves its epoch-3 loss by ~0.4 %; NOTES.md.)
RUN = ["ard-logreg-digits", "--quiet", "--set", "prior.per=unit", "--set",
       "inference.eb_start_epochs=0"]


def _bayesstruct(*args: str, threads: int = 1, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    return subprocess.run([sys.executable, "-m", "bayesstruct", "run", *args], env=env,
                          capture_output=True, text=True, timeout=600, **kw)


def _history(run: Path) -> list[dict[str, float]]:
    with open(run / "history.csv") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)}
                for row in csv.DictReader(f)]


def _same_trajectory(a: Path, b: Path, rtol: float = 1e-5) -> None:
    ha, hb = _history(a), _history(b)
    assert len(ha) == len(hb)
    for ra, rb in zip(ha, hb, strict=True):
        for key in ("loss", "val_nll", "kl_weight"):
            assert ra[key] == pytest.approx(rb[key], rel=rtol), (ra["epoch"], key)


def test_two_ranks_follow_one_process(tmp_path):
    """A 3-epoch ARD run on digits (closed-form empirical Bayes after every step) with 2 ranks
    follows the 1-rank run with the same global batch and seed, epoch by epoch."""
    one = _bayesstruct(*RUN, "--set", "inference.epochs=3", "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr
    two = _bayesstruct(*RUN, "--set", "inference.epochs=3", "--out", str(tmp_path / "two"),
                       "--nproc-per-node", "2")
    assert two.returncode == 0, two.stderr
    assert "2 ranks" in two.stderr
    _same_trajectory(tmp_path / "one", tmp_path / "two")
    # rank 0 alone wrote the run directory, and only once
    assert (tmp_path / "two" / "metrics.json").exists()
    assert len(_history(tmp_path / "two")) == 3
    # the collapse check's plain fit ran on rank 0 alone (parallel.alone): no collective
    # waited for ranks that had finished, and it is the one-process fit
    checks = [json.loads((tmp_path / r / "metrics.json").read_text())["collapse_check"]
              for r in ("one", "two")]
    assert checks[1]["plain_val_acc"] == checks[0]["plain_val_acc"]
    assert checks[1]["plain_val_nll"] == pytest.approx(checks[0]["plain_val_nll"], rel=1e-6)


def _rank_process(launcher: subprocess.Popen, rank: int, timeout: float = 120.0):
    import psutil

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for p in psutil.Process(launcher.pid).children(recursive=True):
            try:
                if p.environ().get("RANK") == str(rank) and "torch.distributed.run" not in \
                        " ".join(p.cmdline()):
                    return p
            except psutil.Error:
                continue
        time.sleep(0.2)
    raise AssertionError(f"rank {rank} never started")


@pytest.mark.slow
def test_a_killed_rank_stops_the_run_and_resume_finishes_it(tmp_path):
    """SIGKILL rank 1 after two epochs: the launcher ends (no hang) with the resume command;
    ``--resume`` finishes from rank 0's last checkpoint, and the whole trajectory equals an
    uninterrupted run's."""
    epochs = ["--set", "inference.epochs=12", "--set", "inference.batch_size=4"]
    run = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = subprocess.Popen(
        [sys.executable, "-m", "bayesstruct", "run", *RUN, *epochs, "--out", str(run),
         "--nproc-per-node", "2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    victim = _rank_process(launcher, 1)
    end = time.monotonic() + 300
    while not ((run / "history.csv").exists() and len(_history(run)) >= 2):
        assert launcher.poll() is None and time.monotonic() < end, "finished before the kill"
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    _, err = launcher.communicate(timeout=180)
    assert launcher.returncode != 0
    assert "--resume --nproc-per-node 2" in err
    killed_at = len(_history(run))
    assert 2 <= killed_at < 12
    resumed = _bayesstruct(str(run.name), "--out", str(run), "--resume", "--quiet",
                           "--nproc-per-node", "2", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    # at batch 4 (360 steps an epoch) float rounding of the summation order grows to ~0.2 %
    # of the validation NLL by epoch 1, so the reference is an uninterrupted 2-rank run
    whole = _bayesstruct(*RUN, *epochs, "--out", str(tmp_path / "whole"), "--nproc-per-node",
                         "2")
    assert whole.returncode == 0, whole.stderr
    _same_trajectory(tmp_path / "whole", run, rtol=1e-6)


def test_data_parallel_refuses_other_engines(tmp_path):
    """Before any rank starts: a sampler cannot be split over ranks."""
    r = _bayesstruct("logreg-digits01", "-i", "nuts", "--out", str(tmp_path / "nuts"),
                     "--nproc-per-node", "2")
    assert r.returncode == 2
    assert "data-parallel" in r.stderr and "engine 'nuts'" in r.stderr


def test_more_ranks_than_gpus_is_refused(monkeypatch):
    """Each rank uses its own GPU: asking for more ranks than GPUs names the allowed count."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match="allowed: --nproc-per-node <= 1"):
        parallel.check_devices("cuda", 2)
    parallel.check_devices("cuda", 1)
    parallel.check_devices("cpu", 8)
