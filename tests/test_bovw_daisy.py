"""core.daisy gives skimage.feature.daisy's descriptors (it computes them only where they are read)."""
import numpy as np
import pytest
from PIL import Image

from hashtag_workbench.core.bovw import BoVWConfig, image_descriptors
from hashtag_workbench.core.daisy import daisy
from tests.conftest import DEMO_PHOTOS


def _skimage(gray, step, radius):
    from skimage.feature import daisy as reference
    d = reference(gray, step=step, radius=radius, rings=2, histograms=6, orientations=8)
    return d.reshape(-1, d.shape[-1]).astype(np.float32)


@pytest.mark.parametrize(("size", "step", "radius"), [(128, 6, 12), (96, 4, 15), (61, 5, 9)])
def test_daisy_matches_skimage_on_demo_photos(size, step, radius):
    for path in sorted(DEMO_PHOTOS.glob("*/*.jpg"))[::60]:
        gray = np.asarray(Image.open(path).convert("L").resize((size, size), Image.Resampling.BILINEAR),
                          dtype=np.float32) / 255.0
        np.testing.assert_allclose(daisy(gray, step, radius), _skimage(gray, step, radius), rtol=1e-4, atol=1e-6)


def test_bovw_descriptors_of_a_flat_photo_and_a_too_small_image():
    d = image_descriptors(Image.new("RGB", (300, 200), (90, 90, 90)), BoVWConfig())
    assert d.shape == (18 * 18, 104) and d.dtype == np.float32
    np.testing.assert_allclose(d, 1 / 104, rtol=1e-5)       # no gradient: every bin alike, no NaN
    with pytest.raises(ValueError, match="larger than 24"):
        daisy(np.zeros((20, 20), np.float32), 6, 12)
