"""A fitted run's pruned network, in files that load without bayesstruct.

:func:`write_network` fills the ``network/`` folder of a ``fit`` run directory (every file is
written atomically through :mod:`bayesstruct.files`):

    network/pruned.torchscript.pt  the pruned posterior-mean network (``pruning.prune`` of
                                   ``pruning.mean_network``) as TorchScript:
                                   ``torch.jit.load(path)`` needs torch only
    network/masks.npz              the decision's keep-masks, one boolean array per parameter
                                   name (``numpy.load(path)``)
    network/posterior_mean.pt      the state dict of the dense posterior-mean network
                                   (``torch.load(path, weights_only=True)``)
    network/retrained.pt           only after ``pruning.retrain_epochs``: the state dict of
                                   the masked posterior-mean network retrained with the masks
                                   held, which the TorchScript file is the pruned form of
    network/manifest.json          input shape and dtype, what the outputs mean, how the
                                   TorchScript was made (``script``, or ``trace`` on test inputs
                                   where scripting fails), units and parameters before and after
                                   pruning, the arguments of ``bayesstruct.nets.build``
    network/README.txt             the manifest in words

:func:`rebuild_pruned` builds the eager pruned module again from ``masks.npz`` and
``posterior_mean.pt`` (``retrained.pt`` where there is one), and :func:`export` is
``bayesstruct export RUN_DIR --format torchscript|onnx``. ONNX needs the optional packages
``onnx`` and ``onnxscript`` (``pip install 'bayesstruct[onnx]'``, which brings ``onnxruntime``
to check the file).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import json
import logging
import pickle
import shutil
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from . import nets
from .errors import CheckpointError, RunDirError, UserInputError
from .files import RunLock, atomic_path, save_checkpoint, write_json, write_text
from .pruning import count_parameters, prune, unit_counts

__all__ = ["FORMATS", "NETWORK", "Exported", "Scripted", "export", "load_masks",
           "read_manifest", "rebuild_pruned", "to_torchscript", "write_network"]

#: the folder of a run directory that holds the exported network
NETWORK = "network"
TORCHSCRIPT = "pruned.torchscript.pt"
ONNX = "pruned.onnx"
MASKS = "masks.npz"
POSTERIOR_MEAN = "posterior_mean.pt"
RETRAINED = "retrained.pt"
MANIFEST = "manifest.json"
README = "README.txt"
#: ``bayesstruct export --format`` values and the default file each writes
FORMATS = {"torchscript": TORCHSCRIPT, "onnx": ONNX}
ONNX_PACKAGES = ("onnx", "onnxscript")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence torch's deprecation notes on ``torch.jit`` (TorchScript still loads in every
    torch 2.x), the tracer's notes on Python ints and the ONNX exporter's chatter."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", category=FutureWarning, module="copyreg")
            yield
    finally:
        logger.setLevel(level)


class Scripted(NamedTuple):
    """A TorchScript module and how it was made: ``method`` is ``"script"`` or ``"trace"``;
    ``script_error`` is why scripting failed (``None`` when it did not)."""

    module: torch.jit.ScriptModule
    method: str
    script_error: str | None


def to_torchscript(module: nn.Module, example: torch.Tensor) -> Scripted:
    """``torch.jit.script(module)``, or, where scripting fails, ``torch.jit.trace`` of it on
    ``example`` (a batch of inputs). A trace records the operations run on that example, so it
    is right for networks without data-dependent control flow (all of the zoo's: the
    recurrent nets loop over a fixed number of steps)."""
    module = module.eval()
    with _quiet():
        try:
            return Scripted(torch.jit.script(module), "script", None)
        except Exception as e:  # scripting refuses Python it cannot compile
            reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e) else ''}"
        with torch.no_grad():
            traced = torch.jit.trace(module, (example,), check_trace=False)
    return Scripted(traced, "trace", reason)


@torch.no_grad()
def _max_difference(a: nn.Module, b: nn.Module, inputs: list[torch.Tensor]) -> float:
    """``max |a(x) - b(x)|`` over the batches ``inputs``."""
    return max(float((a(x) - b(x)).abs().max()) for x in inputs)


def _shape(example: torch.Tensor, out: torch.Tensor) -> tuple[list[Any], list[Any]]:
    return ["batch", *example.shape[1:]], ["batch", *out.shape[1:]]


def write_network(directory: str | Path, mean_net: nn.Module, small: nn.Module,
                  masks: Mapping[str, np.ndarray | torch.Tensor], example: torch.Tensor, *,
                  build: Mapping[str, Any], outputs: str, inputs: str = "",
                  retrained: nn.Module | None = None) -> dict[str, Any]:
    """Write ``directory`` (a run's ``network/``): the pruned network ``small`` as TorchScript,
    ``masks``, the state dict of ``mean_net`` and the manifest (module doc); return the
    manifest.

    Args:
        mean_net: the dense posterior-mean network (:func:`~bayesstruct.pruning.mean_network`).
        small: ``pruning.prune(mean_net, masks)`` (``pruning.prune(retrained, masks)`` after
            retraining).
        masks: the decision's keep-masks by parameter name.
        example: a batch of real inputs: traced where scripting fails, and used to check
            that the TorchScript module computes what ``small`` computes.
        build: the arguments of :func:`bayesstruct.nets.build` that make ``mean_net``'s
            architecture (:func:`rebuild_pruned` reads them).
        outputs: what the network's outputs mean (e.g. the likelihood's docstring).
        inputs: how inputs are prepared before the network sees them.
        retrained: the masked network after retraining (``pruning.retrain_epochs``), saved
            as ``retrained.pt``; ``None`` removes a ``retrained.pt`` left by an earlier run.

    Files are written on the CPU in float32. A ``pruned.onnx`` left by an earlier
    ``bayesstruct export`` is removed: it would no longer match the masks. Should neither
    scripting nor tracing work, the manifest says why under ``torchscript.error`` and the other
    files are still written."""
    directory = Path(directory)
    mean_net = copy.deepcopy(mean_net).cpu().eval()
    small = copy.deepcopy(small).cpu().eval()
    example = example.detach().cpu()
    state = {k: v.detach().clone() for k, v in mean_net.state_dict().items()}
    save_checkpoint(state, directory / POSTERIOR_MEAN)
    if retrained is not None:
        save_checkpoint({k: v.detach().cpu().clone()
                         for k, v in retrained.state_dict().items()}, directory / RETRAINED)
    else:
        (directory / RETRAINED).unlink(missing_ok=True)
    with atomic_path(directory / MASKS) as tmp, open(tmp, "wb") as f:
        np.savez(f, **{k: np.asarray(v.cpu() if torch.is_tensor(v) else v, dtype=bool)
                       for k, v in masks.items()})
    (directory / ONNX).unlink(missing_ok=True)
    with torch.no_grad():
        out = small(example)
    in_shape, out_shape = _shape(example, out)
    script: dict[str, Any] = {"file": TORCHSCRIPT, "load": f"torch.jit.load({TORCHSCRIPT!r})"}
    try:
        scripted = to_torchscript(small, example)
        with atomic_path(directory / TORCHSCRIPT) as tmp, _quiet():
            torch.jit.save(scripted.module, str(tmp))
        script.update(method=scripted.method, script_error=scripted.script_error,
                      max_abs_difference=_max_difference(scripted.module, small,
                                                         [example, example[:1]]))
    except Exception as e:  # the run's other files are still worth having
        (directory / TORCHSCRIPT).unlink(missing_ok=True)
        script.update(file=None, load=None, error=f"{type(e).__name__}: {e}")
    kept = int(sum(int(np.asarray(m).sum()) for m in masks.values()))
    manifest = {
        "format_version": 1,
        "torchscript": script,
        "input": {"shape": in_shape, "dtype": str(example.dtype).removeprefix("torch."),
                  "preparation": inputs},
        "output": {"shape": out_shape, "dtype": str(out.dtype).removeprefix("torch."),
                   "meaning": outputs},
        "units": {"dense": {k: list(v) for k, v in unit_counts(mean_net).items()},
                  "pruned": {k: list(v) for k, v in unit_counts(small).items()}},
        "parameters": {"dense": count_parameters(mean_net),
                       "pruned": count_parameters(small),
                       "pruned_nonzero": count_parameters(small, nonzero=True)},
        "masks": {"file": MASKS, "load": f"numpy.load({MASKS!r})", "weights_kept": kept,
                  "weights_masked": int(sum(np.asarray(m).size for m in masks.values()))},
        "posterior_mean": {"file": POSTERIOR_MEAN,
                           "load": f"torch.load({POSTERIOR_MEAN!r}, weights_only=True)"},
        "net": {"build": dict(build), "class": type(mean_net).__name__},
    }
    if retrained is not None:
        manifest["retrained"] = {"file": RETRAINED,
                                 "load": f"torch.load({RETRAINED!r}, weights_only=True)"}
    write_json(directory / MANIFEST, manifest)
    write_text(directory / README, _readme(manifest))
    return manifest


def _tuple(shape: list[Any]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def _readme(m: dict[str, Any]) -> str:
    """The manifest in words (``network/README.txt``)."""
    ts, units = m["torchscript"], m["units"]
    if ts["file"] is None:
        how = f"No TorchScript could be made ({ts['error']})."
    else:
        made = ("torch.jit.script" if ts["method"] == "script" else
                f"torch.jit.trace on a batch of test inputs (scripting failed: "
                f"{ts['script_error']})")
        what = ("the pruned posterior-mean network, retrained with the masks held,"
                if "retrained" in m else "the pruned posterior-mean network")
        how = (f"{TORCHSCRIPT}: {what} as TorchScript, made by "
               f"{made}; it loads with torch alone:\n\n"
               f"    import torch\n    net = torch.jit.load({TORCHSCRIPT!r})\n"
               "    out = net(x)\n\n"
               f"Largest difference from the eager pruned network on the example inputs: "
               f"{ts['max_abs_difference']:.3g}.")
    rows = "\n".join(f"    {k}: {_tuple(d)} -> {_tuple(units['pruned'].get(k, ['removed']))}"
                     for k, d in units["dense"].items())
    p = m["parameters"]
    return (
        "The pruned network of this run (written by bayesstruct; bayesstruct is not needed to "
        "use it).\n\n"
        f"{how}\n\n"
        f"Input: {m['input']['dtype']} tensor of shape {_tuple(m['input']['shape'])}. "
        f"{m['input']['preparation']}\n"
        f"Output: {m['output']['dtype']} tensor of shape {_tuple(m['output']['shape'])}. "
        f"{m['output']['meaning']}\n\n"
        f"Units (inputs, outputs) per layer, dense -> pruned:\n{rows}\n"
        f"Parameters: {p['dense']} dense -> {p['pruned']} pruned ({p['pruned_nonzero']} "
        "non-zero).\n\n"
        f"{MASKS}: the keep-masks of the pruning decision, one boolean array per parameter "
        f"name ({m['masks']['weights_kept']} of {m['masks']['weights_masked']} weights kept): "
        f"numpy.load({MASKS!r}).\n"
        f"{POSTERIOR_MEAN}: the state dict of the dense posterior-mean network: "
        f"torch.load({POSTERIOR_MEAN!r}, weights_only=True).\n"
        + (f"{RETRAINED}: the state dict of the masked network after retraining, which "
           f"{TORCHSCRIPT} is the pruned form of: torch.load({RETRAINED!r}, "
           "weights_only=True).\n" if "retrained" in m else "")
        + f"{MANIFEST}: all of this as JSON, with the arguments of bayesstruct.nets.build that "
        "make the dense network.\n"
        "`bayesstruct export RUN_DIR --format onnx` writes the pruned network as ONNX.\n")


# -- reading a network/ folder ----------------------------------------------------------------
def _network_dir(run_dir: str | Path) -> Path:
    """``run_dir/network``, refused with what to do when the run has none."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir} does not exist or is not a folder: export reads the run "
                          "directory of a finished `bayesstruct run`")
    if not (run_dir / "config.yaml").is_file():
        raise RunDirError(f"{run_dir} is not a bayesstruct run directory (it has no "
                          "config.yaml)")
    directory = run_dir / NETWORK
    missing = [f for f in (MANIFEST, POSTERIOR_MEAN, MASKS) if not (directory / f).is_file()]
    if missing:
        what = (f"a complete {NETWORK}/ folder (missing {', '.join(missing)})"
                if directory.is_dir() else f"{NETWORK}/ folder")
        raise RunDirError(
            f"{run_dir} has no {what}: it is written at the end of a fit run (compare, hypergrad "
            "and nas runs have none). Finish or re-analyse this run with `bayesstruct run --out "
            f"{run_dir} --resume`, or rerun its entry")
    return directory


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The ``manifest.json`` of a ``network/`` folder."""
    path = Path(directory) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path} cannot be read ({e}); rerun or resume the run") from None


def load_masks(directory: str | Path) -> dict[str, np.ndarray]:
    """The keep-masks of a ``network/`` folder (``masks.npz``), by parameter name."""
    path = Path(directory) / MASKS
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k].astype(bool) for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise CheckpointError(f"{path} cannot be read ({e}); rerun or resume the run") from None


def rebuild_pruned(directory: str | Path) -> nn.Module:
    """The eager pruned network of a ``network/`` folder, on the CPU in eval mode:
    ``nets.build(**manifest.net.build)`` loaded with ``posterior_mean.pt`` (``retrained.pt``
    when the manifest names one) and pruned with ``masks.npz`` (the module
    :func:`write_network` saved as TorchScript)."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    build = manifest.get("net", {}).get("build")
    if not isinstance(build, dict):
        raise CheckpointError(f"{directory / MANIFEST} has no net.build; rerun or resume the run")
    path = directory / (RETRAINED if "retrained" in manifest else POSTERIOR_MEAN)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as e:
        raise CheckpointError(f"{path} cannot be read ({e}); rerun or resume the run") from None
    net = nets.build(**build)
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not fit the network of {directory / MANIFEST}: "
                              f"{str(e).splitlines()[0]}") from None
    return prune(net.eval(), load_masks(directory)).eval()


