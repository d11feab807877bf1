"""The README's Python example runs as written."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from bayesstruct.layers import markdown_table

README = Path(__file__).resolve().parents[1] / "README.md"


BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_has_the_five_examples():
    assert len(BLOCKS) == 5


def test_readme_layer_table_is_the_registry():
    table = re.search(r"<!-- layers:start -->\n(.*?)\n<!-- layers:end -->", README.read_text(),
                      re.S)
    assert table is not None and table.group(1) == markdown_table()


def test_readme_own_network_example_runs(capsys):
    exec(compile(BLOCKS[1], str(README), "exec"), {})
    lines = capsys.readouterr().out.strip().splitlines()
    roles = ast.literal_eval(lines[0])
    assert roles["1.weight"] == roles["1.bias"] == roles["0.bias"] == "point"
    assert roles["0.weight"] == roles["5.weight"] == "weight"
    assert 0.0 < float(lines[-1]) < 1.0


def test_readme_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(BLOCKS[0], str(README), "exec"), {})
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    removed, accuracy = float(lines[0]), float(lines[1])
    assert 0.0 < removed < 1.0
    assert 0.8 < accuracy <= 1.0  # ARD logistic regression on digits' test split
    assert "elpd_loo" in out  # az.loo read the log_likelihood group
    assert (tmp_path / "digits.nc").is_file()


def test_readme_compression_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(BLOCKS[2], str(README), "exec"), namespace)
    removed = float(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 < removed < 1.0
    small, net = namespace["small"], namespace["net"]
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in net.parameters())


def test_readme_pruning_comparison_example_runs(capsys):
    exec(compile(BLOCKS[4], str(README), "exec"), {})
    lines = capsys.readouterr().out.strip().splitlines()
    accs = {line.split()[0]: ast.literal_eval(line.split(" ", 1)[1]) for line in lines[-2:]}
    assert set(accs) == {"OBD", "OBS"}
    assert accs["OBS"][1] >= accs["OBD"][1] and min(accs["OBS"]) > 0.5


def test_readme_architecture_search_example_runs(fashion_mnist, capsys):
    """The search example as written, on a smaller subset and one epoch (the same code path)."""
    block = BLOCKS[3]
    assert "train_size=4000" in block and block.count("epochs=8") == 2
    small = block.replace("train_size=4000", "train_size=256").replace("epochs=8", "epochs=1")
    namespace: dict = {}
    exec(compile(small, str(README), "exec"), namespace)
    genotype, change = capsys.readouterr().out.strip().splitlines()[-1].rsplit(" ", 1)
    assert genotype.startswith("n2<-") and 0.0 <= float(change) <= 1.0
    assert 0.0 <= namespace["score"].test_acc <= 1.0
