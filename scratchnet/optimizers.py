"""Optimizers: Adam, AdamW, SGD (learning-rate schedules live in ``schedules.py``).

An optimizer reads ``layer.grads`` and changes ``layer.params`` in place. Its state (moments,
step count) is kept per layer and per parameter in ``layer.opt_state[name]``, so it travels
with the model when pickled and training resumes exactly.

Gradient clipping (``clipnorm=c``, any optimizer; as torch.nn.utils.clip_grad_norm_), over the
gradients g_i of every trainable parameter of every non-frozen layer, before weight decay:
    norm = sqrt(sum_i sum(g_i^2))        g_i = g_i * min(1, c / (norm + 1e-6))

Adam (Kingma & Ba, 2015), step t = 1, 2, ...; g = grad + weight_decay * p (L2, as torch.optim.Adam):
    m = beta1 m + (1 - beta1) g              v = beta2 v + (1 - beta2) g^2
    m_hat = m / (1 - beta1^t)                v_hat = v / (1 - beta2^t)
    p = p - lr * m_hat / (sqrt(v_hat) + eps)

AdamW (Loshchilov & Hutter, 2019), in torch.optim.AdamW's form: decay decoupled from the gradient,
    p = p * (1 - lr * weight_decay)          then the Adam step above with g = grad
The paper's Algorithm 2 writes the step p = p - eta_t (alpha m_hat / (sqrt(v_hat) + eps) + lambda p)
with eta_t the schedule multiplier (not times alpha): with lr = alpha eta_t, torch's weight_decay
is lambda / alpha (lambda = lr_0 * weight_decay for the base rate lr_0 = alpha); both then decay
with the schedule.

SGD with momentum mu (as torch.optim.SGD); g = grad + weight_decay * p:
    buf = g (first step),  buf = mu buf + g (later)
    step = g + mu buf  (Nesterov)   or   step = buf
    p = p - lr * step

Hyperparameters are numbers, Python's or NumPy's (``SGD(lr=np.float32(0.1))``); bools and strings
are refused. scratchnet also refuses values torch accepts, because each one is a mistake a
student makes rather than a setting anyone wants: momentum >= 1 (the buffer never forgets a
gradient and the steps grow without bound), a beta of 1 (Adam's bias correction divides by
1 - 1^t = 0), eps <= 0 (where a gradient is exactly 0, m / (sqrt(v) + eps) is 0/0 = NaN),
a negative weight_decay (it pushes the weights away from 0) and clipnorm <= 0 (every gradient
would be scaled to nothing). Each error names the optimizer and what it expected.

The learning rate: ``optimizer.lr`` is the rate the next step will use (``schedule(iterations)``).
Setting it, ``model.optimizer.lr = 1e-4`` (after compile or ``scratchnet.load``), replaces the
schedule with that constant rate; to change the schedule, assign ``optimizer.schedule``.
"""

from __future__ import annotations

import math
import warnings
import weakref

import numpy as np

from .caller import user_stacklevel
from .gradcheck_contract import grad_shape_hint
from .layers.base import iter_layers, missing_attribute
from .option_checks import check_real, is_real, refuse_class

# Re-exported: schedules used to live here (``from scratchnet.optimizers import StepDecay``).
from .schedules import (  # noqa: F401
    ConstantLR,
    CosineAnnealing,
    CosineDecay,
    ExponentialDecay,
    LinearWarmup,
    OneCycle,
    ReduceOnPlateau,
    StepDecay,
)


def _as_schedule(lr, owner: str):
    """A number lr > 0 becomes ConstantLR(lr); a schedule object is kept; ``owner`` names the
    optimizer in the errors."""
    if is_real(lr):
        return ConstantLR(check_real(lr, "lr", owner, above=0))
    refuse_class(lr, "lr", owner, expected="a positive number or a schedule object", arguments="...")
    if callable(lr) and hasattr(lr, "__dict__"):
        return lr  # a schedule object (schedules.py, or your own picklable class)
    raise TypeError(f"{owner}: lr must be a positive number or a schedule object, got {lr!r}")


def describe_value(value) -> str:
    """'a list', 'an array of dtype float64 and shape (4, 8)': what a parameter was replaced by."""
    if not isinstance(value, np.ndarray):
        kind = type(value).__name__
        return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"  # a list, an int
    return f"an array of dtype {value.dtype} and shape {value.shape}"