# -- bayesstruct export -----------------------------------------------------------------------
@dataclass(frozen=True)
class Exported:
    """What :func:`export` wrote: the file, and a sentence on how it was made and checked."""

    path: Path
    note: str


def _example(manifest: dict[str, Any]) -> torch.Tensor:
    """Random inputs of the manifest's shape (two rows: a trace or export sees a batch)."""
    shape = [int(s) for s in manifest["input"]["shape"][1:]]
    return torch.randn(2, *shape, generator=torch.Generator().manual_seed(0))


def _target(run_dir: Path, fmt: str, out: str | Path | None) -> Path:
    default = run_dir / NETWORK / FORMATS[fmt]
    if out is None:
        return default
    out = Path(out)
    if out.is_dir():
        out = out / FORMATS[fmt]
    if out.exists() and out.resolve() != default.resolve():
        raise UserInputError(f"--out {out} exists; choose another path or delete it (export "
                             "overwrites nothing of yours)")
    return out


def export(run_dir: str | Path, fmt: str = "torchscript",
           out: str | Path | None = None) -> Exported:
    """Write the pruned network of a fit run in format ``fmt`` (``torchscript`` or ``onnx``)
    to ``out`` (default ``RUN_DIR/network/pruned.torchscript.pt`` / ``pruned.onnx``; a folder
    gets that file name).

    ``torchscript`` copies ``network/pruned.torchscript.pt`` (made again from the masks and the
    posterior mean when it is missing); ``onnx`` exports the eager pruned module
    (:func:`rebuild_pruned`) with ``torch.onnx.export`` and a dynamic batch axis, and checks the
    file with onnxruntime when that is installed. Writing into the run directory holds its lock.

    Raises:
        UserInputError: an unknown ``fmt``, an ``out`` that exists, the ONNX packages missing.
        RunDirError: ``run_dir`` is not a run directory or has no ``network/`` folder.
    """
    if fmt not in FORMATS:
        raise UserInputError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    if fmt == "onnx":
        missing = [p for p in ONNX_PACKAGES if importlib.util.find_spec(p) is None]
        if missing:
            raise UserInputError(f"ONNX export needs {' and '.join(missing)}: "
                                 "pip install 'bayesstruct[onnx]'")
    run_dir = Path(run_dir)
    directory = _network_dir(run_dir)
    target = _target(run_dir, fmt, out)
    inside = target.resolve().parent == directory.resolve()
    with RunLock(run_dir) if inside else contextlib.nullcontext():
        if fmt == "torchscript":
            return _export_torchscript(directory, target)
        return _export_onnx(directory, target)


