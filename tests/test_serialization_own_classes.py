"""A student's own loss, optimizer, schedule and callback classes through save and the safe load.

``allowed_classes`` used to take Layer subclasses only, while the refusal of a custom loss told
the user to pass it there (which raised "allowed_classes takes Layer subclasses").
"""

import io
import pickle

import numpy as np
import pytest
from serialization_models import assert_same_state, blobs, mlp

import scratchnet as sn
from scratchnet import safe_unpickler
from scratchnet.callbacks import Callback
from scratchnet.losses import Loss
from scratchnet.optimizers import Optimizer
from scratchnet.safe_unpickler import RestrictedUnpickler, UnsafeModelError
from scratchnet.save_refusals import pickle_globals
from scratchnet.schedules import Schedule


class SoftmaxCE(Loss):
    """Mean cross-entropy of softmax(logits), written out by a student."""

    name = "softmax_ce"
    has_accuracy = True

    def forward(self, logits, y, weights=None):
        shifted = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        self.cache = {"p": p, "y": y}
        return float(-np.log(p[np.arange(len(y)), y]).mean())

    def backward(self):
        p, y = self.cache["p"].copy(), self.cache["y"]
        p[np.arange(len(y)), y] -= 1                   # dL/dz = (p - onehot(y)) / N
        return p / len(y)

    def accuracy(self, logits, y):
        return float((logits.argmax(axis=1) == y).mean())


class PlainSGD(Optimizer):
    """p = p - lr * g."""

    def update(self, param, grad, state, lr):
        param -= lr * grad

    def __repr__(self):
        return f"PlainSGD(lr={self.schedule!r})"


class HalfLife(Schedule):
    """lr(step) = lr0 * 0.5 ** (step / half): a schedule of the student's own."""

    def __init__(self, lr0, half):
        self.lr0, self.half = lr0, half

    def __call__(self, step):
        return self.lr0 * 0.5 ** (step / self.half)

    def __repr__(self):
        return f"HalfLife({self.lr0}, {self.half})"


class Recorder(Callback):
    pass


class Helper:
    """A plain class of the user's: not a kind a model file holds."""


def test_own_loss_refusal_names_its_kind_and_the_call_it_recommends_works(tmp_path):
    x, y = blobs()
    model = mlp()
    model.compile(sn.Adam(1e-2), SoftmaxCE())
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "loss.sn")
    with pytest.raises(UnsafeModelError, match=r"SoftmaxCE is a loss class of your own: pass it, "
                                               r"scratchnet\.load\(path, allowed_classes=\[SoftmaxCE\]\)"):
        sn.load(tmp_path / "loss.sn")
    loaded = sn.load(tmp_path / "loss.sn", allowed_classes=[SoftmaxCE])
    assert type(loaded.loss) is SoftmaxCE
    assert loaded.evaluate(x, y) == model.evaluate(x, y)


def test_own_optimizer_and_schedule_load_and_resume_bitwise(tmp_path):
    x, y = blobs()
    model = mlp().compile(PlainSGD(HalfLife(0.1, 10)), "cross_entropy")
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "opt.sn")
    with pytest.raises(UnsafeModelError, match=r"PlainSGD is an optimizer class of your own: pass it"):
        sn.load(tmp_path / "opt.sn")
    with pytest.raises(UnsafeModelError, match=r"HalfLife is a schedule class of your own: pass it"):
        sn.load(tmp_path / "opt.sn", allowed_classes=[PlainSGD])
    loaded = sn.load(tmp_path / "opt.sn", allowed_classes=[PlainSGD, HalfLife])
    assert type(loaded.optimizer) is PlainSGD and type(loaded.optimizer.schedule) is HalfLife
    steps = model.optimizer.iterations
    assert steps > 0 and loaded.optimizer.lr == 0.1 * 0.5 ** (steps / 10)
    model.fit(x, y, epochs=1, verbose=0)
    loaded.fit(x, y, epochs=1, verbose=0)
    assert_same_state(model, loaded)


def test_builtin_optimizer_with_own_schedule_loads_when_the_schedule_is_named(tmp_path):
    model = mlp().compile(sn.SGD(HalfLife(0.2, 4)), "cross_entropy")
    model.save(tmp_path / "sched.sn")
    with pytest.raises(UnsafeModelError, match="HalfLife is a schedule class of your own"):
        sn.load(tmp_path / "sched.sn")
    loaded = sn.load(tmp_path / "sched.sn", allowed_classes=[HalfLife])
    assert loaded.optimizer.schedule(8) == 0.2 * 0.5 ** 2


