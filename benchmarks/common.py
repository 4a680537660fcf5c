"""Helpers of the benchmark scripts: machine info, timing, peak memory, output.

Every benchmark script runs neurec and its peer (PyTorch eager, Keras 3, implicit, NumPy) in
one process and alternates their repetitions (neurec, peer, neurec, peer, ...), so that load
from other jobs on a shared machine hits both; it reports medians and the median of the
per-repetition ratios (see ``alternate``).

Output (see README.md, "Results"): ``write_results(name, record, markdown)`` writes
``results/<name>.json`` (the record: config, machine, every repetition) and
``results/<name>.md`` (the tables) atomically, ``<name>`` being
``<benchmark>[_<dataset>][_<variant>]``. The per-run JSON of the PyTorch / Keras baseline
scripts (``bench_torch_baseline.py``, ``bench_keras_baseline.py``, whose helpers are the last
section here) goes to ``results/runs/``, which git ignores; ``results/baselines.md`` summarises
those runs.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any, Callable

import numpy as np

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
RESULTS_DIR = os.path.join(BENCH_DIR, "results")
#: Per-run logs of the baseline scripts (ignored by git; summarised in results/baselines.md).
RUNS_DIR = os.path.join(RESULTS_DIR, "runs")

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


def cpu_model() -> str:
    """CPU model name from ``/proc/cpuinfo`` (or ``platform.processor()``)."""
    return _cpuinfo().get("model name") or platform.processor() or "unknown"


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

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO_DIR, capture_output=True, text=True, timeout=10
        ).stdout

    try:
        head = git("rev-parse", "--short", "HEAD").strip()
        dirty = git("status", "--porcelain", "--untracked-files=no")
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
        "cpu_model": cpu_model(),
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
        "versions": {
            m: _version(m)
            for m in ("numpy", "neurec", "torch", "keras", "implicit")
            if m in sys.modules
        },
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


def _machine_line(
    info: dict[str, Any], template: str, simd_sep: str, version: str, version_sep: str
) -> str:
    """``template`` filled with the fields of ``info``: ``cpu``, ``cores``, ``mhz``, ``simd`` (the
    SIMD flags joined by ``simd_sep``), ``load``, ``python``, ``commit`` and ``versions`` (each
    library's ``version.format(name, version)``, joined by ``version_sep``)."""
    return template.format(
        cpu=info["cpu_model"],
        cores=info["usable_cores"],
        mhz=info["cpu_mhz"],
        simd=simd_sep.join(k for k in ("fma", "avx2", "avx512f") if info.get(k)) or "none",
        load=info["loadavg"],
        python=info["python"],
        commit=info.get("git_commit"),
        versions=version_sep.join(version.format(k, v) for k, v in info["versions"].items()),
    )


def print_machine(info: dict[str, Any]) -> None:
    """Prints the machine line every benchmark starts with."""
    template = "machine: {cpu} | {cores} cores | {mhz:.0f} MHz | simd {simd} | load {load} | "
    template += "python {python} {versions}"
    print(_machine_line(info, template, ",", "{}={}", " "), flush=True)


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
            subprocess.run(
                ["gcc", "-O2", "-mavx2", "-mfma", src, "-o", exe],
                check=True,
                capture_output=True,
                timeout=60,
            )
            runs = [
                float(
                    subprocess.run(
                        [exe], check=True, capture_output=True, text=True, timeout=60
                    ).stdout.split()[0]
                )
                for _ in range(3)
            ]
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
    return out, {
        "rss_before_mb": before,
        "peak_rss_mb": peak,
        "peak_growth_mb": peak - before,
        "exact": exact,
    }


# ----------------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """``(fn(), seconds)`` measured with ``time.perf_counter``."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def alternate(
    runs: dict[str, Callable[[int], Any]], reps: int, warmup: bool = True, settle: float = 0.3
) -> dict[str, list[float]]:
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
            _, dt = timed(functools.partial(fn, rep))
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
    out: dict[str, Any] = {
        "seconds": [float(x) for x in t],
        "median_s": float(np.median(t)),
        "min_s": float(t.min()),
        "max_s": float(t.max()),
    }
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
    template = "Machine: {cpu}, {cores} cores, {mhz:.0f} MHz, {simd}; load average {load}; "
    template += "Python {python}; {versions}; neurec commit {commit}."
    return _machine_line(info, template, ", ", "{} {}", ", ")


