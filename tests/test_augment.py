"""Augmentation: what each transform keeps, hand-worked examples, references (scipy, colorsys,
PyTorch), and the statistics of its randomness."""

import colorsys
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import ndimage, stats

from scratchnet.augment import (
    Compose,
    CutMix,
    Cutout,
    Mixup,
    RandomCrop,
    RandomFlip,
    RandomResizedCrop,
    RandomRotation,
    RandomShift,
    bilinear_sample,
    resize_boxes,
    rotate_batch,
)
from scratchnet.augment_color import ColorJitter, RandomGrayscale, hsv_to_rgb, rgb_to_hsv

GEOMETRIC = [RandomFlip(), RandomFlip(vertical=True, p=0.7), RandomCrop(5, padding=2), RandomShift(2),
             RandomRotation(30.0), Cutout(3), RandomResizedCrop(4, scale=(0.3, 1.0))]
COLOUR = [ColorJitter(0.4, 0.4, 0.4, 0.1), RandomGrayscale(0.5)]


def rng_of(seed=0):
    return np.random.default_rng(seed)


@given(n=st.integers(1, 6), h=st.integers(5, 9), w=st.integers(5, 9), seed=st.integers(0, 2**31),
       dtype=st.sampled_from([np.float32, np.float64]), index=st.integers(0, len(GEOMETRIC + COLOUR) - 1))
def test_shapes_dtype_labels_range_and_input_kept(n, h, w, seed, dtype, index):
    transform = (GEOMETRIC + COLOUR)[index]
    channels = 3 if transform in COLOUR else 2
    x = rng_of(seed).random((n, h, w, channels)).astype(dtype)
    y = rng_of(seed).integers(0, 10, size=n)
    x_before, y_before = x.copy(), y.copy()
    out, labels = transform(x, y, rng_of(seed + 1))
    size = getattr(transform, "size", None)
    expected = (h, w) if size is None or isinstance(transform, Cutout) else size
    assert out.shape == (n, *expected, channels) and out.dtype == dtype
    assert labels is y
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(y, y_before)
    # geometric: convex combinations of pixels or the fill 0; colour: clipped to [0, 1]
    assert out.min() >= min(0.0, x.min()) - 1e-6 and out.max() <= max(1.0, x.max()) + 1e-6
    again, _ = transform(x, y, rng_of(seed + 1))
    np.testing.assert_array_equal(again, out)  # same seed, same result
    copy = pickle.loads(pickle.dumps(transform))
    np.testing.assert_array_equal(copy(x, y, rng_of(seed + 1))[0], out)


# ---------------------------------------------------------------------- flips and crops
def test_flip_hand_worked_and_rate():
    x = np.arange(6.0).reshape(1, 2, 3, 1)
    out, _ = RandomFlip(p=1.0)(x, None, rng_of())
    np.testing.assert_array_equal(out[0, :, :, 0], [[2, 1, 0], [5, 4, 3]])
    out, _ = RandomFlip(horizontal=False, vertical=True, p=1.0)(x, None, rng_of())
    np.testing.assert_array_equal(out[0, :, :, 0], [[3, 4, 5], [0, 1, 2]])
    np.testing.assert_array_equal(RandomFlip(p=0.0)(x, None, rng_of())[0], x)
    many = np.broadcast_to(x, (4000, 2, 3, 1))
    flipped = (RandomFlip(p=0.3)(many, None, rng_of(5))[0][:, 0, 0, 0] == 2).mean()
    assert abs(flipped - 0.3) < 4 * np.sqrt(0.3 * 0.7 / 4000)  # within 4 standard deviations


def test_crop_windows_are_slices_of_the_padded_image_and_offsets_uniform():
    n, padding = 3000, 2
    x = np.broadcast_to(np.arange(1.0, 17.0).reshape(1, 4, 4, 1), (n, 4, 4, 1))
    out, _ = RandomCrop(4, padding=padding)(x, None, rng_of(3))
    padded = np.pad(x[0, :, :, 0], padding)
    windows = {(t, l): padded[t:t + 4, l:l + 4] for t in range(5) for l in range(5)}
    offsets = []
    for image in out[:, :, :, 0]:
        matches = [key for key, window in windows.items() if np.array_equal(window, image)]
        assert len(matches) == 1  # every output is exactly one window of the padded image
        offsets.append(matches[0])
    counts = np.zeros((5, 5))
    for t, l in offsets:
        counts[t, l] += 1
    assert stats.chisquare(counts.ravel()).pvalue > 1e-4  # 25 offsets, equally likely


