"""Saving and loading a year later: targets saving must not destroy, files from a newer scratchnet.

The targets: a FIFO or device would be replaced by a regular file, a read-only file silently
replaced (``os.replace`` needs only the folder to be writable). The newer files: a format or a
class this scratchnet does not have is reported as such (upgrade), not as corruption or danger.
"""

from __future__ import annotations

import errno
import json
import os
import stat

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import cli, serialization
from scratchnet.callbacks import ModelCheckpoint
from scratchnet.layers import Dense
from scratchnet.serialization import MAGIC, SerializationError, UnsafeModelError, frame_payload

posix_only = pytest.mark.skipif(os.name != "posix", reason="FIFOs and POSIX modes")


def small_model():
    model = sn.Sequential([Dense(3, name="d")], input_shape=(4,), seed=0)
    return model.compile("adam", "cross_entropy").build()


def save_by(way, model, path):
    """Each public way of writing a file: all go through atomic_file.atomic_write."""
    if way == "save":
        model.save(path)
    elif way == "save_weights":
        model.save_weights(path)
    else:  # a checkpoint written at the end of an epoch
        x = np.random.default_rng(0).random((6, 4)).astype("float32")
        model.fit(x, np.arange(6) % 3, epochs=1, verbose=0, callbacks=[ModelCheckpoint(path, monitor="loss")])


# ------------------------------------------------------------------ targets saving would destroy
@posix_only
@pytest.mark.parametrize("way", ["save", "save_weights", "checkpoint"])
def test_a_fifo_is_refused_and_stays_a_fifo(tmp_path, way):
    fifo = tmp_path / "pipe.sn"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match=r"pipe\.sn'.*a FIFO \(named pipe\), not a regular file"):
        save_by(way, small_model(), fifo)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)      # not replaced by a regular file
    assert os.listdir(tmp_path) == ["pipe.sn"]       # and no temporary file left


@posix_only
def test_a_character_device_is_refused_and_left_alone_also_through_a_symlink(tmp_path):
    # A twin of /dev/null made in tmp_path: never the real one, which a regression (or a break
    # tried on purpose) would replace with a regular file for the whole machine.
    device = tmp_path / "null"
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, AttributeError):
        pytest.skip("making a device node needs root")
    (tmp_path / "link.sn").symlink_to(device)
    for target in (device, tmp_path / "link.sn"):
        with pytest.raises(OSError, match="a character device, not a regular file"):
            small_model().save(target)
    assert stat.S_ISCHR(os.stat(device).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["link.sn", "null"]


@posix_only
@pytest.mark.parametrize("way", ["save", "save_weights", "checkpoint"])
def test_a_read_only_file_is_refused_by_its_mode_bits_even_for_root(tmp_path, way):
    # Tests may run as root, who may write any file (os.access says yes): the refusal reads the
    # mode bits, so it holds for root too.
    target = tmp_path / "kept.sn"
    target.write_bytes(b"precious")
    os.chmod(target, 0o444)
    with pytest.raises(PermissionError, match=r"kept\.sn'.*read-only \(mode -r--r--r--\).*chmod u\+w"):
        save_by(way, small_model(), target)
    assert target.read_bytes() == b"precious" and stat.S_IMODE(os.stat(target).st_mode) == 0o444
    assert os.listdir(tmp_path) == ["kept.sn"]


@posix_only
def test_a_file_this_user_may_not_write_is_refused(tmp_path, monkeypatch):
    # Mode 0644 of another owner: os.access says no (as it would for a user who is not root).
    target = tmp_path / "theirs.sn"
    target.write_bytes(b"theirs")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(target)
                        else real_access(path, mode))
    with pytest.raises(PermissionError, match="read-only"):
        small_model().save(target)
    assert target.read_bytes() == b"theirs"


@posix_only
def test_a_writable_file_is_still_replaced_keeping_its_mode(tmp_path):
    target = tmp_path / "m.sn"
    target.write_bytes(b"old")
    os.chmod(target, 0o600)
    small_model().save(target)
    assert sn.load(target).count_params() == 15 and stat.S_IMODE(os.stat(target).st_mode) == 0o600


# ------------------------------------------------------------------ files from a newer scratchnet
def file_with_header(tmp_path, **changes):
    data = serialization.model_bytes(small_model())
    end = data.index(b"\n")
    header = json.loads(data[len(MAGIC) + 1:end])
    header.update(changes)
    header = {key: value for key, value in header.items() if value is not None}  # None: field dropped
    path = tmp_path / "newer.sn"
    path.write_bytes(MAGIC + b" " + json.dumps(header).encode() + data[end:])
    return path


