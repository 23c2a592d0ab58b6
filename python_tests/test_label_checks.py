"""Label checks of the ops: immediate (default), deferred (read at a later check) and off."""

import pytest
import torch

from noisyseg_ext import mc_uncertainty, pint_loss, weighted_ce
from noisyseg_ext.ops import check_deferred_labels, label_check_mode
from noisyseg_ext.ops import label_checks


def _bad_target(n=2, h=4, w=5, value=3):
    t = torch.randint(0, 2, (n, h, w))
    t[1, 2, 3] = value
    return t


def test_immediate_names_the_value():
    with pytest.raises(ValueError, match="holds 3"):
        weighted_ce(torch.randn(2, 2, 4, 5), _bad_target())


def test_deferred_raises_at_the_check_not_at_the_call():
    logits = torch.randn(2, 2, 4, 5)
    with label_check_mode("deferred"):
        loss = weighted_ce(logits, _bad_target())          # no error here
        assert torch.isfinite(loss)
        weighted_ce(logits, torch.randint(0, 2, (2, 4, 5)))  # a good call adds nothing
        assert float(label_checks.pending()[("weighted_ce", logits.device)]) == 1
        with pytest.raises(ValueError, match=r"weighted_ce \(1 pixel"):
            check_deferred_labels()
        check_deferred_labels()  # cleared: a second check passes
    assert label_checks.get_label_check_mode() == "immediate"


def test_deferred_covers_pint_and_uncertainty():
    n, c, h, w = 2, 2, 4, 5
    teacher = torch.randn(3, n, c, h, w)
    with label_check_mode("deferred"):
        unc = mc_uncertainty(teacher)
        pint_loss(torch.randn(n, c, h, w), _bad_target(), unc.mean_prob, unc.pixel, pixel_threshold=0.5)
        with pytest.raises(ValueError, match="pint_loss"):
            check_deferred_labels()


def test_off_never_raises():
    with label_check_mode("off"):
        weighted_ce(torch.randn(2, 2, 4, 5), _bad_target())
        check_deferred_labels()
    assert not label_checks.pending()


def test_bad_mode():
    with pytest.raises(ValueError, match="immediate"):
        label_checks.set_label_check_mode("later")