def check_params(layers) -> None:
    """Every ``layer.params[name]`` is still what build made: a NumPy array of the layer's dtype
    and of its built shape (``layer.param_shapes``). Assigning one, ``layer.params["W"] =
    np.random.randn(4, 8)``, may replace it by a float64 array in a float32 model (trains
    silently in float64, then the saved file cannot load), a list or a wrong shape (a NumPy error
    deep in a kernel); copying values in, ``layer.params["W"][...] = value``, cannot. Runs before
    every forward pass of a model and every optimizer step: it compares types, dtypes and shapes,
    no pass over an array."""
    for layer in layers:
        built_shapes = layer.param_shapes or {}  # None: a layer from a file saved before it existed
        for name, param in layer.params.items():
            built_shape = built_shapes.get(name)
            right_array = isinstance(param, np.ndarray) and param.dtype == layer.dtype
            if right_array and built_shape in (None, param.shape):
                continue
            expected = f"a {layer.dtype} array" + ("" if built_shape is None else f" of shape {built_shape}")
            error = TypeError if not right_array else ValueError
            what = describe_value(param)
            if layer.param_shapes is None:  # a layer of one's own whose build skipped Layer.build
                raise error(f"{layer.name} ({type(layer).__name__}): params[{name!r}] is {what}, but the "
                            f"model computes in {layer.dtype}: make parameters in init_params (Layer.build "
                            f"casts them), or with dtype=self.dtype")
            raise error(f"{layer.name} ({type(layer).__name__}): params[{name!r}] is {what}, "
                        f"but the layer was built with {expected}: was it replaced by assignment "
                        f"(layer.params[{name!r}] = ...)? Copy the values into the built array instead, "
                        f"layer.params[{name!r}][...] = value, or use model.set_weights(...)")


def check_gradient_shapes(layers) -> None:
    """Every ``layer.grads[name]`` has the shape of ``layer.params[name]`` (a layer of your own may
    forget to sum over the batch axis, or never fill a gradient). Runs at every step: it compares
    shapes only, no pass over an array; the hint is ``check_layer``'s (gradcheck_contract)."""
    for layer in layers:
        for name, param in layer.params.items():
            grad = layer.grads.get(name)
            if grad is None:
                raise ValueError(f"{layer.name}: grads[{name!r}] must have the shape of params[{name!r}], "
                                 f"{param.shape}, got nothing; backward fills every gradient (summed "
                                 f"over the batch axis): the layer contract, grads[name] for every "
                                 f"params[name]; scratchnet.gradcheck.check_layer(layer) checks it")
            if np.shape(grad) != param.shape:
                hint = grad_shape_hint(np.shape(grad), param.shape)
                raise ValueError(f"{layer.name}: grads[{name!r}] must have the shape of params[{name!r}], "
                                 f"{param.shape}, got shape {np.shape(grad)}{hint}; backward fills every "
                                 f"gradient (summed over the batch axis)")


