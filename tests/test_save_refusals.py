"""model.save refuses, before writing, a model whose pickle names a global the safe load refuses.

A layer keeping ``self.fn = np.tanh`` or its own ``np.random.default_rng()`` used to save fine
and then fail only at load ("refused to load global numpy.tanh"), naming no layer and no attribute.
"""

from __future__ import annotations

import io
import pickle
import pickletools

import numpy as np
import pytest
from serialization_models import blobs, mlp

import scratchnet as sn
from scratchnet import serialization
from scratchnet.callbacks import ModelCheckpoint
from scratchnet.layers import Chain, Dense, Layer, Residual
from scratchnet.losses import Loss
from scratchnet.models import get_model
from scratchnet.save_refusals import pickle_globals, refused_at_load
from scratchnet.serialization import RestrictedUnpickler, SerializationError, UnsafeModelError

# How a pickle names np.tanh: numpy.tanh (NumPy 2), numpy.core._multiarray_umath.tanh (NumPy 1)
TANH = r"numpy(?:\.core\._multiarray_umath)?\.tanh"


class Func(Layer):
    """y = fn(x), with the function kept in an attribute (what the safe loader cannot name)."""

    def __init__(self, fn=np.tanh, name=None):
        super().__init__(name)
        self.fn = fn

    def forward(self, x, training=False):
        x = self.check_input(x)
        self.cache = {"x": x}
        return self.fn(x)

    def backward(self, dy):
        return dy


class OwnGenerator(Layer):
    """Noise drawn from a generator of the layer's own, not from self.random_generator()."""

    def __init__(self, name=None):
        super().__init__(name)
        self.gen = np.random.default_rng(0)

    def forward(self, x, training=False):
        x = self.check_input(x)
        self.cache = {"x": x}
        return x + (self.gen.normal(size=x.shape) if training else 0)

    def backward(self, dy):
        return dy


class Double(Layer):
    """y = 2x: plain data only."""

    def forward(self, x, training=False):
        self.cache = {"x": self.check_input(x)}
        return 2 * self.cache["x"]

    def backward(self, dy):
        return 2 * dy


class Settings:
    """A plain class of the user's (no layer, loss, optimizer, callback or schedule)."""

    def __init__(self):
        self.scale = 2.0


class TanhLoss(Loss):
    """Mean of tanh(logits - y) ** 2, keeping np.tanh in an attribute."""

    def __init__(self):
        self.squash = np.tanh

    def forward(self, logits, y, weights=None):
        self.cache = {"d": self.squash(logits - y)}
        return float((self.cache["d"] ** 2).mean())

    def backward(self):
        d = self.cache["d"]
        return 2 * d * (1 - d ** 2) / d.size


def test_function_attribute_is_refused_at_save_naming_layer_attribute_and_the_cure(tmp_path):
    model = sn.Sequential([Func(name="squash"), Dense(3)], input_shape=(6,), seed=0).compile()
    path = tmp_path / "func.sn"
    expected = (r"sequential: not saved: scratchnet.load would refuse the file: layer 'squash' \(Func\) "
                rf"attribute 'fn' holds {TANH}, which the safe loader refuses even with allowed_classes: "
                r".*self.fn_name = 'tanh'.*getattr\(np, self.fn_name\)\(x\)")
    with pytest.raises(SerializationError, match=expected):
        model.save(path)
    assert not path.exists()


def test_own_generator_is_refused_with_the_random_generator_hint_and_the_old_file_kept(tmp_path):
    path = tmp_path / "gen.sn"
    path.write_bytes(b"the previous file")
    model = sn.Sequential([OwnGenerator(name="noisy"), Dense(3)], input_shape=(6,), seed=0).compile()
    model.fit(np.ones((8, 6)), np.arange(8) % 3, verbose=0)
    with pytest.raises(SerializationError, match=r"layer 'noisy' \(OwnGenerator\) attribute 'gen' holds a "
                                                 r"numpy.random._generator.Generator whose pickle names "
                                                 r"numpy.random.*draw from self.random_generator\(\)"):
        model.save(path)
    assert path.read_bytes() == b"the previous file"
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left either


def test_the_layer_named_is_the_one_inside_the_containers(tmp_path):
    inner = Func(np.sinc, name="inner")
    model = sn.Sequential([Residual(Chain([Dense(6), inner], name="body"), name="res"), Dense(2)],
                          input_shape=(6,), seed=0)
    with pytest.raises(SerializationError, match=r"layer 'inner' \(Func\) attribute 'fn' holds numpy.sinc"):
        model.save(tmp_path / "never-written.sn")


