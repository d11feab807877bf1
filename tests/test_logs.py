"""bayesstruct.logs: log lines instead of carriage returns when piped, verbosity levels, phases,
and the history.csv writer (TensorBoard included)."""

from __future__ import annotations

import io
import logging
import sys
import time
import types

import pytest

from bayesstruct import logs
from bayesstruct.errors import ConfigError


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Captured:
    """What reached stderr (pytest's capture: not a terminal), accumulated."""

    def __init__(self, capsys) -> None:
        self.capsys, self.text = capsys, ""

    def getvalue(self) -> str:
        self.text += self.capsys.readouterr().err
        return self.text


@pytest.fixture
def piped(capsys):
    """stderr is not a terminal; the default verbosity; restored afterwards."""
    logs.configure(0)
    assert not sys.stderr.isatty()
    yield _Captured(capsys)
    logs.configure(0)


def _lines(err) -> list[str]:
    return [ln for ln in err.getvalue().split("\n") if ln]


def test_piped_progress_writes_bounded_plain_lines_and_a_final_one(piped):
    bar = logs.progress(total=1000, desc="svi", unit="epoch", min_seconds=0)
    for i in range(1000):
        bar.update(1)
        bar.set_postfix(loss=1000.0 / (i + 1))
    bar.close()
    text = piped.getvalue()
    assert "\r" not in text
    lines = _lines(piped)
    assert 2 <= len(lines) <= 11, lines  # one per ~10 %, then the final line
    assert lines[0].startswith("svi: epoch 100/1000 (10 %)"), lines[0]
    assert "elapsed" in lines[0] and "left" in lines[0]
    assert lines[-1].startswith("svi: epoch 1000/1000 (100 %), loss 1, done in "), lines[-1]
    bar.close()  # a second close writes nothing more
    assert len(_lines(piped)) == len(lines)


def test_a_fast_loop_gets_its_final_line_only_if_it_has_figures(piped):
    assert list(logs.progress(range(1000), desc="curve", unit="fraction")) == list(range(1000))
    assert piped.getvalue() == ""  # over at once, nothing to report
    with logs.progress(total=1000, desc="svi", unit="epoch") as bar:
        for _ in range(1000):
            bar.set_postfix(loss=0.25)
            bar.update(1)
    lines = _lines(piped)
    assert len(lines) == 1 and "epoch 1000/1000 (100 %), loss 0.25" in lines[0], lines


def test_a_transient_loop_over_at_once_writes_nothing(piped):
    assert list(logs.progress(range(10), desc="retrain", leave=False)) == list(range(10))
    assert piped.getvalue() == ""
    bar = logs.progress(total=10, desc="chain 0", leave=False, min_seconds=0)
    bar.update(10)
    bar.close()
    assert _lines(piped)[-1].startswith("chain 0: step 10/10 (100 %), done in")


def test_a_long_loop_writes_a_line_after_the_longest_gap(piped, monkeypatch):
    clock = iter(float(t) for t in range(0, 10_000, 25))
    monkeypatch.setattr(logs.time, "perf_counter", lambda: next(clock))
    bar = logs.progress(desc="chains", seconds=60)  # no total: time alone decides
    for _ in range(10):
        bar.update(1)
    bar.close()
    lines = _lines(piped)
    assert len(lines) == 4, lines  # 25 s apart: at 75, 150 and 225 s, then the final line
    assert lines[0].startswith("chains: 3 steps, 1 min 15 s elapsed"), lines[0]
    assert lines[-1].startswith("chains: 10 steps, done in"), lines[-1]


def test_a_loop_left_early_says_where_it_stopped(piped):
    with logs.progress(total=10, desc="svi", unit="epoch") as bar:
        bar.update(3)
    assert "svi: epoch 3/10 (30 %), stopped in" in _lines(piped)[-1]


def test_a_terminal_gets_a_tqdm_bar(monkeypatch):
    from tqdm.auto import tqdm

    err = _Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    logs.configure(0)
    bar = logs.progress(range(3), desc="svi", unit="epoch")
    assert isinstance(bar._bar, tqdm)
    assert list(bar) == [0, 1, 2]
    assert "\r" in err.getvalue() and "svi" in err.getvalue()


def test_disabled_and_quiet_progress_write_nothing(piped):
    assert list(logs.progress(range(5), enabled=False)) == list(range(5))
    bar = logs.progress(total=5, enabled=False)
    bar.update(5)
    bar.close()
    assert piped.getvalue() == ""
    logs.configure(-1)
    assert list(logs.progress(range(5), desc="x")) == list(range(5))
    with logs.phase("pruning curve"):
        pass
    logs.get_logger("svi").info("an info line")
    assert piped.getvalue() == ""
    logs.get_logger("svi").warning("a warning")
    assert _lines(piped) == ["a warning"]


