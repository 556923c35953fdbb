"""The bug zoo: plausible wrong solutions of every exercise, each rejected with the right diagnosis.

Each bug is a text edit of the reference solution in tests/exercise_solutions/ (the mistakes
students make: mean vs sum over the batch, `=` for `+=` under overlapping windows, a missing
kernel flip, a forgotten bias gradient, a transposed weight gradient, a stride left out, ...).
The grader must reject every one, and its report must say what the mistake is (asserted by
content: the diagnosis, and the worst element's index), and accept the correct solution.
"""

from pathlib import Path

import pytest

from scratchnet.exercises import EXERCISES, check

SOLUTIONS = Path(__file__).parent / "exercise_solutions"
WORST = "worst at ["
DY_MISSING = "the chain rule's dy is missing"

# exercise -> [(bug id, old text, new text, phrases the report must contain)]
BUGS = {
    "dense_backward": [
        ("mean over the batch", 'self.grads["W"] = x.T @ dy', 'self.grads["W"] = x.T @ dy / x.shape[0]',
         [WORST, "mean vs sum over the batch", "= 1/N"]),
        ("bias gradient forgotten", '        self.grads["b"] = dy.sum(axis=0)\n', "",
         [WORST, "all zeros", "never filled"]),
        ("transposed weight gradient", 'self.grads["W"] = x.T @ dy', 'self.grads["W"] = dy.T @ x',
         ["grads['W'] has shape (3, 4) but params['W'] has shape (4, 3)", "transposed",
         "transpose matches"]),
        ("bias gradient with keepdims", "dy.sum(axis=0)", "dy.sum(axis=0, keepdims=True)",
         ["grads['b'] has shape (1, 3) but params['b'] has shape (3,)", "extra axis of size 1"]),
        ("own SGD step", "        return dy @ W.T",
         '        self.params["W"] -= 0.1 * self.grads["W"]\n        return dy @ W.T',
         ["backward changed params['W']", "update them twice"]),
        ("sign flipped in dx", "return dy @ W.T", "return -dy @ W.T", [WORST, "opposite sign"]),
        ("no return", "return dy @ W.T", "dy @ W.T", ["backward returned None"]),
    ],
    "relu": [
        ("forgot dy", "return dy * (x > 0)", "return 1.0 * (x > 0)", [WORST, DY_MISSING]),
        ("no mask", "return dy * (x > 0)", "return dy", [WORST]),
        ("mask inverted", "return dy * (x > 0)", "return dy * (x < 0)", [WORST]),
        ("sign", "return dy * (x > 0)", "return -dy * (x > 0)", [WORST, "opposite sign"]),
        ("dy changed in place", "return dy * (x > 0)", "dy[x <= 0] = 0\n        return dy",
         ["modified dy in place"]),
        ("mean over the batch", "return dy * (x > 0)", "return dy * (x > 0) / x.shape[0]",
         [WORST, "mean vs sum over the batch"]),
    ],
    "sigmoid": [
        ("forgot dy", "return dy * y * (1 - y)", "return y * (1 - y)", [WORST, DY_MISSING]),
        ("derivative in x", "return dy * y * (1 - y)", "return dy * x * (1 - x)", [WORST]),
        ("half the derivative", "return dy * y * (1 - y)", "return dy * (1 - y)", [WORST]),
        ("factor 2", "return dy * y * (1 - y)", "return 2 * dy * y * (1 - y)",
         [WORST, "constant factor: analytic = 2 x numeric"]),
        ("sign", "return dy * y * (1 - y)", "return dy * y * (y - 1)", [WORST, "opposite sign"]),
        ("float32", "return dy * y * (1 - y)", "return (dy * y * (1 - y)).astype(np.float32)",
         ["dx of dtype float32", "self.dtype"]),
    ],
    "tanh": [
        ("derivative in x", "return dy * (1 - y * y)", "return dy * (1 - x * x)", [WORST]),
        ("forgot the square", "return dy * (1 - y * y)", "return dy * (1 - y)", [WORST]),
        ("forgot dy", "return dy * (1 - y * y)", "return 1 - y * y", [WORST, DY_MISSING]),
        ("plus instead of minus", "return dy * (1 - y * y)", "return dy * (1 + y * y)", [WORST]),
        ("factor 2", "return dy * (1 - y * y)", "return 2 * dy * (1 - y * y)",
         [WORST, "constant factor: analytic = 2 x numeric"]),
        ("mean over the batch", "return dy * (1 - y * y)", "return dy * (1 - y * y) / len(dy)",
         [WORST, "mean vs sum over the batch"]),
    ],
    "softmax_cross_entropy": [
        ("backward without 1/N", "return (p - t) / n", "return p - t",
         [WORST, "constant factor", "= N (batch size N = 4)", "mean vs sum over the batch"]),
        ("sign", "return (p - t) / n", "return (t - p) / n", [WORST, "opposite sign"]),
        ("no max shift", "shifted = logits - logits.max(axis=1, keepdims=True)", "shifted = logits",
         ["overflow"]),
        ("forward sums over the batch", "return float(-log_p[np.arange(n), labels].sum() / n)",
         "return float(-log_p[np.arange(n), labels].sum())",
         [WORST, "mean vs sum over the batch"]),
        ("one-hot not subtracted", "return (p - t) / n", "return p / n", [WORST]),
        ("softmax over the batch axis", "np.exp(shifted).sum(axis=1, keepdims=True)",
         "np.exp(shifted).sum(axis=0, keepdims=True)", [WORST]),
    ],
    "conv_forward_loops": [
        ("flipped kernel (true convolution)", "np.sum(window * W[:, :, :, f])",
         "np.sum(window * W[::-1, ::-1, :, f])", [WORST, "kernel flip"]),
        ("bias forgotten", "b[f] + np.sum(window", "np.sum(window",
         [WORST, "does not depend on b", "bias never added"]),
        ("stride left out", "window = xp[n, s * oh:s * oh + kh, s * ow:s * ow + kw, :]",
         "window = xp[n, oh:oh + kh, ow:ow + kw, :]", [WORST, "only the cases with stride > 1 fail"]),
        ("padding ignored", "window = xp[n, s * oh", "window = x[n, s * oh",
         ["only the cases with padding fail"]),
        ("one filter for all", "np.sum(window * W[:, :, :, f])", "np.sum(window * W[:, :, :, 0])", [WORST]),
        ("last output row skipped", "for oh in range(out_h):", "for oh in range(out_h - 1):", [WORST]),
    ],
    "conv_backward_loops": [
        ("= for += under overlapping windows",
         "dxp[n, s * oh:s * oh + kh, s * ow:s * ow + kw, :] += W",
         "dxp[n, s * oh:s * oh + kh, s * ow:s * ow + kw, :] = W",
         [WORST]),  # dxp is assigned once per filter too: every cell is wrong, no narrower pattern
        ("bias gradient forgotten", '        self.grads["b"] = dy.sum(axis=(0, 1, 2))\n', "",
         [WORST, "all zeros"]),
        ("mean over the batch", 'self.grads["W"] = dW', 'self.grads["W"] = dW / n_batch',
         [WORST, "mean vs sum over the batch"]),
        ("flipped kernel gradient", "dW[:, :, :, f] += window", "dW[::-1, ::-1, :, f] += window",
         [WORST, "kernel flip"]),
        ("stride left out of dx", "dxp[n, s * oh:s * oh + kh, s * ow:s * ow + kw, :] += W",
         "dxp[n, oh:oh + kh, ow:ow + kw, :] += W", [WORST, "only the cases with stride > 1 fail"]),
        ("own SGD step",
         "        self.grads[\"W\"] = dW\n",
         "        self.grads[\"W\"] = dW\n        self.params[\"W\"] -= 0.01 * dW\n",
         ["backward changed params['W']"]),
    ],
    "conv_backward_im2col": [
        ("= for += in col2im", "j:j + s * (out_w - 1) + 1:s, :] += windows",
         "j:j + s * (out_w - 1) + 1:s, :] = windows",
         [WORST, "only elements under overlapping windows are wrong"]),
        ("mean over the batch", '(cols.T @ dym).reshape(W.shape)',
            '(cols.T @ dym).reshape(W.shape) / dy.shape[0]',
         [WORST, "mean vs sum over the batch"]),
        ("bias gradient forgotten", '        self.grads["b"] = dym.sum(axis=0)\n', "", [WORST, "all zeros"]),
        ("transposed weight gradient", "(cols.T @ dym).reshape(W.shape)", "(dym.T @ cols).reshape(W.shape)",
         [WORST]),
        ("dx with the transposed product", "dcols = dym @ W.reshape(-1, filters).T",
         "dcols = (W.reshape(-1, filters) @ dym.T).T.copy() * -1", [WORST, "opposite sign"]),
        ("crop forgotten", "return dxp[:, p:padded_shape[1] - p, p:padded_shape[2] - p, :]", "return dxp",
         ["backward returned dx of shape (2, 7, 6, 2), expected the input's shape (2, 5, 4, 2)"]),
    ],
    "max_pool": [
        ("= for += under overlapping windows",
         "dx[n, s * oh + i, s * ow + j, c] += dy",
         "dx[n, s * oh + i, s * ow + j, c] = dy",
         [WORST, "only elements under overlapping windows are wrong", "(+=), not assigned (=)"]),
        ("stride left out of backward", "dx[n, s * oh + i, s * ow + j, c] += dy",
         "dx[n, oh + i, ow + j, c] += dy",
         [WORST, "only the cases with stride > 1 fail"]),
        ("gradient to the whole window", "dx[n, s * oh + i, s * ow + j, c] += dy",
         "dx[n, s * oh:s * oh + k, s * ow:s * ow + k, c] += dy", [WORST]),
        ("forgot dy", "dx[n, s * oh + i, s * ow + j, c] += dy[n, oh, ow, c]",
         "dx[n, s * oh + i, s * ow + j, c] += 1", [WORST]),
        ("winner row and column swapped", "i, j = divmod(int(winner[n, oh, ow, c]), k)",
         "j, i = divmod(int(winner[n, oh, ow, c]), k)", [WORST]),
        ("min instead of max", "y[:, oh, ow, :] = window.max(axis=1)", "y[:, oh, ow, :] = window.min(axis=1)",
         [WORST]),
    ],
    "avg_pool": [
    ("= for += under overlapping windows", "s * ow:s * ow + k, :] += dy",
        "s * ow:s * ow + k, :] = dy",
     [WORST, "only elements under overlapping windows are wrong"]),
    ("divided by k instead of k^2", "/ (k * k)", "/ k", [WORST, "constant factor: analytic = 2 x numeric"]),
    ("no division in backward", "/ (k * k)", "", [WORST, "constant factor: analytic = 4 x numeric"]),
    ("stride left out of backward", "dx[:, s * oh:s * oh + k, s * ow:s * ow + k, :]",
        "dx[:, oh:oh + k, ow:ow + k, :]",
     [WORST, "only the cases with stride > 1 fail"]),
    ("sum instead of mean in forward", ".mean(axis=(1, 2))", ".sum(axis=(1, 2))",
     [WORST, "constant factor: analytic = 0.25 x numeric"]),
    ("dy not broadcast per window", "dy[:, oh:oh + 1, ow:ow + 1, :]", "dy[:, oh, ow, :]", ["raised"]),
]
}

