"""Known wrong answers the grader names exactly (exercises/mistakes.py, gradcheck_diagnose.py):
each fires on its mistake, and not on a differently wrong solution (a right one never meets it:
the grader looks for known mistakes only in a failed case)."""

from test_exercises import max_pool_routing_ties
from test_grader_mends import edited

from scratchnet.exercises import check


def diagnoses(report):
    return {line.strip() for case in report.cases for message in case.messages
            for line in message.splitlines() if line.strip().startswith("diagnosis: ")}


def test_max_pool_ties_to_the_last_maximum_or_shared_are_named(tmp_path):
    argmax = "winner[:, oh, ow, :] = window.argmax(axis=1)"
    last_argmax = "winner[:, oh, ow, :] = k * k - 1 - window[:, ::-1, :].argmax(axis=1)"
    last = check(edited(tmp_path, "max_pool", (argmax, last_argmax)))
    assert [case.passed for case in last.cases][4] is False
    assert diagnoses(last) == {"diagnosis: on a tie dy went to the LAST maximum of the window: give it to "
                               "the FIRST in row-major order (what np.argmax returns), as the starter says"}
    # /tmp/grader/work/max_pool_sharetie.py: dy / count to every tied maximum
    shared = max_pool_routing_ties(tmp_path, "shared", "winners / winners.sum(axis=(1, 2), keepdims=True)")
    assert diagnoses(check(shared)) == {
        "diagnosis: on a tie dy was shared between the tied maxima (dy / count): give all of it to ONE "
        "cell, the first in row-major order, as the starter says"}
    wrong_stride = check(edited(tmp_path, "max_pool",
                                ("dx[n, s * oh + i, s * ow + j, c]", "dx[n, oh + i, ow + j, c]")))
    assert not wrong_stride.passed and not any("tie" in note for note in diagnoses(wrong_stride))


def test_a_flipped_kernel_in_dx_and_a_kernel_transposed_in_space_are_named(tmp_path):
    flipped = check(edited(tmp_path, "conv_backward_loops", ("+= W[:, :, :, f] * dy[n, oh, ow, f]",
                                                             "+= W[::-1, ::-1, :, f] * dy[n, oh, ow, f]")))
    assert not any(case.passed for case in flipped.cases)
    assert diagnoses(flipped) == {
        "diagnosis: dx computed with the flipped kernel W[::-1, ::-1]: the forward is a cross-correlation "
        "(no flip), so each product x[s*oh + i, s*ow + j] * W[i, j] sends dy * W[i, j] back to that same "
        "x cell: use W[i, j] unflipped in dx"}
    transposed = check(edited(tmp_path, "conv_backward_loops",
                              ('self.grads["W"] = dW',
                               'self.grads["W"] = dW.transpose(1, 0, 2, 3) if dW.shape[0] == dW.shape[1] '
                               'else dW')))
    text = str(transposed)
    assert [case.passed for case in transposed.cases] == [False, False, False, True, False]
    assert text.count("kernel transposed in space: W.transpose(1, 0, 2, 3) equals the numeric gradient") == 4
    assert not any("flipped kernel" in note for note in diagnoses(transposed))
    no_stride = check(edited(tmp_path, "conv_backward_loops",
                             ("+= W[:, :, :, f] * dy[n, oh, ow, f]",
                              "+= W[:, :, :, f] * dy[n, oh, ow, f] * (s == 1)")))
    assert not no_stride.passed
    assert not any("flipped kernel" in note or "transposed in space" in note for note in diagnoses(no_stride))


def test_dense_dw_from_the_cached_output_is_named(tmp_path):
    # /tmp/grader/work/dense_backward_1.py
    report = check(edited(tmp_path, "dense_backward",
                          ('self.cache = {"x": x}',
                           'self.cache = {"x": x, "y": x @ self.params["W"] + self.params["b"]}'),
                          ('self.grads["W"] = x.T @ dy', 'self.grads["W"] = self.cache["y"].T @ dy')))
    assert [case.passed for case in report.cases] == [False, False, False, False]
    assert diagnoses(report) == {"diagnosis: dW from the cached OUTPUT: your grads['W'] equals y.T @ dy; "
                                 "dW = x.T @ dy uses the forward's INPUT x (y = x W + b: dy/dW involves x)"}
    transposed = check(edited(tmp_path, "dense_backward",
                              ('self.grads["W"] = x.T @ dy', 'self.grads["W"] = dy.T @ x')))
    assert "cached OUTPUT" not in str(transposed)
