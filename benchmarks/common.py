"""Shared helpers of the side-by-side benchmarks: machine info, timing, peak memory, output.

Every benchmark script runs neurec and its peer (PyTorch eager, Keras 3, implicit, NumPy) in
one process and alternates their repetitions (neurec, peer, neurec, peer, ...), so that load
from other jobs on a shared machine hits both; it reports medians and the median of the
per-repetition ratios (see ``alternate``).

Output: ``write_results(name, record, markdown)`` writes ``results/neurec_<name>.json`` and
``results/<name>.md`` atomically.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from typing import Any, Callable, Iterable, Sequence

import numpy as np

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
RESULTS_DIR = os.path.join(BENCH_DIR, "results")

# The repository root first, so that ``import neurec`` finds the working tree (with its
# in-place built C core) when the scripts are run as ``python benchmarks/bench_*.py``.
for _p in (BENCH_DIR, REPO_DIR):
    if _p not in sys.path:
        sys.path.insert(0, _p)


# ----------------------------------------------------------------------------------------------
# Machine
# ----------------------------------------------------------------------------------------------


def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if ":" in line:
                    key, val = (s.strip() for s in line.split(":", 1))
                    info.setdefault(key, val)
    except OSError:
        pass
    return info


def cpu_mhz() -> float:
    """Clock of the first core in MHz from ``/proc/cpuinfo`` (``cpu MHz``), or NaN."""
    try:
        return float(_cpuinfo().get("cpu MHz", "nan"))
    except ValueError:
        return float("nan")


def usable_cores() -> int:
    """Cores this process may run on (affinity mask), falling back to ``os.cpu_count()``."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def loadavg() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, or None where unavailable."""
    try:
        with open("/proc/loadavg") as f:
            return [float(x) for x in f.read().split()[:3]]
    except OSError:
        return None


def _version(module: str) -> str | None:
    mod = sys.modules.get(module)
    if mod is None:
        return None
    return str(getattr(mod, "__version__", "unknown"))


