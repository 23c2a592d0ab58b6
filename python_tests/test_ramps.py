"""Mean-teacher schedules: UA-MT threshold ramp and consistency-weight ramp."""

import math

import pytest

from noisyseg_ext.methods import consistency_weight, sigmoid_rampup, uamt_threshold


def test_sigmoid_rampup_values():
    assert sigmoid_rampup(0, 100) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(50, 100) == pytest.approx(math.exp(-5 * 0.25))
    assert sigmoid_rampup(100, 100) == 1.0
    assert sigmoid_rampup(250, 100) == 1.0  # clipped after max_steps
    assert sigmoid_rampup(-3, 100) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(7, 0) == 1.0
    values = [sigmoid_rampup(t, 40) for t in range(41)]
    assert all(a < b for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("C", [2, 3, 5])
def test_uamt_threshold(C):
    assert uamt_threshold(0, 1000, C) == pytest.approx((0.75 + 0.25 * math.exp(-5)) * math.log(C))
    assert uamt_threshold(1000, 1000, C) == pytest.approx(math.log(C))
    t = 300
    assert uamt_threshold(t, 1000, C) == pytest.approx((0.75 + 0.25 * math.exp(-5 * (1 - 0.3) ** 2)) * math.log(C))
    assert uamt_threshold(0, 1000, C) < uamt_threshold(500, 1000, C) < uamt_threshold(1000, 1000, C)


def test_uamt_threshold_bad_classes():
    with pytest.raises(ValueError, match="num_classes"):
        uamt_threshold(0, 10, 0)
    assert uamt_threshold(3, 10, 1) == 0.0


def test_consistency_weight():
    assert consistency_weight(0, 200) == pytest.approx(0.1 * math.exp(-5))
    assert consistency_weight(200, 200) == pytest.approx(0.1)
    assert consistency_weight(100, 200, max_weight=2.0) == pytest.approx(2.0 * math.exp(-5 * 0.25))
