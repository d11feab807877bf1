"""A run directory's life: kills and resumes, locks, refused resumes and folders, checkpoints.

Each test here is a case of docs/reliability.md. The SIGKILL tests run the real CLI in a
subprocess and compare the resumed run with an uninterrupted one bit for bit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from bayesstruct import data, guides, posterior, priors
from bayesstruct.cli import app
from bayesstruct.errors import CheckpointError, RunDirError
from bayesstruct.files import (
    RunLock,
    load_checkpoint,
    load_latest_checkpoint,
    previous_path,
    save_checkpoint,
    write_json,
    write_text,
)
from bayesstruct.inference import svi
from bayesstruct.models import BayesianNet
from bayesstruct.nets import build

cli = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
FAST = ["--set", "inference.num_draws=5", "--set", "pruning.mc_samples=2", "--quiet"]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "PYTHONPATH": str(ROOT)}


def _bayesstruct(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bayesstruct", *args], cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _assert_same_run(a: Path, b: Path) -> None:
    """Two run directories hold bit-identical training results."""
    ca, cb = load_checkpoint(a / "checkpoints/last.pt"), load_checkpoint(b / "checkpoints/last.pt")
    assert ca["epoch"] == cb["epoch"]
    for k in ca["guide"]:
        assert torch.equal(ca["guide"][k], cb["guide"][k]), k
    pa, pb = posterior.load(a / "posterior.nc"), posterior.load(b / "posterior.nc")
    for v in pa.posterior.data_vars:
        np.testing.assert_array_equal(pa.posterior[v].values, pb.posterior[v].values)
    assert json.loads((a / "metrics.json").read_text())["test_acc"] == \
        json.loads((b / "metrics.json").read_text())["test_acc"]


# -- SIGKILL, then --resume -------------------------------------------------------------------

def test_sigkill_during_training_then_resume_is_bit_identical(tmp_path):
    """SIGKILL at an arbitrary moment after the first checkpoints (possibly mid-write), then
    ``--resume``: the same checkpoint, posterior and metrics as a run never interrupted."""
    args = ["run", "--set", "inference.epochs=120", *FAST]
    whole = _bayesstruct(*args, "--out", str(tmp_path / "whole"))
    assert whole.wait(timeout=300) == 0, whole.stdout.read()
    killed = _bayesstruct(*args, "--out", str(tmp_path / "killed"))
    ckpt = tmp_path / "killed" / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while not previous_path(ckpt).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert killed.poll() is None, "the run finished before it could be killed"
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    assert not (tmp_path / "killed" / "posterior.nc").exists()
    resumed = _bayesstruct("run", "--out", str(tmp_path / "killed"), "--resume", "--quiet")
    assert resumed.wait(timeout=300) == 0, resumed.stdout.read()
    _assert_same_run(tmp_path / "whole", tmp_path / "killed")
    assert not list((tmp_path / "killed").rglob("*.tmp"))


KILL_IN_SAVE = """
import os, signal, sys, torch
from bayesstruct.cli import app
real = torch.save
count = {"n": 0}
def save(obj, f, *a, **k):
    count["n"] += 1
    if count["n"] == 4:  # the 4th checkpoint: write half of it, then die
        real(obj, f, *a, **k)
        size = os.path.getsize(f)
        with open(f, "r+b") as h:
            h.truncate(size // 2)
        os.kill(os.getpid(), signal.SIGKILL)
    return real(obj, f, *a, **k)
torch.save = save
app(sys.argv[1:])
"""


def test_sigkill_during_a_checkpoint_write_then_resume_is_bit_identical(tmp_path):
    """Killed inside ``torch.save`` of epoch 4: the half-written temporary file is removed on
    resume, ``last.pt`` (epoch 3) is intact, and the result equals an uninterrupted run."""
    args = ["run", "--set", "inference.epochs=6", *FAST]
    whole = _bayesstruct(*args, "--out", str(tmp_path / "whole"))
    assert whole.wait(timeout=300) == 0
    proc = subprocess.run([sys.executable, "-c", KILL_IN_SAVE, *args, "--out",
                           str(tmp_path / "killed")], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    ckdir = tmp_path / "killed" / "checkpoints"
    assert list(ckdir.glob(".last.pt.*.tmp")), "the kill should leave a temporary file"
    assert load_checkpoint(ckdir / "last.pt")["epoch"] == 3
    resumed = _bayesstruct("run", "--out", str(tmp_path / "killed"), "--resume", "--quiet")
    assert resumed.wait(timeout=300) == 0, resumed.stdout.read()
    assert not list((tmp_path / "killed").rglob("*.tmp"))
    _assert_same_run(tmp_path / "whole", tmp_path / "killed")


# -- one process per run directory ------------------------------------------------------------

HOLD = """
import sys, time
from bayesstruct.files import RunLock
with RunLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_second_process_on_a_run_directory_is_refused(tmp_path):
    out = tmp_path / "run"
    assert cli.invoke(app, ["run", "--out", str(out), "--set", "inference.epochs=2",
                            *FAST]).exit_code == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], cwd=ROOT, env=_env(),
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        res = cli.invoke(app, ["run", "--out", str(out), "--resume", "--set",
                               "inference.epochs=3", "--quiet"])
        assert res.exit_code == 2
        assert f"{out} is in use by pid {holder.pid}" in res.output
        with pytest.raises(RunDirError, match=f"in use by pid {holder.pid}"):
            RunLock(out).acquire()
    finally:
        holder.kill()
        holder.wait()
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    assert after == before  # the refused process wrote nothing
    # once the holder is gone the lock is free again (flock dies with its process)
    assert cli.invoke(app, ["run", "--out", str(out), "--resume", "--set",
                            "inference.epochs=3", "--quiet"]).exit_code == 0


