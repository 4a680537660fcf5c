"""Measure the hostile-input cases of the README's "Security and robustness" table.

Each case runs in a fresh subprocess; the report gives its outcome (the exception raised),
wall time and peak RSS (``ru_maxrss`` of the child), so a case that crashes (signal), hangs
(timeout) or balloons shows up as such.

    python benchmarks/robustness.py            # all cases, a Markdown table on stdout
    python benchmarks/robustness.py --fuzz 20  # plus the fuzz suite at 20x its CI size

Linux (``ru_maxrss`` in KiB). Needs ~1.1 GB of free disk for the 1 GiB-line CSV.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRELUDE = textwrap.dedent("""
    import io, json, os, sys, time, zipfile
    import numpy as np
    import neurec
    from neurec.models import GMF, MF, load_model
    from neurec.data import InteractionLog
    D = sys.argv[1]
    def small_model():
        m = GMF(20, 15, factors=4)
        m.compile(optimizer="adam", loss="binary_crossentropy")
        rng = np.random.default_rng(0)
        x = [rng.integers(0, 20, 200), rng.integers(0, 15, 200)]
        m.fit(x, (rng.random(200) < 0.5).astype(np.float32), epochs=1, verbose=0)
        p = os.path.join(D, "m.neurec"); m.save(p)
        with zipfile.ZipFile(p) as z:
            return {n: z.read(n) for n in z.namelist()}
    def write_zip(path, items, compression=zipfile.ZIP_STORED):
        with zipfile.ZipFile(path, "w", compression=compression) as z:
            for n, b in items:
                z.writestr(n, b)
    def outcome(fn):
        import resource
        r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            fn()
            print("OUTCOME ok")
        except BaseException as e:
            print("OUTCOME", type(e).__name__ + ": " + str(e)[:90].replace("|", "/"))
        print("RSS", r0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")

CASES = {
    "8 KB model file declaring Embedding(input_dim=100_000_000)": """
        f = small_model(); cfg = json.loads(f["config.json"])
        emb = next(l for l in cfg["model"]["layers"] if l["class_name"] == "Embedding")
        emb["config"]["input_dim"] = 100_000_000
        f["config.json"] = json.dumps(cfg).encode(); p = os.path.join(D, "big.neurec")
        write_zip(p, f.items()); print("SIZE", os.path.getsize(p))
        outcome(lambda: load_model(p))
    """,
    ".npy header declaring 400 M floats in 200 bytes": """
        f = small_model()
        h = b"{'descr': '<f4', 'fortran_order': False, 'shape': (100000000, 4), }"
        h += b" " * (118 - len(h)) + b"\\n"
        magic = b"\\x93NUMPY\\x01\\x00" + len(h).to_bytes(2, "little")
        f["weights/00000.npy"] = magic + h + bytes(64)
        p = os.path.join(D, "hdr.neurec"); write_zip(p, f.items())
        outcome(lambda: load_model(p))
    """,
    "zip bomb: 1 GiB of zeros deflated into a 1 MB member": """
        f = small_model(); p = os.path.join(D, "bomb.neurec")
        with zipfile.ZipFile(p, "w") as z:
            for n, b in f.items(): z.writestr(n, b)
        with zipfile.ZipFile(p, "a", compression=zipfile.ZIP_DEFLATED) as z:
            with z.open("optimizer/00099.npy", "w", force_zip64=True) as w:
                block = bytes(1 << 24)
                for _ in range(64): w.write(block)
        print("SIZE", os.path.getsize(p))
        outcome(lambda: load_model(p))
    """,
    "two config.json members": """
        f = small_model(); p = os.path.join(D, "dup.neurec")
        import warnings; warnings.simplefilter("ignore")
        write_zip(p, list(f.items()) + [("config.json", f["config.json"])])
        outcome(lambda: load_model(p))
    """,
    "config.json nested 200,000 deep": """
        f = small_model(); f["config.json"] = b"[" * 200000 + b"]" * 200000
        p = os.path.join(D, "deep.neurec"); write_zip(p, f.items())
        outcome(lambda: load_model(p))
    """,
    "optimizer iterations = -70000 (was SIGSEGV at fit)": """
        f = small_model(); b = io.BytesIO(); np.save(b, np.array([-70000], np.int64))
        f["optimizer/00000.npy"] = b.getvalue()
        p = os.path.join(D, "neg.neurec"); write_zip(p, f.items())
        outcome(lambda: load_model(p))
    """,
    "fit(batch_size=2**62) on 200 samples": """
        m = GMF(20, 15, factors=4); m.compile(optimizer="adam", loss="binary_crossentropy")
        x = [np.arange(200) % 20, np.arange(200) % 15]
        outcome(lambda: m.fit(x, np.ones(200, np.float32), batch_size=2**62, verbose=0))
    """,
    "fit(batch_size=10**7) on 2,000 samples": """
        m = GMF(20, 15, factors=4); m.compile(optimizer="adam", loss="binary_crossentropy")
        x = [np.arange(2000) % 20, np.arange(2000) % 15]
        outcome(lambda: m.fit(x, np.ones(2000, np.float32), batch_size=10**7, verbose=0))
    """,
    "set_num_threads(300) + hogwild fit": """
        neurec.set_num_threads(300)
        m = GMF(50, 40, factors=4)
        m.compile(optimizer="adam", loss="binary_crossentropy", hogwild=True)
        x = [np.arange(9600) % 50, np.arange(9600) % 40]
        outcome(lambda: m.fit(x, np.ones(9600, np.float32), batch_size=8, verbose=0))
    """,
    "CSV with one 64 MiB line": """
        p = os.path.join(D, "l64.csv")
        with open(p, "wb") as f:
            f.write(b"user,item\\n1,"); f.write(b"9" * (64 << 20)); f.write(b"\\n")
        outcome(lambda: InteractionLog.read_csv(p))
    """,
    "CSV with one 1 GiB line": """
        p = os.path.join(D, "l1g.csv")
        with open(p, "wb") as f:
            f.write(b"user,item\\n1,")
            for _ in range(64): f.write(b"9" * (16 << 20))
            f.write(b"\\n")
        outcome(lambda: InteractionLog.read_csv(p))
    """,
    "CSV ids above int64": """
        p = os.path.join(D, "big.csv")
        open(p, "w").write("user,item\\n9223372036854775808,1\\n9223372036854775809,2\\n")
        outcome(lambda: InteractionLog.read_csv(p))
    """,
    "Ctrl-C 0.3 s into a 10 s predict (2M samples, Dense 512x512)": """
        import _thread, threading
        from neurec.layers import Input, Embedding, Flatten, Dense
        from neurec.models import Model
        u = Input(shape=(1,)); h = Flatten()(Embedding(10, 64)(u))
        h = Dense(512, activation="relu")(Dense(512, activation="relu")(h))
        m = Model(u, Dense(1)(h)); x = np.zeros(2_000_000, np.int64)
        def go():
            threading.Timer(0.3, _thread.interrupt_main).start(); t0 = time.perf_counter()
            try:
                m.predict(x)
            except KeyboardInterrupt:
                print("LATENCY", time.perf_counter() - t0 - 0.3)
                raise
        outcome(go)
    """,
    "Ctrl-C 0.3 s into a 6.5 s recommend (20K users x 200K items, MF 64)": """
        import _thread, threading
        m = MF(20_000, 200_000, factors=64)
        def go():
            threading.Timer(0.3, _thread.interrupt_main).start(); t0 = time.perf_counter()
            try:
                m.recommend(np.arange(20_000), k=10)
            except KeyboardInterrupt:
                print("LATENCY", time.perf_counter() - t0 - 0.3)
                raise
        outcome(go)
    """,
    "300 fit/predict/save/load/recommend cycles (RSS growth after 30 warm-up)": """
        import gc
        sys.path.insert(0, "tests"); from test_leaks import _cycle, _rss
        rng = np.random.default_rng(0)
        x = [rng.integers(0, 50, 2000), rng.integers(0, 40, 2000)]
        y = (rng.random(2000) < 0.5).astype(np.float32); p = os.path.join(D, "m.neurec")
        for i in range(30): _cycle(p, x, y, i); gc.collect()
        r0 = _rss()
        def go():
            for i in range(300): _cycle(p, x, y, i); gc.collect()
            print("GROWTH", (_rss() - r0) / 2**20)
        outcome(go)
    """,
}


def run_case(code: str, timeout: float = 300.0) -> dict:
    with tempfile.TemporaryDirectory() as d:
        script = PRELUDE + textwrap.dedent(code)
        t0 = time.perf_counter()
        try:
            r = subprocess.run(
                [sys.executable, "-c", script, d],
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=ROOT,
            )
        except subprocess.TimeoutExpired:
            return {"outcome": f"HANG (> {timeout:.0f} s)", "seconds": timeout, "rss": None}
        dt = time.perf_counter() - t0
        lines = r.stdout.splitlines()
        out = next((l[8:] for l in lines if l.startswith("OUTCOME ")), None)
        rss = next(([int(v) for v in l.split()[1:]] for l in lines if l.startswith("RSS ")), None)
        for key in ("LATENCY", "GROWTH"):
            extra = next((l.split()[1] for l in lines if l.startswith(key + " ")), None)
            if extra is not None:
                out = (
                    f"{out} ({key.lower()} {float(extra):.2f}{' s' if key == 'LATENCY' else ' MB'})"
                )
        if r.returncode != 0:
            out = f"CRASH (exit {r.returncode}): {r.stderr.strip().splitlines()[-1:]}"
        return {"outcome": out, "seconds": dt, "rss": rss}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fuzz", type=int, default=0, help="also run tests/test_fuzz.py at this scale")
    args = ap.parse_args()
    print("| case | outcome | time (process) | peak RSS before -> after the call |")
    print("|---|---|---|---|")
    for name, code in CASES.items():
        r = run_case(code)
        rss = f"{r['rss'][0] / 1024:.0f} -> {r['rss'][1] / 1024:.0f} MB" if r["rss"] else "-"
        print(f"| {name} | {r['outcome']} | {r['seconds']:.2f} s | {rss} |", flush=True)
    if args.fuzz:
        env = {**os.environ, "NEUREC_FUZZ_EXAMPLES": str(args.fuzz)}
        runner = (
            "import re, resource, sys, pytest\n"
            "rc = pytest.main(['-q', '-p', 'no:cacheprovider', '--hypothesis-show-statistics',"
            " 'tests/test_fuzz.py'])\n"
            "print('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
            "sys.exit(int(rc))\n"
        )
        t0 = time.perf_counter()
        r = subprocess.run(
            [sys.executable, "-c", runner], capture_output=True, text=True, env=env, cwd=ROOT
        )
        dt = time.perf_counter() - t0
        counts = [
            tuple(int(v) for v in m) for m in re.findall(r"(\d+) passing, (\d+) failing", r.stdout)
        ]
        rss = next((int(l.split()[1]) for l in r.stdout.splitlines() if l.startswith("RSS ")), 0)
        print(
            f"\nfuzz x{args.fuzz}: {sum(c[0] for c in counts)} passing cases, "
            f"{sum(c[1] for c in counts)} failing, pytest exit {r.returncode}, {dt:.0f} s, "
            f"peak RSS {rss / 1024:.0f} MB"
        )
        print("\n".join(l for l in r.stdout.splitlines() if "passed" in l or "Warning" in l))


if __name__ == "__main__":
    main()
