"""The GPU check: everything that needs CUDA, in one script under 10 minutes on one GPU.

    make gpu-check            # = python benchmarks/gpu_check.py --out runs/gpu-check

1. the versions (torch, its CUDA, the driver's devices);
2. the CUDA-marked tests (``pytest -m cuda``): among them every network family x prior pair,
   the MAP and empirical-Bayes recipes, the pruning comparison and the architecture search end
   to end at a tiny budget on the GPU (``tests/test_cuda_runs.py``);
3. ``benchmarks/svi_throughput.py --device cuda`` at batch 128 and at batch 1024 (SVI epoch
   time over a plain-PyTorch epoch of LeNet-300-100 on Fashion-MNIST, on the GPU);
4. with two or more GPUs, a data-parallel run with nccl: ``bayesstruct run
   --nproc-per-node 2 --device cuda`` against the one-GPU run of the same global batch and seed
   (epoch losses compared);
5. ``OUT/report.md`` with each step's command, exit code, seconds and last lines of output.

On a machine without CUDA it says so, writes a report that says so, and exits 0: nothing is
checked, and nothing is claimed.
"""

from __future__ import annotations

import argparse
import csv
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def _step(name: str, cmd: list[str], timeout: float, log: list[dict]) -> dict:
    print(f"== {name}: {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        rc, text = r.returncode, r.stdout + r.stderr
    except subprocess.TimeoutExpired as e:
        rc = 124
        text = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) \
            else (e.stdout or "")
        text += f"\n(timed out after {timeout:.0f} s)"
    entry = {"name": name, "cmd": " ".join(cmd), "rc": rc,
             "seconds": time.perf_counter() - t0, "tail": "\n".join(text.splitlines()[-15:])}
    print(entry["tail"], flush=True)
    print(f"-- {name}: exit {rc} in {entry['seconds']:.0f} s", flush=True)
    log.append(entry)
    return entry


def _losses(run: Path) -> list[float]:
    with open(run / "history.csv") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


def _ddp_check(out: Path, log: list[dict]) -> None:
    run = [sys.executable, "-m", "bayesstruct", "run", "ard-logreg-digits", "--device", "cuda",
           "--quiet", "--set", "prior.per=unit", "--set", "inference.epochs=3"]
    one = _step("one GPU", [*run, "--out", str(out / "ddp-one")], 300, log)
    two = _step("two GPUs, nccl", [*run, "--out", str(out / "ddp-two"), "--nproc-per-node",
                                   "2"], 300, log)
    if one["rc"] == 0 and two["rc"] == 0:
        a, b = _losses(out / "ddp-one"), _losses(out / "ddp-two")
        worst = max(abs(x - y) / abs(x) for x, y in zip(a, b, strict=True))
        two["tail"] += (f"\nepoch losses one GPU {a}\nepoch losses two GPUs {b}\n"
                        f"largest relative difference {worst:.2e}")
        print(two["tail"].splitlines()[-1], flush=True)


def report(out: Path, header: list[str], log: list[dict]) -> Path:
    lines = ["# GPU check", "", *header, ""]
    for e in log:
        lines += [f"## {e['name']}: exit {e['rc']}, {e['seconds']:.0f} s", "",
                  f"    {e['cmd']}", "", "```", e["tail"], "```", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/gpu-check", type=Path)
    ap.add_argument("--rounds", type=int, default=2, help="throughput rounds per batch size")
    args = ap.parse_args()
    out = args.out if args.out.is_absolute() else ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    header = [f"- date: {time.strftime('%Y-%m-%d %H:%M')}",
              f"- python {platform.python_version()}, torch {torch.__version__}, "
              f"CUDA build {torch.version.cuda}"]
    if not torch.cuda.is_available():
        header.append("- no CUDA device: nothing was checked")
        path = report(out, header, [])
        print(f"gpu-check: no CUDA device here (torch {torch.__version__}, "
              f"torch.cuda.is_available() is False); nothing to check. Report: {path}")
        return 0
    n = torch.cuda.device_count()
    header += [f"- GPU {i}: {torch.cuda.get_device_name(i)}" for i in range(n)]
    log: list[dict] = []
    _step("CUDA-marked tests", [sys.executable, "-m", "pytest", "-q", "-m", "cuda",
                                "-p", "no:randomly"], 420, log)
    for batch in (128, 1024):
        _step(f"SVI throughput, batch {batch}",
              [sys.executable, "benchmarks/svi_throughput.py", "--device", "cuda",
               "--batch-size", str(batch), "--rounds", str(args.rounds), "--skip-naive",
               "--out", str(out)], 240, log)
    if n >= 2:
        _ddp_check(out, log)
    else:
        header.append("- one GPU: the nccl data-parallel check needs two (skipped)")
    path = report(out, header, log)
    failed = [e["name"] for e in log if e["rc"] != 0]
    print(f"gpu-check: {len(log) - len(failed)} of {len(log)} steps passed"
          + (f"; failed: {', '.join(failed)}" if failed else "") + f". Report: {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
