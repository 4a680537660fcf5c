"""Leak test (issue 9): RSS stays flat over hundreds of fit/predict/save/load cycles."""
import gc
import os
import sys

import numpy as np
import pytest

from neurec.models import GMF, load_model

CYCLES = 300
# Python's allocator, NumPy's caches and the page cache move by a few MB; a leak of even one
# tiny model per cycle (weights + Adam state + plan scratch, ~30 KB) would add ~9 MB.
BOUND_BYTES = 4 * 2**20


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _cycle(path, x, y, seed):
    m = GMF(50, 40, factors=8)
    m.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy", "auc"])
    m.fit(x, y, epochs=1, batch_size=64, verbose=0, seed=seed)
    m.predict(x)
    m.save(path)
    m2 = load_model(path)
    m2.predict(x)
    m2.fit(x, y, epochs=1, batch_size=64, verbose=0, seed=seed)
    m2.recommend([0, 1, 2], k=5)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
@pytest.mark.skipif("asan" in os.environ.get("LD_PRELOAD", ""),
                    reason="ASan's quarantine holds freed memory: RSS is not a leak signal")
def test_rss_is_flat_over_300_fit_predict_save_load_cycles(tmp_path):
    rng = np.random.default_rng(0)
    x = [rng.integers(0, 50, 2000), rng.integers(0, 40, 2000)]
    y = (rng.random(2000) < 0.5).astype(np.float32)
    path = tmp_path / "m.neurec"
    # A model's layers and nodes reference each other, so a dropped model (and the C plan
    # scratch it owns) is freed by the cycle collector, not at once; without gc.collect()
    # RSS climbs ~10 MB per 100 cycles until a full collection runs, then plateaus.
    # Collecting every cycle makes RSS a leak signal: anything still growing is unreachable
    # memory that nothing will ever free.
    for i in range(30):  # warm-up: imports, caches, the pool threads' malloc arenas
        _cycle(path, x, y, i)
        gc.collect()
    before = _rss()
    for i in range(CYCLES):
        _cycle(path, x, y, i)
        gc.collect()
    growth = _rss() - before
    assert growth < BOUND_BYTES, f"RSS grew by {growth / 2**20:.1f} MB over {CYCLES} cycles"