def test_a_model_attribute_is_named_when_no_layer_holds_it(tmp_path):
    model = sn.Sequential([Dense(2)], input_shape=(3,), seed=0).compile(sn.SGD(0.1), TanhLoss())
    with pytest.raises(SerializationError, match=r"the model's attribute 'loss' holds a .*TanhLoss whose "
                                                 rf"pickle names {TANH}"):
        model.save(tmp_path / "never-written.sn")


def test_an_object_of_a_class_no_load_takes_is_refused_at_save(tmp_path):
    layer = Double(name="double")
    layer.settings = Settings()
    model = sn.Sequential([layer], input_shape=(3,), seed=0)
    expected = (r"layer 'double' \(Double\) attribute 'settings' holds a .*Settings whose pickle names "
                r".*Settings, .*it is a class of no kind a model file holds \(layer, loss, optimizer")
    with pytest.raises(SerializationError, match=expected):
        model.save(tmp_path / "never-written.sn")


def test_own_classes_of_allowed_kinds_still_save_and_trusted_saves_anything(tmp_path):
    x, y = blobs()
    model = sn.Sequential([Func(np.tanh), Dense(3)], input_shape=(6,), seed=0).compile()
    model.fit(x, y, verbose=0)
    serialization.save_model(model, tmp_path / "trusted.sn", trusted=True)
    with pytest.raises(UnsafeModelError, match=TANH):  # what save refused without trusted
        sn.load(tmp_path / "trusted.sn", allowed_classes=[Func])
    again = sn.load(tmp_path / "trusted.sn", trusted=True)
    np.testing.assert_array_equal(again.predict(x), model.predict(x))

    mine = sn.Sequential([Double(), Dense(3)], input_shape=(6,), seed=0).compile()
    mine.save(tmp_path / "mine.sn")  # an own layer class: loadable with allowed_classes, so saved
    loaded = sn.load(tmp_path / "mine.sn", allowed_classes=[Double])
    np.testing.assert_array_equal(loaded.predict(x), mine.predict(x))


# ------------------------------------------------------------------ the scan itself
class Recording(pickle.Unpickler):
    """The reference: plain pickle's own unpickler, recording every global it looks up."""

    def __init__(self, data):
        super().__init__(io.BytesIO(data))
        self.names = set()

    def find_class(self, module, name):
        self.names.add((module, name))
        return super().find_class(module, name)


def sample_payloads():
    x, y = blobs()
    trained = mlp(optimizer=sn.SGD(sn.optimizers.StepDecay(0.1, 0.5, 3), momentum=0.9))
    trained.fit(x, y, epochs=1, verbose=0)
    zoo = get_model("small_cnn_bn", input_shape=(8, 8, 3)).build()
    funcs = sn.Sequential([Func(np.tanh), Func(np.sinc), Dense(2)], input_shape=(3,), seed=0)
    mixed = {"gen": np.random.default_rng(0), "fn": np.tanh, "x": np.ones(3), "again": np.sinc}
    payloads = [serialization.pickle_model(model) for model in (trained, zoo, funcs)]
    return payloads + [pickle.dumps(mixed, protocol=protocol) for protocol in (0, 2, 4, 5)]


@pytest.mark.parametrize("index", range(7))
def test_pickle_globals_are_exactly_those_pickle_itself_looks_up(index):
    payload = sample_payloads()[index]
    reference = Recording(payload)
    reference.load()
    assert pickle_globals(payload) == reference.names and reference.names


def test_refused_at_load_agrees_with_the_restricted_unpickler_given_every_own_class():
    for payload in sample_payloads():
        for module, name in sorted(pickle_globals(payload)):
            loader = RestrictedUnpickler(io.BytesIO(b""), 0, allowed_classes=[Func])
            try:
                loader.find_class(module, name)
                refused = False
            except UnsafeModelError:
                refused = True
            assert refused_at_load(module, name) == refused, (module, name)


# ------------------------------------------------------------------ review mends (ninth session)
class Spawn(Layer):
    """A layer class with its own __new__: the safe loader never names it."""

    def __new__(cls, *args, **kwargs):
        return super().__new__(cls)

    def forward(self, x, training=False):
        self.cache = {}
        return x

    def backward(self, dy):
        return dy


class MyModel(sn.Sequential):
    """A model class of the user's own: no kind allowed_classes takes."""


class TupleState(Func):
    """A layer whose __getstate__ returns a tuple (its __dict__ and a version), holding np.tanh."""

    def __getstate__(self):
        return (super().__getstate__(), 1)

    def __setstate__(self, state):
        self.__dict__.update(state[0])


