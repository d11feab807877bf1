"""The CLI end to end on digits (tiny settings): run directory, errors, resume, zoo."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from bayesstruct import posterior
from bayesstruct.cli import app
from bayesstruct.files import load_checkpoint

runner = CliRunner()
FAST = ["--set", "inference.epochs=3", "--set", "inference.num_draws=5",
        "--set", "pruning.mc_samples=3", "--quiet"]


def test_zoo_lists_entries_with_descriptions():
    res = runner.invoke(app, ["zoo"])
    assert res.exit_code == 0, res.output
    assert "ard-logreg-digits" in res.output and "ARD logistic regression" in res.output
    assert "svi-meanfield" in res.output and "svi-map" in res.output


def test_run_writes_the_run_directory(tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", "--out", str(out), *FAST])
    assert res.exit_code == 0, res.output
    for f in ("config.yaml", "metrics.json", "posterior.nc", "pruning.csv", "pruning.png",
              "checkpoints/last.pt"):
        assert (out / f).is_file(), f
    assert "test acc (%) after pruning" in res.output
    metrics = json.loads((out / "metrics.json").read_text())
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["inference"]["epochs"] == 3 and cfg["name"] == "ard-logreg-digits"
    assert 0 <= metrics["fraction_removed"] <= 1 and metrics["test_acc"] > 0.5
    # the collapse check: a plain fit beside the posterior mean, said and recorded
    check = metrics["collapse_check"]
    assert "collapse check: validation accuracy" in res.output and check["warning"] is None
    assert check["plain_epochs"] == 3 and 0.5 < check["plain_val_acc"] <= 1
    post = posterior.load(out / "posterior.nc")
    assert post.posterior.sizes["draw"] == 5
    rows = np.genfromtxt(out / "pruning.csv", delimiter=",", names=True)
    assert rows["fraction"][0] == 0 and len(rows) == 13
    assert load_checkpoint(out / "checkpoints" / "last.pt")["epoch"] == 3
    # an existing run is never overwritten
    again = runner.invoke(app, ["run", "--out", str(out), *FAST])
    assert again.exit_code == 2 and "already holds a run" in again.output
    # --resume with more epochs continues from the checkpoint
    more = runner.invoke(app, ["run", "--out", str(out), "--resume", "--set",
                               "inference.epochs=4", "--quiet"])
    assert more.exit_code == 0, more.output
    assert load_checkpoint(out / "checkpoints" / "last.pt")["epoch"] == 4
    assert json.loads((out / "metrics.json").read_text())["epochs_run"] == 4


def test_a_collapsed_run_says_so(tmp_path):
    """A prior far too narrow for the data (N(0, 0.001^2) on every weight) leaves the
    network predicting from its biases: the run warns and metrics.json records it."""
    out = tmp_path / "run"
    res = runner.invoke(app, ["run", "--out", str(out), *FAST, "--set", "prior.kind=gaussian",
                              "--set", "prior.scale=0.001"])
    assert res.exit_code == 0, res.output
    check = json.loads((out / "metrics.json").read_text())["collapse_check"]
    assert "WARNING: possible collapse" in res.output
    assert check["warning"].startswith("possible collapse")
    assert check["plain_val_acc"] - check["val_acc"] > 0.3


def test_empirical_bayes_from_the_first_step_collapses_a_small_mlp_and_the_run_says_so(
        tmp_path):
    """Issue 29's case, unplanted: ARD with closed-form updates from step 0 on a 13-32-32-3
    MLP on wine ends near one class (38.89 % on every seed of benchmarks/tabular.py --sweep);
    the collapse check warns. The default start (halfway) leaves it a working network."""
    common = ["--set", "data.name=wine", "--set", "net.kind=mlp", "--set", "net.hidden=[32,32]",
              "--set", "pruning.mc_samples=0", "--set", "pruning.snr_curve=false", "--quiet"]
    out = {}
    for name, extra in (("step0", ["--set", "inference.eb_start_epochs=0"]), ("default", [])):
        res = runner.invoke(app, ["run", "--out", str(tmp_path / name), *common, *extra])
        assert res.exit_code == 0, res.output
        out[name] = (res.output, json.loads((tmp_path / name / "metrics.json").read_text()))
    text, m = out["step0"]
    assert "WARNING: possible collapse" in text and m["collapse_check"]["warning"] is not None
    assert m["test_acc"] < 0.6
    text, m = out["default"]
    assert "WARNING" not in text and m["collapse_check"]["warning"] is None
    assert m["test_acc"] > 0.85


def test_map_recipe_prunes_by_magnitude(tmp_path):
    res = runner.invoke(app, ["run", "ard-logreg-digits", "-i", "svi-map", "--set",
                              "prior.hyper=gamma", "--out", str(tmp_path / "r"), *FAST])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["criterion"] == "magnitude"


@pytest.mark.parametrize("args,text", [
    (["--set", "prior.per=column"], "prior.per"),
    (["--inference", "nope"], "unknown inference 'nope'"),
    (["--device", "tpu"], "device"),
    (["missing.yaml"], "does not exist"),
])
def test_invalid_input_exits_2_with_a_named_error(tmp_path, args, text):
    res = runner.invoke(app, ["run", *args, "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and text in res.output
    assert not (tmp_path / "x").exists()  # nothing half-written


def test_resume_without_a_run(tmp_path):
    res = runner.invoke(app, ["run", "--out", str(tmp_path / "none"), "--resume"])
    assert res.exit_code == 2 and "nothing to resume" in res.output


def test_missing_idx_files_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("BAYESSTRUCT_DATA", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    res = runner.invoke(app, ["run", "ard-logreg-mnist", "--data-dir", str(tmp_path),
                              "--out", str(tmp_path / "m"), "--quiet"])
    assert res.exit_code == 2
    assert "--data-dir" in res.output and "BAYESSTRUCT_DATA" in res.output


COMPARE_FAST = ["--set", "data.name=digits", "--set", "inference.epochs=5",
                "--set", "inference.lr=0.01", "--set", "compare.fractions=[0.0,0.5,0.9]",
                "--quiet"]


def test_compare_writes_figure_csv_and_table(tmp_path):
    out = tmp_path / "cmp"
    res = runner.invoke(app, ["compare", "logreg-prune-compare", "--out", str(out),
                              "--methods", "random,magnitude-l2-retrain,obs", *COMPARE_FAST])
    assert res.exit_code == 0, res.output
    for f in ("config.yaml", "comparison.csv", "comparison.png", "metrics.json",
              "checkpoints/base-l2.pt", "checkpoints/rows.json"):
        assert (out / f).is_file(), f
    assert "magnitude-l2-retrain" in res.output and "90% removed" in res.output
    import csv
    rows = list(csv.DictReader((out / "comparison.csv").open()))
    assert [r["method"] for r in rows] == ["random"] * 3 + ["magnitude-l2-retrain"] * 3 \
        + ["obs"] * 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["methods"] == ["random", "magnitude-l2-retrain", "obs"]
    assert set(metrics["bases"]) == {"l2"}
    assert metrics["test_acc_at"]["obs"]["0.9"] == pytest.approx(
        float(rows[-1]["acc"]))
    # resume reuses everything that finished
    again = runner.invoke(app, ["compare", "logreg-prune-compare", "--out", str(out),
                                "--resume", "--quiet"])
    assert again.exit_code == 0, again.output
    assert "random: loaded" in again.output and "obs: loaded" in again.output
    assert json.loads((out / "metrics.json").read_text())["bases"] == metrics["bases"]


def test_run_of_a_compare_entry_runs_the_comparison(tmp_path):
    out = tmp_path / "cmp"
    res = runner.invoke(app, ["run", "logreg-prune-compare", "--out", str(out),
                              "--set", "compare.methods=[random,obd]", *COMPARE_FAST])
    assert res.exit_code == 0, res.output
    assert (out / "comparison.png").is_file() and not (out / "posterior.nc").exists()


def test_compare_refuses_unknown_methods_naming_the_allowed_ones(tmp_path):
    res = runner.invoke(app, ["compare", "logreg-prune-compare", "--out", str(tmp_path / "x"),
                              "--methods", "random,snip", *COMPARE_FAST])
    assert res.exit_code == 2
    assert "methods.1" in res.output and "'magnitude-l1-retrain'" in res.output
    assert not (tmp_path / "x").exists()


def test_compare_variational_needs_the_meanfield_guide(tmp_path):
    res = runner.invoke(app, ["compare", "logreg-prune-compare", "--out", str(tmp_path / "x"),
                              "--inference", "svi-map", *COMPARE_FAST])
    assert res.exit_code == 2 and "needs the meanfield guide" in res.output


def test_compare_refuses_obs_on_a_large_net_before_training(tmp_path):
    res = runner.invoke(app, ["compare", "lenet300-gaussian-digits", "--out",
                              str(tmp_path / "x"), "--methods", "magnitude-l2,obs", "--quiet"])
    assert res.exit_code == 2, res.output
    assert "obs_max_weights=20000" in res.output and "drop 'obs'" in res.output
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("entry,extra", [
    ("rnn-digits", ["--set", "inference.covariance=scalar"]),
    ("rnn-pairs-synthetic", ["--set", "net.kind=gru"]),
])
def test_recurrent_entries_draw_the_three_curves(tmp_path, entry, extra):
    out = tmp_path / entry
    res = runner.invoke(app, ["run", entry, "--out", str(out), *FAST, *extra])
    assert res.exit_code == 0, res.output
    assert "|mu/sigma| rule:" in res.output and (out / "snr_curve.png").is_file()
    rows = np.genfromtxt(out / "snr_curve.csv", delimiter=",", names=True)
    assert rows["lambda"][0] == 0 and rows["removed"][0] == 0 and len(rows) > 40
    assert np.all(np.diff(rows["weights_kept"]) <= 0)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_acc"] == pytest.approx(rows["acc"][0])
    snr = metrics["snr"]
    assert snr["tolerance"] == 0.01 and 0 <= snr["test_oracle"]["removed"] <= 1
    assert 0 <= snr["val_chosen"]["removed"] <= 1
    post = posterior.load(out / "posterior.nc")
    assert post.attrs["prior_update"] == "closed_form"


def test_ibp_entry_infers_widths_and_prunes_to_them(tmp_path):
    out = tmp_path / "ibp"
    res = runner.invoke(app, ["run", "ibp-mlp", "--out", str(out), *FAST, "--set",
                              "data.name=digits", "--set", "net.hidden=[40,30]", "--set",
                              "inference.temperature_final=0.3", "--set", "prior.alpha=2"])
    assert res.exit_code == 0, res.output
    assert "inferred widths" in res.output and (out / "widths.png").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    widths = metrics["inferred_widths"]
    assert widths["fc1"]["truncation"] == 40 and widths["fc2"]["truncation"] == 30
    # the pruned net has exactly the units whose inclusion probability exceeds 1/2
    assert metrics["units_after"]["fc1"][1] == widths["fc1"]["active"]
    assert metrics["units_after"]["fc2"][1] == widths["fc2"]["active"]
    assert 0 < widths["fc2"]["active"] < 30  # the prior's start: alpha H_n units, not all
    post = posterior.load(out / "posterior.nc")
    temps = post.optimization["temperature"].values
    assert np.all(np.diff(temps) < 0) and temps[-1] == pytest.approx(0.3, rel=0.05)
    assert post.variational_loc["fc1.z"].attrs["family"] == "Bernoulli"


@pytest.mark.parametrize("entry,args,text", [
    ("ibp-mlp", ["--set", "net.kind=lenet5", "--set", "data.name=digits"],
     "chain of Linear layers"),
    ("ard-logreg-digits", ["--set", "inference.temperature=0.5"], "inference.temperature"),
    ("ibp-mlp", ["-i", "sgld", "--set", "data.name=digits"], "discrete"),
    ("ibp-mlp", ["-i", "svi-map", "--set", "data.name=digits"], "inference.guide"),
    ("ibp-mlp", ["--set", "prior.init_inclusion=2"], "prior.init_inclusion"),
])
def test_ibp_misuse_exits_2_with_a_named_error(tmp_path, entry, args, text):
    res = runner.invoke(app, ["run", entry, *args, "--out", str(tmp_path / "x"), "--quiet"])
    assert res.exit_code == 2 and text in res.output, res.output


def test_hypergrad_l2_entry_writes_the_table(tmp_path):
    out = tmp_path / "l2"
    res = runner.invoke(app, ["run", "hypergrad-l2-lenet", "--out", str(out), "--quiet",
                              "--set", "data.name=digits", "--set", "net.kind=mlp",
                              "--set", "net.hidden=[16]", "--set", "hypergrad.epochs_weights=1",
                              "--set", "hypergrad.epochs_hyper=1", "--set", "hypergrad.k=5"])
    assert res.exit_code == 0, res.output
    m = json.loads((out / "metrics.json").read_text())
    assert [r["mode"] for r in m["test"]] == ["none", "shared", "individual"]
    for r in m["test"]:
        assert 0 <= r["one_minus_auc"] <= 1 and r["test_ce"] > 0
    assert m["history"]["none"] == [] and len(m["history"]["individual"]) > 0
    assert (out / "hypergrad.png").is_file() and (out / "hypergrad.csv").is_file()
    assert "test CE" in res.output and "1 - AUC" in res.output


def test_hypergrad_kernel_width_entry_learns_a_narrower_kernel(tmp_path):
    out = tmp_path / "klr"
    res = runner.invoke(app, ["run", "hypergrad-kernel-width", "--out", str(out), "--quiet",
                              "--set", "hypergrad.outer_steps=15"])
    assert res.exit_code == 0, res.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["width_after"] < m["width_before"] == 50.0
    ce, auc = m["test"]
    assert ce["after"] < ce["before"] and auc["after"] > auc["before"]
    assert all(h["cg_converged"] for h in m["history"])


def test_hypergrad_kernel_width_needs_two_classes(tmp_path):
    res = runner.invoke(app, ["run", "hypergrad-kernel-width", "--out", str(tmp_path / "x"),
                              "--quiet", "--set", "data.name=iris"])
    assert res.exit_code == 2 and "two-class" in res.output
    assert not (tmp_path / "x").exists()  # nothing half-written


def test_nas_digits_entry_runs_every_searcher(tmp_path):
    out = tmp_path / "nas"
    res = runner.invoke(app, ["run", "nas-digits", "--out", str(out), "--quiet",
                              "--set", "nas.epochs=1", "--set", "nas.retrain_epochs=1"])
    assert res.exit_code == 0, res.output
    m = json.loads((out / "metrics.json").read_text())
    assert [s["searcher"] for s in m["summary"]] == ["darts", "vardarts", "random", "spos"]
    assert all("cross_seed_change" in s and s["params_mean"] > 0 for s in m["summary"])
    for r in m["runs"]:
        assert 0.0 <= r["test_acc"] <= 1.0 and r["params"] > 0 and r["search_s"] > 0
    assert (out / "nas.png").is_file() and (out / "nas.csv").is_file()
    assert "cell change across seeds" in res.output


@pytest.mark.parametrize(("args", "text"), [
    (["--set", "nas.searchers=[enas]"], "nas.searchers"),
    (["--set", "nas.ops=[conv_9x9]"], "nas.ops"),
    (["--set", "nas.prior=beta"], "nas.prior"),
    (["--set", "data.name=iris"], "image data"),
    (["--resume"], "nothing to resume"),
])
def test_nas_misuse_exits_2_with_a_named_error(tmp_path, args, text):
    res = runner.invoke(app, ["run", "nas-digits", *args, "--out", str(tmp_path / "x"),
                              "--quiet"])
    assert res.exit_code == 2 and text in res.output, res.output
    assert not (tmp_path / "x" / "metrics.json").exists()


# -- conventions: -h, --version, examples, flags, verbosity -------------------------------------
COMMANDS = [[], ["run"], ["compare"], ["diagnose"], ["export"], ["zoo"]]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c) or "top")
def test_short_help_works_everywhere_with_an_example(cmd):
    short = runner.invoke(app, [*cmd, "-h"])
    assert short.exit_code == 0, short.output
    assert "Usage:" in short.output and "Example" in short.output
    assert short.output == runner.invoke(app, [*cmd, "--help"]).output
    # typer's rich help would print "--resume <bool>"; flags are plain switches
    assert "<bool>" not in short.output and "-h" in short.output


@pytest.mark.parametrize("cmd,flags", [
    (["run"], ["--resume", "--quiet", "-q", "--verbose", "-v"]),
    (["compare"], ["--resume", "--quiet", "--verbose"]),
    (["diagnose"], ["--plots", "--no-plots"]),
    ([], ["--version", "-V"]),
])
def test_boolean_options_render_as_flags(cmd, flags):
    import re

    out = runner.invoke(app, [*cmd, "--help"]).output
    for flag in flags:
        # the flag, then (after its short or negative form) straight to its help text
        line = next((ln for ln in out.splitlines() if re.search(rf"{flag}\b", ln)), None)
        assert line is not None, (flag, out)
        assert "bool" not in line.lower(), line


def _example_commands():
    """Every example command line in the help epilogs (continuation lines joined)."""
    import shlex

    import typer

    group = typer.main.get_command(app)
    found = []
    for name, command in [("", group), *group.commands.items()]:
        text = (command.epilog or "").split("Examples:", 1)[-1]
        joined = text.replace("\\\n", " ")
        for line in joined.splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                found.append((name, shlex.split(line)))
    return found


def test_examples_name_real_entries_recipes_and_options():
    from bayesstruct.config import catalog

    examples = _example_commands()
    assert {name for name, _ in examples} >= {"", "run", "compare", "diagnose", "export", "zoo"}
    entries, recipes = set(catalog("models")), set(catalog("inference"))
    named = 0
    for _, argv in examples:
        assert argv[0] == "bayesstruct", argv
        args = argv[1:]
        if args[0] in ("run", "compare") and len(args) > 1 and not args[1].startswith("-") \
                and not args[1].endswith(".yaml"):
            assert args[1] in entries, argv
            named += 1
        for flag in ("-i", "--inference"):
            if flag in args:
                assert args[args.index(flag) + 1] in recipes, argv
        if "--methods" in args:
            from bayesstruct.experiments.compare import COMPARE_METHODS

            assert set(args[args.index("--methods") + 1].split(",")) <= set(COMPARE_METHODS)
        # the options exist: click parses everything before the eager --help answers
        res = runner.invoke(app, [*args, "--help"])
        assert res.exit_code == 0, (argv, res.output)
    assert named >= 4


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_names_the_package_and_its_stack(flag):
    import re
    from importlib.metadata import version

    import bayesstruct

    res = runner.invoke(app, [flag])
    assert res.exit_code == 0, res.output
    line = res.output.strip()
    assert re.fullmatch(r"bayesstruct \S+ \(torch \S+, pyro \S+, arviz \S+, python \S+\)", line)
    assert line.startswith(f"bayesstruct {bayesstruct.__version__} ")
    assert f"torch {version('torch')}" in line and f"pyro {version('pyro-ppl')}" in line
    # eager: it answers before a missing command (or the subcommand's arguments) matter
    assert runner.invoke(app, [flag, "zoo"]).output == res.output


def test_version_falls_back_to_the_package_attribute(monkeypatch):
    import importlib.metadata as md

    import bayesstruct
    from bayesstruct.cli import version_string

    real = md.version

    def missing(dist):
        if dist in ("bayesstruct", "arviz"):
            raise md.PackageNotFoundError(dist)
        return real(dist)

    monkeypatch.setattr(md, "version", missing)
    monkeypatch.setattr(bayesstruct, "__version__", "9.9.9+test")
    line = version_string()
    assert line.startswith("bayesstruct 9.9.9+test (") and "arviz not installed" in line


def test_package_version_is_the_installed_metadata():
    from importlib.metadata import version

    import bayesstruct

    assert bayesstruct.__version__ == version("bayesstruct")


@pytest.fixture
def stub_runner(monkeypatch):
    """The runner's run/compare replaced by recorders, bayesstruct.logs.configure too."""
    from bayesstruct import logs
    from bayesstruct import runner as runner_module

    seen: dict = {"configure": []}
    monkeypatch.setattr(logs, "configure", lambda v=0: seen["configure"].append(v))

    def record(kind):
        def fake(cfg, out, **kwargs):
            seen[kind] = kwargs
        return fake

    monkeypatch.setattr(runner_module, "run", record("run"))
    monkeypatch.setattr(runner_module, "compare", record("compare"))
    return seen


