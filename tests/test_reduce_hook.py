"""``Plan.set_reduce_hook``: the Python face of the C core's reduce hook (nr_plan.h), the seam
where a data-parallel fit combines the gradients of several processes.

Every expectation is derived from what an unhooked fit does: a hook that doubles every
gradient trains as SGD with twice the learning rate (scaling by 2 is exact), a hook that
zeroes them leaves SGD's weights alone, a hook that does nothing changes nothing, and a
replaced table part moves exactly the rows it names.
"""
import re

import numpy as np
import pytest

import neurec
from neurec import optimizers
from neurec.layers import Dense, Embedding, Flatten, Input, Multiply
from neurec.models import Model
from test_rowsum import _reference  # the merge of nr_rowsum.h in NumPy


def gmf(nu=30, ni=20, k=4):
    u, i = Input(shape=(1,), name="user"), Input(shape=(1,), name="item")
    g = Multiply()([Flatten()(Embedding(nu, k, name="users")(u)),
                    Flatten()(Embedding(ni, k, name="items")(i))])
    return Model([u, i], Dense(1, activation="sigmoid", name="out")(g))


def data(n=240, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 30, n), rng.integers(0, 20, n)], (rng.random(n) < 0.3).astype(np.float32)


def trained(hook=None, lr=0.1, sparse=True, threads=1, batch_size=80, epochs=1, shuffle=True,
            after=None, built=None):
    """A fresh GMF (same initial weights every call) after fit, with ``hook`` (and the apply
    hook ``after``) set on its plan; ``built`` receives the model before fit. With two
    threads the factors are wide enough for the C core to use both (its grain)."""
    neurec.utils.set_random_seed(7)
    model = gmf(k=4 if threads == 1 else 256)
    model.compile(optimizer=optimizers.SGD(lr, sparse_updates=sparse), loss="binary_crossentropy")
    if built is not None:
        built(model)
    x, y = data()
    old = neurec.get_num_threads()
    neurec.set_num_threads(threads)
    try:
        if hook is not None:
            model._get_plan().set_reduce_hook(hook, after=after)
        model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, seed=3, shuffle=shuffle)
    finally:
        neurec.set_num_threads(old)
    return model


def same(a, b):
    return all(np.array_equal(p, q) for p, q in zip(a.get_weights(), b.get_weights()))


def scale(factor):
    def hook(g):
        g.dense[:] *= factor
        for k in range(g.n_parts):
            g.part(k)[4][:] *= factor
    return hook


@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize("threads", [1, 2])
def test_a_hook_that_does_nothing_changes_nothing(sparse, threads):
    assert same(trained(lambda g: None, sparse=sparse, threads=threads),
                trained(sparse=sparse, threads=threads))


@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize("threads", [1, 2])
def test_the_views_are_the_gradients_applied(sparse, threads):
    """Doubling every value the hook sees trains as twice the learning rate: the dense view
    and the table parts cover every gradient the optimizer applies, without a copy."""
    parts = []
    trained(lambda g: parts.append(g.n_parts), threads=threads)
    assert set(parts) == {2 * threads}  # one part per thread and table
    assert same(trained(scale(2.0), lr=0.1, sparse=sparse, threads=threads),
                trained(lr=0.2, sparse=sparse, threads=threads))
    start = trained(lr=0.1, sparse=sparse, threads=threads, epochs=0)
    assert same(trained(scale(0.0), sparse=sparse, threads=threads), start)


