# scratchnet exercise: softmax_cross_entropy
# ruff: noqa: F401, F841  (names the starter gives you to use)
"""Exercise: softmax cross-entropy from logits, forward and backward.

Shapes:  z = logits (N, K)    labels (N,) ints in [0, K)    t = one-hot labels (N, K)

Forward (the mean over the batch):

    p = softmax(z)  row by row,   p[n, k] = exp(z[n, k]) / sum_j exp(z[n, j])
    L = -(1/N) sum_n log p[n, labels[n]]

  Compute log p as  z - max(z) - log(sum_j exp(z_j - max(z)))  (the log-sum-exp shift), so
  logits of size 1000 neither overflow nor take log(0).

Backward:  derive  dL/dz = ?   shape (N, K)   (hint: it is short, and the 1/N stays)

Grade it with:   scratchnet exercise check softmax_cross_entropy.py
"""

import numpy as np


class SoftmaxCrossEntropy:
    name = "softmax_cross_entropy"

    def forward(self, logits, labels):
        """Return the mean loss (a float); keep in self.cache what backward needs."""
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        n = logits.shape[0]
        self.cache = {"p": np.exp(log_p), "labels": labels}
        return float(-log_p[np.arange(n), labels].sum() / n)

    def backward(self):
        """Return dL/dlogits, shape (N, K)."""
        p, labels = self.cache["p"], self.cache["labels"]
        n = p.shape[0]
        t = np.zeros_like(p)
        t[np.arange(n), labels] = 1
        return (p - t) / n
