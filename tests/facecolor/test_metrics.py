"""Tests for facecolor.metrics: each metric against a hand-computed or published value, and
FID's folder path with stand-in feature extractors (Inception weights are not available here)."""

from __future__ import annotations

import sys
import urllib.request
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from facecolor.metrics import (
    CLEANFID_WEIGHTS_NAME,
    PSNR_CAP_DB,
    FIDDependencyMissing,
    FIDError,
    FIDInputError,
    FIDWeightsMissing,
    MetricsError,
    MetricsSummary,
    ciede2000,
    colorfulness,
    compute_fid,
    delta_e_ciede2000,
    evaluate_batch,
    evaluate_pair,
    fid_from_features,
    frechet_distance,
    hist_similarity,
    hsv_histogram,
    psnr,
    summarize,
)
from facecolor.metrics import fid as fid_module


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _smooth_color_image(size: int = 64) -> np.ndarray:
    """A colorful uint8 image with smooth hue and saturation ramps (like a photo, unlike noise)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    # Hues 0-40 of OpenCV's 0-180 (reds to yellows, as in skin and wood), not the whole wheel.
    hsv = np.stack([x * 40, 80 + 170 * y, 200 - 80 * x * y], axis=2)
    return cv2.cvtColor(np.rint(hsv).astype(np.uint8), cv2.COLOR_HSV2RGB)


# --------------------------------------------------------------------------- PSNR


def test_psnr_hand_computed_values():
    zeros = np.zeros((2, 2, 3), np.uint8)
    # Every value off by one: MSE = 1, PSNR = 20 log10(255).
    assert psnr(zeros + 1, zeros) == pytest.approx(48.130803608679, abs=1e-9)
    # One of 12 values off by 10: MSE = 100/12, PSNR = 10 log10(255^2 * 12 / 100) = 10 log10(7803).
    one_off = zeros.copy()
    one_off[1, 0, 2] = 10
    assert psnr(one_off, zeros) == pytest.approx(38.922616, abs=1e-6)
    # Maximal difference: PSNR 0.
    assert psnr(zeros + 255, zeros) == pytest.approx(0.0, abs=1e-12)


def test_psnr_is_capped_for_identical_and_near_identical_images():
    image = _rng().integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert psnr(image, image) == PSNR_CAP_DB
    big = np.zeros((400, 400, 3), np.uint8)
    nudged = big.copy()
    nudged[0, 0, 0] = 1  # 10 log10(255^2 * 480000) = 105 dB before the cap
    assert psnr(nudged, big) == PSNR_CAP_DB


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((4, 4, 3), np.float32), "8-bit"),
        (np.zeros((4, 4), np.uint8), "HxWx3"),
        (np.zeros((4, 5, 3), np.uint8), "differ in size"),
    ],
)
def test_metrics_reject_inputs_they_cannot_score(bad, match):
    with pytest.raises(MetricsError, match=match):
        psnr(bad, np.zeros((4, 4, 3), np.uint8))


# --------------------------------------------------------------------------- histogram similarity


def test_hsv_histogram_binning_and_normalisation_on_crafted_pixels():
    # red (H 0, S 255, V 255), green (H 60), blue (H 120), mid gray (H 0, S 0, V 128)
    image = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [128, 128, 128]]], np.uint8)
    expected = np.zeros(30 + 32 + 32)
    expected[[0, 10, 20]] = [0.5, 0.25, 0.25]  # H bins are 6 OpenCV hue units wide
    expected[30 + 0], expected[30 + 31] = 0.25, 0.75  # S: 0 -> bin 0, 255 -> bin 31
    expected[62 + 16], expected[62 + 31] = 0.25, 0.75  # V: 128 -> bin 16, 255 -> bin 31
    np.testing.assert_allclose(hsv_histogram(image), expected, atol=1e-12)

    red = np.tile(np.array([[[255, 0, 0]]], np.uint8), (1, 4, 1))
    # red's descriptor has 1 at H bin 0, S bin 31, V bin 31: dot 0.5+0.75+0.75, norms^2 1.625, 3
    assert hist_similarity(image, red) == pytest.approx(2.0 / np.sqrt(1.625 * 3.0), abs=1e-12)


def test_hist_similarity_is_one_for_identical_and_lower_for_hue_shift():
    image = _smooth_color_image()
    assert hist_similarity(image, image) == pytest.approx(1.0, abs=1e-12)
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0].astype(np.int32) + 60) % 180  # hue + 120 degrees
    shifted = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    assert hist_similarity(image, shifted) < 0.95
    gray = np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    assert hist_similarity(image, gray) < hist_similarity(image, image)


# --------------------------------------------------------------------------- CIEDE2000

# Sharma, Wu and Dalal (2005), Table 1: (L1, a1, b1), (L2, a2, b2), published dE00 (4 d.p.).
SHARMA_PAIRS = [
    ((50.0000, 2.6772, -79.7751), (50.0000, 0.0000, -82.7485), 2.0425),
    ((50.0000, 3.1571, -77.2803), (50.0000, 0.0000, -82.7485), 2.8615),
    ((50.0000, 2.8361, -74.0200), (50.0000, 0.0000, -82.7485), 3.4412),
    ((50.0000, -1.3802, -84.2814), (50.0000, 0.0000, -82.7485), 1.0000),
    ((50.0000, -1.1848, -84.8006), (50.0000, 0.0000, -82.7485), 1.0000),
    ((50.0000, -0.9009, -85.5211), (50.0000, 0.0000, -82.7485), 1.0000),
    ((50.0000, 0.0000, 0.0000), (50.0000, -1.0000, 2.0000), 2.3669),
    ((50.0000, -1.0000, 2.0000), (50.0000, 0.0000, 0.0000), 2.3669),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0009), 7.1792),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0010), 7.1792),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0011), 7.2195),
    ((50.0000, 2.4900, -0.0010), (50.0000, -2.4900, 0.0012), 7.2195),
    ((50.0000, -0.0010, 2.4900), (50.0000, 0.0009, -2.4900), 4.8045),
    ((50.0000, -0.0010, 2.4900), (50.0000, 0.0010, -2.4900), 4.8045),
    ((50.0000, -0.0010, 2.4900), (50.0000, 0.0011, -2.4900), 4.7461),
    ((50.0000, 2.5000, 0.0000), (50.0000, 0.0000, -2.5000), 4.3065),
    ((50.0000, 2.5000, 0.0000), (73.0000, 25.0000, -18.0000), 27.1492),
    ((50.0000, 2.5000, 0.0000), (61.0000, -5.0000, 29.0000), 22.8977),
    ((50.0000, 2.5000, 0.0000), (56.0000, -27.0000, -3.0000), 31.9030),
    ((50.0000, 2.5000, 0.0000), (58.0000, 24.0000, 15.0000), 19.4535),
    ((50.0000, 2.5000, 0.0000), (50.0000, 3.1736, 0.5854), 1.0000),
    ((50.0000, 2.5000, 0.0000), (50.0000, 3.2972, 0.0000), 1.0000),
    ((50.0000, 2.5000, 0.0000), (50.0000, 1.8634, 0.5757), 1.0000),
    ((50.0000, 2.5000, 0.0000), (50.0000, 3.2592, 0.3350), 1.0000),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((63.0109, -31.0961, -5.8663), (62.8187, -29.7946, -4.0864), 1.2630),
    ((61.2901, 3.7196, -5.3901), (61.4292, 2.2480, -4.9620), 1.8731),
    ((35.0831, -44.1164, 3.7933), (35.0232, -40.0716, 1.5901), 1.8645),
    ((22.7233, 20.0904, -46.6940), (23.0331, 14.9730, -42.5619), 2.0373),
    ((36.4612, 47.8580, 18.3852), (36.2715, 50.5065, 21.2231), 1.4146),
    ((90.8027, -2.0831, 1.4410), (91.1528, -1.6435, 0.0447), 1.4441),
    ((90.9257, -0.5406, -0.9208), (88.6381, -0.8985, -0.7239), 1.5381),
    ((6.7747, -0.2908, -2.4247), (5.8714, -0.0985, -2.2286), 0.6377),
    ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082),
]


def test_ciede2000_matches_sharmas_published_pairs():
    lab1 = np.array([pair[0] for pair in SHARMA_PAIRS])
    lab2 = np.array([pair[1] for pair in SHARMA_PAIRS])
    published = np.array([pair[2] for pair in SHARMA_PAIRS])
    np.testing.assert_allclose(delta_e_ciede2000(lab1, lab2), published, atol=5.1e-5)
    # The formula is symmetric in its two colors.
    np.testing.assert_allclose(delta_e_ciede2000(lab2, lab1), published, atol=5.1e-5)


def test_ciede2000_matches_skimage_on_random_colors():
    skimage_color = pytest.importorskip("skimage.color")
    rng = _rng(1)
    low, high = [0.0, -128.0, -128.0], [100.0, 128.0, 128.0]
    lab1 = rng.uniform(low, high, (20000, 3))
    near = lab1[:10000] + rng.normal(0, 2, (10000, 3))  # small differences, as in good outputs
    lab2 = np.concatenate([rng.uniform(low, high, (10000, 3)), near])
    lab1[:50, 1:] = 0.0  # achromatic colors take the special hue branches
    reference = skimage_color.deltaE_ciede2000(lab1, lab2)
    np.testing.assert_allclose(delta_e_ciede2000(lab1, lab2), reference, atol=1e-4, rtol=0)


def test_ciede2000_of_images_is_mean_over_pixels():
    skimage_color = pytest.importorskip("skimage.color")
    rng = _rng(2)
    pred = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    true = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    reference = skimage_color.deltaE_ciede2000(
        skimage_color.rgb2lab(pred), skimage_color.rgb2lab(true)
    ).mean()
    assert ciede2000(pred, true) == pytest.approx(reference, abs=1e-2)  # Lab via OpenCV: 1e-3 units
    assert ciede2000(pred, pred) == 0.0


# --------------------------------------------------------------------------- colorfulness


def test_colorfulness_zero_for_gray_and_analytic_for_red_green():
    gray = np.repeat(_rng(3).integers(0, 256, (20, 20, 1), dtype=np.uint8), 3, axis=2)
    assert colorfulness(gray) == 0.0
    red_green = np.zeros((2, 2, 3), np.uint8)
    red_green[0, :, 0] = 255
    red_green[1, :, 1] = 255
    # rg is +-255 (mean 0, std 255); yb is 127.5 everywhere: M = 255 + 0.3 * 127.5
    assert colorfulness(red_green) == pytest.approx(293.25, abs=1e-9)


def test_colorfulness_higher_for_saturated_than_muted():
    vivid = _smooth_color_image()
    muted = np.rint(0.3 * vivid + 0.7 * vivid.mean(axis=2, keepdims=True)).astype(np.uint8)
    assert colorfulness(vivid) > colorfulness(muted) > 0.0


# --------------------------------------------------------------------------- rows and summaries


def test_evaluate_batch_from_torch_matches_numpy_rows():
    rng = _rng(4)
    preds = rng.integers(0, 256, (3, 8, 10, 3), dtype=np.uint8)
    trues = rng.integers(0, 256, (3, 8, 10, 3), dtype=np.uint8)
    as_float = torch.from_numpy(preds).permute(0, 3, 1, 2).float() / 255.0
    rows = evaluate_batch(as_float, trues)
    assert rows == [evaluate_pair(p, t) for p, t in zip(preds, trues)]
    assert list(rows[0]) == ["psnr", "hist", "ciede2000", "colorfulness_pred", "colorfulness_true"]


def test_summarize_means_and_stds():
    rows = [{"psnr": 20.0, "hist": 0.5}, {"psnr": 30.0, "hist": 0.7}]
    assert summarize(rows) == pytest.approx(
        {"psnr": 25.0, "psnr_std": 5.0, "hist": 0.6, "hist_std": 0.1}
    )
    summary = MetricsSummary.from_rows(rows).with_fid(12.5)
    assert summary.to_dict()["count"] == 2 and summary.to_dict()["fid"] == 12.5
    assert "PSNR 25.00 dB" in summary.describe() and "FID 12.50" in summary.describe()
    with pytest.raises(MetricsError, match="no rows"):
        summarize([])
    with pytest.raises(MetricsError, match="keys"):
        summarize([{"psnr": 1.0}, {"hist": 1.0}])


# --------------------------------------------------------------------------- Frechet distance


def _whitened(n: int, dim: int, seed: int) -> np.ndarray:
    """n x dim samples with sample mean exactly 0 and sample covariance exactly the identity."""
    x = _rng(seed).normal(size=(n, dim))
    x -= x.mean(axis=0)
    return x @ np.linalg.inv(np.linalg.cholesky(np.cov(x, rowvar=False))).T


@pytest.mark.parametrize("n", [6, 200])  # fewer and more samples than dimensions: both routes
def test_fid_from_features_identical_and_mean_shift(n):
    feats = _rng(5).normal(3.0, 2.0, size=(n, 16))
    assert fid_from_features(feats, feats) == pytest.approx(0.0, abs=1e-8)
    shift = np.linspace(-1.0, 2.0, 16)
    # Same covariance, means differ by shift: FID = |shift|^2.
    assert fid_from_features(feats, feats + shift) == pytest.approx(shift @ shift, rel=1e-9)


def test_fid_from_features_diagonal_covariances():
    white = _whitened(300, 8, seed=6)
    var_a = np.linspace(0.5, 4.0, 8)
    var_b = np.linspace(3.0, 0.2, 8)
    mean_b = np.arange(8) / 4.0
    feats_a, feats_b = white * np.sqrt(var_a), white * np.sqrt(var_b) + mean_b
    expected = mean_b @ mean_b + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2)
    assert fid_from_features(feats_a, feats_b) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(np.zeros(8), np.diag(var_a), mean_b, np.diag(var_b)) == pytest.approx(
        expected, rel=1e-12
    )


def test_fid_from_features_few_samples_matches_covariance_route_and_scipy():
    linalg = pytest.importorskip("scipy.linalg")
    rng = _rng(7)
    feats_a, feats_b = rng.normal(size=(12, 40)), rng.normal(0.3, 1.5, size=(9, 40))
    mu_a, mu_b = feats_a.mean(0), feats_b.mean(0)
    sigma_a, sigma_b = np.cov(feats_a, rowvar=False), np.cov(feats_b, rowvar=False)
    via_features = fid_from_features(feats_a, feats_b)  # 12, 9 < 40 dims: nuclear-norm route
    # The 40 x 40 routes take square roots of ~1e-15 rounding noise in the 32 null directions
    # of sigma_a sigma_b, which costs them about 1e-6 here; the feature route is exact.
    assert via_features == pytest.approx(frechet_distance(mu_a, sigma_a, mu_b, sigma_b), rel=1e-7)
    root = linalg.sqrtm(sigma_a @ sigma_b)
    reference = np.sum((mu_a - mu_b) ** 2) + np.trace(sigma_a + sigma_b - 2 * root.real)
    assert via_features == pytest.approx(reference, rel=1e-7)


def test_fid_from_features_rejects_unusable_sets():
    with pytest.raises(FIDInputError, match="N >= 2"):
        fid_from_features(np.zeros((1, 4)), np.zeros((5, 4)))
    with pytest.raises(FIDInputError, match="dimensions differ"):
        fid_from_features(np.zeros((3, 4)), np.zeros((3, 5)))


# --------------------------------------------------------------------------- compute_fid on folders

COLORS_A = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (120, 120, 120), (250, 220, 10)]
COLORS_B = [(90, 60, 40), (160, 140, 120), (10, 10, 10), (230, 200, 180), (60, 90, 200), (5, 9, 9)]


def _write_solid_pngs(folder: Path, colors) -> Path:
    folder.mkdir()
    for index, color in enumerate(colors):
        Image.fromarray(np.full((8, 12, 3), color, np.uint8)).save(folder / f"{index:02d}.png")
    return folder


class MeanColorFeatures(torch.nn.Module):
    """Stand-in for Inception: mean color of the 299x299 input through a fixed 3 -> 16 map."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        projection = torch.randn(3, 16, generator=generator, dtype=torch.float64)
        self.register_buffer("projection", projection)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        assert images.shape[1:] == (3, 299, 299)  # clean-fid resized them
        return images.double().mean(dim=(2, 3)) @ self.projection