BUGS["dropout"] = [
    ("mask not applied in backward", 'return dy * self.cache["mask"] / (1 - self.rate)',
        "return dy / (1 - self.rate)",
     [WORST]),
    ("backward not scaled", 'return dy * self.cache["mask"] / (1 - self.rate)',
        'return dy * self.cache["mask"]',
     [WORST, "constant factor"]),
    ("a new mask in backward", 'return dy * self.cache["mask"] / (1 - self.rate)',
     "return dy * (self.random_generator().random(dy.shape) >= self.rate) / (1 - self.rate)",
     ["calling backward (dx) twice gave different results"]),
    ("dropout at inference too", "        if not training:\n            return x\n", "",
     ["inference (training=False) must return x unchanged"]),
    ("np.random instead of the layer's generator", "self.random_generator().random(x.shape)",
     "np.random.random(x.shape)", ["never from np.random"]),
    ("scaled by (1 - rate)", "return x * mask / (1 - self.rate)", "return x * mask * (1 - self.rate)",
     [WORST]),
]
BUGS["batch_norm_backward"] = [
    ("backward without the mean terms",
     "return (dxhat - dxhat.mean(axis=axes) - xhat * (dxhat * xhat).mean(axis=axes)) / std",
     "return dxhat / std", [WORST, "mu and var treated as constants: their gradient terms are missing"]),
    ("the variance term forgotten", " - xhat * (dxhat * xhat).mean(axis=axes)", "",
     [WORST, "var treated as a constant: its gradient term - xhat * mean(dxhat * xhat) is missing"]),
    ("dgamma not summed over the batch", 'self.grads["gamma"] = (dy * xhat).sum(axis=axes)',
     'self.grads["gamma"] = dy * xhat', ["grads['gamma'] has shape", "but params['gamma'] has shape (5,)"]),
    ("dbeta a mean over the batch", 'self.grads["beta"] = dy.sum(axis=axes)',
        'self.grads["beta"] = dy.mean(axis=axes)',
     [WORST, "mean vs sum over the batch"]),
    ("gamma left out of dx", "dxhat = dy * gamma", "dxhat = dy", [WORST]),
    ("sign of the mean term", "return (dxhat - dxhat.mean(axis=axes)",
        "return (dxhat + dxhat.mean(axis=axes)",
     [WORST]),
]
BUGS["residual_block"] = [
    ("skip path forgotten in dx", "return dz @ W1.T + dy", "return dz @ W1.T", [WORST]),
    ("relu mask forgotten", "dz = dh * (z > 0)", "dz = dh", [WORST]),
    ("transposed dW2", 'self.grads["W2"] = h.T @ dy', 'self.grads["W2"] = dy.T @ h', [WORST,
        "transpose matches"]),
    ("db2 forgotten", '        self.grads["b2"] = dy.sum(axis=0)\n', "", [WORST, "all zeros"]),
    ("dW1 a mean over the batch", 'self.grads["W1"] = x.T @ dz', 'self.grads["W1"] = x.T @ dz / len(x)',
     [WORST, "mean vs sum over the batch"]),
    ("W2 instead of W2.T", "dh = dy @ W2.T", "dh = dy @ W2", [WORST]),
]