def md_head(title: str, info: dict[str, Any]) -> list[str]:
    """The first lines of every results file: ``title``, a blank line, ``machine_md(info)``, a
    blank line."""
    return [title, "", machine_md(info), ""]


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


def write_json(record: dict[str, Any], path: str) -> str:
    """Writes ``record`` to ``path`` as JSON, atomically; NumPy scalars and arrays are converted.

    Returns:
        ``path``.
    """
    _atomic_write(path, json.dumps(record, indent=1, default=_json_default) + "\n")
    print(f"wrote {path}", flush=True)
    return path


def write_results(
    name: str, record: dict[str, Any], markdown: str, results_dir: str | None = None
) -> tuple[str, str]:
    """Writes ``<name>.json`` and ``<name>.md`` into the results folder (atomically).

    Args:
        name: result name, e.g. ``"train_ml-100k"``.
        record: JSON-serialisable result (NumPy scalars and arrays are converted).
        markdown: the markdown report.
        results_dir: output folder (default ``benchmarks/results``).

    Returns:
        The two paths written.
    """
    folder = results_dir or RESULTS_DIR
    jpath = write_json(record, os.path.join(folder, f"{name}.json"))
    return jpath, write_markdown(name, markdown, folder)


def write_markdown(name: str, markdown: str, results_dir: str | None = None) -> str:
    """Writes ``<name>.md`` into the results folder (atomically) and returns its path."""
    mpath = os.path.join(results_dir or RESULTS_DIR, f"{name}.md")
    _atomic_write(mpath, markdown.rstrip() + "\n")
    print(f"wrote {mpath}", flush=True)
    return mpath


def publish_markdown(name: str, heading: str, lines: Sequence[str]) -> str:
    """Prints ``heading`` followed by ``lines`` as one Markdown text and writes it as
    ``<name>.md`` into the results folder; returns its path."""
    text = heading + "\n".join(lines) + "\n"
    print(text)
    return write_markdown(name, text)


def finish(
    benchmark: str,
    name: str,
    info: dict[str, Any],
    config: dict[str, Any],
    payload: dict[str, Any],
    t_start: float,
    markdown: Callable[[dict[str, Any]], str],
) -> int:
    """The end of every ``bench_*.py`` main: one record, its JSON and markdown, the wall time.

    Args:
        benchmark: record kind (``"train"``, ``"scoring"``, ...).
        name: result name (files ``<name>.json`` and ``<name>.md``).
        info: machine info; ``loadavg_end`` is added here.
        config: the run's settings.
        payload: the results, merged into the record.
        t_start: ``time.perf_counter()`` at the start of the run.
        markdown: renders the record as the markdown report.

    Returns:
        0, the process exit code.
    """
    info["loadavg_end"] = loadavg()
    rec = {
        "benchmark": benchmark,
        "machine": info,
        "config": config,
        **payload,
        "wall_s": time.perf_counter() - t_start,
    }
    write_results(name, rec, markdown(rec))
    print(f"wall {rec['wall_s']:.1f}s")
    return 0


# ----------------------------------------------------------------------------------------------
# The start and end of a bench_*.py main: the options they share, the run, the record's name
# ----------------------------------------------------------------------------------------------