def test_what_the_hook_sees():
    seen = []

    def hook(g):
        parts = [g.part(k) for k in range(g.n_parts)]
        seen.append((g.step, g.n_samples, g.n_tables, g.n_parts, g.dense.size,
                     g.dense_offset.tolist(), parts[0][0], parts[0][1],
                     sorted(np.concatenate([p[3] for p in parts if p[0] == parts[0][0]]).tolist())))

    model = trained(hook, batch_size=100, shuffle=False)  # 240 samples: 100, 100, 40
    assert [s[0] for s in seen] == [1, 2, 3]
    assert [s[1] for s in seen] == [100, 100, 40]
    assert all(s[2] == 2 and s[3] == 2 for s in seen)  # one thread, two tables
    assert all(s[4] == 5 and s[5] == [-1, -1, 0, 4] for s in seen)  # kernel 4x1, bias 1
    assert all(s[6] == 0 and s[7] == 4 for s in seen)  # part 0: the users table, 4 columns
    x, _ = data()
    assert seen[0][8] == sorted(set(x[0][:100].tolist()))  # the users of the first batch
    assert seen[2][8] == sorted(set(x[0][200:].tolist()))
    assert model.optimizer.iterations == 3


def test_a_replaced_part_moves_exactly_its_rows():
    """set_part hands the apply phase other rows and gradients (what an allgather of the
    rows every process saw does): SGD moves those rows by -lr * grad, and no other row."""
    def hook(g):
        g.dense[:] = 0.0
        for k in range(g.n_parts):
            param, cols = g.part(k)[:2]
            g.set_part(k, np.array([3, 5], dtype=np.int64),
                       np.full((2, cols), 1.0 if param == 0 else 2.0, dtype=np.float32))

    before = trained(lr=0.1, epochs=0)
    after = trained(hook, lr=0.1, batch_size=240)  # one batch
    for w0, w1, g in zip(before.get_weights(), after.get_weights(), [1.0, 2.0, 0.0, 0.0]):
        want = w0.copy()
        if g:
            want[[3, 5]] -= np.float32(0.1) * np.float32(g)
        np.testing.assert_array_equal(w1, want)


@pytest.mark.parametrize("in_apply_hook", [False, True])
def test_an_exception_in_the_hook_stops_fit_with_it(in_apply_hook):
    """From the reduce hook, the failing batch is neither applied nor counted; from the
    apply hook (after=), it was applied and is counted."""
    def hook(g):
        if g.step == 2:
            raise ZeroDivisionError("from the hook")

    x, y = data()
    neurec.utils.set_random_seed(7)
    model = gmf()
    model.compile(optimizer=optimizers.SGD(0.1), loss="binary_crossentropy")
    plan = model._get_plan()
    if in_apply_hook:
        plan.set_reduce_hook(lambda g: None, after=hook)
    else:
        plan.set_reduce_hook(hook)
    with pytest.raises(ZeroDivisionError, match="from the hook"):
        model.fit(x, y, batch_size=48, epochs=1, verbose=0, seed=3)
    assert model.optimizer.iterations == (2 if in_apply_hook else 1)
    with pytest.raises(TypeError, match="callable or None"):
        plan.set_reduce_hook(lambda g: None, after=3)
    plan.set_reduce_hook(None)
    model.fit(x, y, batch_size=48, epochs=1, verbose=0, seed=3)
    assert model.optimizer.iterations == (7 if in_apply_hook else 6)


def test_views_do_not_outlive_the_call():
    kept = []
    x, y = data()
    model = gmf()
    model.compile(optimizer=optimizers.SGD(0.1), loss="binary_crossentropy")
    plan = model._get_plan()
    plan.set_reduce_hook(lambda g: kept.append(g.dense[:2]))
    with pytest.raises(RuntimeError, match="kept a view"):
        model.fit(x, y, batch_size=48, epochs=1, verbose=0, seed=3)
    kept.clear()
    plan.set_reduce_hook(kept.append)
    with pytest.raises(RuntimeError, match="kept a view"):
        model.fit(x, y, batch_size=48, epochs=1, verbose=0, seed=3)
    with pytest.raises(RuntimeError, match="during the reduce hook's call only"):
        _ = kept[0].dense
    plan.set_reduce_hook(None)