@pytest.mark.parametrize("changes", [
    {"format": 2, "scratchnet": "0.9.0"},
    {"format": 2, "scratchnet": "0.9.0", "sha256": None},          # a newer format dropped a field
    {"format": 2, "scratchnet": "0.9.0", "payload_bytes": 5},      # or frames the payload otherwise
    {"format": 2, "scratchnet": "0.9.0", "sha256": "blake3:abc"},  # or changed a field's meaning
])
def test_a_newer_format_is_reported_before_any_other_header_field(tmp_path, changes):
    with pytest.raises(SerializationError) as error:
        sn.load(file_with_header(tmp_path, **changes))
    assert str(error.value).endswith(
        f"newer.sn: written in format 2 by scratchnet 0.9.0; this scratchnet ({sn.__version__}) reads "
        f"format 1. Upgrade scratchnet to load it.")


def test_a_newer_format_without_a_version_does_not_say_none(tmp_path):
    with pytest.raises(SerializationError, match="by a scratchnet that did not record its version;") as error:
        sn.load(file_with_header(tmp_path, format=2, scratchnet=None))
    assert "None" not in str(error.value)


@pytest.mark.parametrize("format_value", ["2", 1.0, None, 0])
def test_a_format_that_is_no_version_is_a_corrupted_header(tmp_path, format_value):
    with pytest.raises(SerializationError, match="corrupted header"):
        sn.load(file_with_header(tmp_path, format=format_value))


def file_naming(tmp_path, old: bytes, new: bytes, version="0.9.0"):
    """A model file as a newer scratchnet could write it: a class renamed or moved (the pickle's
    SHORT_BINUNICODE strings rewritten with their new lengths), a valid header of ``version``."""
    data = serialization.model_bytes(small_model())
    payload = data[data.index(b"\n") + 1:]
    assert bytes([0x8C, len(old)]) + old in payload
    payload = payload.replace(bytes([0x8C, len(old)]) + old, bytes([0x8C, len(new)]) + new)
    path = tmp_path / "newer.sn"
    path.write_bytes(frame_payload(payload, version))
    return path


@pytest.mark.parametrize("trusted", [False, True])
@pytest.mark.parametrize("old, new, needs", [
    (b"Dense", b"Dense2", "class scratchnet.layers.dense.Dense2"),
    (b"scratchnet.layers.dense", b"scratchnet.layers.linear", None),
])
def test_a_class_from_a_newer_scratchnet_says_upgrade_not_unsafe(tmp_path, trusted, old, new, needs):
    if needs is None:  # the restricted loader knows the class; plain pickle only the module
        needs = "module scratchnet.layers.linear" if trusted else "class scratchnet.layers.linear.Dense"
    with pytest.raises(SerializationError) as error:
        sn.load(file_naming(tmp_path, old, new), trusted=trusted)
    assert not isinstance(error.value, UnsafeModelError)
    assert str(error.value).endswith(
        f"newer.sn: the file needs scratchnet {needs}, which this scratchnet (version "
        f"{sn.__version__}) does not have; the file was written by scratchnet 0.9.0: upgrade "
        f"scratchnet to load it.")


def test_an_unknown_class_in_a_file_of_this_version_points_at_a_changed_copy(tmp_path):
    with pytest.raises(SerializationError, match="the same version number as this one, so it came "
                       "from a changed copy of scratchnet"):
        sn.load(file_naming(tmp_path, b"Dense", b"Dense2", version=sn.__version__))


def test_a_missing_module_of_ones_own_is_named_without_a_question_mark(tmp_path):
    # a name as long as the one it replaces: the pickle's frames keep their lengths
    path = file_naming(tmp_path, b"scratchnet.layers.dense", b"my_lab_layers_from_2025")
    with pytest.raises(SerializationError) as error:
        sn.load(path, trusted=True)
    assert str(error.value).endswith("newer.sn: the file needs module my_lab_layers_from_2025, which cannot "
                                     "be imported here: install it or put it on sys.path before loading.")


def test_a_scratchnet_module_not_imported_yet_is_named_with_the_import_that_cures_it(tmp_path):
    """A model holding an exercise starter's class, loaded in a fresh process: the class exists,
    its module is just not imported (the loader never imports): not 'missing', not 'upgrade'."""
    import subprocess
    import sys
    import textwrap

    path = tmp_path / "starter.sn"
    script = textwrap.dedent(f"""
        import sys
        import scratchnet as sn
        if sys.argv[1] == "save":
            from scratchnet.exercises.starters.relu import ReLU
            from scratchnet.layers import Dense, Flatten
            model = sn.Sequential([Flatten(), ReLU(), Dense(2)], input_shape=(2, 2, 1), seed=0)
            model.build().save({str(path)!r})
        else:
            try:
                sn.load({str(path)!r})
            except sn.UnsafeModelError as error:
                print(error)
            import scratchnet.exercises.starters.relu  # noqa: F401
            print(sn.load({str(path)!r}).layers[1].name)
    """)
    run = [sys.executable, "-c", script]
    subprocess.run([*run, "save"], check=True)
    printed = subprocess.run([*run, "load"], check=True, capture_output=True, text=True).stdout.splitlines()
    assert printed == [f"{path}: refused to load global scratchnet.exercises.starters.relu.ReLU: its "
                       f"module is part of scratchnet but not imported, and the loader only finds classes "
                       f"of imported modules: import scratchnet.exercises.starters.relu before "
                       f"scratchnet.load", "re_lu"]