@pytest.mark.parametrize("cmd", [["run"], ["compare", "logreg-prune-compare"]])
@pytest.mark.parametrize("flags,level", [([], 0), (["-q"], -1), (["--quiet"], -1),
                                         (["-v"], 1), (["--verbose"], 1)])
def test_verbosity_flags_configure_logging(tmp_path, stub_runner, cmd, flags, level):
    res = runner.invoke(app, [*cmd, "--out", str(tmp_path / "r"), *flags])
    assert res.exit_code == 0, res.output
    # configured for the command, then put back as it was (verbosity 0 here)
    assert stub_runner["configure"] == [level, 0]
    # --quiet keeps meaning "no progress bars"
    assert stub_runner[cmd[0]]["progress"] is (level >= 0)


def test_the_logger_is_left_as_found_after_a_command(tmp_path, monkeypatch):
    import logging

    from bayesstruct import logs
    from bayesstruct import runner as runner_module

    seen = []
    monkeypatch.setattr(runner_module, "run",
                        lambda cfg, out, **kw: seen.append(logs.verbosity()))
    logger = logging.getLogger("bayesstruct")
    before = (logs.verbosity(), logger.level, list(logger.handlers), logger.propagate)
    res = runner.invoke(app, ["run", "--out", str(tmp_path / "r"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert seen == [-1]  # quiet while the command ran
    assert (logs.verbosity(), logger.level, list(logger.handlers), logger.propagate) == before


@pytest.mark.parametrize("cmd", [["run"], ["compare"]])
def test_quiet_and_verbose_exclude_each_other(tmp_path, stub_runner, cmd):
    res = runner.invoke(app, [*cmd, "--out", str(tmp_path / "r"), "-q", "-v"])
    assert res.exit_code == 2 and "exclude each other" in res.output
    assert cmd[0] not in stub_runner and not (tmp_path / "r").exists()