# ------------------------------------------------------------------ optimizers
class Optimizer:
    """Base: ``step(layers)`` applies one update to every parameter of every layer."""

    decoupled_weight_decay = False  # AdamW: decay applied to p directly, not added to the gradient

    def __init__(self, lr, weight_decay: float = 0.0, clipnorm: float | None = None):
        owner = type(self).__name__
        self.schedule = _as_schedule(lr, owner)
        self.weight_decay = check_real(weight_decay, "weight_decay", owner, least=0)  # < 0 grows the weights
        self.clipnorm = None if clipnorm is None else check_real(clipnorm, "clipnorm", owner, above=0)
        self.iterations = 0  # steps taken, used by learning-rate schedules

    @property
    def lr(self) -> float:
        """The learning rate the next step will use: ``schedule(iterations)``."""
        return self.schedule(self.iterations)

    @lr.setter
    def lr(self, value) -> None:
        """``optimizer.lr = 1e-4`` replaces the schedule by that constant rate (from the next step)."""
        if not is_real(value):
            raise TypeError(f"{type(self).__name__}.lr: expected a positive number, got {value!r} "
                            "(to install a schedule, assign optimizer.schedule)")
        self.schedule = _as_schedule(value, f"{type(self).__name__}.lr")

    def clip_scale(self, grads) -> float:
        """min(1, clipnorm / (global norm + 1e-6)), the factor clip_grad_norm_ applies to every grad."""
        clipnorm = getattr(self, "clipnorm", None)  # optimizers saved before clipnorm existed
        if clipnorm is None:
            return 1.0
        total = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))   # ||(g_1, ..., g_n)||_2
        return min(1.0, clipnorm / (total + 1e-6))

    def step(self, layers) -> None:
        """Update every trainable parameter of ``layers`` and of the layers inside them."""
        lr = self.lr
        # frozen layers are skipped: their parameters and optimizer state stay exactly as they are
        trainable = [layer for layer in iter_layers(layers) if layer.trainable]
        check_params(trainable)           # before any update: a wrong one would stop a step half done
        check_gradient_shapes(trainable)
        scale = self.clip_scale([g for layer in trainable for g in layer.grads.values()])
        for layer in trainable:
            for name, param in layer.params.items():
                grad = layer.grads[name]
                if scale < 1.0:
                    grad = grad * param.dtype.type(scale)
                if self.weight_decay and not self.decoupled_weight_decay:
                    grad = grad + param.dtype.type(self.weight_decay) * param
                state = layer.opt_state.setdefault(name, {})
                self.update(param, grad, state, lr)
        self.iterations += 1

    def update(self, param, grad, state, lr) -> None:
        """Change ``param`` in place, ``param -= lr * grad`` for plain SGD; ``state`` is this
        parameter's own dict (moments, step count), kept on its layer between steps."""
        raise NotImplementedError(
            f"{type(self).__name__} must write update(self, param, grad, state, lr): change param in "
            f"place (param -= lr * grad, not param = ...), keeping this parameter's moments in the dict "
            f"state; step calls it for every trainable parameter (an Optimizer subclass writes update)")

    def __getattr__(self, attribute):
        """Only reached for a missing attribute: a subclass whose ``__init__`` skipped
        ``super().__init__(lr)`` has no ``iterations``, ``schedule``, ..., and is told so."""
        set_by_init = ("schedule", "weight_decay", "clipnorm", "iterations")
        raise missing_attribute(self, attribute, Optimizer, set_by_init)

    # ------------------------------------------------------------------ owner
    def attach(self, model) -> None:
        """Become ``model``'s optimizer (``Sequential.compile``; a loaded model's, on load).

        * An optimizer compiled into a second live model is refused: its step count
          (``iterations``, what a schedule reads) would count both models' steps. The model is
          held through a weak reference, never pickled, so a saved, loaded or deep-copied
          model's optimizer belongs to that copy alone.
        * Replacing the model's optimizer clears every layer's ``opt_state`` (containers' inner
          layers too): the old optimizer's moments and step counts are not this one's (SGD's
          buffer has no Adam ``t``), as a new ``torch.optim`` object starts empty. The same
          object again keeps them (compile after load resumes exactly).
        """
        owner = self.owner()
        if owner is not None and owner is not model and owner.optimizer is self:
            same_name = ""
            if owner.name == model.name:
                same_name = (" (another model object of that name, still alive: e.g. an earlier one the "
                             "interpreter keeps as _ or a notebook as Out[n])")
            raise ValueError(
                f"{model.name}: this {type(self).__name__} is already compiled into the model "
                f"{owner.name!r}{same_name}; its step count (iterations, which the learning-rate schedule "
                f"reads) would count both models' steps: give each model its own optimizer, e.g. "
                f"compile(optimizer={type(self).__name__}(...))")
        if owner is None and "_owner" in self.__dict__ and self.iterations > 0:  # its model is gone
            warnings.warn(f"{model.name}: this {type(self).__name__} took {self.iterations} step(s) for "
                          f"a model that no longer exists; its learning-rate schedule goes on from step "
                          f"{self.iterations}. Give a new optimizer to start afresh", UserWarning,
                          stacklevel=user_stacklevel())
        if model.optimizer is not self:
            for layer in iter_layers(model.layers):
                layer.opt_state = {}
        self._owner = weakref.ref(model)

    def owner(self):
        """The model this optimizer was last attached to, if it is still alive (else None)."""
        reference = self.__dict__.get("_owner")
        return None if reference is None else reference()

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_owner", None)  # a weak reference does not pickle; the loading model attaches it
        return state


