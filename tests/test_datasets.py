"""Dataset readers on files written here in the exact formats (no network), and the bundled sample."""

import filecmp
import gzip
import hashlib
import io
import os
import pickle
import struct
import urllib.error

import numpy as np
import pytest

from scratchnet.datasets import (
    CorruptDataError,
    DataNotFoundError,
    cifar,
    load_cifar10,
    load_mnist,
    load_mnist_sample,
    make_patterns,
    mnist,
    read_idx,
)
from scratchnet.datasets.mnist import BUNDLED_DIR, parse_idx


# ---------------------------------------------------------------------- IDX writers
def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """The IDX format written out by hand: 0x0000, type byte, ndim byte, big-endian sizes, data."""
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype({0x08: ">u1", 0x0B: ">i2", 0x0D: ">f4"}[type_code]).tobytes()


def write_mnist(folder, split="train", n=5, seed=0, compress=True):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in zip(mnist.FILES[split], (images, labels)):
        data = idx_bytes(array)
        if compress:
            (folder / (stem + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)
    return images, labels


def test_parse_idx_hand_worked_header():
    # 0x00 0x00, type 0x08 (ubyte), 2 dims, sizes 2 and 3, then 6 bytes row-major
    data = bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6])
    np.testing.assert_array_equal(parse_idx(data), [[1, 2, 3], [4, 5, 6]])


def test_parse_idx_big_endian_types():
    values = np.array([[-2, 300], [7, -32768]])
    np.testing.assert_array_equal(parse_idx(idx_bytes(values, 0x0B)), values)
    floats = np.array([0.5, -1.25, 3.0])
    np.testing.assert_array_equal(parse_idx(idx_bytes(floats, 0x0D)), floats)


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "raw"])
def test_load_mnist_reads_gzip_and_raw(tmp_path, compress):
    images, labels = write_mnist(tmp_path, "test", n=7, compress=compress)
    x, y = load_mnist("test", root=tmp_path, download=False)
    assert x.shape == (7, 28, 28, 1) and x.dtype == np.float32
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, labels)
    np.testing.assert_allclose(x[..., 0], images / 255.0, rtol=0, atol=1e-7)
    assert x[images == 255].max() == 1.0 and x.min() >= 0.0


def test_load_mnist_standardize_and_dtype(tmp_path):
    images, _ = write_mnist(tmp_path, "train", n=3)
    x, _ = load_mnist("train", root=tmp_path, download=False, standardize=True, dtype="float64")
    assert x.dtype == np.float64
    np.testing.assert_allclose(x[..., 0], (images / 255.0 - 0.1307) / 0.3081, rtol=1e-12)


def test_wrong_magic_labels_file_given_as_images(tmp_path):
    _, labels = write_mnist(tmp_path, "test")
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(labels)))  # magic 0x00000801, not 0x00000803
    with pytest.raises(CorruptDataError, match=r"expected magic 0x00000803.*got 0x00000801"):
        load_mnist("test", root=tmp_path, download=False)


def test_not_an_idx_file_at_all(tmp_path):
    path = tmp_path / "junk"
    path.write_bytes(b"PK\x03\x04 this is a zip file")
    with pytest.raises(CorruptDataError, match="not an IDX file"):
        read_idx(path)


def test_wrong_number_of_dimensions(tmp_path):
    write_mnist(tmp_path, "test")
    flat = np.zeros((5, 784), dtype=np.uint8)  # 2 dims: magic 0x00000802
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(flat)))
    with pytest.raises(CorruptDataError, match="0x00000802"):
        load_mnist("test", root=tmp_path, download=False)


def test_header_sizes_disagree_with_data(tmp_path):
    data = bytearray(idx_bytes(np.zeros((4, 28, 28), dtype=np.uint8)))
    data[4:8] = struct.pack(">I", 5)  # header claims 5 images, 4 follow
    with pytest.raises(CorruptDataError, match=r"truncated.*\(5, 28, 28\).*3136 data bytes follow"):
        parse_idx(bytes(data))


def test_truncated_and_padded_raw_files(tmp_path):
    data = idx_bytes(np.ones((3, 28, 28), dtype=np.uint8))
    (tmp_path / "cut").write_bytes(data[:-10])
    (tmp_path / "padded").write_bytes(data + b"\0")
    (tmp_path / "header_only").write_bytes(data[:9])
    with pytest.raises(CorruptDataError, match="truncated"):
        read_idx(tmp_path / "cut")
    with pytest.raises(CorruptDataError, match="trailing bytes"):
        read_idx(tmp_path / "padded")
    with pytest.raises(CorruptDataError, match="truncated header"):
        read_idx(tmp_path / "header_only")


