"""Alternating, repeated timing of several contenders, and a description of the machine.

Why alternate: the machine is shared (other processes run on the same 2 cores), so load comes
and goes. Timing contender A for a minute and then B for a minute lets a burst of load land on
one of them only. Interleaving them round by round spreads the noise over all, and the median
of many samples ignores the bursts.

Why settle when switching library: NumPy's OpenBLAS threads and PyTorch's OpenMP threads keep
spinning for ~0.1 s after a call, each slowing the other down. When the next contender uses a
different library we sleep briefly and make one untimed call before timing.

``module_at_revision`` loads a source file as it was at a git revision, so that old and new
code can be timed side by side in the same rounds.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]  # the checkout whose git history is read


@dataclass
class Contender:
    """One thing to time: ``call()`` runs it once."""

    name: str
    library: str  # "numpy" or "torch": switching library triggers the settle pause
    call: Callable[[], object]
    rounds: int | None = None  # at most this many rounds (the slow scipy reference gets fewer)
    samples: list[float] = field(default_factory=list)
    setup: Callable[[], object] | None = None  # run before the settle pause when the library changes

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")


def alternate(contenders: list[Contender], rounds: int, calls_per_round: int = 3,
              settle_seconds: float = 0.1) -> dict[str, float]:
    """Time every contender ``rounds x calls_per_round`` times, interleaved; return medians (s)."""
    previous_library = None
    for round_number in range(rounds):
        for contender in contenders:
            if contender.rounds is not None and round_number >= contender.rounds:
                continue
            if contender.library != previous_library:
                if contender.setup is not None:
                    contender.setup()  # e.g. a thread setting of this contender's own
                time.sleep(settle_seconds)  # let the other library's threads stop spinning
                contender.call()  # untimed: wakes this library's threads, warms the caches
                previous_library = contender.library
            for _ in range(calls_per_round):
                start = time.perf_counter()
                contender.call()
                contender.samples.append(time.perf_counter() - start)
    return {contender.name: contender.median for contender in contenders}


def layer_contenders(name: str, layer, x, dy) -> tuple[Contender, Contender]:
    """(forward, backward) of a built scratchnet layer on x and dy (NHWC), forward in training
    mode; one untimed forward first, so that the first backward has its cache."""
    layer.forward(x, training=True)
    return (Contender(name, "numpy", lambda: layer.forward(x, training=True)),
            Contender(name, "numpy", lambda: layer.backward(dy)))


def torch_contenders(module, x, dy) -> tuple[Contender, Contender]:
    """(forward, backward) of a torch module on the same numbers as x and dy, images (4-D)
    permuted once to NCHW: the forward records autograd; the backward is ``torch.autograd.grad``
    of one recorded output for the input and every parameter (dx, dW, db: what a scratchnet
    backward computes)."""
    import torch

    def to_torch_layout(array):  # (N, H, W, C) -> (N, C, H, W); (N, D) as it is
        return torch.from_numpy(array.transpose(0, 3, 1, 2).copy() if array.ndim == 4 else array.copy())

    x_nchw = to_torch_layout(x).requires_grad_(True)
    dy_nchw = to_torch_layout(dy)
    y_nchw = module(x_nchw)
    wanted = [x_nchw, *module.parameters()]
    return (Contender("torch", "torch", lambda: module(x_nchw)),
            Contender("torch", "torch",
                      lambda: torch.autograd.grad(y_nchw, wanted, dy_nchw, retain_graph=True)))


def module_at_revision(path: str, revision: str) -> types.ModuleType:
    """The file ``path`` (e.g. "scratchnet/kernels/winograd.py") as it was at git ``revision``,
    imported as a separate module inside the same package.

    ``git show REVISION:PATH`` gives the old source; it runs in a new module named
    ``<package>._<stem>_at_<revision>`` whose ``__package__`` is the file's own package, so its
    relative imports (``from .workspace import ...``) find this checkout's modules beside it.
    The module is registered in ``sys.modules`` (dataclasses and pickling look classes up there).
    """
    source = subprocess.run(["git", "show", f"{revision}:{path}"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    package = str(Path(path).parent).replace("/", ".")  # "scratchnet/kernels" -> "scratchnet.kernels"
    module = types.ModuleType(f"{package}._{Path(path).stem}_at_{revision}")
    module.__package__ = package
    module.__file__ = f"{revision}:{path}"
    sys.modules[module.__name__] = module
    exec(compile(source, module.__file__, "exec", dont_inherit=True), module.__dict__)
    return module


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return "AVX-512" if "avx512f" in flags else ("AVX2" if "avx2" in flags else "no AVX2")
    except OSError:
        pass
    return "unknown"


def _blas_description(numpy_module) -> str:
    try:
        blas = numpy_module.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '?')}"
    except Exception:  # noqa: BLE001 - a description must never crash the benchmark
        return "unknown"


def _openblas_core(numpy_module) -> str:
    """The kernel family OpenBLAS picked at run time (e.g. SkylakeX, Haswell), if it says."""
    import ctypes
    import glob

    libs_dir = os.path.join(os.path.dirname(numpy_module.__file__), os.pardir, "numpy.libs")
    for path in glob.glob(os.path.join(libs_dir, "*openblas*")):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename",
                       "openblas_get_corename64_", "openblas_get_corename"):
            function = getattr(library, symbol, None)
            if function is not None:
                function.restype = ctypes.c_char_p
                return function().decode()
    return "unknown"


def machine_description(torch_module=None) -> dict:
    """CPU, cores, library versions, thread counts and OPENBLAS_CORETYPE, for the README."""
    import numpy
    import scipy

    description = {
        "cpu": _cpu_model(),
        "simd": _cpu_flags(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "blas": _blas_description(numpy),
        "openblas_core": _openblas_core(numpy),
        "scipy": scipy.__version__,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "(unset)"),
        "load_average_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    if torch_module is not None:
        description["torch"] = torch_module.__version__
        description["torch_num_threads"] = torch_module.get_num_threads()
    else:
        description["torch"] = "not installed"
    return description