def test_out_on_a_folder_of_the_users_own_is_refused(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "metrics.json").write_text("my own numbers")
    (mine / "pruning.csv").write_text("a,b\n1,2\n")
    res = cli.invoke(app, ["run", "--out", str(mine), "--set", "inference.epochs=1", *FAST])
    assert res.exit_code == 2 and "not a bayesstruct run directory" in res.output
    assert (mine / "metrics.json").read_text() == "my own numbers"
    assert sorted(p.name for p in mine.iterdir()) == ["metrics.json", "pruning.csv"]
    # an empty folder is fine
    (tmp_path / "empty").mkdir()
    assert cli.invoke(app, ["run", "--out", str(tmp_path / "empty"), "--set",
                            "inference.epochs=1", *FAST]).exit_code == 0


@pytest.mark.parametrize("args,text", [
    (["--device", "cuda"], "CUDA is not available"),
    (["--set", "data.classes=[0,0]"], "classes"),
    (["--set", "inference.temperature=0.5"], "inference.temperature"),
])
def test_a_start_that_fails_its_checks_leaves_nothing(tmp_path, args, text):
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    out = tmp_path / "run"
    res = cli.invoke(app, ["run", "--out", str(out), *args, *FAST])
    assert res.exit_code == 2 and text in res.output, res.output
    assert not out.exists()
    # so the same --out is then free for a good run
    assert cli.invoke(app, ["run", "--out", str(out), "--set", "inference.epochs=1",
                            *FAST]).exit_code == 0


# -- resume changes nothing that shaped the run -----------------------------------------------

@pytest.fixture(scope="module")
def three_epochs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("resume") / "run"
    res = cli.invoke(app, ["run", "--out", str(out), "--set", "inference.epochs=3", *FAST])
    assert res.exit_code == 0, res.output
    return out


@pytest.mark.parametrize("override,named", [
    ("inference.lr=0.5", "inference.lr 0.01 -> 0.5"),
    ("seed=3", "seed 0 -> 3"),
    ("data.name=wine", "data.name 'digits' -> 'wine'"),
    ("inference.batch_size=32", "inference.batch_size 64 -> 32"),
    ("prior.per=unit", "prior.per 'weight' -> 'unit'"),
    ("inference.epochs=2", "below the checkpoint's epoch 3"),
])
def test_resume_refuses_to_change_what_shaped_the_run(three_epochs, override, named):
    """Refused before anything is written: config.yaml and the checkpoint stay byte-equal, and a
    plain --resume still works afterwards."""
    out = three_epochs
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    res = cli.invoke(app, ["run", "--out", str(out), "--resume", "--set", override, "--quiet"])
    assert res.exit_code == 2 and named in res.output, res.output
    assert {p: p.read_bytes() for p in files} == files


