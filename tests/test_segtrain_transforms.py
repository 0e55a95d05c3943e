"""Augmentations keep image and mask aligned: a mask drawn from the image's own colours
stays consistent with the image after every transform."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from segtrain.transforms import ReflectAffine, ReflectPadIfNeeded, build_train_transform

COLORS = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200], [200, 200, 30], [30, 200, 200]],
                  dtype=np.uint8)


def scene(seed: int, h: int = 64, w: int = 96):
    """Flat-coloured rectangles: mask[i, j] = k exactly where image[i, j] == COLORS[k]."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), np.uint8)
    for k in range(1, len(COLORS)):
        y0, x0 = rng.integers(0, h - 20), rng.integers(0, w - 24)
        mask[y0:y0 + rng.integers(12, 20), x0:x0 + rng.integers(14, 24)] = k
    mask[:4, :4] = 255  # an ignore patch
    image = COLORS[np.where(mask == 255, 0, mask)]
    return image, mask


def assert_aligned(image: np.ndarray, mask: np.ndarray, erode: int = 3) -> int:
    """Every pixel well inside a labelled region must have that class's (transformed) colour:
    colour transforms here are pointwise, so one class maps to one colour, distinct from the
    others. Returns the number of interior pixels checked."""
    checked, centres = 0, {}
    kernel = np.ones((2 * erode + 1, 2 * erode + 1), np.uint8)
    interiors = {}
    for k in np.unique(mask):
        if k == 255:
            continue
        # erode away boundaries (where linear resampling mixes classes), image borders included
        inner = cv2.erode((mask == k).astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT,
                          borderValue=0).astype(bool)
        if inner.sum() >= 5:
            interiors[int(k)] = inner
            centres[int(k)] = np.median(image[inner].astype(float), axis=0)
    for k, inner in interiors.items():
        px = image[inner].astype(float)
        dists = np.stack([np.abs(px - c).sum(axis=1) for c in centres.values()], axis=1)
        nearest = np.array(list(centres))[dists.argmin(axis=1)]
        assert (nearest == k).all(), f"class {k}: {(nearest != k).sum()} interior pixels have another class's colour"
        assert np.abs(px - centres[k]).max() <= 3, f"class {k} colour not uniform inside its region"
        checked += len(px)
    return checked


@pytest.mark.parametrize("augment", ["none", "basic", "strong"])
@pytest.mark.parametrize("geometry", [{"size": (48, 80)}, {"crop": (40, 40)}, {"crop": (80, 120)}, {}])
def test_pipelines_keep_image_and_mask_aligned(augment, geometry):
    t = build_train_transform(augment, geometry.get("size"), geometry.get("crop"))
    total = 0
    for seed in range(12):
        image, mask = scene(seed)
        t.set_random_seed(seed)
        out = t(image=image, mask=mask)
        img, m = out["image"], out["mask"]
        expect = geometry.get("size") or geometry.get("crop") or image.shape[:2]
        assert img.shape == (*expect, 3) and m.shape == tuple(expect)
        assert m.dtype == np.uint8
        assert set(np.unique(m)) <= set(np.unique(mask)) | {255}  # nearest only: no new values
        # strong: zoom up to 2x and a 5-tap blur widen the mixed band along class boundaries
        total += assert_aligned(img, m, erode=5 if augment == "strong" else 3)
    assert total > 1000


def test_check_detects_a_misaligned_mask():
    image, mask = scene(0)
    shifted = np.roll(mask, 8, axis=1)
    with pytest.raises(AssertionError):
        assert_aligned(image, shifted)


def test_rotation_reflects_image_borders_and_ignores_mask_borders():
    image, mask = scene(1)
    t = ReflectAffine(scale=(0.6, 0.6), rotate=(30, 30), p=1.0)
    out = t(image=image, mask=mask)
    invented = out["mask"] == 255
    assert invented.sum() > 0.2 * mask.size  # zooming out + rotating invents the borders
    assert not (out["image"][invented] == 0).all(axis=-1).any()  # reflected, never black
    assert assert_aligned(out["image"], out["mask"]) > 500


def test_padding_reflects_image_and_fills_mask_and_depth():
    image, mask = scene(2, 30, 40)
    depth = np.full(mask.shape, 1500, np.uint16)
    t = ReflectPadIfNeeded(50, 70)
    import albumentations as A

    out = A.Compose([t], additional_targets={"depth": "mask"})(image=image, mask=mask, depth=depth)
    assert out["image"].shape == (50, 70, 3)
    assert (out["mask"][:10] == 255).all() and (out["depth"][:10] == 0).all()
    assert (out["mask"][:, :15] == 255).all() and (out["depth"][:, -15:] == 0).all()
    assert (out["depth"][10:40, 15:55] == 1500).all()
    assert (out["mask"][10:40, 15:55] == mask).all() and (out["image"][10:40, 15:55] == image).all()
    assert not (out["image"][:10] == 0).all(axis=-1).any()


def test_same_seed_same_augmentation():
    image, mask = scene(3)
    t = build_train_transform("strong", crop=(40, 40))
    t.set_random_seed(7)
    a = t(image=image, mask=mask)
    t.set_random_seed(7)
    b = t(image=image, mask=mask)
    assert (a["image"] == b["image"]).all() and (a["mask"] == b["mask"]).all()