def test_bad_calls_raise():
    x, y = data()
    model = gmf()
    model.compile(optimizer=optimizers.SGD(0.1), loss="binary_crossentropy")
    plan = model._get_plan()
    with pytest.raises(TypeError, match="callable or None"):
        plan.set_reduce_hook(3)
    errors = []

    def check(fn, exc, match):
        def hook(g):
            try:
                fn(g)
            except exc as e:
                assert match in str(e), e
                errors.append(match)
        return hook

    cases = [
        (lambda g: g.part(g.n_parts), IndexError, "outside [0, 2)"),
        (lambda g: g.set_part(0, np.array([30]), np.zeros(4, np.float32)), IndexError,
         "rows[0] = 30 is outside [0, 30)"),
        (lambda g: g.set_part(0, np.array([1]), np.zeros(3, np.float32)), ValueError,
         "grad has 3 values, expected len(rows) * 4 = 4"),
        (lambda g: g.set_part(0, np.array([1], np.int32), np.zeros(4, np.float32)), TypeError,
         "rows"),
        (lambda g: g.set_part(0, np.array([1]), np.zeros(4)), TypeError, "grad"),
        (lambda g: plan.set_reduce_hook(None), RuntimeError, "during its call"),
    ]
    for fn, exc, match in cases:
        plan.set_reduce_hook(check(fn, exc, match))
        model.fit(x, y, batch_size=240, epochs=1, verbose=0, seed=3)
    assert len(errors) == len(cases)
    dense = gmf()
    dense.compile(optimizer=optimizers.SGD(0.1, sparse_updates=False), loss="binary_crossentropy")
    dense._get_plan().set_reduce_hook(check(
        lambda g: g.set_part(0, np.array([1]), np.zeros(4, np.float32)), ValueError,
        "dense updates"))
    dense.fit(x, y, batch_size=240, epochs=1, verbose=0, seed=3)
    assert errors[-1] == "dense updates"
    hog = gmf()
    hog.compile(optimizer=optimizers.SGD(0.1), loss="binary_crossentropy", hogwild=True)
    with pytest.raises(ValueError, match="hogwild=False"):
        hog._get_plan().set_reduce_hook(lambda g: None)


# -- pack_rows / merge_rows: the exchange's packing and merging, in C ----------------------
@pytest.mark.parametrize("threads", [1, 2])
def test_pack_rows_packs_what_the_parts_hold(threads):
    got = []

    def hook(g):
        tables = sorted({g.part(k)[0] for k in range(g.n_parts)})
        packed, counts = g.pack_rows(np.array(tables[::-1]))  # any order of tables
        want = []
        for param in tables[::-1]:
            parts = [g.part(k) for k in range(g.n_parts) if g.part(k)[0] == param]
            ids = np.concatenate([p[3] for p in parts])
            grad = np.concatenate([p[4].reshape(-1) for p in parts])
            want.append((ids.size, np.concatenate([ids.view(np.uint32), grad.view(np.uint32)])))
        assert counts.tolist() == [n for n, _ in want]
        assert np.array_equal(packed, np.concatenate([w for _, w in want]))
        none, zero = g.pack_rows(np.array(tables), empty=True)
        got.append((none.size, zero.tolist()))
        room = np.full(packed.size + 5, 7, np.uint32)  # the exchange's kept buffer
        into, again = g.pack_rows(np.array(tables[::-1]), out=room)
        assert into is room and np.array_equal(room[:packed.size], packed)
        assert (room[packed.size:] == 7).all() and np.array_equal(again, counts)
        small = np.zeros(packed.size - 1, np.uint32)
        fresh, _ = g.pack_rows(np.array(tables[::-1]), out=small)
        assert fresh is not small and np.array_equal(fresh, packed) and not small.any()
        with pytest.raises(ValueError, match="out must be a writable C-contiguous uint32"):
            g.pack_rows(np.array(tables), out=np.zeros(packed.size, np.int32))

    trained(hook, threads=threads)
    assert got == [(0, [0, 0])] * 3


