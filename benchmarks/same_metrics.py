"""Prove that a refactor changed no numbers: run zoo entries in two trees, compare the outputs.

Usage::

    .venv/bin/python benchmarks/same_metrics.py --base REV [--head REV] [--entries a,b,...]
                                                [--keep DIR] [--ignore k1,k2] [--list]

``--base REV`` is checked out as a detached ``git worktree`` in a temporary folder; the other
side is this checkout's working tree as it is on disk (uncommitted edits included), or, with
``--head REV``, a second detached worktree of that revision (``--base HEAD --head HEAD`` shows
that every entry is deterministic run to run). The worktrees are removed at the end
(``git worktree remove --force``); nothing is written into this checkout (the runs go to a
temporary folder, ``PYTHONDONTWRITEBYTECODE=1`` keeps byte code out of the trees).

For each entry of :data:`ENTRIES` (the ones with ``default: True``, or those named by
``--entries``) the CLI runs once in each tree, one process at a time, in its own subprocess
with ``cwd`` and ``PYTHONPATH`` set to that tree, this interpreter, one thread
(``OMP_NUM_THREADS=1``, ``MKL_NUM_THREADS=1``) and the entry's short settings (the same
overrides on both sides)::

    python -m bayesstruct run ENTRY [--inference RECIPE] --out DIR --set k=v ... --quiet

Then ``metrics.json`` is compared recursively, and every CSV the run wrote (``pruning.csv``,
``snr_curve.csv``, ``comparison.csv``, ``hypergrad.csv``, ``nas.csv``) cell by cell. Timings
and machine facts (:data:`SKIPPED_KEYS`, and any key or column whose name contains
``seconds``) are skipped; every other value must be equal: floats bit for bit (``==``, NaN
equal to NaN; an int never equals a float), CSV cells as written text, a key, column, row or
file on one side only is a difference (``--ignore k1,k2`` skips more keys and columns, e.g.
ones a revision dropped on purpose).

One line per entry: ``ENTRY  same (N values compared)`` or ``ENTRY  DIFFERENT: path old ->
new`` (the first 10 differences), with the wall time of each side; a failed run prints the
tail of its stderr. Exit status 1 if any entry differs or fails, else 0.

``--entries`` takes labels of :data:`ENTRIES` (``ard-logreg-digits@nuts``), entry names (every
spec of that entry, where no label matches), ``all`` (every spec, the non-default ones too) or
any other catalog entry (``ENTRY`` or ``ENTRY@RECIPE``), which runs without overrides, at its
full length. ``--list`` prints the chosen specs as command lines. ``--keep DIR`` keeps the run
directories in ``DIR/<label>/{base,head}`` instead of deleting them.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

REPO = Path(__file__).resolve().parent.parent

#: Values that are timings or facts about the machine, never compared (in metrics.json, at any
#: depth, and as CSV columns); any key/column whose name contains one of SKIPPED_SUBSTRINGS is
#: skipped too. What the package writes today:
#:   train_seconds, test_inference_seconds_dense/_pruned (runner._report: wall clock),
#:   seconds (compare: the whole comparison and each base in "bases"; hypergrad l2: each
#:   mode, also a hypergrad.csv column; comparison.csv column: each method's sweep),
#:   search_s, retrain_s (nas: each searcher and seed, also nas.csv columns),
#:   search_s_mean (nas summary), sampling_seconds / stage2_seconds (MCMC, SGLD and freeze
#:   timings, should they reach metrics.json), device (where the run ran: "cpu", "cuda:0").
SKIPPED_KEYS: frozenset[str] = frozenset({
    "device", "seconds", "train_seconds", "test_inference_seconds_dense",
    "test_inference_seconds_pruned", "search_s", "retrain_s", "search_s_mean",
    "sampling_seconds", "stage2_seconds",
})
SKIPPED_SUBSTRINGS: tuple[str, ...] = ("seconds",)

#: the CLI's flag that turns the progress bars off (``--quiet``/``-q`` in bayesstruct.cli)
QUIET_FLAG = "--quiet"

MAX_SHOWN = 10  # differences printed per entry
STDERR_TAIL = 25  # lines of a failed run's output printed

FMNIST = "fashion-mnist"


class EntrySpec(TypedDict, total=False):
    """One run: catalog entry ``name``, optional ``recipe`` (``--inference``), the short
    settings (``--set`` overrides, the same in both trees), ``label`` (default ``name`` or
    ``name@recipe``), ``needs`` (a data set that must be on disk), ``default`` (in the
    default set; ``True`` unless given) and ``why`` (a note for the reader)."""

    name: str
    recipe: str
    overrides: list[str]
    label: str
    needs: str
    default: bool
    why: str


# MCMC: fewer draws and chains, one after another in this process (the recipes' "parallel"
# spawns a worker process per chain: more than one torch process at a time, and slower on one
# core); the ARD entries' empirical-Bayes hyperprior is refused by every sampler, so their MCMC
# runs use the Gamma hyperprior (prior.hyper=gamma), and the Delta guide (svi-map) refuses it
# too (alpha = 1/m^2 needs a posterior variance).
_MCMC = ["inference.num_warmup=30", "inference.num_samples=30", "inference.num_chains=2",
         "inference.chain_method=sequential", "inference.max_tree_depth=5"]
_HMC = ["inference.num_warmup=20", "inference.num_samples=20", "inference.num_chains=2",
        "inference.chain_method=sequential"]
_SGLD = ["inference.burn_in=50", "inference.num_samples=20", "inference.num_chains=2"]
_GAMMA = ["prior.hyper=gamma"]
# Fashion-MNIST: 1000 training images (validation 6000, test the official 10000); most of the
# time goes into the pruning and |mu/sigma| curves over the test set.
_FM = ["data.train_size=1000", "inference.epochs=1", "inference.num_draws=2",
       "pruning.mc_samples=2"]

#: The entries run by default (about 4 minutes per tree on one thread, 8 for both), with their
#: short settings; ``default: False`` ones run with ``--entries all`` or by name.
ENTRIES: list[EntrySpec] = [
    # -- scikit-learn digits (bundled) and seeded synthetic data
    {"name": "ard-logreg-digits", "overrides": ["inference.epochs=5", "inference.num_draws=20"]},
    {"name": "ard-logreg-digits01", "overrides": _MCMC},
    {"name": "logreg-digits01", "overrides": _MCMC},
    {"name": "lenet300-gaussian-digits",
     "overrides": ["inference.epochs=2", "inference.num_draws=5"]},
    {"name": "lenet5-ard-digits", "overrides": ["inference.epochs=1", "inference.num_draws=5"]},
    {"name": "rnn-digits", "overrides": ["inference.epochs=2", "inference.num_draws=5"]},
    {"name": "rnn-pairs-synthetic", "overrides": ["inference.epochs=2", "inference.num_draws=5"]},
    {"name": "nas-digits", "overrides": ["nas.epochs=2", "nas.retrain_epochs=2",
                                         "nas.random_samples=2", "nas.spos_candidates=3"]},
    {"name": "hypergrad-kernel-width", "overrides": ["hypergrad.outer_steps=5"]},
    # on Fashion-MNIST the exact OBS Hessian (7850 weights) alone takes minutes: digits, as the
    # entry's own comment suggests for a short run (every method still runs)
    {"name": "logreg-prune-compare",
     "overrides": ["data.name=digits", "inference.epochs=2", "compare.retrain_epochs=1"]},
    # -- every inference recipe on ard-logreg-digits
    {"name": "ard-logreg-digits", "recipe": "svi-meanfield",
     "overrides": ["inference.epochs=3", "inference.num_draws=20", "inference.lr_schedule=cosine",
                   "inference.kl_warmup_epochs=1"],
     "why": "the entry's default recipe, with the cosine schedule and KL warm-up"},
    {"name": "ard-logreg-digits", "recipe": "svi-map",
     "overrides": ["inference.epochs=3", *_GAMMA]},
    {"name": "ard-logreg-digits", "recipe": "svi-eb",
     "overrides": ["inference.epochs=3", "inference.num_draws=20"]},
    {"name": "ard-logreg-digits", "recipe": "nuts", "overrides": [*_MCMC, *_GAMMA]},
    {"name": "ard-logreg-digits", "recipe": "hmc", "overrides": [*_HMC, *_GAMMA]},
    {"name": "ard-logreg-digits", "recipe": "sgld", "overrides": [*_SGLD, *_GAMMA]},
    {"name": "ard-logreg-digits", "recipe": "psgld", "overrides": [*_SGLD, *_GAMMA]},
    # -- Fashion-MNIST (only when the files are on disk): the priors no digits entry has
    {"name": "ibp-mlp", "overrides": _FM, "needs": FMNIST},
    {"name": "hypergrad-l2-lenet", "needs": FMNIST,
     "overrides": ["data.train_size=1000", "hypergrad.epochs_weights=1",
                   "hypergrad.epochs_hyper=1"]},
    {"name": "lenet300-bc-gnj", "overrides": _FM, "needs": FMNIST},
    {"name": "lenet300-bc-horseshoe", "overrides": _FM, "needs": FMNIST},
    {"name": "lenet300-sparsevd", "overrides": _FM, "needs": FMNIST},
    # LeNet-5 on 28x28 Fashion-MNIST takes ~10 minutes a run even at the settings of _FM (the
    # |mu/sigma| curve over 10000 test images): the conv group priors run on digits (~10 s)
    {"name": "lenet5-bc-gnj", "label": "lenet5-bc-gnj@digits",
     "overrides": ["data.name=digits", "inference.epochs=1", "inference.num_draws=2"]},
    {"name": "lenet5-bc-horseshoe", "label": "lenet5-bc-horseshoe@digits",
     "overrides": ["data.name=digits", "inference.epochs=1", "inference.num_draws=2"]},
    # -- not in the default set (time; nothing the entries above lack): --entries all, or by name
    {"name": "ard-logreg-fashion-mnist", "overrides": _FM, "needs": FMNIST, "default": False},
    {"name": "lenet300-ard-fashion-mnist", "overrides": _FM, "needs": FMNIST, "default": False},
    {"name": "rnn-fashion-mnist", "overrides": _FM, "needs": FMNIST, "default": False},
    {"name": "lenet5-sparsevd", "label": "lenet5-sparsevd@digits", "default": False,
     "overrides": ["data.name=digits", "inference.epochs=1", "inference.num_draws=2"]},
]


def label(spec: EntrySpec) -> str:
    if "label" in spec:
        return spec["label"]
    return f"{spec['name']}@{spec['recipe']}" if "recipe" in spec else spec["name"]


def data_available(name: str) -> bool:
    """Whether the IDX files of ``name`` are where the package looks without a --data-dir."""
    roots = [Path(os.environ["BAYESSTRUCT_DATA"])] if os.environ.get("BAYESSTRUCT_DATA") else []
    roots.append(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                 / "bayesstruct" / name)
    if name == FMNIST:
        roots.append(Path("/usr/share/datasets/fashion-mnist"))
    dirs = [d for r in roots for d in (r, r / name)]
    return any((d / f).is_file() for d in dirs
               for f in ("train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"))


def select(arg: str | None) -> list[EntrySpec]:
    """The specs ``--entries`` names (see the module docstring); default: the default set,
    less those whose data are missing."""
    if arg is None:
        chosen = [s for s in ENTRIES if s.get("default", True)]
        missing = sorted({s["needs"] for s in chosen if "needs" in s
                          and not data_available(s["needs"])})
        for name in missing:
            print(f"note: {name} not found; skipping its entries", file=sys.stderr)
        return [s for s in chosen if s.get("needs") not in missing]
    out: list[EntrySpec] = []
    for item in (x.strip() for x in arg.split(",")):
        if not item:
            continue
        if item == "all":
            found = list(ENTRIES)
        else:
            found = [s for s in ENTRIES if label(s) == item] or [
                s for s in ENTRIES if s["name"] == item]
        if not found:
            name, _, recipe = item.partition("@")
            print(f"note: {item} has no short settings here: full-length run", file=sys.stderr)
            found = [{"name": name, **({"recipe": recipe} if recipe else {}), "overrides": []}]
        out += [s for s in found if label(s) not in {label(o) for o in out}]
    return out


# -- running ---------------------------------------------------------------------------------
@dataclass
class Run:
    ok: bool
    seconds: float
    out: Path
    tail: str = ""


def git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", "--no-optional-locks", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


def subprocess_env(tree: Path) -> dict[str, str]:
    """This environment, with one thread, ``tree`` first on the path, a fixed hash seed and no
    byte code written into the tree (not PYTHONPYCACHEPREFIX: that would also hide the
    installed packages' byte code and cost ~5 s of compiling per run)."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(tree),
               PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
    return env


def check_import(tree: Path, env: dict[str, str]) -> None:
    """Refuse a tree whose ``bayesstruct`` would not be imported from the tree itself."""
    code = ("import importlib.util as u; s = u.find_spec('bayesstruct'); "
            "print(s.origin if s else '')")
    got = subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, capture_output=True,
                         text=True).stdout.strip()
    if not got or not Path(got).resolve().is_relative_to(tree.resolve()):
        sys.exit(f"error: in {tree}, bayesstruct is imported from {got or 'nowhere'}")


