"""CIFAR-10 download, checksum and safe unpacking, against a local HTTP server on 127.0.0.1.

Each test builds a small archive in the official layout (``cifar-10-batches-py/data_batch_1``
.. ``test_batch``, pickled dicts) and serves it from an ``http.server`` thread. Nothing leaves
the machine.
"""

import hashlib
import http.server
import io
import pickle
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from scratchnet.datasets import (
    CorruptDataError,
    DataNotFoundError,
    channel_mean_std,
    cifar,
    load_cifar10,
    standardize,
)
from scratchnet.datasets.archive import safe_extract

SHARED_CIFAR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-subset"
NAMES = cifar.TRAIN_BATCHES + cifar.TEST_BATCHES


def batch_bytes(n, seed):
    rng = np.random.default_rng(seed)
    batch = {b"batch_label": b"test", b"labels": rng.integers(0, 10, size=n).tolist(),
             b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8), b"filenames": [b"x.png"] * n}
    return pickle.dumps(batch, protocol=4)


def make_archive(extra=(), skip=()):
    """A .tar.gz in the official layout (3 images per batch); ``extra`` adds hostile members."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        folder = tarfile.TarInfo("cifar-10-batches-py")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for seed, name in enumerate(NAMES + ("batches.meta",)):
            if name in skip:
                continue
            data = batch_bytes(3, seed)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def md5(data):
    return hashlib.md5(data).hexdigest()


class Server:
    """``routes``: path -> bytes; a path ending in ``/truncated`` promises the full length but
    sends half and closes. ``hits`` counts requests."""

    def __init__(self, routes):
        self.routes, self.hits = routes, 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits += 1
                data = outer.routes.get(self.path.removesuffix("/truncated"))
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2] if self.path.endswith("/truncated") else data)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 5
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def serve():
    servers = []

    def start(routes):
        servers.append(Server(routes))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """$SCRATCHNET_DATA and HOME inside tmp_path: the real cache is never touched."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SCRATCHNET_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


def files_under(folder):
    folder = Path(folder)
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def test_good_download_is_verified_unpacked_cached_and_read(serve, cache):
    archive = make_archive()
    server = serve({"/c.tar.gz": archive})
    x, y = load_cifar10(split="train", url=server.url + "/c.tar.gz", md5=md5(archive),
                        sha256=hashlib.sha256(archive).hexdigest())
    assert x.shape == (15, 32, 32, 3) and y.shape == (15,) and x.dtype == np.float32
    expected = pickle.loads(batch_bytes(3, 0))
    np.testing.assert_array_equal(y[:3], expected[b"labels"])
    np.testing.assert_allclose(x[0, :, :, 1].ravel(), expected[b"data"][0, 1024:2048] / np.float32(255))
    assert files_under(cache) == ["cifar-10-batches-py", *sorted(f"cifar-10-batches-py/{n}" for n in
                                                                  NAMES + ("batches.meta",)), cifar.ARCHIVE]
    x_test, _ = load_cifar10(split="test", url=server.url + "/c.tar.gz", md5=md5(archive), sha256=None)
    assert x_test.shape == (3, 32, 32, 3) and server.hits == 1  # second call: from the cache


@pytest.mark.parametrize("case", ["corrupt", "truncated", "wrong_checksum", "missing"])
def test_failed_downloads_leave_nothing_behind(serve, cache, case):
    archive = make_archive()
    damaged = archive[:100] + bytes([archive[100] ^ 0xFF]) + archive[101:]
    server = serve({"/c.tar.gz": damaged if case == "corrupt" else archive})
    url = server.url + ("/c.tar.gz/truncated" if case == "truncated" else
                        "/nothing.tar.gz" if case == "missing" else "/c.tar.gz")
    expected_md5 = "0" * 32 if case == "wrong_checksum" else md5(archive)
    error = CorruptDataError if case in ("corrupt", "wrong_checksum") else DataNotFoundError
    message = {"corrupt": "checksum mismatch", "wrong_checksum": "checksum mismatch",
               "truncated": "(?s)cut short, .* of .* bytes received.*--data-dir",
               "missing": "(?s)404.*--data-dir"}[case]
    with pytest.raises(error, match=message):
        load_cifar10(url=url, md5=expected_md5, sha256=None)
    assert files_under(cache) == []  # no archive, no .part file, no half-unpacked folder


def test_offline_says_where_to_put_the_files(cache):
    advice = f"(?s)unreachable.*offline.*{cifar.ARCHIVE}.*{cache}.*--data-dir"
    with pytest.raises(DataNotFoundError, match=advice):
        load_cifar10(url="http://127.0.0.1:9/unreachable.tar.gz")  # port 9: discard, nothing listens
    with pytest.raises(DataNotFoundError, match="download=False"):
        load_cifar10(download=False)
    assert files_under(cache) == []