def test_shift_moves_digits_by_at_most_max_shift_without_flipping():
    x = np.zeros((200, 9, 9, 1))
    x[:, 4, 4, 0], x[:, 4, 5, 0] = 1.0, 0.5  # a dot and its right neighbour
    out, _ = RandomShift(max_shift=2)(x, None, rng_of(1))
    rows, cols = np.nonzero(out[:, :, :, 0] == 1.0)[1:]
    assert len(rows) == 200 and set(rows - 4) == set(cols - 4) == {-2, -1, 0, 1, 2}
    np.testing.assert_array_equal(out[np.arange(200), rows, cols + 1, 0], 0.5)  # still to the right


@pytest.mark.parametrize("make", [lambda: RandomCrop(4, padding=2, fill=0.5),
                                  lambda: RandomShift(max_shift=2, fill=0.5)], ids=["crop", "shift"])
def test_crop_and_shift_pad_with_the_fill_value(make):
    # the windows of np.pad(image, 2, constant_values=0.5): a fill that is not passed on pads with 0
    x = np.broadcast_to(np.arange(1.0, 17.0).reshape(1, 4, 4, 1), (300, 4, 4, 1))
    padded = np.pad(x[0, :, :, 0], 2, constant_values=0.5)
    windows = [padded[t:t + 4, l:l + 4] for t in range(5) for l in range(5)]
    out, _ = make()(x, None, rng_of(3))
    for image in out[:, :, :, 0]:
        assert sum(np.array_equal(window, image) for window in windows) == 1
    assert (out == 0.5).any() and not (out == 0.0).any()


# ---------------------------------------------------------------------- bilinear sampling
def test_bilinear_sample_matches_scipy_map_coordinates(rng):
    x = rng.normal(size=(2, 5, 6, 3))
    rows = rng.uniform(-1.5, 5.5, size=(2, 4, 7))
    cols = rng.uniform(-1.5, 6.5, size=(2, 4, 7))
    clamped = bilinear_sample(x, rows, cols)
    filled = bilinear_sample(x, rows, cols, fill=0.25)
    for n in range(2):
        for c in range(3):
            coords = [rows[n], cols[n]]
            np.testing.assert_allclose(clamped[n, :, :, c], ndimage.map_coordinates(
                x[n, :, :, c], coords, order=1, mode="nearest"), atol=1e-12)
            np.testing.assert_allclose(filled[n, :, :, c], ndimage.map_coordinates(
                x[n, :, :, c], coords, order=1, mode="grid-constant", cval=0.25), atol=1e-12)


def test_resize_hand_worked_half_pixel_centres():
    x = np.array([[1.0, 3.0], [5.0, 7.0]]).reshape(1, 2, 2, 1)
    zero = np.zeros(1, dtype=np.intp)
    out = resize_boxes(x, zero, zero, zero + 2, zero + 2, (4, 4))[0, :, :, 0]
    # sources along an axis: -0.25, 0.25, 0.75, 1.25 -> clipped 0, 0.25, 0.75, 1
    row = np.array([1.0, 1.5, 2.5, 3.0])
    np.testing.assert_allclose(out, np.array([0, 1, 3, 4])[:, None] + row[None, :], atol=1e-15)
    np.testing.assert_array_equal(resize_boxes(x, zero, zero, zero + 2, zero + 2, (2, 2)), x)


@pytest.mark.torch
def test_resized_crops_match_torch_interpolate(rng):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(16, 12, 10, 3))
    transform = RandomResizedCrop((7, 9), scale=(0.1, 1.0), ratio=(0.5, 2.0))
    top, left, h, w = transform.boxes(16, 12, 10, rng_of(2))
    out = resize_boxes(x, top, left, h, w, (7, 9))
    for n in range(16):
        box = torch.tensor(x[n, top[n]:top[n] + h[n], left[n]:left[n] + w[n]]).permute(2, 0, 1)[None]
        expected = torch.nn.functional.interpolate(box, size=(7, 9), mode="bilinear", align_corners=False)
        np.testing.assert_allclose(out[n], expected[0].permute(1, 2, 0).numpy(), atol=1e-12)
    np.testing.assert_array_equal(transform(x, None, rng_of(2))[0], out)


