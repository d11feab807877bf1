"""The README's Python example runs as written."""

from __future__ import annotations

import ast
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_has_the_four_examples():
    assert len(BLOCKS) == 4


def test_readme_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(BLOCKS[0], str(README), "exec"), {})
    removed = float(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 < removed < 1.0
    assert (tmp_path / "digits.nc").is_file()


def test_readme_compression_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(BLOCKS[1], str(README), "exec"), namespace)
    removed = float(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 < removed < 1.0
    small, net = namespace["small"], namespace["net"]
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in net.parameters())


def test_readme_pruning_comparison_example_runs(capsys):
    exec(compile(BLOCKS[3], str(README), "exec"), {})
    lines = capsys.readouterr().out.strip().splitlines()
    accs = {line.split()[0]: ast.literal_eval(line.split(" ", 1)[1]) for line in lines[-2:]}
    assert set(accs) == {"OBD", "OBS"}
    assert accs["OBS"][1] >= accs["OBD"][1] and min(accs["OBS"]) > 0.5


def test_readme_architecture_search_example_runs(fashion_mnist, capsys):
    """The search example as written, on a smaller subset and one epoch (the same code path)."""
    block = BLOCKS[2]
    assert "train_size=4000" in block and block.count("epochs=8") == 2
    small = block.replace("train_size=4000", "train_size=256").replace("epochs=8", "epochs=1")
    namespace: dict = {}
    exec(compile(small, str(README), "exec"), namespace)
    genotype, change = capsys.readouterr().out.strip().splitlines()[-1].rsplit(" ", 1)
    assert genotype.startswith("n2<-") and 0.0 <= float(change) <= 1.0
    assert 0.0 <= namespace["score"].test_acc <= 1.0