def test_own_class_kinds_and_what_allowed_classes_refuses():
    own_class_kind = safe_unpickler.own_class_kind
    assert [own_class_kind(cls) for cls in (SoftmaxCE, PlainSGD, HalfLife, Recorder, sn.layers.Dense)] == \
        ["loss", "optimizer", "schedule", "callback", "layer"]
    assert own_class_kind(Helper) is None and own_class_kind(HalfLife(1, 1)) is None
    for wrong in (Helper, dict, HalfLife(1, 1)):
        with pytest.raises(TypeError, match="allowed_classes takes Layer subclasses, Loss, Optimizer and "
                                            "Callback subclasses and schedule classes"):
            sn.load("never-read.sn", allowed_classes=[wrong])

    class Spawning(Loss):
        def __new__(cls):
            return super().__new__(cls)

    with pytest.raises(TypeError, match="Spawning defines __new__ or __del__: load it with trusted=True"):
        sn.load("never-read.sn", allowed_classes=[Spawning])


def test_refusal_hint_for_a_class_not_imported_and_for_a_class_of_no_allowed_kind():
    loader = RestrictedUnpickler(io.BytesIO(b""), 0)
    with pytest.raises(UnsafeModelError, match=r"If Thing is a layer, loss, optimizer, callback or schedule "
                                               r"class of your own, import it and pass it"):
        loader.find_class("module_nobody_imported", "Thing")
    with pytest.raises(UnsafeModelError, match="Helper is a class of your own that is no layer, loss, "
                                               "optimizer, callback or schedule class") as refused:
        loader.find_class(__name__, "Helper")
    assert "allowed_classes=[Helper]" not in str(refused.value)


class HalfLifeNoBase:
    """The same schedule without the Schedule base class: a class with a __call__ and nothing more."""

    def __init__(self, lr0, half):
        self.lr0, self.half = lr0, half

    def __call__(self, step):
        return self.lr0 * 0.5 ** (step / self.half)


def test_a_class_with_a_call_is_no_schedule_without_the_schedule_base_class(tmp_path):
    """Behaviour change on purpose: "schedule" meant any class with a __call__, so allowed_classes
    took library classes (a file naming xmlrpc's ServerProxy was told to pass it there)."""
    import argparse
    import weakref
    import xmlrpc.client

    library_callables = (xmlrpc.client.ServerProxy, argparse._StoreAction, weakref.finalize, HalfLifeNoBase,
                         sn.Sequential)
    for cls in library_callables:
        assert safe_unpickler.own_class_kind(cls) is None, cls
        with pytest.raises(TypeError, match=r"schedule classes \(subclasses of scratchnet.schedules"):
            sn.load("never-read.sn", allowed_classes=[cls])
    loader = RestrictedUnpickler(io.BytesIO(b""), 0)
    with pytest.raises(UnsafeModelError, match="refused to load global xmlrpc.client.ServerProxy") as refused:
        loader.find_class("xmlrpc.client", "ServerProxy")
    assert "schedule class of your own" not in str(refused.value)
    assert "allowed_classes=[ServerProxy]" not in str(refused.value)

    model = mlp().compile(sn.SGD(HalfLifeNoBase(0.2, 4)), "cross_entropy")
    with pytest.raises(sn.serialization.SerializationError, match="HalfLifeNoBase, which the safe loader "
                                                                  "refuses even with allowed_classes"):
        model.save(tmp_path / "never-written.sn")


def test_every_builtin_schedule_derives_from_schedule_and_still_pickles_by_its_own_path():
    from scratchnet import schedules

    classes = [value for value in vars(schedules).values() if isinstance(value, type)
               and value.__module__ == schedules.__name__ and value is not Schedule]
    assert len(classes) == 8
    for cls in classes:
        assert issubclass(cls, Schedule) and safe_unpickler.own_class_kind(cls) == "schedule"
    # the base class adds nothing to a schedule's pickle: it names its own class only, as before
    assert pickle_globals(pickle.dumps(schedules.StepDecay(0.1), protocol=5)) == \
        {("scratchnet.schedules", "StepDecay")}
    with pytest.raises(NotImplementedError, match="must define __call__"):
        Schedule()(0)