def test_resized_crop_boxes_follow_scale_ratio_and_bounds():
    transform = RandomResizedCrop(8, scale=(0.2, 0.6), ratio=(0.75, 1.25))
    top, left, h, w = transform.boxes(5000, 40, 40, rng_of(4))
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 40).all() and (left + w <= 40).all()
    area, aspect = h * w / 1600, w / h
    assert area.min() >= 0.2 * 0.9 and area.max() <= 0.6 * 1.1            # rounding to whole pixels
    assert aspect.min() >= 0.75 * 0.9 and aspect.max() <= 1.25 * 1.1
    assert abs(np.median(area) - 0.4) < 0.02                                # U(0.2, 0.6) in the middle
    # top uniform in 0 .. 40 - h: (top + u) / (41 - h) with u ~ U(0, 1) is then U(0, 1)
    spread = (top + rng_of(8).random(len(top))) / (41 - h)
    assert stats.kstest(spread, "uniform").pvalue > 1e-4
    # no box possible (ratio range far from the image's): the centred fallback
    top, left, h, w = RandomResizedCrop(4, scale=(1.0, 1.0), ratio=(3.0, 4.0)).boxes(3, 8, 8, rng_of())
    np.testing.assert_array_equal(np.stack([top, left, h, w]), [[2] * 3, [0] * 3, [3] * 3, [8] * 3])


def test_rotation_matches_scipy_rotate_and_quarter_turn(rng):
    x = rng.random((1, 9, 11, 2))
    angles = np.deg2rad(np.array([17.0]))
    ours = rotate_batch(x, angles, fill=0.5)
    expected = ndimage.rotate(x[0], 17.0, axes=(1, 0), reshape=False, order=1, mode="grid-constant", cval=0.5)
    np.testing.assert_allclose(ours[0], expected, atol=1e-12)
    square = rng.random((1, 5, 5, 1))
    quarter = rotate_batch(square, np.array([np.pi / 2]))[0]
    np.testing.assert_allclose(quarter, np.rot90(square[0]), atol=1e-12)  # counter-clockwise
    angles_drawn = []
    for seed in range(400):  # angles uniform in [-30, 30]: recovered from a dot's position
        dot = np.zeros((1, 21, 21, 1))
        dot[0, 10, 20, 0] = 1.0
        out, _ = RandomRotation(30.0)(dot, None, rng_of(seed))
        r, c = np.unravel_index(out[0, :, :, 0].argmax(), (21, 21))
        angles_drawn.append(np.degrees(np.arctan2(10 - r, c - 10)))
    assert min(angles_drawn) > -33 and max(angles_drawn) < 33 and abs(np.mean(angles_drawn)) < 3


# ---------------------------------------------------------------------- cutout, colour
def test_cutout_is_one_square_clipped_at_the_border():
    x = np.ones((500, 10, 10, 1))
    out, _ = Cutout(4, fill=-1.0)(x, None, rng_of(2))
    for image in out[:, :, :, 0]:
        rows, cols = np.nonzero(image == -1.0)
        assert len(rows) == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)  # a rectangle
        assert rows.max() - rows.min() < 4 and cols.max() - cols.min() < 4
    full = ((out == -1.0).sum(axis=(1, 2, 3)) == 16).mean()
    assert abs(full - 0.49) < 0.08  # centre (0..9): the square fits for 7 of 10 positions per axis
    # p = 0.3: each image is cut with probability 0.3 (its centre is always inside: >= 1 cell cut)
    out, _ = Cutout(4, fill=-1.0, p=0.3)(np.ones((2000, 10, 10, 1)), None, rng_of(2))
    cut = int((out == -1.0).any(axis=(1, 2, 3)).sum())
    assert stats.binomtest(cut, 2000, 0.3).pvalue > 1e-4


