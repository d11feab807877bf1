"""``bayesstruct``: run catalog entries, list the zoo.

    bayesstruct [--version] [-h]
    bayesstruct run [ENTRY|PATH.yaml] [--inference RECIPE] [--out DIR] [--set key=value ...]
                    [--device cpu|cuda] [--data-dir DIR] [--resume | --init-from RUN_DIR]
                    [--quiet | --verbose] [--nproc-per-node N]
    bayesstruct compare [ENTRY] [--methods a,b,...] [--out DIR] [--set key=value ...] [--resume]
                        [--quiet | --verbose]
    bayesstruct sweep [ENTRY] --grid key=v1,v2 ... [--seeds 0-4] [--executor local|ray]
                      [--address ADDR] [--max-parallel K] [--out DIR] [--resume]
    bayesstruct diagnose RUN_DIR [--weights N] [--no-plots]
    bayesstruct export RUN_DIR [--format torchscript|onnx] [--out PATH]
    bayesstruct zoo
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption

from .config import DEFAULT_ENTRY, ConfigError, catalog, load_yaml, resolve
from .data import DataNotFoundError
from .errors import NonFiniteLossError, UserInputError


def _flags_without_type(params: list) -> list:
    """Typer's rich help prints a type after every option, ``--resume <bool>`` included; an
    empty metavar on the flags (``--help`` too) prints them as plain switches."""
    for p in params:
        if isinstance(p, TyperOption) and p.is_flag and p.metavar is None:
            p.metavar = ""
    return params


def _examples(*lines: str) -> str:
    """An epilog listing example command lines; ``\\b`` keeps click's plain formatter from
    rewrapping them (rich help prints them as they are)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


class _Command(TyperCommand):
    def get_params(self, ctx: typer.Context) -> list:
        return _flags_without_type(super().get_params(ctx))


class _Group(TyperGroup):
    def get_params(self, ctx: typer.Context) -> list:
        return _flags_without_type(super().get_params(ctx))


app = typer.Typer(
    cls=_Group, add_completion=False, no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Bayesian structure selection for neural networks: a model zoo.",
    epilog=_examples(
        "bayesstruct zoo                # catalog entries, inference recipes",
        "bayesstruct run                # the default entry, ard-logreg-digits",
        "bayesstruct run lenet5-ard-fashion-mnist --set inference.epochs=5",
        "bayesstruct diagnose runs/ard-logreg-digits/20261130-120000",
        "bayesstruct run -h             # the options of one command",
    ),
)