@pytest.mark.parametrize("threads", [1, 2])
def test_merge_rows_applies_the_union_of_every_sender(threads):
    """A second sender's rows merged in C train exactly as the NumPy union handed to
    set_part: the same ids in the same order, the same bits, every batch (the row index
    the merge reuses is clean after each)."""
    rng = np.random.default_rng(5)
    others = {}

    def other(g, param, cols):  # the "other rank's" rows of this step: fixed per step
        key = (g.step, param)
        if key not in others:
            ids = rng.choice(30 if param == 0 else 20, 7, replace=False).astype(np.int64)
            others[key] = (ids, rng.normal(size=(7, cols)).astype(np.float32))
        return others[key]

    def blocks(g):
        out = {}
        for k in range(g.n_parts):
            param, cols, _, rows, grad = g.part(k)
            mine = out.setdefault(param, [cols, [], []])
            mine[1].append(rows.copy())
            mine[2].append(grad.copy())
        return {p: (c, (np.concatenate(r), np.concatenate(gr)), other(g, p, c))
                for p, (c, r, gr) in out.items()}

    weights = np.array([0.375, 0.625])

    def in_c(g):
        before = blocks(g)  # this rank's own rows, before the merge replaces them
        tables = np.array(sorted(before), np.int64)
        packed, counts = g.pack_rows(tables)
        theirs = [other(g, int(p), g.part(int(t))[1]) for t, p in enumerate(tables)]
        words = np.concatenate([np.concatenate([i.view(np.uint32), v.reshape(-1).view(np.uint32)])
                                for i, v in theirs])
        message = np.concatenate([packed, words])
        n_rows = np.array([counts, [i.size for i, _ in theirs]], np.int64)
        g.merge_rows(tables, message.view(np.int32), np.array([0, packed.size], np.int64),
                     n_rows, weights)
        for param, (cols, mine, theirs1) in before.items():
            ids, want = _reference([mine, theirs1], weights, cols)
            got = [g.part(k) for k in range(g.n_parts) if g.part(k)[0] == param]
            assert np.array_equal(np.concatenate([p[3] for p in got]), ids)
            assert np.concatenate([p[4] for p in got]).tobytes() == want.astype(np.float32).tobytes()

    def in_numpy(g):
        for param, (cols, mine, theirs) in blocks(g).items():
            ids, want = _reference([mine, theirs], weights, cols)
            ks = [k for k in range(g.n_parts) if g.part(k)[0] == param]
            for j, k in enumerate(ks):
                lo, hi = ids.size * j // len(ks), ids.size * (j + 1) // len(ks)
                g.set_part(k, ids[lo:hi], want[lo:hi].astype(np.float32))

    a = trained(in_c, threads=threads, epochs=2)
    others_c = dict(others)
    b = trained(in_numpy, threads=threads, epochs=2)
    assert others == others_c and len(others) == 12
    assert same(a, b)


def test_merge_rows_bad_arguments():
    errors = []

    def hook(g):
        tables = np.array([0, 1], np.int64)
        packed, counts = g.pack_rows(tables)
        n_rows = counts.reshape(1, 2)
        bad_id = packed.copy()
        bad_id[:2] = np.array([30], np.int64).view(np.uint32)  # table 0 has 30 rows
        for call, exc, match in [
            (lambda: g.merge_rows(tables, bad_id.view(np.int32), np.zeros(1, np.int64), n_rows,
                                  np.ones(1)), IndexError, "outside [0, 30)"),
            (lambda: g.merge_rows(tables, packed[:-1].view(np.int32), np.zeros(1, np.int64),
                                  n_rows, np.ones(1)), ValueError, "outside message"),
            (lambda: g.merge_rows(tables, packed.view(np.int32), np.zeros(1, np.int64), counts,
                                  np.ones(1)), ValueError, "counts must be 2-dimensional"),
            (lambda: g.merge_rows(tables, packed.view(np.int32), np.zeros(2, np.int64), n_rows,
                                  np.ones(2)), ValueError, "(senders, tables)"),
            (lambda: g.pack_rows(np.array([7], np.int64)), ValueError, "not an embedding table"),
        ]:
            with pytest.raises(exc, match=re.escape(match)):
                call()
            errors.append(match)
        g.merge_rows(tables, packed.view(np.int32), np.zeros(1, np.int64), n_rows, np.ones(1))

    before = trained(lambda g: None)
    assert same(trained(hook, batch_size=240), trained(lambda g: None, batch_size=240))
    assert len(errors) == 5 and before is not None