def command(spec: EntrySpec, out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "bayesstruct", "run", spec["name"]]
    if "recipe" in spec:
        cmd += ["--inference", spec["recipe"]]
    cmd += ["--out", str(out)]
    for o in spec.get("overrides", []):
        cmd += ["--set", o]
    return cmd + [QUIET_FLAG]


def run_one(spec: EntrySpec, tree: Path, out: Path, env: dict[str, str], timeout: float) -> Run:
    cmd = command(spec, out)
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else ""
        return Run(False, time.perf_counter() - t0, out, f"timed out after {timeout:g} s\n{err}")
    seconds = time.perf_counter() - t0
    if p.returncode != 0 or not (out / "metrics.json").is_file():
        text = (p.stdout + p.stderr).rstrip().splitlines()
        tail = "\n".join([f"$ (cd {tree} && {' '.join(cmd)})  -> exit {p.returncode}",
                          *text[-STDERR_TAIL:]])
        return Run(False, seconds, out, tail)
    return Run(True, seconds, out)


# -- comparing -------------------------------------------------------------------------------
IGNORED: set[str] = set()  # --ignore: more keys/columns skipped in this invocation


def skipped(key: str) -> bool:
    return (key in SKIPPED_KEYS or key in IGNORED
            or any(s in key for s in SKIPPED_SUBSTRINGS))


