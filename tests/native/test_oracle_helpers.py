"""The oracle's own arithmetic, so a broken metric cannot make every comparison pass."""

from __future__ import annotations

import numpy as np
import oracle as O
import pytest


def test_identical_images_score_infinite_psnr_and_ssim_one():
    a = np.random.default_rng(1).uniform(0, 255, (40, 50))
    assert O.psnr(a, a) == float("inf")
    assert O.ssim(a, a) == pytest.approx(1.0)


def test_psnr_of_a_known_error():
    a = np.zeros((10, 10))
    assert O.psnr(a, a + 1) == pytest.approx(10 * np.log10(255**2), abs=1e-9)


def test_ssim_falls_with_noise_and_with_a_shift():
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(2)
    t = gaussian_filter(rng.normal(0, 1, (64, 64)), 1.5)
    a = 128 + 40 * t / t.std()  # a texture with detail at a few pixels' scale
    assert O.ssim(a, a + rng.normal(0, 25, a.shape)) < 0.8
    assert O.ssim(a, np.roll(a, 3, axis=1)) < 0.5
    assert O.ssim(a, a + rng.normal(0, 1, a.shape)) > 0.98


def test_compare_fails_with_the_numbers_in_the_message():
    a = np.zeros((16, 16, 3))
    with pytest.raises(AssertionError, match="PSNR"):
        O.compare(a, a + 40, min_psnr=30, min_ssim=0.9, group="self-check")
    O.RECORDED[:] = [r for r in O.RECORDED if r[0] != "self-check"]