#: The options several benchmarks have: flag -> how a given value becomes ``add_argument``
#: keywords (``dataset``/``datasets``: default; ``epochs``/``reps``/``threads``/``seed``: integer
#: default; ``quick``: a switch, the value its help or True; ``name``: its help or None).
_SHARED_OPTIONS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "dataset": lambda v: {"default": v},
    "datasets": lambda v: {"default": v},
    "epochs": lambda v: {"type": int, "default": v},
    "reps": lambda v: {"type": int, "default": v},
    "threads": lambda v: {"type": int, "default": v},
    "seed": lambda v: {"type": int, "default": v},
    "quick": lambda v: {"action": "store_true", "help": None if v is True else v},
    "name": lambda v: {"default": None, "help": v},
}


def bench_parser(doc: str, **shared: Any):
    """An ``argparse.ArgumentParser`` described by the first line of ``doc`` with the shared
    options that ``shared`` names, in that order (see ``_SHARED_OPTIONS`` for the values).

    Example: ``bench_parser(__doc__, dataset="ml-1m", epochs=8, threads=2, quick=True)``.
    """
    import argparse

    unknown = set(shared) - set(_SHARED_OPTIONS)
    if unknown:
        raise TypeError(f"not shared benchmark options: {sorted(unknown)}")
    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    for flag, value in shared.items():
        p.add_argument("--" + flag, **_SHARED_OPTIONS[flag](value))
    return p


def result_name(args: Any, stem: str) -> str:
    """``--name`` if given, else ``stem`` with ``_quick`` appended for a ``--quick`` run."""
    return args.name or stem + ("_quick" if args.quick else "")


def settings(args: Any, *names: str) -> dict[str, Any]:
    """``{name: args.<name>}`` for the record's config, in the order given."""
    return {n: getattr(args, n) for n in names}


class Run:
    """One benchmark run from the start of its main to ``finish``.

    Creating it starts the clock (``t_start``), sets the thread count of neurec and, when imported,
    PyTorch (``set_threads``) if ``threads`` is given, and collects and prints the machine info
    (``info``).
    """

    def __init__(self, threads: int | None = None) -> None:
        self.t_start = time.perf_counter()
        if threads is not None:
            set_threads(threads)
        self.info = machine_info()
        print_machine(self.info)

    def finish(
        self,
        benchmark: str,
        name: str,
        config: dict[str, Any],
        payload: dict[str, Any],
        markdown: Callable[[dict[str, Any]], str],
    ) -> int:
        """``finish`` with this run's machine info and start time; returns the exit code 0."""
        return finish(benchmark, name, self.info, config, payload, self.t_start, markdown)


# ----------------------------------------------------------------------------------------------
# Baseline scripts (bench_torch_baseline.py, bench_keras_baseline.py): one framework per run,
# per-epoch records, the shared command line
# ----------------------------------------------------------------------------------------------


