"""What the HSV-histogram similarity (Hist) rewards, measured: a model's ab against oracles.

Why: issue 12's floor asks Hist >= 0.80 on ffhq_dev, and neither more training nor the GAN
stage moved it past 0.76. This script separates the causes. Each row joins the truth's own L*
with one ab field and scores it like ``facecolor-train eval`` (128 px, DESIGN §6 metrics):
the model's ab (run at its render size), the same scaled (more or less saturation), the same
with each image's mean ab replaced by the truth's (a perfect guess of the global tint), and
the truth's ab itself blurred to 16-64 px or reduced to its mean. Then the three parts of the
Hist descriptor (H, S, V) are scored separately for the model.

    .venv/bin/python docs/training/hist_bounds.py models/psag.safetensors \
        ../shared/data/faces/ffhq_dev
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from facecolor.checkpoint import load_generator
from facecolor.color import join_lab_torch, split_lab_torch
from facecolor.metrics.image import hsv_histogram
from facecolor.train.data import load_images
from facecolor.train.validate import predict_at_model_size, score, to_uint8_hwc


def low_pass(ab: torch.Tensor, size: int) -> torch.Tensor:
    small = F.interpolate(ab, size=(size, size), mode="area")
    return F.interpolate(small, size=ab.shape[-2:], mode="bilinear", align_corners=False)


def part_similarity(pred: np.ndarray, true: np.ndarray) -> list[float]:
    """Mean cosine similarity of the H, S and V histograms alone (30, 32, 32 bins)."""
    cuts = [(0, 30), (30, 62), (62, 94)]
    rows = []
    for p, t in zip(pred, true):
        a, b = hsv_histogram(p), hsv_histogram(t)
        rows.append([float(a[i:j] @ b[i:j] / np.linalg.norm(a[i:j]) / np.linalg.norm(b[i:j])) for i, j in cuts])
    return np.mean(rows, axis=0).tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("data")
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--markdown")
    args = parser.parse_args()
    images = load_images([args.data], 128, limit=args.limit, seed=2026, workers=1).images
    truths = images.numpy()
    generator, _ = load_generator(args.model, torch.device("cpu"))
    generator.eval()
    with torch.no_grad():
        l_norm, true_ab = split_lab_torch(images.permute(0, 3, 1, 2).float() / 255.0)
        pred_ab = torch.cat([predict_at_model_size(generator, l_norm[i : i + 64]).float()
                             for i in range(0, len(l_norm), 64)])
    mean = lambda ab: ab.mean((2, 3), keepdim=True)  # noqa: E731
    fields = {
        "model": pred_ab,
        "model, chroma x 1.2": pred_ab * 1.2,
        "model, chroma x 1.4": pred_ab * 1.4,
        "model, its mean ab replaced by the truth's": pred_ab - mean(pred_ab) + mean(true_ab),
        "truth, chroma x 0.7": true_ab * 0.7,
        "truth, blurred to 16 px": low_pass(true_ab, 16),
        "truth, its mean ab only": mean(true_ab).expand_as(true_ab),
        "gray (ab = 0)": torch.zeros_like(true_ab),
    }
    lines = [f"`{args.model}` on {len(truths)} images of `{args.data}`, 128 px", "",
             "| ab field | PSNR | Hist | CIEDE2000 | colorfulness (truth) |", "| --- | ---: | ---: | ---: | ---: |"]
    outputs = {}
    for name, ab in fields.items():
        outputs[name] = to_uint8_hwc(join_lab_torch(l_norm, ab.clamp(-1, 1)))
        _, m = score(outputs[name], truths)
        lines.append(f"| {name} | {m['psnr']:.2f} | {m['hist']:.3f} | {m['ciede2000']:.2f} | "
                     f"{m['colorfulness_pred']:.1f} ({m['colorfulness_true']:.1f}) |")
    h, s, v = part_similarity(outputs["model"], truths)
    lines += ["", f"The model's Hist by part: H {h:.3f}, S {s:.3f}, V {v:.3f}."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)


if __name__ == "__main__":
    main()