def test_resume_may_raise_epochs_and_says_so(tmp_path):
    out = tmp_path / "run"
    assert cli.invoke(app, ["run", "--out", str(out), "--set", "inference.epochs=2",
                            "--set", "inference.lr_schedule=cosine", *FAST]).exit_code == 0
    res = cli.invoke(app, ["run", "--out", str(out), "--resume", "--set",
                           "inference.epochs=4", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "inference.epochs 2 -> 4" in res.output and "cosine" in res.output
    assert load_checkpoint(out / "checkpoints/last.pt")["epoch"] == 4
    assert yaml.safe_load((out / "config.yaml").read_text())["inference"]["epochs"] == 4


def test_svi_refuses_a_checkpoint_of_other_settings(tmp_path, digits):
    """The API check beneath --resume: the checkpoint records the training settings."""
    def fit(**kw):
        model = BayesianNet(build("logreg", digits.input_shape, digits.n_classes), priors.ARD())
        return svi(model, guides.MeanField(), digits, checkpoint_dir=tmp_path, progress=False,
                   num_draws=2, **{"epochs": 2, "lr": 1e-2, **kw})

    fit()
    with pytest.raises(CheckpointError, match=r"lr: 0.01 -> 0.02"):
        fit(lr=2e-2, resume=True)
    with pytest.raises(CheckpointError, match=r"seed: 0 -> 1.*" "|data: "):
        fit(seed=1, resume=True)
    other = data.load("digits", seed=1)
    with pytest.raises(CheckpointError, match="data: "):
        model = BayesianNet(build("logreg", other.input_shape, other.n_classes), priors.ARD())
        svi(model, guides.MeanField(), other, checkpoint_dir=tmp_path, progress=False,
            num_draws=2, epochs=2, lr=1e-2, resume=True)
    with pytest.raises(CheckpointError, match="past epochs=1"):
        fit(epochs=1, resume=True)


# -- --init-from: a new run from the last good parameters -------------------------------------

def test_init_from_starts_a_new_run_from_the_last_good_parameters(tmp_path, digits):
    first = tmp_path / "first"
    assert cli.invoke(app, ["run", "--out", str(first), "--set", "inference.epochs=3",
                            *FAST]).exit_code == 0
    res = cli.invoke(app, ["run", "--out", str(tmp_path / "second"), "--init-from", str(first),
                           "--set", "inference.epochs=1", "--set", "inference.lr=1e-4", *FAST])
    assert res.exit_code == 0, res.output
    assert "starting from the parameters of" in res.output
    metrics = json.loads((tmp_path / "second" / "metrics.json").read_text())
    assert metrics["init_from"].endswith("last.pt")
    cfg = yaml.safe_load((tmp_path / "second" / "config.yaml").read_text())
    assert cfg["inference"]["lr"] == 1e-4
    # the API: with a vanishing lr the fit stays where the checkpoint left it
    ck = load_checkpoint(first / "checkpoints/last.pt")
    model = BayesianNet(build("logreg", digits.input_shape, digits.n_classes), priors.ARD())
    guide = guides.MeanField()
    svi(model, guide, digits, epochs=1, lr=1e-12, init_from=first / "checkpoints/last.pt",
        progress=False, num_draws=2, batch_size=64)
    for k, v in ck["guide"].items():
        torch.testing.assert_close(guide.state_dict()[k], v, rtol=0, atol=1e-6)
    # an incompatible checkpoint is named
    wide = BayesianNet(build("mlp", digits.input_shape, digits.n_classes, [8]), priors.ARD())
    with pytest.raises(CheckpointError, match="do not fit this model"):
        svi(wide, guides.MeanField(), digits, epochs=1, init_from=ck, progress=False)


# -- checkpoints ------------------------------------------------------------------------------

def test_a_corrupt_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, digits):
    """The newest two are kept; a corrupt newest one is skipped with a warning, and training
    from the previous one reproduces the uninterrupted run bit for bit."""
    def fit(ckpt: Path, **kw):
        torch.manual_seed(0)
        model = BayesianNet(build("logreg", digits.input_shape, digits.n_classes), priors.ARD())
        guide = guides.MeanField()
        svi(model, guide, digits, epochs=4, lr=1e-2, batch_size=64, checkpoint_dir=ckpt,
            progress=False, num_draws=2, **kw)
        return guide

    whole = fit(tmp_path / "a")
    fit(tmp_path / "b")
    last = tmp_path / "b" / "last.pt"
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.prev.pt", "last.pt"]
    assert load_checkpoint(previous_path(last))["epoch"] == 3
    last.write_bytes(last.read_bytes()[:100])  # truncated
    with pytest.warns(UserWarning, match="using the previous checkpoint"):
        resumed = fit(tmp_path / "b", resume=True)
    for k, v in whole.state_dict().items():
        assert torch.equal(resumed.state_dict()[k], v), k
    # neither readable: a one-line error naming the files
    last.write_bytes(b"")
    previous_path(last).write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="last.pt cannot be read .it is empty"):
        load_latest_checkpoint(last)
    res = cli.invoke(app, ["run", "--out", str(tmp_path / "c"), "--set", "inference.epochs=1",
                           *FAST])
    assert res.exit_code == 0
    (tmp_path / "c" / "checkpoints" / "last.pt").write_bytes(b"")
    (tmp_path / "c" / "checkpoints" / "last.prev.pt").unlink(missing_ok=True)
    res = cli.invoke(app, ["run", "--out", str(tmp_path / "c"), "--resume", "--quiet"])
    assert res.exit_code == 2 and "last.pt cannot be read" in res.output
    assert "Aborted" not in res.output