def environment(load_before: list[float] | None) -> dict[str, Any]:
    """Facts about the machine and libraries (torch facts only if torch is imported)."""
    env: dict[str, Any] = {
        "numpy_version": np.__version__,
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        env.update(
            torch_version=torch.__version__,
            torch_threads=torch.get_num_threads(),
            torch_interop_threads=torch.get_num_interop_threads(),
        )
    keras = sys.modules.get("keras")
    if keras is not None:
        env.update(keras_version=keras.__version__, keras_backend=keras.backend.backend())
    return env


def epoch_record(
    epoch: int,
    loss: float,
    hr: float,
    ndcg: float,
    n: int,
    sample_s: float,
    train_s: float,
    train_cpu_s: float,
    eval_s: float,
) -> dict[str, Any]:
    """One per-epoch entry of the result JSON."""
    return {
        "epoch": epoch,
        "loss": loss,
        "hr10": hr,
        "ndcg10": ndcg,
        "samples": int(n),
        "sample_s": sample_s,
        "train_s": train_s,
        "train_cpu_s": train_cpu_s,
        "eval_s": eval_s,
        "train_samples_per_s": n / train_s,
        "total_samples_per_s": n / (sample_s + train_s + eval_s),
    }


def evaluate_epoch(
    score: Any,
    data: Any,
    eval_rows: int | None,
    epoch: int,
    loss: float,
    n: int,
    sample_s: float,
    train_s: float,
    train_cpu_s: float,
) -> dict[str, Any]:
    """Sampled HR@10 / NDCG@10 after an epoch, as a printed ``epoch_record``."""
    import ncf_data

    t0 = time.perf_counter()
    hr, ndcg = ncf_data.evaluate_sampled(score, data, max_rows=eval_rows)
    rec = epoch_record(
        epoch, loss, hr, ndcg, n, sample_s, train_s, train_cpu_s, time.perf_counter() - t0
    )
    print_epoch(rec)
    return rec


def full_ranking(score: Any, data: Any) -> dict[str, Any]:
    """Full-ranking HR@10 / NDCG@10 (rank among all unseen items), printed."""
    import ncf_data

    t0 = time.perf_counter()
    fhr, fndcg = ncf_data.evaluate_full(score, data)
    full = {"hr10": fhr, "ndcg10": fndcg, "seconds": time.perf_counter() - t0}
    print(f"full-ranking HR@10={fhr:.4f} NDCG@10={fndcg:.4f} ({full['seconds']:.1f}s)")
    return full


def print_epoch(r: dict[str, Any]) -> None:
    """Prints one epoch entry on one line."""
    print(
        f"epoch {r['epoch']:3d} loss={r['loss']:.4f} HR@10={r['hr10']:.4f} "
        f"NDCG@10={r['ndcg10']:.4f} | train {r['train_s']:.2f}s "
        f"({r['train_samples_per_s']:,.0f} samples/s) cpu {r['train_cpu_s']:.2f}s "
        f"sample {r['sample_s']:.2f}s eval {r['eval_s']:.2f}s",
        flush=True,
    )


def summarize_epochs(
    history: Sequence[dict[str, Any]], wall_s: float, full: dict[str, Any] | None
) -> dict[str, Any]:
    """Summary block: final and best-epoch quality, throughput, wall time, peak RSS.

    ``best_*`` picks the epoch with the highest test HR@10, which is optimistic (model
    selection on the test set, as the NCF code does); ``final_*`` is the honest number.
    """
    best = max(history, key=lambda r: r["hr10"])
    n = sum(r["samples"] for r in history)
    train = sum(r["train_s"] for r in history)
    cpu = sum(r["train_cpu_s"] for r in history)
    total = sum(r["sample_s"] + r["train_s"] + r["eval_s"] for r in history)
    s = {
        "final_hr10": history[-1]["hr10"],
        "final_ndcg10": history[-1]["ndcg10"],
        "best_epoch": best["epoch"],
        "best_hr10": best["hr10"],
        "best_ndcg10": best["ndcg10"],
        "train_samples_per_s": n / train,
        "median_epoch_train_samples_per_s": float(
            np.median([r["train_samples_per_s"] for r in history])
        ),
        "train_samples_per_cpu_s": n / cpu if cpu > 0 else None,
        "total_samples_per_s": n / total,
        "wall_s": wall_s,
        "peak_rss_mb": peak_rss_mb(),
        "full_ranking": full,
    }
    print(
        f"best epoch {s['best_epoch']}: HR@10={s['best_hr10']:.4f} "
        f"NDCG@10={s['best_ndcg10']:.4f} | final HR@10={s['final_hr10']:.4f} | train "
        f"{s['train_samples_per_s']:,.0f} samples/s (median epoch "
        f"{s['median_epoch_train_samples_per_s']:,.0f}), incl. sampling+eval "
        f"{s['total_samples_per_s']:,.0f} samples/s | wall {wall_s:.1f}s | peak RSS "
        f"{s['peak_rss_mb']:.0f} MB",
        flush=True,
    )
    return s


def result_record(
    framework: str,
    args: Any,
    load_before: list[float] | None,
    data: Any,
    load_s: float,
    init_eval: dict[str, float],
    history: Sequence[dict[str, Any]],
    summary: dict[str, Any],
    **config: Any,
) -> dict[str, Any]:
    """The JSON record of one baseline run: arguments + run-specific config, environment, data
    sizes, the pre-training evaluation, per-epoch history and summary."""
    cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()}
    cfg.update(
        config,
        dense_init="hidden glorot_uniform, zero bias; prediction " + args.final_init,
        embedding_init=f"normal(0, {args.init_std})",
        tie_rule="rank = number of candidates with strictly higher score",
    )
    return {
        "framework": framework,
        "config": cfg,
        "environment": environment(load_before),
        "data": {
            "n_users": data.n_users,
            "n_items": data.n_items,
            "num_train": data.num_train,
            "num_test": int(data.test_users.size),
            "num_test_negatives": int(data.test_negatives.shape[1]),
            "load_s": load_s,
        },
        "init_eval": init_eval,
        "epochs": history,
        "summary": summary,
    }