def test_names_that_exist_or_are_no_class_names_stay_unsafe(tmp_path):
    # a function that exists, a lowercase name: refused as before, with the trusted=True advice
    for old, new in ((b"Dense", b"initialize"), (b"Dense", b"dense")):
        with pytest.raises(UnsafeModelError, match="trusted=True"):
            sn.load(file_naming(tmp_path, old, new))


# ------------------------------------------------------------------ ModelCheckpoint checked early
def fit_with(callback, epochs=2, **options):
    model = sn.Sequential([Dense(3, name="d")], input_shape=(4,), seed=0).compile("adam", "cross_entropy")
    x = np.random.default_rng(0).random((10, 4)).astype("float32")
    model.fit(x, np.arange(10) % 3, epochs=epochs, verbose=0, callbacks=[callback], **options)
    return model


def test_checkpoint_refuses_a_missing_folder_when_made(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^\[Errno 2\] ModelCheckpoint: the folder '.*nodir' of "
                       r"'.*nodir/ck\.sn' does not exist \(create it first"):
        ModelCheckpoint(tmp_path / "nodir" / "ck.sn")
    ModelCheckpoint(tmp_path / "{epoch}" / "ck.sn")  # a folder named by a field is made by the user later


@pytest.mark.parametrize("template, problem", [
    ("ck-{epoch.sn", r"is not a valid template \(expected '}' before end of string\)"),
    ("ck-{}.sn", r"has the field \{\}"),
    ("ck-{0}.sn", r"has the field \{0\}"),
    ("ck-{epoch.real}.sn", r"has the field \{epoch\.real\}"),
    ("ck-{loss:d}.sn", r"cannot be filled in \(Unknown format code 'd' for object of type 'float'\)"),
])
def test_checkpoint_refuses_a_bad_template_when_made(tmp_path, template, problem):
    with pytest.raises(ValueError, match=f"^ModelCheckpoint: path '.*{problem}; fields are \\{{epoch\\}}"):
        ModelCheckpoint(str(tmp_path / template))


def test_a_field_not_logged_names_checkpoint_field_and_logged_values_before_saving(tmp_path):
    checkpoint = ModelCheckpoint(str(tmp_path / "ck-{val_loss:.3f}.sn"), monitor="loss")
    # called by hand: a KeyError at the epoch's end; fit refuses it before the first batch
    checkpoint.set_model(sn.Sequential([Dense(2)], input_shape=(3,)))
    with pytest.raises(KeyError, match=r"ModelCheckpoint: path '.*ck-\{val_loss:\.3f\}\.sn' uses "
                       r"\{val_loss\}, which is not among the logged values \['accuracy', 'loss'\] "
                       r"\(or epoch\); validation values need validation_data"):
        checkpoint.on_epoch_end(0, {"loss": 1.0, "accuracy": 0.5})
    with pytest.raises(ValueError, match=r"ModelCheckpoint has \{val_loss\} in its path "
                       r"'.*ck-\{val_loss:\.3f\}\.sn', which fit will not log: it logs loss, accuracy "
                       r"\(val_\* values need validation_data"):
        fit_with(checkpoint)
    assert os.listdir(tmp_path) == []
    fit_with(checkpoint, validation_split=0.2)  # with validation the same template works
    assert len(os.listdir(tmp_path)) == 2 and all(name.startswith("ck-") for name in os.listdir(tmp_path))


def test_the_best_value_is_put_back_when_its_checkpoint_cannot_be_saved(tmp_path, monkeypatch):
    checkpoint = ModelCheckpoint(tmp_path / "best.sn", monitor="loss", save_best_only=True)
    model = fit_with(checkpoint, epochs=1)
    best_after_one = model.callback_state["model_checkpoint"]["best"]

    def disk_full(model, path, trusted=False):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(serialization, "save_model", disk_full)
    with pytest.raises(OSError, match="No space left"):
        model.fit(np.random.default_rng(0).random((10, 4)).astype("float32"), np.arange(10) % 3,
                  epochs=1, verbose=0, callbacks=[checkpoint])
    # the loss improved, but the improvement was never saved: the old best stays the one to beat
    assert model.callback_state["model_checkpoint"]["best"] == best_after_one
    assert sn.load(tmp_path / "best.sn").callback_state["model_checkpoint"]["best"] == best_after_one