def version_string() -> str:
    """``bayesstruct X.Y.Z (torch A, pyro B, arviz C, python D)`` from the installed
    distributions' metadata."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from . import __version__

    def of(dist: str, fallback: str = "not installed") -> str:
        try:
            return version(dist)
        except PackageNotFoundError:
            return fallback

    deps = ", ".join(f"{name} {of(dist)}" for name, dist in
                     (("torch", "torch"), ("pyro", "pyro-ppl"), ("arviz", "arviz")))
    return (f"bayesstruct {of('bayesstruct', __version__)} ({deps}, "
            f"python {platform.python_version()})")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(version_string())
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option(
        "--version", "-V", callback=_print_version, is_eager=True,
        help="print the versions of bayesstruct, torch, pyro and arviz, and exit")] = False,
) -> None:
    """Bayesian structure selection for neural networks: a model zoo."""


def _fail(msg: str, code: int = 2) -> None:
    typer.secho(f"error: {msg}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _note(msg: str) -> None:
    typer.secho(f"note: {msg}", fg=typer.colors.YELLOW, err=True)


@contextlib.contextmanager
def _errors(interrupted: Callable[[], str] | None = None,
            diverged: Callable[[], str] | None = None) -> Iterator[None]:
    """Turn what a user can fix into one line and an exit code: 2 for bad input (configs,
    files, run directories; an unexpected end of file is bad input too, not a Ctrl-C), 3 for a
    diverged run (``diverged``: what to do next), 130 for Ctrl-C (``interrupted``: how to go
    on)."""
    try:
        yield
    except (UserInputError, DataNotFoundError) as e:
        _fail(str(e))
    except EOFError as e:  # click would report it as "Aborted!", like a Ctrl-C
        _fail(f"unexpected end of file ({e or 'EOFError'}): a file read by this command is "
              "truncated")
    except NonFiniteLossError as e:
        hint = diverged() if diverged else ""
        _fail(str(e) + (f"\n{hint}" if hint else ""), code=3)
    except KeyboardInterrupt:
        if interrupted:
            typer.echo(f"\ninterrupted; {interrupted()}", err=True)
        raise typer.Exit(130) from None


# options shared by `run` and `compare`
Entry = Annotated[str, typer.Argument(help="catalog entry name or path to a models/*.yaml")]
Out = Annotated[Path | None, typer.Option("--out", "-o", help="run directory")]
Sets = Annotated[list[str] | None, typer.Option("--set", "-s", metavar="KEY=VALUE",
                 help="override, e.g. "
                 "inference.epochs=5 or compare.l1=1e-3 (repeatable)")]
Device = Annotated[str | None, typer.Option(help="cpu, cuda or cuda:N")]
DataDir = Annotated[Path | None, typer.Option(help="folder with MNIST/Fashion-MNIST IDX files")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars; log warnings "
                 "and errors only")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="log debugging detail too")]


@contextlib.contextmanager
def _logging(quiet: bool, verbose: bool) -> Iterator[int]:
    """Set up bayesstruct's logging for one command: verbosity -1 for --quiet, 0 by default,
    1 for --verbose (:func:`bayesstruct.logs.configure`); the logger is left as it was found
    afterwards (the command may run inside a Python session or a test)."""
    import logging

    from . import logs

    if quiet and verbose:
        _fail("--quiet and --verbose exclude each other")
    level = -1 if quiet else 1 if verbose else 0
    logger = logging.getLogger("bayesstruct")
    saved = (logs.verbosity(), logger.level, list(logger.handlers), logger.propagate)
    logs.configure(level)
    try:
        yield level
    finally:
        logs.configure(saved[0])
        logger.handlers[:] = saved[2]
        logger.setLevel(saved[1])
        logger.propagate = saved[3]


def _overrides(set_: list[str] | None, data_dir: Path | None) -> list[str]:
    return list(set_ or []) + ([f"data.data_dir={data_dir}"] if data_dir is not None else [])


@app.command(cls=_Command, epilog=_examples(
    "bayesstruct run                # ard-logreg-digits, the default entry",
    "bayesstruct run lenet5-ard-fashion-mnist -i svi-meanfield \\",
    "    --set inference.epochs=5 --set inference.lr=3e-3",
    "bayesstruct run ard-logreg-digits01 -i psgld --out runs/psgld",
    "bayesstruct run lenet5-ard-fashion-mnist --out runs/lenet5 --resume",
    "bayesstruct run lenet300-sparsevd --data-dir ~/data --device cuda",
    "bayesstruct run my-entry.yaml --quiet",
    "bayesstruct run lenet300-ard-fashion-mnist --nproc-per-node 4 --out runs/ddp",
))
def run(
    entry: Entry = DEFAULT_ENTRY,
    inference: Annotated[str | None, typer.Option("--inference", "-i",
                         help="recipe name or path to an inference/*.yaml")] = None,
    out: Out = None,
    set_: Sets = None,
    device: Device = None,
    data_dir: DataDir = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue the run in --out (or the "
                                         "entry's latest run)")] = False,
    init_from: Annotated[Path | None, typer.Option(
        "--init-from", help="start a new SVI run from the last good parameters of RUN_DIR "
        "(e.g. after a NaN stop, with --set inference.lr=...)")] = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
    nproc_per_node: Annotated[int, typer.Option(
        "--nproc-per-node", min=1, help="data-parallel SVI over N processes on this machine "
        "(torch.distributed: gloo on CPU, nccl on CUDA); several machines: torchrun -m "
        "bayesstruct run ...")] = 1,
) -> None:
    """Train, compute the posterior, prune, and write a run directory."""
    from . import parallel
    from .experiments import check_data_parallel, experiment_for
    from .runner import load_run_config
    from .runner import run as run_experiment

    overrides = _overrides(set_, data_dir)
    out_given = out is not None
    box: dict = {"out": out, "svi": False}
    ddp = f" --nproc-per-node {nproc_per_node}" if nproc_per_node > 1 else ""
    with _logging(quiet, verbose), _errors(
            interrupted=lambda: f"continue with: bayesstruct run {entry} --out "
            f"{box['out']} --resume{ddp}",
            diverged=lambda: "To go on from the last good parameters with a lower "
            f"learning rate: bayesstruct run {entry} --init-from {box['out']} --set "
            "inference.lr=LOWER --out NEW_DIR" if box["svi"] else ""):
        if resume:
            if out is None:
                out = _latest_run(entry)
            if device is not None:
                overrides.append(f"device={device}")
            cfg = load_run_config(out, overrides)
        else:
            cfg = resolve(entry, inference, overrides, device, notify=_note)
            if out is None:
                out = Path("runs") / cfg.name / time.strftime("%Y%m%d-%H%M%S")
        box["out"] = out
        # whether --init-from is the remedy for a diverged run (a fit by an engine that takes it)
        box["svi"] = experiment_for(cfg).init_from and cfg.inference.supports_init_from
        if nproc_per_node > 1:
            if parallel.launched():
                _fail("--nproc-per-node starts the ranks itself; under torchrun leave it out")
            check_data_parallel(cfg)
            parallel.check_devices(cfg.device, nproc_per_node)
            args = _run_args(entry, inference, out, set_, device, data_dir, resume, init_from,
                             quiet, verbose)
            raise typer.Exit(_launch(nproc_per_node, args, entry, out))
        if parallel.launched() and not out_given:
            _fail("a run under torchrun needs --out DIR: every rank writes to one run "
                  "directory")
        from .experiments.base import resolve_device

        with parallel.session(resolve_device(cfg)) as ranks:
            run_experiment(cfg, out, resume=resume, progress=not quiet and ranks.main,
                           echo=typer.echo if ranks.main else _silent, init_from=init_from)


def _silent(msg: str) -> None:
    """The console of a data-parallel worker rank: rank 0 speaks for the run."""


def _run_args(entry: str, inference: str | None, out: Path, set_: list[str] | None,
              device: str | None, data_dir: Path | None, resume: bool,
              init_from: Path | None, quiet: bool, verbose: bool) -> list[str]:
    """The ``bayesstruct run`` arguments each rank of a launched run gets (``--out``
    resolved: every rank writes to one directory)."""
    args = [entry, "--out", str(out)]
    if inference is not None and not resume:
        args += ["--inference", inference]
    for s in set_ or []:
        args += ["--set", s]
    for flag, value in (("--device", device), ("--data-dir", data_dir),
                        ("--init-from", init_from)):
        if value is not None:
            args += [flag, str(value)]
    args += [flag for flag, on in (("--resume", resume), ("--quiet", quiet),
                                   ("--verbose", verbose)) if on]
    return args


def _launch(nproc: int, args: list[str], entry: str, out: Path) -> int:
    """Run ``bayesstruct run ARGS`` as ``nproc`` ranks through torch.distributed.run
    (torchrun, one machine, a free port); return its exit code, and on a failure say how to
    go on."""
    import subprocess

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={nproc}", "-m", "bayesstruct", "run", *args]
    typer.echo(f"data-parallel run: {nproc} ranks (torch.distributed.run), run directory {out}",
               err=True)
    try:
        rc = subprocess.call(cmd)
    except KeyboardInterrupt:
        rc = 130
    if rc != 0:
        typer.secho(f"error: the data-parallel run stopped (exit code {rc}; the report above "
                    "names the rank). The last checkpoint rank 0 wrote is kept; continue with: "
                    f"bayesstruct run {entry} --out {out} --resume --nproc-per-node {nproc}",
                    fg=typer.colors.RED, err=True)
    return rc


@app.command(cls=_Command, epilog=_examples(
    "bayesstruct compare            # logreg-prune-compare, its methods",
    "bayesstruct compare logreg-prune-compare \\",
    "    --methods random,magnitude-l2-retrain,obd,obs --out runs/cmp",
    "bayesstruct compare lenet300-gaussian-digits \\",
    "    --methods magnitude-l2,variational --set inference.epochs=5",
    "bayesstruct compare --out runs/cmp --resume",
))
def compare(
    entry: Entry = "logreg-prune-compare",
    methods: Annotated[str | None, typer.Option(
        "--methods", "-m", help="comma-separated, e.g. random,magnitude-l2-retrain,obd,obs "
        "(default: the entry's compare.methods)")] = None,
    inference: Annotated[str | None, typer.Option("--inference", "-i",
                         help="recipe of the variational base")] = None,
    out: Out = None,
    set_: Sets = None,
    device: Device = None,
    data_dir: DataDir = None,
    resume: Annotated[bool, typer.Option("--resume", help="reuse the trained bases and "
                                         "finished methods in --out")] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Pruning comparison: random, magnitude (L1/L2, +- retraining), variational, OBD, OBS.

    Trains each base once, sweeps the fraction of weights removed, and writes
    comparison.csv, comparison.png (one line per method) and metrics.json.
    """
    from .runner import compare as run_compare
    from .runner import load_run_config

    overrides = _overrides(set_, data_dir)
    chosen = [m.strip() for m in methods.split(",") if m.strip()] if methods else None
    box: dict[str, Path | None] = {"out": out}
    with _logging(quiet, verbose), _errors(
            interrupted=lambda: f"continue with: bayesstruct compare {entry} --out "
            f"{box['out']} --resume",
            diverged=lambda: "Finished bases and methods are kept in "
            f"{box['out']}/checkpoints; lower compare.lr (or inference.lr) in a new run"):
        if resume:
            if out is None:
                out = _latest_run(entry)
            cfg = load_run_config(out, overrides)
        else:
            cfg = resolve(entry, inference, overrides, device, notify=_note)
            if out is None:
                out = Path("runs") / cfg.name / time.strftime("%Y%m%d-%H%M%S")
        box["out"] = out
        run_compare(cfg, out, methods=chosen, resume=resume, progress=not quiet,
                    echo=typer.echo)