class Adam(Optimizer):
    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, clipnorm=None):
        super().__init__(lr, weight_decay, clipnorm)
        owner = type(self).__name__
        beta_reason = ("with a beta of 1 the moment never takes in a gradient and its bias correction "
                       "1 - beta^t is 0")
        self.beta1 = check_real(beta1, "beta1", owner, least=0, below=1, why_high=beta_reason)
        self.beta2 = check_real(beta2, "beta2", owner, least=0, below=1, why_high=beta_reason)
        self.eps = check_real(eps, "eps", owner, above=0, why_low=(
            "it keeps m / (sqrt(v) + eps) finite where a gradient is exactly 0: with eps = 0 that is "
            "0 / 0 = NaN"))

    def update(self, param, grad, state, lr):
        if not state:
            state.update(m=np.zeros_like(param), v=np.zeros_like(param), t=0)
        state["t"] += 1
        t, m, v = state["t"], state["m"], state["v"]
        bias1, bias2 = 1 - self.beta1 ** t, 1 - self.beta2 ** t
        # Every step below writes into m, v or ONE scratch array (out=...), instead of a new
        # temporary per operation: about half the memory traffic for a large weight matrix.
        # Scalars are Python floats, so a float32 parameter stays float32 throughout.
        scratch = np.multiply(grad, 1 - self.beta1, dtype=param.dtype)
        m *= self.beta1
        m += scratch                                      # m = b1 m + (1 - b1) g
        np.multiply(grad, 1 - self.beta2, out=scratch)   # (1 - b2) g first, then times g: torch's
        scratch *= grad                                   # order; g * g overflows float32 from 1.8e19
        v *= self.beta2
        v += scratch                                      # v = b2 v + (1 - b2) g^2
        # lr m_hat / (sqrt(v_hat) + eps) = (lr sqrt(b2c) / b1c) m / (sqrt(v) + eps sqrt(b2c)),
        # with b1c = 1 - b1^t, b2c = 1 - b2^t: the bias corrections move onto two scalars,
        # one pass over the array fewer than scaling v first
        np.sqrt(v, out=scratch)
        scratch += self.eps * math.sqrt(bias2)
        np.divide(m, scratch, out=scratch)
        scratch *= lr * math.sqrt(bias2) / bias1
        param -= scratch

    def __repr__(self):
        return (f"Adam(lr={self.schedule!r}, beta1={self.beta1}, beta2={self.beta2}, "
                f"eps={self.eps}, weight_decay={self.weight_decay}, clipnorm={self.clipnorm})")


class AdamW(Adam):
    """Adam with decoupled weight decay, exactly torch.optim.AdamW:
        p = p * (1 - lr * weight_decay),   then the Adam step with g = grad (no decay term in g).
    """

    decoupled_weight_decay = True

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, clipnorm=None):
        if np.ndim(betas) != 1 or len(betas) != 2:  # a pair (tuple, list or array), not one number
            raise ValueError(f"AdamW: betas must be a pair (beta1, beta2), got {betas!r}")
        super().__init__(lr, betas[0], betas[1], eps, weight_decay, clipnorm)

    def update(self, param, grad, state, lr):
        if self.weight_decay:
            param *= 1 - lr * self.weight_decay                # p = p (1 - lr wd)
        super().update(param, grad, state, lr)

    def __repr__(self):
        return (f"AdamW(lr={self.schedule!r}, betas=({self.beta1}, {self.beta2}), eps={self.eps}, "
                f"weight_decay={self.weight_decay}, clipnorm={self.clipnorm})")


class SGD(Optimizer):
    def __init__(self, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0, clipnorm=None):
        super().__init__(lr, weight_decay, clipnorm)
        self.momentum = check_real(momentum, "momentum", "SGD", least=0, below=1, why_high=(
            "with momentum >= 1 the buffer buf = mu buf + g never forgets a gradient: the steps grow "
            "without bound and training diverges"))
        if isinstance(nesterov, str) or nesterov not in (True, False):  # "no" would count as True
            raise TypeError(f"SGD: nesterov must be True or False, got {nesterov!r}")
        if nesterov and momentum == 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")
        self.nesterov = bool(nesterov)

    def update(self, param, grad, state, lr):
        if self.momentum:
            if "buf" not in state:
                state["buf"] = np.array(grad, dtype=param.dtype, copy=True)  # buf = g
            else:
                state["buf"] *= self.momentum
                state["buf"] += grad                      # buf = mu buf + g
            buf = state["buf"]
            grad = grad + self.momentum * buf if self.nesterov else buf
        param -= (lr * grad).astype(param.dtype, copy=False)

    def __repr__(self):
        return (f"SGD(lr={self.schedule!r}, momentum={self.momentum}, nesterov={self.nesterov}, "
                f"weight_decay={self.weight_decay}, clipnorm={self.clipnorm})")


OPTIMIZERS = {"adam": Adam, "adamw": AdamW, "sgd": SGD}


def get_optimizer(optimizer) -> Optimizer:
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str) and optimizer.lower() in OPTIMIZERS:
        return OPTIMIZERS[optimizer.lower()]()
    raise ValueError(f"unknown optimizer {optimizer!r}; expected an Optimizer or one of "
                     f"{', '.join(OPTIMIZERS)}")