def run_protocol(
    framework: str,
    label: str,
    args: Any,
    run_start: tuple[float, list[float] | None],
    data: Any,
    load_s: float,
    score: Callable[[np.ndarray, np.ndarray], np.ndarray],
    prepare: Callable[[np.ndarray, np.ndarray, np.ndarray], Any],
    fit_epoch: Callable[[Any], float],
    **config: Any,
) -> dict[str, Any]:
    """The baselines' protocol once the model is built; returns the ``result_record``.

    Sampled HR@10 / NDCG@10 before training, then each epoch: fresh negatives
    (``ncf_data.make_epoch``, cut to ``--quick``'s limit) turned into the framework's batch by
    ``prepare(users, items, labels)`` (timed as sampling), one pass of ``fit_epoch(batch)``
    returning the mean loss (timed as training), and the evaluation; the full ranking with
    ``--full-eval``. ``run_start`` is ``(time.perf_counter(), loadavg())`` from the start of the
    run; ``config`` goes to the record.
    """
    import ncf_data

    t_wall, load_before = run_start
    rng = np.random.default_rng(args.seed)
    epochs, max_samples, eval_rows = quick_limits(args)
    t0 = time.perf_counter()
    hr0, ndcg0 = ncf_data.evaluate_sampled(score, data, max_rows=eval_rows)
    init_eval = {"hr10": hr0, "ndcg10": ndcg0, "seconds": time.perf_counter() - t0}
    print(
        f"[{label} {args.model} {args.dataset}] users={data.n_users} items={data.n_items} "
        f"train={data.num_train} test={data.test_users.size} threads={args.threads} | "
        f"init HR@10={hr0:.4f} NDCG@10={ndcg0:.4f}",
        flush=True,
    )
    history = []
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        users, items, labels = ncf_data.make_epoch(data, args.num_neg, rng)
        if max_samples is not None:
            users, items, labels = users[:max_samples], items[:max_samples], labels[:max_samples]
        batch = prepare(users, items, labels)
        sample_s = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        loss = fit_epoch(batch)
        train_s, train_cpu_s = time.perf_counter() - t0, time.process_time() - c0
        history.append(evaluate_epoch(score, data, eval_rows, epoch, loss, users.size, sample_s,
                                      train_s, train_cpu_s))
    full = full_ranking(score, data) if args.full_eval else None
    summary = summarize_epochs(history, time.perf_counter() - t_wall, full)
    return result_record(framework, args, load_before, data, load_s, init_eval, history, summary,
                         effective_epochs=epochs, max_samples_per_epoch=max_samples,
                         eval_rows=eval_rows, **config)


