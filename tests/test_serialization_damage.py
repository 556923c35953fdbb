"""Safe save and load (issue 4): damaged files are refused clearly, saves are atomic.

A damaged file raises only a documented error (fuzzed too) and never loads wrong weights; a save
that fails anywhere (pickling, a full disk, Ctrl-C, fsync, rename) leaves the previous file
byte-identical and no temporary file behind.
"""

from __future__ import annotations

import functools
import json
import os
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from serialization_models import assert_same_state, blobs, mlp

import scratchnet as sn
from scratchnet import serialization
from scratchnet.layers import Dense
from scratchnet.serialization import (
    MAGIC,
    SerializationError,
    UnsafeModelError,
    frame_payload,
)

DOCUMENTED_ERRORS = (SerializationError, UnsafeModelError, FileNotFoundError)


@functools.lru_cache(maxsize=None)
def trained_file_bytes() -> bytes:
    """A small trained model file, shared by the byte-mutation tests."""
    x, y = blobs(40)
    model = mlp(seed=5)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    return serialization.model_bytes(model)


def reference_model():
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.sn"
        path.write_bytes(trained_file_bytes())
        return sn.load(path)


# ------------------------------------------------------------------ damaged files
def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        sn.load(tmp_path / "nope.sn")
    with pytest.raises(FileNotFoundError):
        mlp().build().load_weights(tmp_path / "nope.npz")


def header_with(**changes):
    data = trained_file_bytes()
    end = data.index(b"\n")
    header = json.loads(data[len(MAGIC) + 1:end])
    header.update(changes)
    return MAGIC + b" " + json.dumps(header).encode() + data[end:]


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"SCRATCH", "truncated"),
    (b"PK\x03\x04 something", "wrong magic.*load_weights"),
    (b"\x80\x05K\x01.", "wrong magic"),
    (b"SCRATCHNET {\"format\": 1", "truncated header"),
    (b"SCRATCHNET not json\n\x80\x05.", "corrupted header"),
    (b"SCRATCHNET [1, 2]\n", "corrupted header"),
    (b"SCRATCHNET" + b"[" * 5000, "corrupted header"),
    (b"SCRATCHNET " + b"[" * 3000 + b"\n", "corrupted header"),
    (header_with(format="1"), "corrupted header"),
    (header_with(payload_bytes=-1), "corrupted header"),
    (header_with(format=2), "format 2.*Upgrade scratchnet"),
    (trained_file_bytes()[:-1], "truncated: payload"),
    (trained_file_bytes()[:trained_file_bytes().index(b"\n") + 1], "truncated: payload"),
    (trained_file_bytes() + b"\x00", "extra bytes"),
    (header_with(sha256="0" * 64), "SHA-256"),
])
def test_damaged_files_raise_a_clear_serialization_error(tmp_path, content, message):
    path = tmp_path / "bad.sn"
    path.write_bytes(content)
    with pytest.raises(SerializationError, match=message):
        sn.load(path)


def test_a_flipped_bit_inside_array_data_is_detected(tmp_path):
    model = reference_model()
    data = bytearray(trained_file_bytes())
    weights = model.layers[0].params["W"].tobytes()
    start = bytes(data).index(weights)
    data[start + len(weights) // 2] ^= 0x01  # one bit of one float: still a perfectly valid pickle
    (tmp_path / "flipped.sn").write_bytes(bytes(data))
    with pytest.raises(SerializationError, match="SHA-256"):
        sn.load(tmp_path / "flipped.sn")


def test_a_pickle_that_is_not_a_model_is_refused(tmp_path):
    for obj in ([1, 2], Dense(3), {"layers": []}):
        path = tmp_path / "other.sn"
        path.write_bytes(frame_payload(pickle.dumps(obj, protocol=5)))
        with pytest.raises(SerializationError, match="not a Sequential"):
            sn.load(path)


def test_a_malformed_sequential_is_refused(tmp_path):
    model = reference_model()
    model.layers[0].params["W"] = model.layers[0].params["W"].astype(np.float64)  # not the layer dtype
    path = tmp_path / "odd.sn"
    path.write_bytes(frame_payload(pickle.dumps(model, protocol=5)))
    with pytest.raises(SerializationError, match="malformed"):
        sn.load(path)


def damaged(data: bytes, flips, keep) -> bytes:
    """``data`` with each (position, mask) of ``flips`` XORed in (positions wrap around), then cut
    to ``keep`` bytes (wrapping too) unless ``keep`` is None."""
    data = bytearray(data)
    for position, mask in flips:
        data[position % len(data)] ^= mask
    if keep is not None:
        data = data[:keep % (len(data) + 1)]
    return bytes(data)


@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=4),
       keep=st.one_of(st.none(), st.integers(0, 10**6)))
