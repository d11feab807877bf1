"""Data-parallel SVI: what one process measures, what the all-reduce moves, what W GPUs would
gain.

LeNet-300-100 on Fashion-MNIST (Gaussian prior, the MeanField guide with local
reparameterisation, batch 128: the ``svi_throughput.py`` network), trained with
``bayesstruct.svi`` here:

1. **one process** (this machine's threads): the median SVI epoch time and the step time;
2. **two ranks x 1 thread** on this CPU (gloo, ``torch.multiprocessing``), against **one
   process x 2 threads**: the same two cores used two ways; that is all this machine can
   measure, and it is stated as exactly that;
3. **the all-reduce volume per step**: every variational parameter's gradient (a location and
   a log-variance per weight and bias) in float32;
4. **the predicted speed-up** of W = 2, 8 and 64 GPUs under a ring all-reduce,
   ``t_ar(W) = 2 (W - 1) / W * V / bandwidth + 2 (W - 1) * latency`` (Patarasuk and Yuan
   2009), for a stated step compute time ``t_c`` and interconnect:

   - strong scaling (global batch fixed, each rank ``B / W`` examples):
     ``S = t_c / (t_c / W + t_ar)``, optimistic (a small per-rank batch does not divide the
     compute by W);
   - weak scaling (each rank ``B`` examples, the global batch ``W B``):
     ``S = W t_c / (t_c + t_ar)`` examples per second over one GPU's.

   ``t_c`` on a GPU is ``--gpu-step-ms``, stated in the table; its default, 5.0 ms, is the SVI
   step of this network measured on one H200 by ``make gpu-check`` (2026-12-01: 2.13 s an
   epoch of 422 steps, batch 128; benchmarks/RESULTS.md); the all-reduce is not overlapped
   with the backward pass in the model (DDP overlaps it in buckets, so the prediction is a
   lower bound there).

    python benchmarks/scaling.py [--epochs 3] [--gpu-step-ms 5.0] [--out DIR | --write-results]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

from bayesstruct import data, guides, nets, priors
from bayesstruct.inference import svi
from bayesstruct.models import BayesianNet

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import Output, add_output_args, markdown_table, provenance  # noqa: E402

BATCH = 128
# stated interconnects: (name, bytes per second per direction, latency per hop in seconds)
LINKS = [("NVLink 4 within a node, 450 GB/s", 450e9, 5e-6),
         ("PCIe 4.0 x16, 25 GB/s", 25e9, 10e-6),
         ("100 Gb/s network between nodes, 12.5 GB/s", 12.5e9, 20e-6)]
WORLDS = (2, 8, 64)


def _fit(ds, epochs: int) -> tuple[list[float], int, int]:
    """SVI epoch seconds (the engine's own timing), steps per epoch, and the number of
    variational parameters."""
    torch.manual_seed(0)
    model = BayesianNet(nets.mlp([784, 300, 100, 10]), priors.get("gaussian"),
                        num_data=len(ds.train))
    guide = guides.MeanField(model)
    post = svi(model, guide, ds.train, epochs=epochs, batch_size=BATCH, lr=1e-3,
               progress=False, num_draws=2)
    seconds = [float(s) for s in post.optimization["seconds"].values]
    n_params = sum(p.numel() for p in guide.parameters())
    return seconds, -(-len(ds.train) // BATCH), n_params


def _rank(rank: int, world: int, init: str, epochs: int, path: str) -> None:
    torch.set_num_threads(1)
    os.environ["LOCAL_RANK"] = str(rank)
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        ds = data.load("fashion-mnist", seed=0)
        seconds, _, n_params = _fit(ds, epochs)
        buf = torch.randn(n_params)
        times = []
        for _ in range(60):  # the all-reduce of one step's gradients, alone
            t0 = time.perf_counter()
            torch.distributed.all_reduce(buf)
            times.append(time.perf_counter() - t0)
        if rank == 0:
            torch.save({"seconds": torch.tensor(seconds),
                        "allreduce": torch.tensor(times[10:])}, path)
    finally:
        gc.collect()  # the DDP wrappers before the group (parallel.session does the same)
        torch.distributed.destroy_process_group()


def ring_allreduce(volume: float, world: int, bandwidth: float, latency: float) -> float:
    """Seconds of a ring all-reduce of ``volume`` bytes over ``world`` ranks."""
    return 2 * (world - 1) / world * volume / bandwidth + 2 * (world - 1) * latency


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3, help="epochs per setting (the first is "
                    "a warm-up and not counted)")
    ap.add_argument("--gpu-step-ms", type=float, default=5.0,
                    help="the compute time of one step on one GPU (milliseconds; default: "
                    "measured on an H200 by make gpu-check, 2026-12-01)")
    add_output_args(ap)
    args = ap.parse_args()
    out = Output(args)
    ds = data.load("fashion-mnist", seed=0)
    threads = torch.get_num_threads()

    one, steps, n_params = _fit(ds, args.epochs)
    one_epoch = statistics.median(one[1:])
    torch.set_num_threads(1)
    single = statistics.median(_fit(ds, args.epochs)[0][1:])
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "seconds.pt"
        mp.spawn(_rank, args=(2, f"file://{tmp}/init", args.epochs, str(path)), nprocs=2,
                 join=True)
        ranked = torch.load(path, weights_only=True)
        two_epoch = statistics.median(ranked["seconds"].tolist()[1:])
        allreduce = statistics.median(ranked["allreduce"].tolist())
    torch.set_num_threads(threads)

    volume = 4.0 * n_params  # float32 gradients of every variational parameter
    cpu_step = one_epoch / steps
    gpu_step = args.gpu_step_ms / 1e3
    measured = [
        [f"1 process x {threads} threads", f"{one_epoch:.2f}", f"{1e3 * cpu_step:.2f}", "1.00x"],
        ["1 process x 1 thread", f"{single:.2f}", f"{1e3 * single / steps:.2f}",
         f"{one_epoch / single:.2f}x"],
        ["2 ranks (gloo) x 1 thread", f"{two_epoch:.2f}", f"{1e3 * two_epoch / steps:.2f}",
         f"{one_epoch / two_epoch:.2f}x"]]
    predicted, weak, best_strong = [], [], 0.0
    for name, bw, lat in LINKS:
        for w in WORLDS:
            t = ring_allreduce(volume, w, bw, lat)
            best_strong = max(best_strong, gpu_step / (gpu_step / w + t))
            if w == max(WORLDS):
                weak.append(w * gpu_step / (gpu_step + t))
            predicted.append([name, w, f"{1e3 * t:.3f}",
                              f"{gpu_step / (gpu_step / w + t):.1f}x",
                              f"{w * gpu_step / (gpu_step + t):.1f}x",
                              f"{w * cpu_step / (cpu_step + t):.1f}x"])
    lines = [
        "## Data-parallel SVI: measured here, predicted for GPUs", "",
        f"{provenance()}; `python benchmarks/scaling.py --epochs {args.epochs} --gpu-step-ms "
        f"{args.gpu_step_ms:g}`. LeNet-300-100 on Fashion-MNIST ({len(ds.train)} training "
        f"images, {steps} steps of {BATCH} an epoch), Gaussian prior, MeanField guide; median "
        f"SVI epoch time over epochs 2-{args.epochs} (the engine's own timing).", "",
        "What this 2-core machine can measure: the same two cores used as one process with "
        "two threads or as two single-threaded ranks exchanging gradients through gloo. It "
        "says nothing about GPUs; it checks that the data-parallel path costs no more than "
        "the cores it adds.", "",
        markdown_table(measured, ["setting", "epoch s", "step ms", "speed-up"]), "",
        f"The all-reduce of one step's gradients between the two ranks, timed alone (gloo, "
        f"median of 50): **{1e3 * allreduce:.2f} ms**. Each rank computes half the batch, but "
        "repeats the work that scales with the parameters, not the examples (the KL term and "
        "its gradient, the Adam update), with one thread: at this network's size that work "
        f"and the all-reduce outweigh the halved batch ({1e3 * two_epoch / steps:.2f} ms a "
        f"step against {1e3 * single / steps:.2f} ms for one single-threaded process on the "
        "whole batch).", "",
        f"All-reduce volume per step: {n_params:,} variational parameters (a location and a "
        f"log-variance per weight and bias) x 4 bytes = **{volume / 1e6:.2f} MB**. "
        f"Predicted speed-ups under a ring all-reduce (module docstring) with a GPU step "
        f"compute time of **{args.gpu_step_ms:g} ms** (the default is this step measured on "
        f"one H200 by `make gpu-check` on 2026-12-01: 2.13 s an epoch of 422 steps at batch "
        f"{BATCH}, launch-bound), and, in the last column, this CPU's "
        f"measured step time ({1e3 * cpu_step:.2f} ms) as the compute:", "",
        markdown_table(predicted, ["interconnect", "GPUs", "all-reduce ms",
                                   "strong scaling (batch 128 total)",
                                   "weak scaling (128 per GPU)",
                                   "weak scaling at this CPU's step time"]), "",
        f"Reading: with each GPU on its own batch of {BATCH} (weak scaling), 64 GPUs would "
        f"process {weak[0]:.0f}x (NVLink) to {weak[-1]:.0f}x (the network between nodes) "
        "the examples per second of one; with the global batch of 128 split W ways (strong "
        f"scaling) the best of 2, 8 and 64 GPUs is {best_strong:.1f}x, since the per-GPU "
        "compute shrinks below the all-reduce time. Sweeps over settings and seeds "
        "(`bayesstruct sweep`) need no communication at all."]
    text = "\n".join(lines)
    print(text)
    out.section("scaling", text)


if __name__ == "__main__":
    main()