def test_files_get_the_users_umask_and_leave_no_temporaries(tmp_path):
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "x")
        save_checkpoint({"a": torch.zeros(2)}, tmp_path / "c.pt", keep=2)
        save_checkpoint({"a": torch.ones(2)}, tmp_path / "c.pt", keep=2)
        os.umask(0o077)
        write_text(tmp_path / "private.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "c.pt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "private.txt").stat().st_mode & 0o777 == 0o600
    assert torch.equal(load_checkpoint(tmp_path / "c.prev.pt")["a"], torch.zeros(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "c.prev.pt", "c.pt",
                                                           "private.txt"]


def test_metrics_json_is_strict(tmp_path):
    path = write_json(tmp_path / "m.json", {"nll": float("nan"), "rows": [1.0, float("inf")],
                                            "ok": np.float32(0.5), "n": 3})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    m = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict token {c}"))
    assert m["nll"] is None and m["rows"] == [1.0, None] and m["ok"] == 0.5
    assert m["non_finite"] == {"nll": "nan", "rows[1]": "inf"}


# -- diagnose on files that are not a posterior -----------------------------------------------

@pytest.mark.parametrize("content,text", [
    (b"", "cannot be read as a netCDF posterior"),
    (b"\x89HDF\r\n\x1a\n" + b"\0" * 64, "cannot be read as a netCDF posterior"),
    ("foreign", "is not a bayesstruct posterior"),
])
def test_diagnose_names_a_corrupt_or_foreign_posterior(tmp_path, content, text):
    run = tmp_path / "run"
    run.mkdir()
    if content == "foreign":
        import arviz as az

        az.from_dict(observed_data={"y": np.zeros(3)}).to_netcdf(str(run / "posterior.nc"),
                                                                 engine="h5netcdf")
    else:
        (run / "posterior.nc").write_bytes(content)
    res = cli.invoke(app, ["diagnose", str(run), "--no-plots"])
    assert res.exit_code == 2, res.output
    assert text in res.output and "posterior.nc" in res.output
    assert "Traceback" not in res.output


# -- the API refuses what it cannot do --------------------------------------------------------

@pytest.mark.parametrize("kw,named", [
    ({"epochs": 0}, "epochs must be an integer >= 1"),
    ({"epochs": -3}, "epochs must be an integer >= 1"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ({"num_draws": 0}, "num_draws must be an integer >= 1"),
    ({"lr": float("nan")}, "lr must be a finite number > 0"),
    ({"kl_weight": -1.0}, "kl_weight must be a finite number >= 0"),
])
def test_svi_refuses_impossible_arguments(digits, kw, named):
    model = BayesianNet(build("logreg", digits.input_shape, digits.n_classes), priors.ARD())
    with pytest.raises(ValueError, match=named):
        svi(model, guides.MeanField(), digits, progress=False, **kw)