def test_fuzzed_files_raise_only_documented_errors_and_never_load_wrong_weights(flips, keep):
    data = damaged(trained_file_bytes(), flips, keep)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.sn"
        path.write_bytes(data)
        try:
            loaded = sn.load(path)
        except DOCUMENTED_ERRORS:
            return
    # Only a flip in an unchecked header field (e.g. the version string) can load at all.
    assert_same_state(reference_model(), loaded)


@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=3),
       keep=st.one_of(st.none(), st.integers(0, 10**6)))
def test_fuzzed_payloads_with_a_valid_checksum_raise_only_documented_errors(flips, keep):
    # The checksum is recomputed, so the damaged pickle itself reaches the restricted unpickler.
    data = trained_file_bytes()
    payload = damaged(data[data.index(b"\n") + 1:], flips, keep)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.sn"
        path.write_bytes(frame_payload(payload))
        try:
            loaded = sn.load(path)
        except (SerializationError, UnsafeModelError):
            return
    assert isinstance(loaded, sn.Sequential)


# ------------------------------------------------------------------ atomic save
class FailingFile:
    """Wraps the temporary file: writes ``budget`` bytes, then fails like a full disk."""

    def __init__(self, file, budget):
        self.file, self.budget = file, budget

    def write(self, data):
        if len(data) > self.budget:
            self.file.write(data[:self.budget])
            self.file.flush()
            raise OSError(28, "No space left on device")
        self.budget -= len(data)
        return self.file.write(data)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


def inject(monkeypatch, where):
    if where == "pickle":
        def fail(*args, **kwargs):
            raise pickle.PicklingError("injected")
        monkeypatch.setattr(serialization._ModelPickler, "dump", fail)
        monkeypatch.setattr(serialization.np, "savez", fail)
    elif where == "write":
        real_fdopen = os.fdopen
        monkeypatch.setattr(serialization.os, "fdopen",
                            lambda *args, **kwargs: FailingFile(real_fdopen(*args, **kwargs), 100))
    elif where == "interrupt":
        real_fdopen = os.fdopen

        class Interrupted(FailingFile):
            def write(self, data):
                raise KeyboardInterrupt
        monkeypatch.setattr(serialization.os, "fdopen",
                            lambda *args, **kwargs: Interrupted(real_fdopen(*args, **kwargs), 0))
    elif where == "fsync":
        def fail(fd):
            raise OSError(5, "injected fsync failure")
        monkeypatch.setattr(serialization.os, "fsync", fail)
    elif where == "replace":
        def fail(src, dst):
            raise OSError(13, "injected replace failure")
        monkeypatch.setattr(serialization.os, "replace", fail)


@pytest.mark.parametrize("method", ["save", "save_weights"])
@pytest.mark.parametrize("where", ["pickle", "write", "interrupt", "fsync", "replace"])
def test_failed_save_leaves_previous_file_byte_identical_and_no_temp_file(tmp_path, monkeypatch, method,
                                                                          where):
    x, y = blobs()
    model = mlp(seed=1).build()
    target = tmp_path / "model.bin"
    getattr(model, method)(target)
    before = target.read_bytes()
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)  # the next save would write different bytes
    with monkeypatch.context() as patch:
        inject(patch, where)
        with pytest.raises((OSError, SerializationError, pickle.PicklingError, KeyboardInterrupt)):
            getattr(model, method)(target)
    assert target.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model.bin"]
    getattr(model, method)(target)  # and without the fault, the save goes through
    assert target.read_bytes() != before


@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
def test_failed_first_save_creates_no_file(tmp_path, monkeypatch, where):
    inject(monkeypatch, where)
    with pytest.raises(OSError):
        mlp().build().save(tmp_path / "new.sn")
    assert os.listdir(tmp_path) == []


def test_unpicklable_model_fails_before_touching_the_file(tmp_path):
    model = mlp().build()
    model.save(tmp_path / "m.sn")
    before = (tmp_path / "m.sn").read_bytes()
    model.layers[0].callback = lambda x: x
    with pytest.raises(SerializationError, match="cannot pickle"):
        model.save(tmp_path / "m.sn")
    assert (tmp_path / "m.sn").read_bytes() == before and os.listdir(tmp_path) == ["m.sn"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_saved_file_gets_normal_permissions_and_keeps_existing_ones(tmp_path):
    old_umask = os.umask(0o022)
    try:
        model = mlp().build()
        model.save(tmp_path / "m.sn")
        assert (tmp_path / "m.sn").stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0600
        os.chmod(tmp_path / "m.sn", 0o640)
        model.save(tmp_path / "m.sn")
        assert (tmp_path / "m.sn").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old_umask)


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_saving_through_a_symlink_updates_the_linked_file(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "m.sn").write_bytes(b"old")
    (tmp_path / "link.sn").symlink_to(tmp_path / "real" / "m.sn")
    model = mlp().build()
    model.save(tmp_path / "link.sn")
    assert (tmp_path / "link.sn").is_symlink()
    assert sn.load(tmp_path / "real" / "m.sn").count_params() == model.count_params()
