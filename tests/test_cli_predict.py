"""`scratchnet predict` on the pictures students have: RGB(A) PNGs for a grey (1-channel) model."""

import numpy as np

from scratchnet import cli


def test_predict_reads_an_ordinary_rgba_png_for_a_grey_model(tmp_path, capsys):
    """matplotlib (and most tools) write grey pictures as RGBA PNGs: predict refused them for the digit
    model (1 channel); now it converts to grey, says so, and says what a digit should look like."""
    import matplotlib.image

    from scratchnet import models
    from scratchnet.recipes import attach_preprocessing

    model = models.tiny_cnn(input_shape=(28, 28, 1))
    model.compile()
    attach_preprocessing(model, "mnist-sample", [str(k) for k in range(10)], None, standardize=False)
    model.save(tmp_path / "digits.sn")
    digit = np.zeros((28, 28))
    digit[6:22, 12:16] = 1.0                                            # a white "1" on black
    matplotlib.image.imsave(tmp_path / "one.png", digit, cmap="gray", vmin=0, vmax=1)
    rgba = matplotlib.image.imread(tmp_path / "one.png")
    assert rgba.shape == (28, 28, 4)                                    # what the student had
    assert cli.main(["predict", str(tmp_path / "digits.sn"), str(tmp_path / "one.png")]) == 0
    printed = capsys.readouterr()
    (line,), note = printed.out.splitlines(), printed.err.strip()         # stdout: predictions only
    assert note == (f"note: {tmp_path / 'one.png'} is RGB; converted to grey (0.299 R + 0.587 G + "
                    "0.114 B) for the 1-channel model; the digit model expects a white digit on black, "
                    "28x28, as in MNIST")
    # R = G = B in a grey picture, so grey = R (the weights sum to 1)
    probabilities = model.predict_proba(rgba[np.newaxis, :, :, :1])[0]
    best = int(np.argmax(probabilities))
    assert line == f"{tmp_path / 'one.png'}: {best} ({probabilities[best]:.3f})"


def test_rgb_to_grey_weights_each_channel_by_its_luma(capsys):
    from scratchnet.cli_evaluate import to_grey

    pixels = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [51, 102, 204]]], dtype=np.uint8)
    grey = to_grey(pixels, "x.png")            # hand-worked: 0.299 R + 0.587 G + 0.114 B
    np.testing.assert_allclose(grey[0, :, 0], [0.299, 0.587, 0.114, 0.299 * 0.2 + 0.587 * 0.4 + 0.114 * 0.8],
                               rtol=1e-6)
    assert capsys.readouterr().err == ("note: x.png is RGB; converted to grey (0.299 R + 0.587 G + 0.114 B) "
                                       "for the 1-channel model\n")
