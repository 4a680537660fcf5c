"""Tests for MovieLens reading and the download/cache loader (against a local HTTP server)."""
import http.server
import io
import os
import stat
import threading
import zipfile

import numpy as np
import pytest

from neurec.data import load_movielens, read_movielens

ROWS = np.array([[1, 10, 4, 881250949], [2, 10, 3, 891717742], [1, 20, 5, 878887116],
                 [3, 30, 1, 880606923]])


def u_data(rows=ROWS):
    return "".join("\t".join(map(str, r)) + "\n" for r in rows.tolist())


def ratings_dat(rows=ROWS):
    return "".join("::".join(map(str, r)) + "\n" for r in rows.tolist())


def ratings_csv(rows=ROWS):
    body = "".join(f"{u},{i},{r:.1f},{t}\n" for u, i, r, t in rows.tolist())
    return "userId,movieId,rating,timestamp\n" + body


def check_log(log, rows=ROWS):
    np.testing.assert_array_equal(log.users, rows[:, 0])
    np.testing.assert_array_equal(log.items, rows[:, 1])
    np.testing.assert_array_equal(log.values, rows[:, 2].astype(np.float32))
    np.testing.assert_array_equal(log.timestamps, rows[:, 3])
    assert log.users.dtype == np.int64 and log.values.dtype == np.float32


@pytest.mark.parametrize("name, make", [("u.data", u_data), ("ratings.dat", ratings_dat),
                                        ("ratings.csv", ratings_csv)])
def test_read_each_layout_from_file_and_directory(tmp_path, name, make):
    nested = tmp_path / "extracted" / "ml-x"
    nested.mkdir(parents=True)
    (nested / name).write_text(make())
    check_log(read_movielens(nested / name))
    check_log(read_movielens(tmp_path / "extracted"))  # found one level down
    check_log(load_movielens(str(tmp_path / "extracted")))  # a local path never downloads


def test_csv_header_order_and_unknown_names(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("timestamp,rating,movieId,userId\n5,4.5,7,1\n")
    log = read_movielens(path)
    assert (log.users.tolist(), log.items.tolist(), log.values.tolist(),
            log.timestamps.tolist()) == ([1], [7], [4.5], [5])
    path.write_text("who,what\n1,2\n")
    with pytest.raises(ValueError, match="no user column"):
        read_movielens(path)


def test_malformed_lines_report_line_numbers(tmp_path):
    path = tmp_path / "ratings.dat"
    path.write_text("1::10::4::881250949\n2::10::3\n")
    with pytest.raises(ValueError, match=r"line 2: .*'2::10::3'"):
        read_movielens(path)
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp\n1,2,3,4\n1,2,,4\n")
    with pytest.raises(ValueError, match=r"ratings.csv, line 3: .*'1,2,,4'"):
        read_movielens(path)
    with pytest.raises(FileNotFoundError):
        read_movielens(tmp_path / "nothing-here")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="No MovieLens ratings file"):
        read_movielens(tmp_path / "empty")


# ------------------------------------------------------------------ loader
def zip_bytes(files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


@pytest.fixture
def server():
    """A local HTTP server on 127.0.0.1 serving ``routes`` (path -> bytes); counts hits."""
    routes, hits = {}, []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            body = routes.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield base, routes, hits
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def cached_files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, files in os.walk(root) for f in files)


def test_download_extract_and_reuse_cache(tmp_path, server):
    base, routes, hits = server
    routes["/ml-100k.zip"] = zip_bytes({"ml-100k/u.data": u_data(), "ml-100k/README": "x"})
    cache = tmp_path / "cache"
    log = load_movielens("ml-100k", cache_dir=cache, url=f"{base}/ml-100k.zip")
    check_log(log)
    assert hits == ["/ml-100k.zip"]
    assert cached_files(cache) == sorted([os.path.join("movielens", "ml-100k.zip"),
                                          os.path.join("movielens", "ml-100k", "ml-100k",
                                                       "README"),
                                          os.path.join("movielens", "ml-100k", "ml-100k",
                                                       "u.data")])
    check_log(load_movielens("ml-100k", cache_dir=cache, download=False))  # from the cache
    assert hits == ["/ml-100k.zip"]
    # a lost extraction is rebuilt from the cached zip, still without downloading
    os.remove(cache / "movielens" / "ml-100k" / "ml-100k" / "u.data")
    check_log(load_movielens("ml-100k", cache_dir=cache, download=False))
    assert hits == ["/ml-100k.zip"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_cache_respects_the_umask(tmp_path, server):
    """Regression: the archive came from mkstemp (0o600) and the extracted directory from
    mkdtemp (0o700) whatever the umask; both are now made as open() and mkdir() make them."""
    base, routes, _ = server
    routes["/ml-100k.zip"] = zip_bytes({"ml-100k/u.data": u_data()})
    cache = tmp_path / "cache"
    umask = os.umask(0o022)
    try:
        check_log(load_movielens("ml-100k", cache_dir=cache, url=f"{base}/ml-100k.zip"))
    finally:
        os.umask(umask)
    root = cache / "movielens"
    assert stat.S_IMODE((root / "ml-100k.zip").stat().st_mode) == 0o644
    assert stat.S_IMODE((root / "ml-100k").stat().st_mode) == 0o755
    assert sorted(os.listdir(root)) == ["ml-100k", "ml-100k.zip"]


def test_default_cache_dir_is_neurec_home(tmp_path, server, monkeypatch):
    base, routes, _ = server
    routes["/z.zip"] = zip_bytes({"ml-latest-small/ratings.csv": ratings_csv()})
    monkeypatch.setenv("NEUREC_HOME", str(tmp_path / "home"))
    check_log(load_movielens("ml-latest-small", url=f"{base}/z.zip"))
    assert (tmp_path / "home" / "movielens" / "ml-latest-small.zip").is_file()


@pytest.mark.parametrize("payload", [b"<html>not a zip</html>",
                                     zip_bytes({"ml-1m/ratings.dat": "1::2::3::4\n"})[:-30]],
                         ids=["html", "truncated-zip"])
def test_corrupt_download_raises_and_leaves_no_file(tmp_path, server, payload):
    base, routes, _ = server
    routes["/bad.zip"] = payload
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="not a zip archive|corrupt"):
        load_movielens("ml-1m", cache_dir=cache, url=f"{base}/bad.zip")
    assert cached_files(cache) == []


def test_http_error_raises_connection_error_with_hint(tmp_path, server):
    base, _, _ = server
    cache = tmp_path / "cache"
    with pytest.raises(ConnectionError) as info:
        load_movielens("ml-1m", cache_dir=cache, url=f"{base}/missing.zip")
    assert "load_movielens('/path/to/ml-1m')" in str(info.value)
    assert cached_files(cache) == []


def test_archive_without_ratings_is_rejected(tmp_path, server):
    base, routes, _ = server
    routes["/empty.zip"] = zip_bytes({"ml-1m/README": "nothing"})
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="holds no MovieLens ratings file"):
        load_movielens("ml-1m", cache_dir=cache, url=f"{base}/empty.zip")
    assert cached_files(cache) == []


def test_offline_without_cache_explains_local_path(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_movielens("ml-100k", cache_dir=tmp_path, download=False)
    assert "load_movielens('/path/to/ml-100k')" in str(info.value)
    with pytest.raises(ValueError, match="MovieLens data set name"):
        load_movielens("netflix-prize", cache_dir=tmp_path)