def _member(name, kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = 4 if kind == tarfile.REGTYPE else 0
    return info, (b"evil" if kind == tarfile.REGTYPE else None)


@pytest.mark.parametrize("member, reason", [
    (_member("../evil"), "'..'"),
    (_member("cifar-10-batches-py/../../evil"), "'..'"),
    (_member("/tmp/scratchnet-evil"), "absolute path"),
    (_member("cifar-10-batches-py/link", tarfile.SYMTYPE, "/etc/passwd"), "symbolic link"),
    (_member("cifar-10-batches-py/hard", tarfile.LNKTYPE, "/etc/passwd"), "hard link"),
    (_member("cifar-10-batches-py/dev", tarfile.CHRTYPE), "device"),
])
def test_hostile_archives_are_refused_before_anything_is_written(serve, cache, tmp_path, member, reason):
    archive = make_archive(extra=[member])
    server = serve({"/c.tar.gz": archive})
    with pytest.raises(CorruptDataError, match=f"refused to unpack member .*{reason}"):
        load_cifar10(url=server.url + "/c.tar.gz", md5=md5(archive), sha256=None)
    # the verified archive stays (it is the official file as far as the checksum goes); nothing else
    assert files_under(cache) == [cifar.ARCHIVE]
    assert not (tmp_path / "evil").exists() and not Path("/tmp/scratchnet-evil").exists()


def test_archive_put_by_hand_is_checked_then_unpacked(tmp_path, cache):
    archive = make_archive()
    root = tmp_path / "mine"
    root.mkdir()
    (root / cifar.ARCHIVE).write_bytes(archive)
    with pytest.raises(CorruptDataError, match="checksum mismatch.*delete it and download it again"):
        load_cifar10(root, download=False)  # the default checksums are the official ones
    x, _ = load_cifar10(root, "test", download=False, md5=md5(archive), sha256=None)
    assert x.shape == (3, 32, 32, 3) and (root / cifar.FOLDER / "test_batch").is_file()


def test_archive_without_the_batches_is_an_error(tmp_path, cache):
    archive = make_archive(skip=("data_batch_3",))
    (cache).mkdir(parents=True)
    (cache / cifar.ARCHIVE).write_bytes(archive)
    with pytest.raises(CorruptDataError, match="no cifar-10-batches-py/ with data_batch_3"):
        load_cifar10(download=False, md5=md5(archive), sha256=None)
    assert files_under(cache) == [cifar.ARCHIVE]


def test_folder_with_a_missing_or_corrupt_batch(tmp_path, cache):
    folder = tmp_path / "c" / cifar.FOLDER
    folder.mkdir(parents=True)
    for seed, name in enumerate(NAMES):
        (folder / name).write_bytes(batch_bytes(2, seed))
    (folder / "data_batch_4").unlink()
    with pytest.raises(CorruptDataError, match="incomplete CIFAR-10 folder, missing data_batch_4"):
        load_cifar10(tmp_path / "c")
    (folder / "data_batch_4").write_bytes(batch_bytes(2, 9)[:-40])
    with pytest.raises(CorruptDataError, match="data_batch_4: not a readable CIFAR-10 batch"):
        load_cifar10(tmp_path / "c")


def test_safe_extract_directly_refuses_and_writes_nothing(tmp_path):
    path = tmp_path / "a.tar.gz"
    path.write_bytes(make_archive(extra=[_member("../escape")]))
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(CorruptDataError, match="'../escape'"):
        safe_extract(path, target)
    assert files_under(target) == [] and not (tmp_path / "escape").exists()
    path.write_bytes(make_archive()[:500])
    with pytest.raises(CorruptDataError, match="damaged or truncated archive"):
        safe_extract(path, target)


def test_channel_statistics_hand_worked_and_standardize():
    x = np.zeros((2, 1, 2, 3))
    x[0, 0, :, 0] = [1.0, 3.0]
    x[1, 0, :, 0] = [5.0, 7.0]        # channel 0: values 1, 3, 5, 7 -> mean 4, std sqrt(5)
    x[..., 1] = 2.0                   # channel 1: constant
    x[..., 2] = [0.0, 1.0]            # channel 2: 0, 1, 0, 1 -> mean 0.5, std 0.5
    mean, std = channel_mean_std(x)
    np.testing.assert_allclose(mean, [4.0, 2.0, 0.5], atol=1e-15)
    np.testing.assert_allclose(std, [np.sqrt(5.0), 0.0, 0.5], atol=1e-15)
    z = standardize(x.astype(np.float32), [4.0, 2.0, 0.5], [np.sqrt(5.0), 1.0, 0.5])
    assert z.dtype == np.float32
    np.testing.assert_allclose(z[0, 0, :, 0], [-3 / np.sqrt(5), -1 / np.sqrt(5)], rtol=1e-6)
    with pytest.raises(ValueError, match="std must be > 0"):
        standardize(x, mean, std)
    with pytest.raises(ValueError, match=r"mean, std of shape \(C,\)"):
        standardize(x, [0.0], [1.0])


def test_real_subset_reads_and_its_statistics_are_cifar_like():
    if not (SHARED_CIFAR / cifar.FOLDER / "test_batch").is_file():
        pytest.skip("../shared/data/cifar10-subset is not available on this machine")
    x, y = load_cifar10(SHARED_CIFAR, "train", download=False)
    x_test, y_test = load_cifar10(SHARED_CIFAR, "test", download=False)
    assert x.shape == (4194, 32, 32, 3) and x_test.shape == (466, 32, 32, 3)
    assert set(np.unique(y)) == set(range(10)) and len(cifar.CLASSES) == 10
    mean, std = channel_mean_std(x)
    # a 4,194-image sample of the training set: close to the published full-set statistics
    np.testing.assert_allclose(mean, cifar.MEAN, atol=0.02)
    np.testing.assert_allclose(std, cifar.STD, atol=0.02)
    z = standardize(x, mean, std)
    np.testing.assert_allclose(channel_mean_std(z)[0], 0.0, atol=1e-5)
    np.testing.assert_allclose(channel_mean_std(z)[1], 1.0, atol=1e-5)