def _export_torchscript(directory: Path, target: Path) -> Exported:
    source = directory / TORCHSCRIPT
    manifest = read_manifest(directory)
    note = f"TorchScript by {manifest['torchscript'].get('method')}"
    if not source.is_file():
        small = rebuild_pruned(directory)
        scripted = to_torchscript(small, _example(manifest))
        with atomic_path(target) as tmp, _quiet():
            torch.jit.save(scripted.module, str(tmp))
        return Exported(target, f"TorchScript by {scripted.method}, made again from "
                                f"{MASKS} and {POSTERIOR_MEAN}")
    if target.resolve() != source.resolve():
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
    return Exported(target, note)


def _export_onnx(directory: Path, target: Path) -> Exported:
    small = rebuild_pruned(directory)
    example = _example(read_manifest(directory))
    with atomic_path(target) as tmp, _quiet(), torch.no_grad():
        torch.onnx.export(small, (example,), str(tmp), dynamo=True, verbose=False,
                          external_data=False, input_names=["x"], output_names=["output"],
                          dynamic_shapes=({0: torch.export.Dim.DYNAMIC},))
    note = "ONNX (input 'x', output 'output', dynamic batch axis)"
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
        with torch.no_grad():
            diff = max(float(np.abs(session.run(None, {"x": x.numpy()})[0]
                                    - small(x).numpy()).max()) for x in (example, example[:1]))
        note += f"; onnxruntime agrees with torch within {diff:.2g}"
    return Exported(target, note)