@dataclass
class Diff:
    compared: int = 0
    found: list[str] = field(default_factory=list)

    def add(self, path: str, old: Any, new: Any) -> None:
        self.found.append(f"{path} {show(old)} -> {show(new)}")


MISSING = object()


def show(v: Any) -> str:
    if v is MISSING:
        return "<absent>"
    s = repr(v) if not isinstance(v, dict | list) else json.dumps(v)
    return s if len(s) <= 80 else s[:77] + "..."


def same_scalar(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


def compare_json(a: Any, b: Any, path: str, d: Diff) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            if skipped(str(k)):
                continue
            p = f"{path}{k}" if path.endswith(":") else f"{path}.{k}"
            if k not in a or k not in b:
                d.compared += 1
                d.add(p, a.get(k, MISSING), b.get(k, MISSING))
            else:
                compare_json(a[k], b[k], p, d)
    elif isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            if i < len(a) and i < len(b):
                compare_json(a[i], b[i], f"{path}[{i}]", d)
            else:
                d.compared += 1
                d.add(f"{path}[{i}]", a[i] if i < len(a) else MISSING,
                      b[i] if i < len(b) else MISSING)
    else:
        d.compared += 1
        if not same_scalar(a, b):
            d.add(path, a, b)


def compare_csv(a: Path, b: Path, d: Diff) -> None:
    """Cell by cell, by column name; columns on one side only (or in another order) are one
    difference, and the columns both have are still compared."""
    with a.open(newline="") as fa, b.open(newline="") as fb:
        ra, rb = list(csv.reader(fa)), list(csv.reader(fb))
    ha, hb = (ra[0] if ra else []), (rb[0] if rb else [])
    ka, kb = [c for c in ha if not skipped(c)], [c for c in hb if not skipped(c)]
    d.compared += 1
    if ka != kb:
        d.add(f"{a.name}:columns", ka, kb)
    cols = [c for c in ka if c in kb]
    ia, ib = [ha.index(c) for c in cols], [hb.index(c) for c in cols]
    for r in range(1, max(len(ra), len(rb))):
        if r >= len(ra) or r >= len(rb):
            d.compared += 1
            d.add(f"{a.name}:row {r}", ra[r] if r < len(ra) else MISSING,
                  rb[r] if r < len(rb) else MISSING)
            continue
        for c, i, j in zip(cols, ia, ib, strict=True):
            d.compared += 1
            x = ra[r][i] if i < len(ra[r]) else MISSING
            y = rb[r][j] if j < len(rb[r]) else MISSING
            if x != y:
                d.add(f"{a.name}:row {r}:{c}", x, y)


def compare_runs(a: Path, b: Path) -> Diff:
    d = Diff()
    with (a / "metrics.json").open() as fa, (b / "metrics.json").open() as fb:
        compare_json(json.load(fa), json.load(fb), "metrics.json:", d)
    names = sorted({p.name for p in a.glob("*.csv")} | {p.name for p in b.glob("*.csv")})
    for name in names:
        if not (a / name).is_file() or not (b / name).is_file():
            d.compared += 1
            d.add(name, "<file>" if (a / name).is_file() else MISSING,
                  "<file>" if (b / name).is_file() else MISSING)
        else:
            compare_csv(a / name, b / name, d)
    return d


# -- main ------------------------------------------------------------------------------------
def commit_of(rev: str) -> str:
    try:
        return git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except subprocess.CalledProcessError:
        sys.exit(f"error: {rev!r} is not a commit of {REPO}")


def add_worktree(rev: str, where: Path) -> Path:
    git("worktree", "add", "--detach", str(where), rev)
    return where


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=False, help="the old revision (a detached worktree)")
    ap.add_argument("--head", help="the new revision (default: this working tree as on disk)")
    ap.add_argument("--entries", help="comma-separated labels/entry names, or 'all'")
    ap.add_argument("--keep", type=Path, help="keep the run directories in DIR")
    ap.add_argument("--ignore", default="", help="comma-separated keys/columns to skip as well "
                    "(e.g. ones a revision dropped on purpose)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per run (default 900)")
    ap.add_argument("--list", action="store_true", help="print the specs and exit")
    args = ap.parse_args(argv)
    IGNORED.update(k.strip() for k in args.ignore.split(",") if k.strip())

    specs = select(args.entries)
    if args.list:
        for s in specs:
            rec = f" --inference {s['recipe']}" if "recipe" in s else ""
            sets = "".join(f" --set {shlex.quote(o)}" for o in s.get("overrides", []))
            print(f"{label(s):32s} {s['name']}{rec}{sets}")
        return 0
    if args.base is None:
        ap.error("--base REV is required")

    tmp = Path(tempfile.mkdtemp(prefix="same_metrics-"))
    runs_dir = args.keep.resolve() if args.keep else tmp / "runs"
    worktrees: list[Path] = []
    failed = differ = 0
    totals = [0.0, 0.0]
    t_start = time.perf_counter()
    try:
        # both revisions resolved first: a commit landing meanwhile cannot split HEAD in two
        base_sha = commit_of(args.base)
        head_sha = commit_of(args.head) if args.head is not None else ""
        base = add_worktree(base_sha, tmp / "base")
        worktrees.append(base)
        if args.head is not None:
            head = add_worktree(head_sha, tmp / "head")
            worktrees.append(head)
            head_desc = f"{args.head} ({head_sha[:12]}, worktree)"
        else:
            head = REPO
            dirty = len(git("status", "--porcelain", "--untracked-files=no").splitlines())
            head_desc = f"working tree {REPO} ({dirty} changed tracked files)"
        print(f"base: {args.base} ({base_sha[:12]}, worktree)\nhead: {head_desc}\n"
              f"{len(specs)} entries, one thread, one run at a time\n", flush=True)
        envs = [subprocess_env(t) for t in (base, head)]
        for t, env in zip((base, head), envs, strict=True):
            check_import(t, env)
        width = max(len(label(s)) for s in specs) + 2
        for spec in specs:
            name = label(spec)
            outs = [runs_dir / name.replace("/", "_") / side for side in ("base", "head")]
            for o in outs:
                if o.exists():
                    shutil.rmtree(o)
                o.parent.mkdir(parents=True, exist_ok=True)
            results = [run_one(spec, t, o, env, args.timeout)
                       for t, o, env in zip((base, head), outs, envs, strict=True)]
            totals = [totals[i] + results[i].seconds for i in range(2)]
            times = f"[base {results[0].seconds:.1f} s, head {results[1].seconds:.1f} s]"
            if not all(r.ok for r in results):
                failed += 1
                sides = [side for side, r in zip(("base", "head"), results, strict=True)
                         if not r.ok]
                print(f"{name:{width}s}FAILED in {' and '.join(sides)}  {times}")
                for side, r in zip(("base", "head"), results, strict=True):
                    if not r.ok:
                        print(f"  --- {side} ---\n" + "\n".join(
                            "  " + line for line in r.tail.splitlines()))
                sys.stdout.flush()
                continue
            d = compare_runs(*outs)
            if not d.found:
                print(f"{name:{width}s}same ({d.compared} values compared)  {times}",
                      flush=True)
                continue
            differ += 1
            for line in d.found[:MAX_SHOWN]:
                print(f"{name:{width}s}DIFFERENT: {line}")
            more = len(d.found) - MAX_SHOWN
            print(f"{'':{width}s}{len(d.found)} of {d.compared} values differ"
                  + (f" ({more} more not shown)" if more > 0 else "") + f"  {times}",
                  flush=True)
    except subprocess.CalledProcessError as e:
        print(f"error: {' '.join(map(str, e.cmd))} failed (exit {e.returncode})\n"
              f"{(e.stderr or '').strip()}", file=sys.stderr)
        return 2
    finally:
        for w in worktrees:
            subprocess.run(["git", "worktree", "remove", "--force", str(w)], cwd=REPO,
                           capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    wall = time.perf_counter() - t_start
    print(f"\n{len(specs) - failed - differ} same, {differ} different, {failed} failed; "
          f"run time base {totals[0]:.0f} s, head {totals[1]:.0f} s; wall {wall:.0f} s"
          + (f"; runs kept in {runs_dir}" if args.keep else ""))
    return 1 if failed or differ else 0


if __name__ == "__main__":
    sys.exit(main())
