"""Optimizers and learning-rate schedules.

An optimizer reads ``layer.grads`` and changes ``layer.params`` in place. Its state (moments,
step count) is kept per layer and per parameter in ``layer.opt_state[name]``, so it travels
with the model when pickled and training resumes exactly.

Adam (Kingma & Ba, 2015), step t = 1, 2, ...; g = grad + weight_decay * p (L2, as torch.optim.Adam):
    m = beta1 m + (1 - beta1) g              v = beta2 v + (1 - beta2) g^2
    m_hat = m / (1 - beta1^t)                v_hat = v / (1 - beta2^t)
    p = p - lr * m_hat / (sqrt(v_hat) + eps)

SGD with momentum mu (as torch.optim.SGD); g = grad + weight_decay * p:
    buf = g (first step),  buf = mu buf + g (later)
    step = g + mu buf  (Nesterov)   or   step = buf
    p = p - lr * step
"""

from __future__ import annotations

import math

import numpy as np


# ------------------------------------------------------------------ schedules
class ConstantLR:
    def __init__(self, lr: float):
        self.lr = float(lr)

    def __call__(self, step: int) -> float:
        return self.lr

    def __repr__(self):
        return f"{self.lr:g}"


class StepDecay:
    """lr = initial * factor ** (step // every)."""

    def __init__(self, initial: float, factor: float = 0.5, every: int = 1000):
        self.initial, self.factor, self.every = float(initial), float(factor), int(every)

    def __call__(self, step):
        return self.initial * self.factor ** (step // self.every)

    def __repr__(self):
        return f"StepDecay({self.initial:g}, factor={self.factor:g}, every={self.every})"


class ExponentialDecay:
    """lr = initial * rate ** (step / decay_steps)."""

    def __init__(self, initial: float, rate: float = 0.96, decay_steps: int = 1000):
        self.initial, self.rate, self.decay_steps = float(initial), float(rate), int(decay_steps)

    def __call__(self, step):
        return self.initial * self.rate ** (step / self.decay_steps)

    def __repr__(self):
        return f"ExponentialDecay({self.initial:g}, rate={self.rate:g}, decay_steps={self.decay_steps})"


class CosineDecay:
    """lr = final + (initial - final) * (1 + cos(pi * min(step, total) / total)) / 2."""

    def __init__(self, initial: float, total_steps: int, final: float = 0.0):
        self.initial, self.total_steps, self.final = float(initial), int(total_steps), float(final)

    def __call__(self, step):
        progress = min(step, self.total_steps) / self.total_steps
        return self.final + (self.initial - self.final) * 0.5 * (1 + math.cos(math.pi * progress))

    def __repr__(self):
        return f"CosineDecay({self.initial:g}, total_steps={self.total_steps}, final={self.final:g})"


def _as_schedule(lr):
    if isinstance(lr, (int, float, np.floating)) and not isinstance(lr, bool):
        if lr <= 0:
            raise ValueError(f"learning rate must be > 0, got {lr}")
        return ConstantLR(lr)
    if callable(lr) and hasattr(lr, "__dict__"):
        return lr  # a schedule object (classes above, or your own picklable class)
    raise TypeError(f"lr must be a positive number or a schedule object, got {lr!r}")


# ------------------------------------------------------------------ optimizers
class Optimizer:
    """Base: ``step(layers)`` applies one update to every parameter of every layer."""

    def __init__(self, lr, weight_decay: float = 0.0):
        self.schedule = _as_schedule(lr)
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        self.weight_decay = float(weight_decay)
        self.iterations = 0  # steps taken, used by learning-rate schedules

    @property
    def lr(self) -> float:
        """The learning rate the next step will use."""
        return self.schedule(self.iterations)

    def step(self, layers) -> None:
        """Update every trainable parameter of ``layers`` and of the layers inside them."""
        from .layers.base import iter_layers

        lr = self.lr
        for layer in iter_layers(layers):
            if not layer.trainable:
                continue  # frozen: parameters and optimizer state stay exactly as they are
            for name, param in layer.params.items():
                grad = layer.grads[name]
                if self.weight_decay:
                    grad = grad + param.dtype.type(self.weight_decay) * param
                state = layer.opt_state.setdefault(name, {})
                self.update(param, grad, state, lr)
        self.iterations += 1

    def update(self, param, grad, state, lr) -> None:
        raise NotImplementedError


class Adam(Optimizer):
    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
            raise ValueError(f"Adam: betas must be in [0, 1), got {beta1}, {beta2}")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def update(self, param, grad, state, lr):
        if not state:
            state.update(m=np.zeros_like(param), v=np.zeros_like(param), t=0)
        state["t"] += 1
        t, m, v = state["t"], state["m"], state["v"]
        m_hat_scale = 1.0 / (1 - self.beta1 ** t)         # m_hat = m / (1 - b1^t)
        v_hat_scale = 1.0 / (1 - self.beta2 ** t)         # v_hat = v / (1 - b2^t)
        # Every step below writes into m, v or ONE scratch array (out=...), instead of a new
        # temporary per operation: about half the memory traffic for a large weight matrix.
        # Scalars are Python floats, so a float32 parameter stays float32 throughout.
        scratch = np.multiply(grad, 1 - self.beta1, dtype=param.dtype)
        m *= self.beta1
        m += scratch                                      # m = b1 m + (1 - b1) g
        np.multiply(grad, grad, out=scratch)
        scratch *= 1 - self.beta2
        v *= self.beta2
        v += scratch                                      # v = b2 v + (1 - b2) g^2
        np.multiply(v, v_hat_scale, out=scratch)
        np.sqrt(scratch, out=scratch)
        scratch += self.eps                               # sqrt(v_hat) + eps
        np.divide(m, scratch, out=scratch)
        scratch *= lr * m_hat_scale                       # lr m_hat / (sqrt(v_hat) + eps)
        param -= scratch

    def __repr__(self):
        return (f"Adam(lr={self.schedule!r}, beta1={self.beta1}, beta2={self.beta2}, "
                f"eps={self.eps}, weight_decay={self.weight_decay})")


class SGD(Optimizer):
    def __init__(self, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(lr, weight_decay)
        if momentum < 0:
            raise ValueError(f"SGD: momentum must be >= 0, got {momentum}")
        if nesterov and momentum == 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

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
                f"weight_decay={self.weight_decay})")


OPTIMIZERS = {"adam": Adam, "sgd": SGD}


def get_optimizer(optimizer) -> Optimizer:
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str) and optimizer.lower() in OPTIMIZERS:
        return OPTIMIZERS[optimizer.lower()]()
    raise ValueError(f"unknown optimizer {optimizer!r}; expected an Optimizer or one of "
                     f"{', '.join(OPTIMIZERS)}")