def test_truncated_gzip_file(tmp_path):
    write_mnist(tmp_path, "test", n=20)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CorruptDataError, match="damaged or truncated gzip"):
        load_mnist("test", root=tmp_path, download=False)


def test_labels_out_of_range_and_count_mismatch(tmp_path):
    write_mnist(tmp_path, "test", n=5)
    labels_path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    labels_path.write_bytes(gzip.compress(idx_bytes(np.array([1, 2, 10, 3, 4]))))
    with pytest.raises(CorruptDataError, match="digits 0..9, found 10"):
        load_mnist("test", root=tmp_path, download=False)
    labels_path.write_bytes(gzip.compress(idx_bytes(np.array([1, 2, 3]))))
    with pytest.raises(CorruptDataError, match="5 images but .* 3 labels"):
        load_mnist("test", root=tmp_path, download=False)


# ---------------------------------------------------------------------- search order, download
@pytest.fixture
def isolated_home(tmp_path, monkeypatch):
    """HOME (so ~/.cache/scratchnet) and $SCRATCHNET_DATA point into tmp_path; no network."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SCRATCHNET_DATA", raising=False)

    def no_network(url, timeout=None):
        raise urllib.error.URLError("network is unreachable (test)")

    monkeypatch.setattr(mnist, "urlopen", no_network)
    return tmp_path


def test_search_order_root_then_env_then_cache(isolated_home, monkeypatch):
    _, cache_labels = write_mnist(isolated_home / "home" / ".cache" / "scratchnet" / "mnist", seed=1)
    _, y = load_mnist(download=False)
    np.testing.assert_array_equal(y, cache_labels)
    _, env_labels = write_mnist(isolated_home / "env", seed=2)
    monkeypatch.setenv("SCRATCHNET_DATA", str(isolated_home / "env"))
    np.testing.assert_array_equal(load_mnist(download=False)[1], env_labels)
    _, root_labels = write_mnist(isolated_home / "root" / "mnist", seed=3)  # root/mnist also searched
    np.testing.assert_array_equal(load_mnist(root=isolated_home / "root", download=False)[1], root_labels)


def test_missing_files_without_download_say_where_and_what_to_do(isolated_home):
    with pytest.raises(DataNotFoundError) as info:
        load_mnist("train", root=isolated_home / "nowhere", download=False)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and "nowhere" in message
    assert "SCRATCHNET_DATA" in message and "load_mnist_sample" in message


def test_offline_download_fails_clearly(isolated_home):
    with pytest.raises(DataNotFoundError, match=r"(?s)download failed \(is this machine offline\?\).*"
                                                r"network is unreachable.*mnist-sample"):
        load_mnist("test", root=isolated_home / "data")
    assert not list((isolated_home / "data").glob("*")), "no partial file may be left behind"


class FakeServer:
    """Stands in for urllib.request.urlopen: serves bytes per URL, records the requests."""

    def __init__(self, files):
        self.files, self.requests = files, []

    def __call__(self, url, timeout=None):
        self.requests.append(url)
        if url not in self.files:
            raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)
        return io.BytesIO(self.files[url])


def fake_mnist_files(n=6):
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    return {"t10k-images-idx3-ubyte.gz": gzip.compress(idx_bytes(images)),
            "t10k-labels-idx1-ubyte.gz": gzip.compress(idx_bytes(labels))}, images, labels


def test_download_tries_mirrors_verifies_md5_and_loads(isolated_home, monkeypatch):
    files, images, labels = fake_mnist_files()
    monkeypatch.setattr(mnist, "MD5", {name: hashlib.md5(data).hexdigest() for name, data in files.items()})
    # mirror A is down (404), mirror B serves a corrupted copy of the images, mirror C is good
    served = {f"http://c.test/{name}": data for name, data in files.items()}
    served["http://b.test/t10k-images-idx3-ubyte.gz"] = files["t10k-images-idx3-ubyte.gz"][:-1] + b"!"
    server = FakeServer(served)
    monkeypatch.setattr(mnist, "urlopen", server)
    root = isolated_home / "data"
    x, y = load_mnist("test", root=root, mirrors=["http://a.test/", "http://b.test/", "http://c.test/"])
    np.testing.assert_array_equal(y, labels)
    np.testing.assert_allclose(x[..., 0], images / 255.0, atol=1e-7)
    assert server.requests[:3] == [f"http://{host}.test/t10k-images-idx3-ubyte.gz" for host in "abc"]
    assert sorted(p.name for p in root.iterdir()) == sorted(files)  # no .part files left
    assert (root / "t10k-images-idx3-ubyte.gz").read_bytes() == files["t10k-images-idx3-ubyte.gz"]
    # second call: found on disk, no more requests
    count = len(server.requests)
    load_mnist("test", root=root)
    assert len(server.requests) == count


def test_download_checksum_mismatch_everywhere_keeps_nothing(isolated_home, monkeypatch):
    files, _, _ = fake_mnist_files()
    server = FakeServer({f"http://m.test/{name}": data for name, data in files.items()})
    monkeypatch.setattr(mnist, "urlopen", server)  # real MD5 table: the fake files do not match
    monkeypatch.setattr(mnist, "MIRRORS", ["http://m.test/"])
    expected = "checksum mismatch .*expected 9fb629c4189551a2d022fa330f9573f3"
    with pytest.raises(DataNotFoundError, match=expected):
        load_mnist("test", root=isolated_home / "data")
    assert list((isolated_home / "data").iterdir()) == []


def test_default_download_goes_to_env_folder(isolated_home, monkeypatch):
    files, _, labels = fake_mnist_files()
    monkeypatch.setattr(mnist, "MD5", {name: hashlib.md5(data).hexdigest() for name, data in files.items()})
    monkeypatch.setattr(mnist, "urlopen", FakeServer({f"http://m.test/{n}": d for n, d in files.items()}))
    monkeypatch.setattr(mnist, "MIRRORS", ["http://m.test/"])
    monkeypatch.setenv("SCRATCHNET_DATA", str(isolated_home / "env"))
    np.testing.assert_array_equal(load_mnist("test")[1], labels)
    assert (isolated_home / "env" / "mnist" / "t10k-labels-idx1-ubyte.gz").exists()


def test_known_md5_table_matches_the_bundled_real_files():
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert mnist.md5sum(BUNDLED_DIR / name) == mnist.MD5[name]


# ---------------------------------------------------------------------- bundled sample
def test_bundled_sample_split_shapes_and_label_counts():
    (x_train, y_train), (x_test, y_test) = load_mnist_sample()
    assert x_train.shape == (8000, 28, 28, 1) and x_test.shape == (2000, 28, 28, 1)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert 0.0 == x_train.min() and x_train.max() == 1.0
    # counts of each digit 0..9, measured once from the real t10k file order
    np.testing.assert_array_equal(np.bincount(y_train, minlength=10),
                                  [773, 905, 834, 803, 788, 723, 756, 813, 787, 818])
    np.testing.assert_array_equal(np.bincount(y_test, minlength=10),
                                  [207, 230, 198, 207, 194, 169, 202, 215, 187, 191])
    np.testing.assert_array_equal(y_train[:10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9])
    # the documented split is file order: first 8,000 train, last 2,000 test
    raw = read_idx(BUNDLED_DIR / "t10k-images-idx3-ubyte.gz")
    np.testing.assert_array_equal(x_test[-1, :, :, 0], raw[-1] / np.float32(255))
    np.testing.assert_array_equal(x_train[0, :, :, 0], raw[0] / np.float32(255))


def test_bundled_files_are_byte_identical_to_shared_mnist(shared_mnist_dir):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert filecmp.cmp(BUNDLED_DIR / name, shared_mnist_dir / name, shallow=False)


# ---------------------------------------------------------------------- CIFAR-10
def py2_pickle(data: np.ndarray, labels) -> bytes:
    """A CIFAR-10 batch exactly as Python 2's cPickle (protocol 2) wrote it: str keys as
    SHORT_BINSTRING, the array through numpy.core.multiarray._reconstruct."""
    def string(value: bytes) -> bytes:
        return (b"U" + bytes([len(value)]) + value) if len(value) < 256 else \
            (b"T" + struct.pack("<I", len(value)) + value)

    def integer(value: int) -> bytes:
        return b"J" + struct.pack("<i", value)

    array = (b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + integer(0) + b"\x85"
             + string(b"b") + b"\x87R"
             + b"(" + integer(1) + integer(data.shape[0]) + integer(data.shape[1]) + b"\x86"
             + b"cnumpy\ndtype\n" + string(b"u1") + integer(0) + integer(1) + b"\x87R"
             + b"(" + integer(3) + string(b"|") + b"NNN" + integer(-1) + integer(-1) + integer(0) + b"tb"
             + b"\x89" + string(data.tobytes()) + b"tb")
    label_list = b"](" + b"".join(integer(int(v)) for v in labels) + b"e"
    return (b"\x80\x02}(" + string(b"batch_label") + string(b"training batch 1 of 5")
            + string(b"labels") + label_list + string(b"data") + array + b"u.")


def cifar_batch(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8), rng.integers(0, 10, size=n).tolist()


def test_read_batch_python2_format_and_channel_order(tmp_path):
    data, labels = cifar_batch(3, seed=0)
    path = tmp_path / "data_batch_1"
    path.write_bytes(py2_pickle(data, labels))
    images, read_labels = cifar.read_batch(path)
    assert images.shape == (3, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(read_labels, labels)
    for n, row, col, channel in [(0, 0, 0, 0), (1, 5, 7, 1), (2, 31, 30, 2), (2, 17, 0, 0)]:
        # the flat row holds the red plane, then green, then blue, each 32x32 row-major
        assert images[n, row, col, channel] == data[n, channel * 1024 + row * 32 + col]


def test_load_cifar10_all_batches_python3_pickles(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    names = cifar.TRAIN_BATCHES + cifar.TEST_BATCHES
    batches = {name: cifar_batch(2, seed=i) for i, name in enumerate(names)}
    for name, (data, labels) in batches.items():  # re-pickled by Python 3: a common variant
        (folder / name).write_bytes(pickle.dumps({b"data": data, b"labels": labels}, protocol=4))
    x, y = load_cifar10(tmp_path, "train")
    assert x.shape == (10, 32, 32, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(y, sum((batches[n][1] for n in cifar.TRAIN_BATCHES), []))
    x_test, y_test = load_cifar10(folder, "test", standardize=True)
    data = batches["test_batch"][0]
    expected_red = (data[1, 0] / 255.0 - cifar.MEAN[0]) / cifar.STD[0]
    np.testing.assert_allclose(x_test[1, 0, 0, 0], expected_red, rtol=1e-6)


class Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def test_cifar_unpickler_refuses_code(tmp_path):
    target = tmp_path / "pwned"
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Evil(str(target)), b"labels": [1]}, protocol=4))
    with pytest.raises(CorruptDataError, match=r"refused to load posix.mkdir|refused to load os.mkdir"):
        cifar.read_batch(path)
    assert not target.exists()


def test_cifar_corrupt_batches(tmp_path):
    data, labels = cifar_batch(2, seed=1)
    good = py2_pickle(data, labels)
    path = tmp_path / "batch"
    path.write_bytes(good[:len(good) // 2])
    with pytest.raises(CorruptDataError, match="not a readable CIFAR-10 batch"):
        cifar.read_batch(path)
    path.write_bytes(pickle.dumps({b"data": data[:, :100], b"labels": labels}))
    with pytest.raises(CorruptDataError, match=r"uint8 array \(N, 3072\).*\(2, 100\)"):
        cifar.read_batch(path)
    path.write_bytes(pickle.dumps({b"data": data, b"labels": [1, 12]}))
    with pytest.raises(CorruptDataError, match="2 integers in 0..9"):
        cifar.read_batch(path)
    path.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(CorruptDataError, match="expected a pickled dict"):
        cifar.read_batch(path)


def test_cifar_missing_says_how_to_get_it(isolated_home):
    with pytest.raises(DataNotFoundError, match="(?s)cifar-10-batches-py.*cifar-10-python.tar.gz"):
        load_cifar10(isolated_home / "empty", download=False)


# ---------------------------------------------------------------------- synthetic patterns
def test_patterns_shapes_balance_range_and_determinism():
    x, y = make_patterns(53, image_size=20, n_classes=5, seed=3)
    assert x.shape == (53, 20, 20, 1) and x.dtype == np.float32 and y.dtype == np.int64
    assert 0.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_array_equal(np.bincount(y), [11, 11, 11, 10, 10])
    x_again, y_again = make_patterns(53, image_size=20, n_classes=5, seed=3)
    np.testing.assert_array_equal(x, x_again)
    np.testing.assert_array_equal(y, y_again)
    assert not np.array_equal(make_patterns(53, image_size=20, seed=4)[0], x)


def test_patterns_stripes_have_the_right_orientation():
    x, y = make_patterns(200, image_size=32, n_classes=2, seed=0, noise=0.1)
    # horizontal stripes: the mean of each row varies a lot, the mean of each column hardly
    row_spread = x[..., 0].mean(axis=2).std(axis=1)
    col_spread = x[..., 0].mean(axis=1).std(axis=1)
    assert np.all(row_spread[y == 0] > 2 * col_spread[y == 0])
    assert np.all(col_spread[y == 1] > 2 * row_spread[y == 1])


def test_patterns_reject_bad_arguments():
    with pytest.raises(ValueError, match="^make_patterns: n_classes must be an int from 2 to 5, got 6$"):
        make_patterns(10, n_classes=6)
    with pytest.raises(ValueError, match="^make_patterns: n_classes must be an int from 2 to 5, got 1$"):
        make_patterns(10, n_classes=1)
    with pytest.raises(ValueError, match="^make_patterns: image_size must be an int >= 8, got 4$"):
        make_patterns(10, image_size=4)
    with pytest.raises(ValueError, match="^make_patterns: n must be an int >= 0, got -1$"):
        make_patterns(-1)