def test_configure_is_idempotent_and_sets_the_level(piped):
    logs.configure(0)
    logs.configure(0)
    logger = logging.getLogger("bayesstruct")
    ours = [h for h in logger.handlers if isinstance(h, logs._StderrHandler)]
    assert len(ours) == 1
    logs.get_logger("svi").info("once")
    assert _lines(piped) == ["once"]
    logs.get_logger("svi").debug("hidden")
    assert "hidden" not in piped.getvalue()
    logs.configure(1)
    logs.get_logger("svi").debug("shown")
    assert "shown" in piped.getvalue() and "bayesstruct.svi" in piped.getvalue()
    assert logs.get_logger("bayesstruct.pruning").name == "bayesstruct.pruning"


def test_phase_logs_its_start_and_its_end(piped, monkeypatch):
    monkeypatch.setattr(logs, "PHASE_SECONDS", 0.05)
    with logs.phase("SNR curves"):
        time.sleep(0.3)
    with pytest.raises(RuntimeError), logs.phase("export"):
        time.sleep(0.3)
        raise RuntimeError("boom")
    lines = _lines(piped)
    assert lines[0] == "SNR curves ..."
    assert lines[1].startswith("SNR curves done in ") and lines[1].endswith(" s")
    assert lines[2] == "export ..." and lines[3].startswith("export stopped after ")


def test_a_quick_phase_prints_nothing_unless_verbose(piped, monkeypatch):
    monkeypatch.setattr(logs, "PHASE_SECONDS", 5.0)
    with logs.phase("compression summary"):
        pass
    with pytest.raises(RuntimeError), logs.phase("export"):
        raise RuntimeError("boom")
    assert piped.getvalue() == ""
    logs.configure(1)
    with logs.phase("compression summary"):
        pass
    lines = _lines(piped)
    assert lines[0].endswith("compression summary ...")
    assert "compression summary done in " in lines[1]


# -- history.csv ---------------------------------------------------------------------------------

def test_history_appends_rows_and_widens_its_header(tmp_path):
    path = tmp_path / "history.csv"
    with logs.History(path) as h:
        h.append({"epoch": 1, "loss": 2.5})
        assert logs.read_history(path) == [{"epoch": "1", "loss": "2.5"}]  # flushed per row
        h.append({"epoch": 2, "loss": 1.5, "val_acc": 0.5})
        h.append({"epoch": 3, "loss": 1.0, "val_acc": 0.75, "diverging": True})
    rows = logs.read_history(path)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert rows[0]["val_acc"] == "" and rows[2]["val_acc"] == "0.75"
    assert rows[2]["diverging"] == "1"
    # a resume keeps the rows it is told to and appends after them
    with logs.History.resume(path, lambda r: int(r["epoch"]) <= 2) as h:
        h.append({"epoch": 3, "loss": 0.9, "val_acc": 0.8})
    assert [(r["epoch"], r["loss"]) for r in logs.read_history(path)] == [
        ("1", "2.5"), ("2", "1.5"), ("3", "0.9")]
    # a fresh history (rows given) replaces the file
    logs.History(path, [{"epoch": 1, "loss": 7}]).close()
    assert logs.read_history(path) == [{"epoch": "1", "loss": "7"}]
    assert logs.History(None).append({"epoch": 1}) is None  # no path: writes nothing


class _FakeWriter:
    def __init__(self, log_dir: str = "") -> None:
        self.log_dir, self.scalars, self.closed = log_dir, [], False

    def add_scalar(self, tag, value, step) -> None:
        self.scalars.append((tag, value, step))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_history_sends_numeric_columns_to_tensorboard(tmp_path, monkeypatch):
    made = []

    def writer(log_dir):
        made.append(_FakeWriter(log_dir))
        return made[-1]

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = writer
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    monkeypatch.setenv(logs.TENSORBOARD_ENV, str(tmp_path / "tb"))
    assert logs.tensorboard_dir() == tmp_path / "tb"
    run = tmp_path / "run"
    with logs.History(run / "history.csv", prefix="svi/") as h:
        h.append({"epoch": 1, "loss": 2.0, "val_acc": 0.5, "phase": "burn_in"})
        h.append({"epoch": 2, "loss": 1.0, "val_acc": 0.7, "phase": "sampling"})
    (w,) = made
    assert w.log_dir == str(tmp_path / "tb" / "run") and w.closed
    assert w.scalars == [("svi/loss", 2.0, 1), ("svi/val_acc", 0.5, 1),
                         ("svi/loss", 1.0, 2), ("svi/val_acc", 0.7, 2)]


def test_tensorboard_asked_for_but_not_installed_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    monkeypatch.delenv(logs.TENSORBOARD_ENV, raising=False)
    assert logs.tensorboard_dir() is None  # not asked: no error
    monkeypatch.setenv(logs.TENSORBOARD_ENV, str(tmp_path / "tb"))
    with pytest.raises(ConfigError, match="pip install tensorboard"):
        logs.tensorboard_dir()
    with pytest.raises(ConfigError, match=logs.TENSORBOARD_ENV):
        logs.History(tmp_path / "history.csv")