def git_commit() -> str | None:
    """The repository's HEAD commit (read-only ``git rev-parse``), with ``+dirty`` if modified."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_DIR,
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO_DIR, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return (head + ("+dirty" if dirty.strip() else "")) or None


def machine_info() -> dict[str, Any]:
    """CPU model, cores, SIMD flags, clock, load, library versions and thread counts.

    Returns:
        A JSON-serialisable dict. Versions are reported for the libraries already imported.
    """
    cpu = _cpuinfo()
    flags = set(cpu.get("flags", "").split())
    info: dict[str, Any] = {
        "cpu_model": cpu.get("model name", platform.processor() or "unknown"),
        "cpu_mhz": cpu_mhz(),
        "logical_cpus": os.cpu_count(),
        "usable_cores": usable_cores(),
        "avx2": "avx2" in flags,
        "fma": "fma" in flags,
        "avx512f": "avx512f" in flags,
        "loadavg": loadavg(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": git_commit(),
        "versions": {m: _version(m) for m in ("numpy", "neurec", "torch", "keras", "implicit")
                     if m in sys.modules},
    }
    if "neurec" in sys.modules:
        try:
            import neurec

            info["neurec_threads"] = neurec.get_num_threads()
        except Exception:  # noqa: BLE001 - the C core may be missing; info only
            pass
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        info["torch_threads"] = torch.get_num_threads()
        info["torch_interop_threads"] = torch.get_num_interop_threads()
    return info


def print_machine(info: dict[str, Any]) -> None:
    """Prints the machine line every benchmark starts with."""
    simd = ",".join(k for k in ("fma", "avx2", "avx512f") if info.get(k)) or "none"
    vers = " ".join(f"{k}={v}" for k, v in info["versions"].items())
    print(f"machine: {info['cpu_model']} | {info['usable_cores']} cores | {info['cpu_mhz']:.0f} MHz | "
          f"simd {simd} | load {info['loadavg']} | python {info['python']} {vers}", flush=True)


def peak_gflops(cores: int, mhz: float, lanes: int = 8, fma_units: int = 2) -> float:
    """Nominal fp32 peak: cores x FMA units x SIMD lanes x 2 flops (mul + add) x clock.

    Args:
        cores: cores used.
        mhz: clock in MHz.
        lanes: fp32 lanes per vector (8 for 256-bit AVX2, 16 for AVX-512).
        fma_units: FMA pipes per core.

    Returns:
        GFLOP/s.
    """
    return cores * fma_units * lanes * 2 * mhz / 1000.0


_FMA_LOOP_C = r"""
#include <immintrin.h>
#include <stdio.h>
#include <time.h>
int main(void) {
    __m256 a0 = _mm256_set1_ps(1), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0,
           a8 = a0, a9 = a0, a10 = a0, a11 = a0;
    const __m256 b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    const long n = 200000000;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long k = 0; k < n; k++) {
#define F(x) x = _mm256_fmadd_ps(x, b, c);
        F(a0) F(a1) F(a2) F(a3) F(a4) F(a5) F(a6) F(a7) F(a8) F(a9) F(a10) F(a11)
        __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5));
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    __m256 r = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    r = _mm256_add_ps(r, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    printf("%f %f\n", n * 12.0 * 8 * 2 / s / 1e9, r[0]);
    return 0;
}
"""


def measured_fma_gflops() -> float | None:
    """One core's fp32 FMA throughput at AVX2 width, measured: 12 independent FMA chains, best of 3.

    The nominal peak uses the base clock from ``/proc/cpuinfo``; cores usually run faster (turbo),
    so this is the honest ceiling for "share of peak". Needs ``gcc`` (benchmarks only).

    Returns:
        GFLOP/s of one core, or None when the loop cannot be compiled or run here.
    """
    import subprocess
    import tempfile

    try:
        with tempfile.TemporaryDirectory() as tmp:
            src, exe = os.path.join(tmp, "fma.c"), os.path.join(tmp, "fma")
            with open(src, "w") as f:
                f.write(_FMA_LOOP_C)
            subprocess.run(["gcc", "-O2", "-mavx2", "-mfma", src, "-o", exe], check=True,
                           capture_output=True, timeout=60)
            runs = [float(subprocess.run([exe], check=True, capture_output=True, text=True,
                                         timeout=60).stdout.split()[0]) for _ in range(3)]
        return max(runs)
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


# ----------------------------------------------------------------------------------------------
# Threads
# ----------------------------------------------------------------------------------------------


def set_threads(n: int) -> None:
    """Sets the thread count of neurec and (when imported) PyTorch to ``n``."""
    if "neurec" in sys.modules:
        import neurec

        neurec.set_num_threads(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


# ----------------------------------------------------------------------------------------------
# Memory
# ----------------------------------------------------------------------------------------------


def _status_kb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return float(line.split()[1])
    return float("nan")


def rss_mb() -> float:
    """Current resident set size of this process in MiB."""
    return _status_kb("VmRSS") / 1024.0


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB since start or the last ``reset_peak_rss``."""
    try:
        return _status_kb("VmHWM") / 1024.0
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_peak_rss() -> bool:
    """Resets the kernel's peak-RSS mark (``/proc/self/clear_refs`` = 5, Linux >= 4.0).

    Returns:
        True if the reset worked (then ``peak_rss_mb`` measures from now on).
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure_peak(fn: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    """Runs ``fn()`` and reports the process RSS before, its peak during the call, and the growth.

    Args:
        fn: the call to measure.

    Returns:
        ``(fn's result, {"rss_before_mb", "peak_rss_mb", "peak_growth_mb", "exact"})``; ``exact``
        is False when the kernel's peak mark could not be reset (then the peak is the process
        peak since start).
    """
    exact = reset_peak_rss()
    before = rss_mb()
    out = fn()
    peak = peak_rss_mb()
    return out, {"rss_before_mb": before, "peak_rss_mb": peak,
                 "peak_growth_mb": peak - before, "exact": exact}


# ----------------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``(fn(), seconds)`` measured with ``time.perf_counter``."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def alternate(runs: dict[str, Callable[[int], Any]], reps: int,
              warmup: bool = True, settle: float = 0.3) -> dict[str, list[float]]:
    """Times several contenders in alternation: rep 0 of each, then rep 1 of each, ...

    Args:
        runs: ``{name: fn(rep)}``; each call is one timed repetition (it may use ``rep`` to pick
            the data of that repetition). Insertion order is the order within a round.
        reps: timed rounds.
        warmup: run one untimed round first (rep index -1).
        settle: seconds to sleep before each timed call. OpenMP (torch, implicit) and OpenBLAS
            worker threads busy-wait for a while after their last parallel region; without a
            pause they take a core from whichever contender runs next.

    Returns:
        ``{name: [seconds per rep]}``.
    """
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}.")
    if warmup:
        for fn in runs.values():
            fn(-1)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for rep in range(reps):
        for name, fn in runs.items():
            if settle > 0:
                time.sleep(settle)
            _, dt = timed(lambda: fn(rep))
            times[name].append(dt)
    return times


def median_ratio(numer: Sequence[float], denom: Sequence[float]) -> float:
    """Median over repetitions of ``numer[r] / denom[r]`` (paired by repetition)."""
    n = min(len(numer), len(denom))
    if n == 0:
        raise ValueError("median_ratio needs at least one paired repetition.")
    return float(np.median(np.asarray(numer[:n], float) / np.asarray(denom[:n], float)))


def summarize(times: Sequence[float], work: float | None = None) -> dict[str, Any]:
    """Median/min/max of per-rep seconds and, with ``work`` units per rep, the median rate."""
    t = np.asarray(times, float)
    out: dict[str, Any] = {"seconds": [float(x) for x in t], "median_s": float(np.median(t)),
                           "min_s": float(t.min()), "max_s": float(t.max())}
    if work is not None:
        out["per_s"] = float(work / np.median(t))
    return out


# ----------------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------------


def fmt(x: Any, digits: int = 3) -> str:
    """Compact number formatting for tables (thousands separators for large values)."""
    if x is None:
        return "—"
    if isinstance(x, str):
        return x
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    x = float(x)
    if not np.isfinite(x):
        return str(x)
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.1f}"
    return f"{x:.{digits}g}"


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        lines.append("| " + " | ".join(fmt(c) for c in row) + " |")
    return "\n".join(lines)


def machine_md(info: dict[str, Any]) -> str:
    """One markdown line describing the machine, for the top of a results file."""
    simd = ", ".join(k for k in ("fma", "avx2", "avx512f") if info.get(k)) or "none"
    vers = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    return (f"Machine: {info['cpu_model']}, {info['usable_cores']} cores, "
            f"{info['cpu_mhz']:.0f} MHz, {simd}; load average {info['loadavg']}; "
            f"Python {info['python']}; {vers}; neurec commit {info.get('git_commit')}.")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _atomic_write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write_results(name: str, record: dict[str, Any], markdown: str,
                  results_dir: str | None = None) -> tuple[str, str]:
    """Writes ``neurec_<name>.json`` and ``<name>.md`` into the results folder (atomically).

    Args:
        name: result name, e.g. ``"train_ml-100k"``.
        record: JSON-serialisable result (NumPy scalars and arrays are converted).
        markdown: the markdown report.
        results_dir: output folder (default ``benchmarks/results``).

    Returns:
        The two paths written.
    """
    folder = results_dir or RESULTS_DIR
    jpath = os.path.join(folder, f"neurec_{name}.json")
    _atomic_write(jpath, json.dumps(record, indent=1, default=_json_default))
    print(f"wrote {jpath}", flush=True)
    return jpath, write_markdown(name, markdown, folder)


def write_markdown(name: str, markdown: str, results_dir: str | None = None) -> str:
    """Writes ``<name>.md`` into the results folder (atomically) and returns its path."""
    mpath = os.path.join(results_dir or RESULTS_DIR, f"{name}.md")
    _atomic_write(mpath, markdown.rstrip() + "\n")
    print(f"wrote {mpath}", flush=True)
    return mpath


def finish(benchmark: str, name: str, info: dict[str, Any], config: dict[str, Any],
           payload: dict[str, Any], t_start: float,
           markdown: Callable[[dict[str, Any]], str]) -> int:
    """The end of every ``bench_*.py`` main: one record, its JSON and markdown, the wall time.

    Args:
        benchmark: record kind (``"train"``, ``"scoring"``, ...).
        name: result name (files ``neurec_<name>.json`` and ``<name>.md``).
        info: machine info; ``loadavg_end`` is added here.
        config: the run's settings.
        payload: the results, merged into the record.
        t_start: ``time.perf_counter()`` at the start of the run.
        markdown: renders the record as the markdown report.

    Returns:
        0, the process exit code.
    """
    info["loadavg_end"] = loadavg()
    rec = {"benchmark": benchmark, "machine": info, "config": config, **payload,
           "wall_s": time.perf_counter() - t_start}
    write_results(name, rec, markdown(rec))
    print(f"wall {rec['wall_s']:.1f}s")
    return 0