CASES = [(name, *bug) for name, bugs in BUGS.items() for bug in bugs]


def write_variant(tmp_path, name, old, new):
    text = (SOLUTIONS / f"{name}.py").read_text()
    split = text.index("\nimport numpy")  # edit the code, not the docstring
    head, code = text[:split], text[split:]
    assert old in code, f"{name}: {old!r} not in the solution"
    path = tmp_path / f"{name}.py"
    path.write_text(head + code.replace(old, new, 1))  # the first occurrence: forward comes first
    return path


def test_every_exercise_has_a_solution_and_at_least_five_bugs():
    for name in EXERCISES:
        assert (SOLUTIONS / f"{name}.py").exists(), name
        assert len(BUGS[name]) >= 5, name


@pytest.mark.parametrize("name", list(EXERCISES))
def test_the_correct_solution_passes(name):
    report = check(SOLUTIONS / f"{name}.py")
    assert report.passed, str(report)
    assert f"PASSED: all {len(EXERCISES[name].cases)} cases" in str(report)


@pytest.mark.parametrize("name, bug, old, new, phrases", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_the_grader_rejects_the_bug_and_names_it(tmp_path, name, bug, old, new, phrases):
    report = check(write_variant(tmp_path, name, old, new))
    text = str(report)
    assert not report.passed, text
    assert "FAIL" in text
    for phrase in phrases:
        assert phrase in text, f"{bug}: {phrase!r} missing from\n{text}"