# ------------------------------------------------------------------ weights whose layer names differ
def two_dense(names):
    layers = [Dense(4, name=names[0]), Dense(3, name=names[1])]
    return sn.Sequential(layers, input_shape=(5,), seed=0).build()


def test_weights_differing_only_in_layer_names_get_a_hint_that_works(tmp_path):
    saved = two_dense(("dense_3", "dense_4"))
    saved.save_weights(tmp_path / "w.npz")
    model = two_dense(("a", "b"))
    with pytest.raises(ValueError, match=r"; only the layer names differ \(the same arrays in the same "
                       r"order; the weights' 'dense_3/W' is the model's 'a/W'\): build the model with the "
                       r"weights' layer names \(name=\.\.\. on each layer\), or give set_weights the arrays "
                       r"as a list, which it matches by position: model.set_weights\(list\(weights.values"):
        model.load_weights(tmp_path / "w.npz")
    with np.load(tmp_path / "w.npz") as archive:  # the hint, followed
        model.set_weights(list(archive.values()))
    x = np.random.default_rng(0).random((2, 5)).astype("float32")
    np.testing.assert_array_equal(model.predict(x), saved.predict(x))


@pytest.mark.parametrize("other", [
    sn.Sequential([Dense(4, name="a"), Dense(2, name="b")], input_shape=(5,)),   # a shape differs
    sn.Sequential([Dense(4, name="a")], input_shape=(5,)),                       # a layer fewer
    sn.Sequential([Dense(4, name="a", use_bias=False), Dense(3, name="b"),       # the same count,
                   Dense(1, name="c", use_bias=False)], input_shape=(5,)),       # other params
])
def test_no_names_hint_when_the_arrays_would_not_fit_by_position(tmp_path, other):
    two_dense(("dense_3", "dense_4")).save_weights(tmp_path / "w.npz")
    with pytest.raises(ValueError, match="weights do not match the model") as error:
        other.load_weights(tmp_path / "w.npz")
    assert "only the layer names differ" not in str(error.value)


# ------------------------------------------------------------------ scratchnet train on a full disk
TINY_RUN = ["train", "--model", "tiny_cnn", "--epochs", "1", "--limit", "100"]


def disk_full_for(monkeypatch, *names):
    """Writing any of ``names`` fails with ENOSPC, as on a full disk; other files are written."""
    from scratchnet import atomic_file

    real_write = atomic_file._write_replace

    def write(path, folder, base, chunks):
        if base in names:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, folder, base, chunks)
    monkeypatch.setattr(atomic_file, "_write_replace", write)


def test_train_says_the_model_could_not_be_saved_and_still_writes_history(tmp_path, capsys, monkeypatch):
    disk_full_for(monkeypatch, "model.sn")
    out = tmp_path / "run"
    assert cli.main([*TINY_RUN, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    reason = f"cannot save to '{out / 'model.sn'}': No space left on device"
    assert err == (f"scratchnet train: the trained model could not be saved ({reason}); history.json keeps "
                   f"the training history. Make room (or choose another --out) and train again.\n"
                   f"Skipped the report and figures: model.sn was not saved; history.json is in {out}\n")
    record = json.loads((out / "history.json").read_text())
    assert record["model_save_error"] == reason and record["epochs_completed"] == 1
    assert len(record["history"]["loss"]) == 1 and os.listdir(out) == ["history.json"]


def test_train_says_when_history_cannot_be_written_either(tmp_path, capsys, monkeypatch):
    disk_full_for(monkeypatch, "model.sn", "history.json")
    out = tmp_path / "run"
    assert cli.main([*TINY_RUN, "--out", str(out)]) == 1
    assert capsys.readouterr().err.endswith(
        f"scratchnet train: history.json could not be written (cannot save to "
        f"'{out / 'history.json'}': No space left on device)\n")
    assert os.listdir(out) == []


def test_history_json_is_written_atomically(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert cli.main([*TINY_RUN, "--out", str(out)]) == 0
    before = (out / "history.json").read_bytes()
    disk_full_for(monkeypatch, "history.json")  # the second run's history fails: the first's stays whole
    assert cli.main([*TINY_RUN, "--seed", "1", "--out", str(out)]) == 1
    assert (out / "history.json").read_bytes() == before
    assert sn.load(out / "model.sn").seed == 1  # the model of the second run was saved