def test_a_layer_of_a_refused_class_is_named_as_that_layer_not_as_none(tmp_path):
    model = sn.Sequential([Spawn(name="sp"), Dense(2)], input_shape=(3,), seed=0)
    with pytest.raises(SerializationError, match=r"layer 'sp' \(Spawn\) is an object of "
                                                 r"test_save_refusals.Spawn, which the safe loader refuses"
                                                 r".*defines __new__ or __del__") as refused:
        model.save(tmp_path / "never-written.sn")
    assert "NoneType" not in str(refused.value) and "None" not in str(refused.value)
    mine = MyModel([Dense(2)], input_shape=(3,), seed=0)
    with pytest.raises(SerializationError, match=r"the model is an object of test_save_refusals.MyModel, "
                                                 r".*a model class of your own \(a Sequential subclass\)"):
        mine.save(tmp_path / "never-written.sn")
    assert not (tmp_path / "never-written.sn").exists()


def test_a_getstate_returning_a_tuple_is_searched_through_the_layers_attributes(tmp_path):
    model = sn.Sequential([TupleState(name="tup"), Dense(2)], input_shape=(3,), seed=0)
    expected = rf"layer 'tup' \(TupleState\) attribute 'fn' holds {TANH}"
    with pytest.raises(SerializationError, match=expected):
        model.save(tmp_path / "never-written.sn")
    model.save(tmp_path / "trusted.sn", trusted=True)
    again = sn.load(tmp_path / "trusted.sn", trusted=True)
    x = np.linspace(-2, 2, 6).reshape(2, 3)
    np.testing.assert_array_equal(again.predict(x), model.predict(x))


@pytest.mark.parametrize("index", range(7))
def test_pickle_globals_follow_the_memo_of_an_optimized_pickle(index):
    """pickletools.optimize drops the PUTs nobody GETs and renumbers the rest: the memo slots move."""
    payload = pickletools.optimize(sample_payloads()[index])
    reference = Recording(payload)
    reference.load()
    assert pickle_globals(payload) == reference.names


def test_model_checkpoint_refuses_before_the_first_batch_and_saves_with_trusted(tmp_path):
    x, y = blobs()
    model = sn.Sequential([Dense(4), Func(name="act"), Dense(3)], input_shape=(6,), seed=0).compile("adam")
    before = {name: array.copy() for name, array in model.get_weights().items()}
    with pytest.raises(SerializationError, match=rf"layer 'act' \(Func\) attribute 'fn' holds {TANH}.*"
                                                 r"ModelCheckpoint\(\.\.\., trusted=True\)"):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[ModelCheckpoint(str(tmp_path / "m_{epoch}.sn"))])
    assert model.epochs_trained == 0 and list(tmp_path.iterdir()) == []
    for name, array in model.get_weights().items():  # not one batch ran
        np.testing.assert_array_equal(array, before[name])

    checkpoint = ModelCheckpoint(str(tmp_path / "m_{epoch}.sn"), trusted=True)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[checkpoint])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["m_1.sn", "m_2.sn"]
    again = sn.load(tmp_path / "m_2.sn", trusted=True)
    np.testing.assert_array_equal(again.predict(x), model.predict(x))
    with pytest.raises(TypeError, match="trusted"):
        ModelCheckpoint(str(tmp_path / "m.sn"), trusted="yes")


class Scaled(Loss):
    """A loss whose pickle is a call, Scaled(k): a name the loader takes, a call it refuses."""

    def __init__(self, k=2.0):
        self.k = k

    def __reduce__(self):
        return (Scaled, (self.k,))


def test_save_checks_the_names_a_file_holds_not_the_calls_it_makes(tmp_path):
    """What the README says: save refuses every global the safe load refuses to NAME; a call of an
    allowed class (REDUCE) is refused only by the load, which says so."""
    model = sn.Sequential([Dense(2)], input_shape=(3,), seed=0).compile(sn.SGD(0.1), Scaled(3.0))
    model.save(tmp_path / "scaled.sn")
    with pytest.raises(UnsafeModelError, match="refused to call test_save_refusals.Scaled"):
        sn.load(tmp_path / "scaled.sn", allowed_classes=[Scaled])
    assert sn.load(tmp_path / "scaled.sn", trusted=True).loss.k == 3.0


class CallableSchedule:
    """A schedule written as a plain class with __call__ (the optimizer takes it)."""

    def __init__(self, lr):
        self.lr = lr

    def __call__(self, step):
        return self.lr


def test_a_schedule_not_derived_from_schedule_is_told_which_base_to_use(tmp_path):
    model = sn.Sequential([Dense(2)], input_shape=(3,), seed=0).compile(sn.Adam(lr=CallableSchedule(1e-3)))
    expected = (r"CallableSchedule looks like a learning-rate schedule \(it has __call__\): derive it "
                r"from scratchnet\.schedules\.Schedule")
    with pytest.raises(SerializationError, match=expected):
        model.save(tmp_path / "never-written.sn")
    assert not (tmp_path / "never-written.sn").exists()