@pytest.fixture
def folders(tmp_path):
    return _write_solid_pngs(tmp_path / "a", COLORS_A), _write_solid_pngs(tmp_path / "b", COLORS_B)


def test_compute_fid_with_stand_in_extractor_matches_features(folders):
    pytest.importorskip("cleanfid")  # the folder reading goes through clean-fid's own loader
    extractor = MeanColorFeatures()
    projection = extractor.projection.numpy()
    # Resizing a solid color keeps it, so the features are known without reading the files.
    expected = fid_from_features(
        np.array(COLORS_A, float) @ projection, np.array(COLORS_B, float) @ projection
    )
    got = compute_fid(*folders, feature_extractor=extractor, batch_size=4)
    assert got == pytest.approx(expected, rel=1e-4)
    same = compute_fid(folders[0], folders[0], feature_extractor=extractor)
    assert same == pytest.approx(0.0, abs=1e-3)


class _FakeInception(torch.nn.Module):
    """Shaped like clean-fid's TorchScript Inception: ``layers`` maps 299x299 to 2048 features."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 2048)
        )

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return self.layers(x)


def _save_fake_inception(path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated, but it is clean-fid's format
        torch.jit.save(torch.jit.script(_FakeInception().double().float()), str(path))
    return path


@pytest.fixture
def no_downloads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("FID tried to download something")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def test_compute_fid_loads_weights_from_any_path_and_default_location(
    folders, tmp_path, monkeypatch, no_downloads
):
    pytest.importorskip("cleanfid")
    custom = _save_fake_inception(tmp_path / "my-inception.pt")  # not clean-fid's file name
    score = compute_fid(*folders, weights=custom)
    assert np.isfinite(score) and score > 0.0
    assert compute_fid(folders[0], folders[0], weights=custom) == pytest.approx(0.0, abs=1e-2)

    weights_dir = tmp_path / "cleanfid-home"
    weights_dir.mkdir()
    _save_fake_inception(weights_dir / CLEANFID_WEIGHTS_NAME)
    monkeypatch.setattr(fid_module, "cleanfid_weights_dir", lambda: weights_dir)
    assert np.isfinite(compute_fid(*folders))


def test_compute_fid_without_weights_says_where_to_put_them(
    folders, tmp_path, monkeypatch, no_downloads
):
    pytest.importorskip("cleanfid")
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(fid_module, "cleanfid_weights_dir", lambda: empty)
    with pytest.raises(FIDWeightsMissing) as missing:
        compute_fid(*folders)
    message = str(missing.value)
    assert str(empty / CLEANFID_WEIGHTS_NAME) in message and "--fid-weights" in message
    with pytest.raises(FIDWeightsMissing, match="nowhere.pt"):
        compute_fid(*folders, weights=tmp_path / "nowhere.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a TorchScript archive")
    with pytest.raises(FIDError, match="could not load"):
        compute_fid(*folders, weights=garbage)


def test_compute_fid_input_errors(folders, tmp_path):
    pytest.importorskip("cleanfid")
    extractor = MeanColorFeatures()
    (tmp_path / "none").mkdir()
    with pytest.raises(FIDInputError, match="holds 0 image"):
        compute_fid(tmp_path / "none", folders[1], feature_extractor=extractor)
    with pytest.raises(FIDInputError, match="does not exist"):
        compute_fid(tmp_path / "missing", folders[1], feature_extractor=extractor)
    with pytest.raises(ValueError, match="not both"):
        compute_fid(*folders, weights=tmp_path / "w.pt", feature_extractor=extractor)


def test_compute_fid_without_clean_fid_names_the_extra(folders, monkeypatch):
    monkeypatch.setitem(sys.modules, "cleanfid", None)  # makes `import cleanfid` fail
    with pytest.raises(FIDDependencyMissing, match=r"facecolor\[fid\]"):
        compute_fid(*folders, feature_extractor=MeanColorFeatures())