@app.command(cls=_Command, epilog=_examples(
    "bayesstruct run logreg-digits01 --out runs/nuts   # NUTS, 4 chains",
    "bayesstruct diagnose runs/nuts",
    "bayesstruct diagnose runs/nuts --weights 32 --no-plots",
))
def diagnose(
    run_dir: Annotated[Path, typer.Argument(help="a run directory (holds posterior.nc)")],
    weights: Annotated[int, typer.Option("--weights", "-w", help="how many individual "
                                         "weights to sample into the summary")] = 16,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="write the figures")] = True,
) -> None:
    """Convergence diagnostics of a run's posterior.

    R-hat, bulk/tail ESS and divergences of the structural quantities (hyper-latents,
    biases, a sample of weights), warnings in words, and plots (rank/trace, forest of
    per-unit scales, histogram of log rho).

    Writes diagnose.csv, diagnose.json and diagnose-*.png into RUN_DIR.
    """
    from . import diagnostics, posterior, pruning
    from .files import write_json, write_text
    from .report import format_table

    path = run_dir / "posterior.nc"
    if not path.is_file():
        _fail(f"{path} does not exist: diagnose reads the posterior.nc of a finished "
              "`bayesstruct run`")
    with _errors():
        post = posterior.load(path)
        d = diagnostics.diagnose(post, num_weights=weights)
    cols = ["mean", "sd", "r_hat", "ess_bulk", "ess_tail", "mcse_mean"]
    if d.engine == "svi":
        cols = ["mean", "sd"]
    rows = [[name] + [f"{float(r[c]):.4g}" for c in cols] for name, r in d.summary[cols].iterrows()]
    typer.echo(f"{run_dir}: engine {d.engine}, {d.num_chains} chain(s) x {d.num_draws} draws")
    typer.echo(format_table(rows, ["quantity", *cols]))
    checked = []
    if d.engine == "svi":  # independent draws from q: chain diagnostics say nothing here
        typer.echo("\nthe draws are independent draws from the variational posterior q: "
                   "R-hat and ESS do not apply")
        checked = ["the loss trace", "q's scales"]
    else:
        rhat = "n/a" if d.max_rhat is None else f"{d.max_rhat:.4f}"
        line = (f"\nmax R-hat {rhat}; min bulk ESS {d.min_ess_bulk:.0f}; min tail ESS "
                f"{d.min_ess_tail:.0f}")
        checked = ["R-hat", "ESS"]
        if d.divergences is not None:  # only NUTS/HMC record divergent transitions
            line += f"; divergences {d.divergences}"
            checked.append("divergences")
        typer.echo(line)
    for w in d.warnings:
        typer.secho(f"warning: {w}", fg=typer.colors.YELLOW)
    if not d.warnings:
        typer.secho(f"no warnings: {', '.join(checked)} within bounds", fg=typer.colors.GREEN)
    write_text(run_dir / "diagnose.csv", d.summary.to_csv(index_label="quantity"))
    write_json(run_dir / "diagnose.json", d.to_dict())
    if plots:
        with _errors():
            log_rho = (pruning.log_relative_density(post, model=_run_model(run_dir))
                       if posterior.weight_sites(post) else None)
            for p in diagnostics.plot_diagnostics(post, run_dir, num_weights=weights,
                                                  log_rho=log_rho):
                typer.echo(f"wrote {p}")