def save_result(record: dict[str, Any], args: Any, framework: str, datasets: Sequence[str]) -> int:
    """Writes a baseline's record to ``--out`` or ``default_out`` unless ``--no-save``; returns
    the exit code 0."""
    if not args.no_save:
        write_json(record, args.out or default_out(framework, args, datasets))
    return 0


def default_out(framework: str, args: Any, datasets: Sequence[str]) -> str:
    """The per-run output path of a baseline script.

    ``results/runs/<framework>_<dataset>_<model>_t<threads>_e<epochs>_s<seed>[_quick][_tag].json``
    """
    ds = args.dataset if args.dataset in datasets else os.path.basename(args.dataset)
    name = f"{framework}_{ds}_{args.model}_t{args.threads}_e{args.epochs}_s{args.seed}"
    if args.quick:
        name += "_quick"
    if args.tag:
        name += f"_{args.tag}"
    return os.path.join(RUNS_DIR, name + ".json")


def _parse_layers(text: str) -> tuple[int, ...]:
    import argparse

    try:
        layers = tuple(int(x) for x in text.strip("[]() ").split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--layers must be comma-separated integers such as 64,32,16,8; got {text!r}"
        ) from None
    if not layers:
        raise argparse.ArgumentTypeError("--layers must list at least one width, e.g. 64,32,16,8")
    return layers


def parse_args(description: str, optimizers: Sequence[str], argv: list[str] | None = None):
    """The command line shared by the baseline scripts (see bench_torch_baseline.py)."""
    p = bench_parser(
        description,
        epochs=20,
        threads=1,
        seed=0,
        quick="smoke run: <= 2 epochs, <= 50k samples per epoch, 300 test users",
    )
    p.add_argument(
        "--dataset",
        default="ml-100k",
        help="ml-100k | ml-1m | sports | beauty, or a path prefix of NCF files",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="folder of the split folders (default $NEUREC_DATA or /work/shared/data)",
    )
    p.add_argument("--model", default="neumf", choices=["gmf", "mlp", "neumf", "mf"])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--num-neg", type=int, default=4)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument(
        "--optimizer",
        default="adam",
        choices=list(optimizers),
        help="adam: dense Adam over all parameters (Keras-like, default); "
        "sparse_adam (torch only): sparse embedding grads + SparseAdam",
    )
    p.add_argument(
        "--factors",
        type=int,
        default=None,
        help="GMF/NeuMF factor (default 8) or MF factor (default 32)",
    )
    p.add_argument("--layers", type=_parse_layers, default=(64, 32, 16, 8))
    p.add_argument("--init-std", type=float, default=0.01)
    p.add_argument(
        "--final-init", default="glorot_uniform", choices=["glorot_uniform", "lecun_uniform"]
    )
    p.add_argument(
        "--l2",
        type=float,
        default=0.0,
        help="(torch, mf only) L2 on the rows a batch touches: "
        "loss += l2 * mean over the batch of ||touched rows||^2",
    )
    p.add_argument(
        "--weight-decay",
        type=float,
        default=0.0,
        help="optimizer weight_decay (dense: decays every parameter every step)",
    )
    p.add_argument(
        "--full-eval",
        action="store_true",
        help="also run the full-ranking protocol after the last epoch",
    )
    p.add_argument("--out", default=None, help="JSON output path")
    p.add_argument("--tag", default="", help="suffix for the default output name")
    p.add_argument("--no-save", action="store_true", help="do not write JSON")
    args = p.parse_args(argv)
    for name in ("epochs", "threads", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.num_neg < 0:
        p.error(f"--num-neg must be >= 0, got {args.num_neg}")
    if args.l2 < 0 or args.weight_decay < 0:
        p.error("--l2 and --weight-decay must be >= 0")
    return args


def quick_limits(args: Any) -> tuple[int, int | None, int | None]:
    """(epochs, max samples per epoch, evaluated test rows) after applying ``--quick``."""
    if args.quick:
        return min(args.epochs, 2), 50_000, 300
    return args.epochs, None, None