def test_hsv_round_trip_matches_colorsys(rng):
    pixels = np.concatenate([rng.random((500, 3)), [[0.2, 0.2, 0.2], [0, 0, 0], [1, 0, 0], [0.5, 0.5, 1]]])
    ours = rgb_to_hsv(pixels)
    reference = np.array([colorsys.rgb_to_hsv(*p) for p in pixels])
    np.testing.assert_allclose(ours, reference, atol=1e-12)
    shifted = ours.copy()
    shifted[:, 0] = (shifted[:, 0] + 0.3) % 1.0
    np.testing.assert_allclose(hsv_to_rgb(shifted), [colorsys.hsv_to_rgb(*p) for p in shifted], atol=1e-12)


def test_brightness_factors_are_uniform_and_clipped():
    x = np.full((3000, 2, 2, 3), 0.4)
    out, _ = ColorJitter(brightness=0.5)(x, None, rng_of(1))
    factors = out[:, 0, 0, 0] / 0.4
    assert stats.kstest(factors, "uniform", args=(0.5, 1.0)).pvalue > 1e-4
    bright, _ = ColorJitter(brightness=0.5)(np.full((100, 1, 1, 3), 0.9), None, rng_of(1))
    assert bright.max() == 1.0  # clipped to the value range
    # brightness 1.5: factors U[max(0, 1 - 1.5), 2.5] = U[0, 2.5] (torchvision's), never below 0
    # (U[-0.5, 2.5] clipped would turn 1/6 of the images black); 0.4 * 2.5 = 1 is never clipped
    out, _ = ColorJitter(brightness=1.5)(x, None, rng_of(1))
    assert stats.kstest(out[:, 0, 0, 0] / 0.4, "uniform", args=(0.0, 2.5)).pvalue > 1e-4


def test_contrast_and_saturation_hand_worked():
    x = np.array([[[[0.2, 0.4, 0.6], [0.6, 0.2, 0.4]]]])  # (1, 1, 2, 3)
    gray = x @ np.array([0.2989, 0.587, 0.114])           # (1, 1, 2)
    out, _ = ColorJitter(contrast=0.5)(x, None, rng_of(7))
    c = rng_of(7).uniform(0.5, 1.5)
    np.testing.assert_allclose(out, np.clip(c * x + (1 - c) * gray.mean(), 0, 1), atol=1e-15)
    out, _ = ColorJitter(saturation=0.5)(x, None, rng_of(7))
    np.testing.assert_allclose(out, np.clip(c * x + (1 - c) * gray[..., None], 0, 1), atol=1e-15)
    grays, _ = ColorJitter(saturation=0.9, hue=0.5)(np.full((4, 2, 2, 3), 0.3), None, rng_of())
    # no colour to saturate or turn; only the gray weights' sum, 0.9999, moves a gray pixel
    np.testing.assert_allclose(grays, 0.3, atol=0.9 * 1e-4 * 0.3)


def test_random_grayscale_weights_and_rate():
    x = rng_of().random((2000, 2, 2, 3))
    out, _ = RandomGrayscale(p=0.25)(x, None, rng_of(3))
    chosen = np.all(out[..., 0] == out[..., 2], axis=(1, 2))
    assert abs(chosen.mean() - 0.25) < 4 * np.sqrt(0.25 * 0.75 / 2000)
    np.testing.assert_allclose(out[chosen, ..., 1], x[chosen] @ np.array([0.2989, 0.587, 0.114]), atol=1e-12)
    np.testing.assert_array_equal(out[~chosen], x[~chosen])
    with pytest.raises(ValueError, match="RandomGrayscale: expected RGB images"):
        RandomGrayscale()(x[..., :1], None, rng_of())


# ---------------------------------------------------------------------- mixing
def test_mixup_mixes_images_and_labels_with_one_beta_weight():
    x = rng_of().random((10, 3, 3, 1))
    weights = []
    for seed in range(400):
        out, soft = Mixup(alpha=0.4, num_classes=10)(x, np.arange(10), rng_of(seed))
        assert soft.shape == (10, 10) and np.allclose(soft.sum(axis=1), 1.0)
        moved = np.nonzero(soft.max(axis=1) < 1)[0]  # images paired with another one
        i = moved[0]
        lam = soft[i, i]
        partner = np.argsort(soft[i])[-2] if lam >= 0.5 else np.argmax(soft[i])
        np.testing.assert_allclose(out[i], lam * x[i] + (1 - lam) * x[partner], atol=1e-12)
        weights.append(lam)
    assert stats.kstest(weights, stats.beta(0.4, 0.4).cdf).pvalue > 1e-4