def _run_model(run_dir: Path):
    """The run's model, rebuilt from its config.yaml, so that rho is read off the network's
    weights (for group-scale priors the sampled sites are ``w~``, not ``s z w~``); ``None``
    when the config cannot be read or its data set is not here (rho of the sampled sites)."""
    from .config import load_run_config
    from .experiments.base import build_model, load_data

    try:
        cfg = load_run_config(run_dir)
        return build_model(cfg, load_data(cfg, "cpu"))
    except Exception as e:  # noqa: BLE001 - any failure: fall back to the sampled sites
        _note(f"rho from the sampled sites: the run's model cannot be rebuilt ({e})")
        return None


@app.command(cls=_Command, epilog=_examples(
    "bayesstruct export runs/lenet5   # runs/lenet5/network/pruned.torchscript.pt",
    "bayesstruct export runs/lenet5 --format onnx --out lenet5.onnx",
))
def export(
    run_dir: Annotated[Path, typer.Argument(help="a fit run directory (holds network/)")],
    format_: Annotated[str, typer.Option("--format", "-f", help="torchscript or onnx (onnx "
                                         "needs the optional onnx packages)")
                       ] = "torchscript",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="file or folder to write "
                                             "(default: RUN_DIR/network/pruned.torchscript.pt "
                                             "or pruned.onnx); an existing file is refused")
                   ] = None,
) -> None:
    """Write a run's pruned network in a form that loads without bayesstruct.

    torchscript copies RUN_DIR/network/pruned.torchscript.pt (made again from
    the masks and the posterior mean when it is missing); onnx exports the
    pruned network with torch.onnx.export (dynamic batch axis) and checks it
    with onnxruntime when that is installed (it needs bayesstruct's onnx extra).

    Every fit run holds RUN_DIR/network/: pruned.torchscript.pt (torch.jit.load),
    masks.npz, posterior_mean.pt (torch.load, weights_only=True), manifest.json
    and README.txt (input shape, what the outputs mean, units kept).
    """
    from .export import export as export_network

    with _errors():
        done = export_network(run_dir, format_, out)
    typer.echo(f"wrote {done.path} ({done.note})")


