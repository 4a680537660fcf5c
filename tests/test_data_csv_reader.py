"""The CSV reader's block-by-block fast path (neurec/data/csv_reader.py).

The fast path splits and parses a file in blocks of whole lines; whatever the block
size, the log read (or the error raised) must be the one of a single block holding the
whole file: a row, a blank line, a CRLF or a quote on a block boundary changes nothing.
"""
import random

import pytest

from neurec.data import InteractionLog, csv_reader

ROWS = ["a,b,c", "1,2", "1,2,3,4", "-,1,2", " ,1,2", "1,,2", "x1,2,3", "\"1\",2,3",
        "9223372036854775808,1,2", "1,2,2020-01-01", "1,2,1e5", "7,8,9.5", ""]


def _text(rnd: random.Random) -> str:
    rows = []
    for _ in range(rnd.randint(0, 30)):
        if rnd.random() < 0.1:
            rows.append(rnd.choice(ROWS))           # a defect (or a blank line)
        else:
            rows.append(f"{rnd.randint(-5, 10 ** rnd.randint(1, 19))},{rnd.randint(0, 99)},"
                        f"{rnd.randint(0, 10 ** 9)}")
    eol = rnd.choice(["\n", "\n", "\r\n", "\r"])
    text = eol.join(rows) + (eol if rnd.random() < 0.7 else "")
    return ("\ufeff" if rnd.random() < 0.1 else "") + text


def _read(path, **kw):
    try:
        log = InteractionLog.read_csv(path, verbose=0, **kw)
    except ValueError as e:
        return "error", str(e)
    return ("log", log.users.tolist(), log.users.dtype.str, log.items.tolist(),
            None if log.timestamps is None else log.timestamps.tolist())


@pytest.mark.parametrize("seed", range(4))
def test_any_block_size_reads_as_one_block(seed, tmp_path, monkeypatch):
    rnd = random.Random(seed)
    path = tmp_path / "log.csv"
    outcomes = set()
    for _ in range(60):
        header = rnd.random() < 0.5
        path.write_text(("user,item,t\n" if header else "") + _text(rnd), newline="")
        kw = {"header": header}
        if rnd.random() < 0.5:
            kw["time_col"] = "t" if header else 2
        monkeypatch.setattr(csv_reader, "_SCAN_BLOCK", 1 << 24)
        whole = _read(path, **kw)
        monkeypatch.setattr(csv_reader, "_SCAN_BLOCK", rnd.choice([3, 7, 16, 41]))
        assert _read(path, **kw) == whole, path.read_bytes()
        outcomes.add(whole[0])
    assert outcomes == {"log", "error"}              # both kinds were compared


def test_blank_lines_before_the_first_row_span_blocks(tmp_path, monkeypatch):
    path = tmp_path / "log.csv"
    path.write_text("\n" * 50 + "1,2\n3,4\n\n5,6\n")
    monkeypatch.setattr(csv_reader, "_SCAN_BLOCK", 4)
    log = InteractionLog.read_csv(path, header=False, verbose=0)
    assert log.users.tolist() == [1, 3, 5] and log.items.tolist() == [2, 4, 6]
    path.write_text("\n" * 50 + "1,2\n3,4,5\n")
    with pytest.raises(ValueError, match=r"line 52: malformed row \(expected 2 fields"):
        InteractionLog.read_csv(path, header=False, verbose=0)
