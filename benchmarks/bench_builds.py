"""NeuMF training speed of each build of the C core: compilers, and each SIMD level.

Usage (from the repository root):
    python benchmarks/bench_builds.py                      # gcc, clang, gcc-11 where installed
    python benchmarks/bench_builds.py --rounds 7 --cc gcc --cc clang --ref <git-commit>
    python benchmarks/bench_builds.py --quick              # smoke run

Each build is compiled from a copy of this tree (``git ls-files``) with ``CC=<compiler>`` into
its own directory, exactly as ``pip`` builds the extension (setup.py's flags, no
``-march=native``). Every (build, SIMD level) pair then trains NeuMF (factor 8, tower
[64, 32, 16, 8], batch 256, Adam, BCE) on the same pre-drawn ml-100k-sized epoch
(943 users x 1,682 items, 500,000 samples) in a fresh subprocess on one thread; the levels
come from ``NEUREC_SIMD`` (``avx512``, ``avx2``, ``baseline``: the kernels the dispatcher may
choose on this CPU). Rounds alternate over all pairs (the host is shared and noisy) and the
table reports the median samples/s per pair and its ratio to the first pair.

Building uses this environment's setuptools (``pyproject.toml`` needs >= 77).
``--ref COMMIT`` adds a build of an older commit (e.g. the last one with GCC's
``target_clones``) for a before/after row.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common  # noqa: F401  (puts the repo root on sys.path)

ROOT = Path(__file__).resolve().parents[1]

RUNNER = r"""
import sys, time, numpy as np
import neurec
from neurec.models import NeuMF
neurec.set_num_threads(1)
rng = np.random.default_rng(0)
n = int(sys.argv[1])
u = rng.integers(0, 943, n).astype(np.int64)
i = rng.integers(0, 1682, n).astype(np.int64)
y = (rng.random(n) < 0.2).astype(np.float32)
model = NeuMF(943, 1682, factors=8, layers=(64, 32, 16, 8))
model.compile(optimizer="adam", loss="binary_crossentropy")
model.fit([u[:20000], i[:20000]], y[:20000], epochs=1, batch_size=256, verbose=0, shuffle=False)
t = time.perf_counter()
model.fit([u, i], y, epochs=1, batch_size=256, verbose=0, shuffle=False)
dt = time.perf_counter() - t
cfg = neurec.show_config(mode="dicts")
print(n / dt, cfg["simd"]["level"], cfg["build"]["compiler"])
"""


def copy_tree(dst: Path, commit: str | None) -> None:
    """The tracked files of the work tree (or of ``commit``) into ``dst``."""
    if commit:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", commit], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dst)], input=archive, check=True)
        return
    files = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout
    for name in files.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dst / name)


def build(name: str, cc: str, commit: str | None, workdir: Path) -> Path:
    """Compile the extension modules in place in a copy of the tree; return its root."""
    dst = workdir / name
    dst.mkdir(parents=True)
    copy_tree(dst, commit)
    env = dict(os.environ, CC=cc)
    env.pop("NEUREC_CFLAGS", None)
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
        cwd=dst,
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"build {name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    print(f"built {name} with {cc} in {time.perf_counter() - t:.0f} s", flush=True)
    return dst


def run_once(tree: Path, simd: str | None, n: int) -> tuple[float, str]:
    env = dict(os.environ, PYTHONPATH=str(tree), NEUREC_NUM_THREADS="1")
    env.pop("NEUREC_SIMD", None)
    if simd:
        env["NEUREC_SIMD"] = simd
    runner = RUNNER
    if not (tree / "neurec" / "_config.py").exists():  # an older commit: no show_config
        runner = runner.replace(
            'cfg = neurec.show_config(mode="dicts")',
            'cfg = {"simd": {"level": "ifunc"}, "build": {"compiler": "?"}}',
        )
    out = subprocess.run(
        [sys.executable, "-c", runner, str(n)],
        cwd=tempfile.gettempdir(),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        raise SystemExit(f"run in {tree} failed:\n{out.stderr[-3000:]}")
    rate, level, _ = out.stdout.split(maxsplit=2)
    return float(rate), level


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--cc",
        action="append",
        help="compilers to build with (default: gcc, clang, gcc-11 where installed)",
    )
    ap.add_argument("--ref", help="also build this git commit with gcc (before/after)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--samples", type=int, default=500_000)
    ap.add_argument("--quick", action="store_true", help="2 rounds of 100K samples")
    ap.add_argument(
        "--levels",
        default="avx512,avx2,baseline",
        help="NEUREC_SIMD values to run each build at (comma-separated)",
    )
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.samples = 2, 100_000
    compilers = args.cc or [c for c in ("gcc", "clang", "gcc-11") if shutil.which(c)]
    info = common.machine_info()
    common.print_machine(info)
    with tempfile.TemporaryDirectory(prefix="neurec-builds-") as tmp:
        work = Path(tmp)
        trees: dict[str, Path] = {}
        if args.ref:
            trees[f"gcc @ {args.ref[:10]}"] = build("ref", "gcc", args.ref, work)
        for cc in compilers:
            trees[cc] = build(cc.replace("/", "_"), cc, None, work)
        pairs = [(name, None) for name in trees if "@" in name]
        pairs += [(name, lv) for name in trees if "@" not in name for lv in args.levels.split(",")]
        rates: dict[tuple, list[float]] = {p: [] for p in pairs}
        chosen: dict[tuple, str] = {}
        for r in range(args.rounds):
            for p in pairs:
                time.sleep(0.3)
                rate, level = run_once(trees[p[0]], p[1], args.samples)
                rates[p].append(rate)
                chosen[p] = level
            print(
                f"round {r + 1}/{args.rounds}: "
                + ", ".join(f"{p[0]}/{chosen[p]} {rates[p][-1] / 1e6:.2f}M" for p in pairs),
                flush=True,
            )
    rows = []
    for p in pairs:
        med = statistics.median(rates[p])
        # per-round ratios to the first pair: the rounds alternate, so load that comes and goes
        # hits both sides of a ratio alike
        ratio = statistics.median(a / b for a, b in zip(rates[p], rates[pairs[0]]))
        rows.append(
            [
                p[0],
                p[1] or "(ifunc)",
                chosen[p],
                f"{med / 1e6:.2f}M",
                f"{max(rates[p]) / 1e6:.2f}M",
                f"{min(rates[p]) / 1e6:.2f}-{max(rates[p]) / 1e6:.2f}M",
                f"{ratio:.2f}",
            ]
        )
    table = common.md_table(
        [
            "build",
            "NEUREC_SIMD",
            "kernels run",
            "samples/s (median)",
            "best",
            "range",
            "vs first row (median of per-round ratios)",
        ],
        rows,
    )
    print(table)
    md = (
        f"# NeuMF training speed per build (1 thread, {args.samples:,} samples, "
        f"{args.rounds} alternating rounds)\n\n{common.machine_md(info)}\n\n{table}\n"
    )
    record = {
        "pairs": [
            {"build": p[0], "simd": p[1], "level": chosen[p], "rates": rates[p]} for p in pairs
        ],
        "samples": args.samples,
        "rounds": args.rounds,
    }
    common.write_results("builds", {"machine": info, **record}, md)


if __name__ == "__main__":
    main()
