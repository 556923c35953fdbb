"""Lesson 3: train a small CNN on real handwritten digits and look inside it.

Run:  python tutorials/03_train_a_cnn.py          (about half a minute on a laptop CPU)

The bundled sample is the real MNIST test set: 8,000 images to train on, 2,000 to test.
tiny_cnn is conv(8, 3x3) - relu - maxpool - flatten - dense(10). After training we save the
learned 3x3 filters and the feature maps of one digit as PNG files, and check the gradient
of the whole model numerically once, the way the test suite does.
"""

import os
import sys

import numpy as np

import scratchnet as sn
from scratchnet import metrics, viz
from scratchnet.datasets import load_mnist_sample
from scratchnet.gradcheck import check_model
from scratchnet.models import tiny_cnn

quick = "--quick" in sys.argv            # a short run, used by the tests
(x_train, y_train), (x_test, y_test) = load_mnist_sample()
if quick:
    x_train, y_train, x_test, y_test = x_train[:500], y_train[:500], x_test[:200], y_test[:200]

model = tiny_cnn(input_shape=(28, 28, 1), n_classes=10, seed=0)
model.compile(optimizer=sn.Adam(lr=3e-3), loss="cross_entropy")
model.summary()

# 1. Is the backward pass right? Central differences on a few samples, in float64.
#    Check on random inputs, not on the digits: MNIST is mostly exact zeros, so with zero
#    biases every all-black patch sits exactly on relu's kink at 0 and max-pool windows
#    tie, where the derivative does not exist (central differences give 0.5 there instead
#    of 0 or 1). Try x_train[:4] instead and watch the bias row fail.
rng = np.random.default_rng(0)
x_check = rng.normal(size=(4, 28, 28, 1))
print(check_model(model, x_check, y_train[:4], max_elements=20))

# 2. Train.
#    The last 10% of the training images validate each epoch; the test images stay unseen
#    until the final accuracy below (validating on them would tune the model to the test set).
history = model.fit(x_train, y_train, epochs=1 if quick else 3, batch_size=64, validation_split=0.1)
predicted = metrics.predictions(model.predict(x_test))
print(f"test accuracy: {metrics.accuracy(y_test, predicted):.4f}")

# 3. Look inside: what did the first layer learn, and what does it see in one digit?
out = os.environ.get("SCRATCHNET_TUTORIAL_OUT", ".")
viz.plot_filters(model, save_path=os.path.join(out, "filters.png"))
viz.plot_feature_maps(model, x_test[0], layer=1, save_path=os.path.join(out, "feature_maps.png"))
viz.plot_confusion_matrix(metrics.confusion_matrix(y_test, predicted, n_classes=10),
                          save_path=os.path.join(out, "confusion.png"))
print(f"wrote filters.png, feature_maps.png and confusion.png to {os.path.abspath(out)}")