def test_cutmix_label_weight_is_the_area_kept():
    x = np.arange(10.0).reshape(10, 1, 1, 1) * np.ones((10, 8, 8, 1))  # image i is constant i
    for seed in range(50):
        out, soft = CutMix(alpha=1.0, num_classes=10)(x, np.arange(10), rng_of(seed))
        kept = (out[:, :, :, 0] == np.arange(10)[:, None, None]).mean(axis=(1, 2))
        np.testing.assert_allclose(np.diag(soft)[kept < 1], kept[kept < 1], atol=1e-6)
    soft_in = np.full((10, 4), 0.25)
    _, soft_out = CutMix(alpha=1.0)(x, soft_in, rng_of())  # soft labels need no class count
    np.testing.assert_allclose(soft_out, 0.25, atol=1e-7)


@pytest.mark.parametrize("make", [Mixup, CutMix])
def test_mixing_integer_labels_without_class_count_is_an_error(make):
    name = make.__name__
    with pytest.raises(ValueError, match=f"{name}: integer labels need num_classes"):
        make(1.0)(np.zeros((2, 4, 4, 1)), np.array([0, 1]), rng_of())
    with pytest.raises(ValueError, match=f"{name}: labels must be in"):
        make(1.0, num_classes=2)(np.zeros((2, 4, 4, 1)), np.array([0, 2]), rng_of())


def test_compose_order_reproducibility_and_errors():
    pipeline = Compose([RandomCrop(4, padding=1), RandomFlip(), Mixup(0.2, num_classes=3)])
    x, y = rng_of().random((6, 4, 4, 3)), np.array([0, 1, 2, 0, 1, 2])
    a = pipeline(x, y, rng_of(9))
    b = pickle.loads(pickle.dumps(pipeline))(x, y, rng_of(9))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[1].shape == (6, 3)
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        pipeline(x, y, 0)
    with pytest.raises(ValueError, match=r"RandomCrop: expected float images \(N, H, W, C\)"):
        RandomCrop(2)(np.zeros((4, 4)), None, rng_of())
    with pytest.raises(ValueError, match="RandomFlip: 6 images but 2 labels"):
        RandomFlip()(x, y[:2], rng_of())


# ---------------------------------------------------------------------- the figure
def test_augmented_grid_shows_originals_then_augmented_copies(tmp_path):
    pytest.importorskip("matplotlib")
    from scratchnet import viz

    x = rng_of().random((10, 8, 8, 3))
    pipeline = Compose([RandomResizedCrop(6), Mixup(1.0, num_classes=3)])
    figure = viz.plot_augmented_grid(x, pipeline, labels=np.arange(10) % 3, class_names=["a", "b", "c"],
                                     n_images=4, n_versions=3, seed=5, save_path=tmp_path / "grid.png")
    assert (tmp_path / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(figure.axes) == 4 * 4  # 4 rows (images) x (original + 3 versions), row by row
    shown = np.array([axes.images[0].get_array() for axes in figure.axes], dtype=object).reshape(4, 4)
    assert all(s.shape == (8, 8, 3) for s in shown[:, 0])
    assert all(s.shape == (6, 6, 3) for s in shown[:, 1:].ravel())
    for row in range(4):
        np.testing.assert_array_equal(shown[row, 0], x[row])      # column 0: the original, unchanged
    rng = rng_of(5)
    first, first_labels = pipeline(x[:4], np.arange(4) % 3, rng)  # column 1: the first call
    for row in range(4):
        np.testing.assert_allclose(shown[row, 1], first[row])
    assert figure.axes[0].get_title() == "a\n(original)"
    expected = " ".join(f"{'abc'[k]} {first_labels[0, k]:.2f}" for k in np.argsort(first_labels[0])[::-1][:2]
                        if first_labels[0, k] > 0.005)
    assert figure.axes[1].get_title() == expected
    for wrong, error in ((0, ValueError), (2.5, TypeError)):
        for option in ("n_images", "n_versions"):
            with pytest.raises(error, match=rf"^plot_augmented_grid: {option} must be an int >= 1, "
                                            rf"got {wrong}$"):
                viz.plot_augmented_grid(x, pipeline, **{option: wrong})