def _latest_run(entry: str) -> Path:
    name = Path(entry).stem
    runs = sorted(p for p in (Path("runs") / name).glob("*") if (p / "config.yaml").exists())
    if not runs:
        raise ConfigError(f"no run of {name!r} under runs/{name}/ to resume; pass --out DIR")
    return runs[-1]


@app.command(cls=_Command, epilog=_examples(
    "bayesstruct sweep ard-logreg-digits --grid prior.hyper=empirical_bayes,gamma --seeds 0-4",
    "bayesstruct sweep lenet300-ard-fashion-mnist --grid inference.lr=1e-3,3e-3 \\",
    "    --seeds 0-2 --set inference.epochs=5 --out runs/sweep-lr",
    "bayesstruct sweep ard-logreg-digits --grid prior.kind=ard,gaussian --seeds 0-9 \\",
    "    --executor ray --address ray://head:10001 --max-parallel 32",
    "bayesstruct sweep --out runs/sweep-lr --resume   # only the unfinished trials",
))
def sweep(
    entry: Entry = DEFAULT_ENTRY,
    grid: Annotated[list[str] | None, typer.Option(
        "--grid", "-g", metavar="KEY=V1,V2", help="a setting and its values, e.g. "
        "prior.hyper=empirical_bayes,gamma (repeatable: the grid is their product)")] = None,
    seeds: Annotated[str, typer.Option(help="seeds of every setting: 0-4, 0,3,7")] = "0",
    inference: Annotated[str | None, typer.Option("--inference", "-i",
                         help="recipe name or path to an inference/*.yaml")] = None,
    out: Out = None,
    set_: Sets = None,
    data_dir: DataDir = None,
    executor: Annotated[str, typer.Option(
        help="local (a process pool here) or ray (needs Ray: the ray extra of bayesstruct)")
    ] = "local",
    address: Annotated[str | None, typer.Option(
        help="with --executor ray: a running cluster (ray://HOST:10001); default: a local "
        "Ray instance")] = None,
    max_parallel: Annotated[int | None, typer.Option(
        "--max-parallel", "-j", min=1, help="trials at a time (default: one per core)")] = None,
    metric: Annotated[str, typer.Option(help="the metric of the figure")] = "test_acc",
    resume: Annotated[bool, typer.Option("--resume", help="finish the sweep in --out: run "
                                         "only the trials without metrics")] = False,
) -> None:
    """Run a grid of settings x seeds, one run directory per trial; tabulate and plot."""
    from .sweep import SPEC, run_sweep

    with _errors(interrupted=lambda: f"finish it with: bayesstruct sweep {entry} --out {out} "
                 "... --resume (the same --grid and --seeds)"):
        if resume and out is not None and (out / SPEC).exists() and not grid:
            import json

            spec = json.loads((out / SPEC).read_text())
            entry, inference = spec["entry"], spec["inference"]
            grid = [f"{k}={','.join(v)}" for k, v in spec["grid"]]
            seeds = ",".join(map(str, spec["seeds"]))
            set_ = spec["set"]
            data_dir = None
        if out is None:
            if resume:
                _fail("--resume needs --out DIR, the sweep to finish")
            out = Path("runs") / "sweeps" / f"{Path(entry).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
        run_sweep(entry, grid or [], seeds, out, executor=executor, max_parallel=max_parallel,
                  address=address, resume=resume, inference=inference,
                  overrides=_overrides(set_, data_dir), metric=metric, echo=typer.echo)


@app.command(cls=_Command, epilog=_examples(
    "bayesstruct zoo",
    "bayesstruct run lenet5-bc-gnj  # run one of the entries listed",
))
def zoo() -> None:
    """List the catalog entries and inference recipes."""
    for kind, title in (("models", "catalog entries"), ("inference", "inference recipes")):
        items = catalog(kind)
        typer.secho(f"{title} ({len(items)}):", bold=True)
        width = max((len(n) for n in items), default=0)
        for name, path in items.items():
            desc = str(load_yaml(path).get("description", "")).strip().splitlines()
            star = "*" if name == DEFAULT_ENTRY else " "
            typer.echo(f" {star}{name.ljust(width)}  {desc[0] if desc else ''}")
        typer.echo("")
    typer.echo("* the default entry of `bayesstruct run`")


def main() -> None:
    try:
        app()
    except BrokenPipeError:  # `bayesstruct zoo | head`
        sys.exit(0)


if __name__ == "__main__":
    main()