@pytest.mark.parametrize("threads", [1, 2])
def test_rows_by_owner_and_new_values_round_trip(threads):
    """pack_rows(owners=P) groups the rows by owner (id % P); after the apply phase,
    pack_values holds the rows just updated with their new values, and unpack_values
    writes another sender's block into the tables (and refuses a bad one)."""
    checked = []

    def hook(g):
        tables = np.array(sorted({g.part(k)[0] for k in range(g.n_parts)}), np.int64)
        plain, counts = g.pack_rows(tables)
        packed, by_owner = g.pack_rows(tables, owners=3)
        assert by_owner.shape == (3, tables.size) and (by_owner.sum(axis=0) == counts).all()
        at, seen = 0, {int(p): [] for p in tables}
        for d in range(3):
            for j, param in enumerate(tables.tolist()):
                n, cols = int(by_owner[d, j]), g.part(j)[1]
                ids = packed[at:at + 2 * n].view(np.int64)
                grad = packed[at + 2 * n:at + n * (cols + 2)].view(np.float32).reshape(n, cols)
                assert (ids % 3 == d).all()
                seen[param] += list(zip(ids.tolist(), grad.tolist()))
                at += n * (cols + 2)
        assert at == packed.size == plain.size
        for param in seen:
            parts = [g.part(k) for k in range(g.n_parts) if g.part(k)[0] == param]
            want = {int(i): r.tolist() for p in parts for i, r in zip(p[3], p[4])}
            assert dict(seen[param]) == want

    def after(g):
        tables = np.array(sorted({g.part(k)[0] for k in range(g.n_parts)}), np.int64)
        msg = g.pack_values(tables)
        n = msg[:2 * tables.size].view(np.int64)
        at = 2 * tables.size
        model = held[0]
        weights = model.get_weights()
        for j, param in enumerate(tables.tolist()):
            cols = g.part(j)[1]
            ids = msg[at:at + 2 * n[j]].view(np.int64)
            vals = msg[at + 2 * n[j]:at + n[j] * (cols + 2)].view(np.float32).reshape(-1, cols)
            rows = np.concatenate([g.part(k)[3] for k in range(g.n_parts)
                                   if g.part(k)[0] == param])
            assert np.array_equal(ids, rows)
            assert np.array_equal(vals, weights[param][ids])
            at += int(n[j]) * (cols + 2)
        # another sender's block: its rows' values + 1, written by unpack_values
        other = msg.copy()
        at = 2 * tables.size
        for j in range(tables.size):
            cols = g.part(j)[1]
            vals = other[at + 2 * n[j]:at + n[j] * (cols + 2)].view(np.float32)
            vals += 1.0
            at += int(n[j]) * (cols + 2)
        both = np.concatenate([msg, other])
        g.unpack_values(tables, both.view(np.int32), np.array([0, msg.size]), msg.size, 0)
        for param in tables.tolist():
            rows = np.concatenate([g.part(k)[3] for k in range(g.n_parts)
                                   if g.part(k)[0] == param])
            got = model.get_weights()[param]
            np.testing.assert_array_equal(got[rows], weights[param][rows] + 1.0)
        bad = other.copy()
        bad[2 * tables.size:2 * tables.size + 2] = np.array([10 ** 6], np.int64).view(np.uint32)
        with pytest.raises(IndexError, match="outside"):
            g.unpack_values(tables, bad.view(np.int32), np.array([0]), msg.size, 1)
        big = other.copy()
        big[:2] = np.array([10 ** 6], np.int64).view(np.uint32)
        with pytest.raises(ValueError, match="more than its"):
            g.unpack_values(tables, big.view(np.int32), np.array([0]), msg.size, 1)
        with pytest.raises(ValueError, match="outside message"):
            g.unpack_values(tables, msg.view(np.int32), np.array([4]), msg.size, 1)
        checked.append(g.step)

    held = []
    trained(hook, threads=threads, after=after, built=held.append)
    assert checked == [1, 2, 3]
