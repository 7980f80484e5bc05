"""The ncnn -> torchvision importer of SqueezeNet 1.1's ImageNet weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from click.testing import CliRunner
from PIL import Image

from facecolor.models import EncoderWeightsError, build_generator
from facecolor.models.ncnn_weights import (
    BIN_NAME,
    PARAM_NAME,
    install_squeezenet_weights,
    squeezenet_state_dict,
)
from facecolor.train.cli import main as train_cli

SHARED_WEIGHTS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "weights"
needs_shared = pytest.mark.skipif(not (SHARED_WEIGHTS / BIN_NAME).is_file(),
                                  reason="../shared/data/weights is not beside this checkout")


def write_ncnn_pair(state: dict[str, torch.Tensor], folder: Path) -> Path:
    """Serialise a squeezenet1_1 state dict the way pnnx does (fp16 weights, fp32 bias)."""
    lines, blobs = ["7767517", "0 0", "Input in0 0 1 in0"], []
    for index, key in enumerate(k for k in state if k.endswith(".weight")):
        weight, bias = state[key], state[key[:-6] + "bias"]
        lines.append(f"Convolution conv_{index} 1 1 b{index} b{index + 1} 0={weight.shape[0]} "
                     f"1={weight.shape[-1]} 5=1 6={weight.numel()} 9=1")
        half = weight.numpy().astype(np.float16).tobytes()
        blobs += [(0x01306B47).to_bytes(4, "little"), half, b"\0" * (-len(half) % 4),
                  bias.numpy().astype(np.float32).tobytes()]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PARAM_NAME).write_text("\n".join(lines) + "\n")
    (folder / BIN_NAME).write_bytes(b"".join(blobs))
    return folder


@pytest.fixture(scope="module")
def random_pair(tmp_path_factory):
    torch.manual_seed(0)
    state = torchvision.models.squeezenet1_1(weights=None).state_dict()
    return state, write_ncnn_pair(state, tmp_path_factory.mktemp("ncnn"))


def test_round_trip_gives_torchvisions_state_dict_rounded_to_fp16(random_pair):
    state, folder = random_pair
    converted = squeezenet_state_dict(folder / PARAM_NAME, folder / BIN_NAME)
    assert list(converted) == list(state)
    for key, value in state.items():
        expected = value.half().float() if key.endswith("weight") else value
        assert torch.equal(converted[key], expected), key


def test_truncated_bin_is_refused(random_pair, tmp_path):
    _, folder = random_pair
    shutil.copy(folder / PARAM_NAME, tmp_path / PARAM_NAME)
    (tmp_path / BIN_NAME).write_bytes((folder / BIN_NAME).read_bytes()[:-1000])
    with pytest.raises(EncoderWeightsError, match="ends early"):
        install_squeezenet_weights(tmp_path, tmp_path / "out.pth")
    assert not (tmp_path / "out.pth").exists()


def test_bin_of_another_model_is_refused(random_pair, tmp_path):
    _, folder = random_pair
    shutil.copy(folder / PARAM_NAME, tmp_path / PARAM_NAME)
    (tmp_path / BIN_NAME).write_bytes((folder / BIN_NAME).read_bytes() + b"\0" * 64)
    with pytest.raises(EncoderWeightsError, match="bytes after its last layer"):
        install_squeezenet_weights(tmp_path, tmp_path / "out.pth")


def test_param_of_another_network_is_refused(random_pair, tmp_path):
    state, _ = random_pair
    fewer = {k: v for k, v in state.items() if not k.startswith("classifier")}
    write_ncnn_pair(fewer, tmp_path)
    with pytest.raises(EncoderWeightsError, match="SqueezeNet 1.1 has 26"):
        install_squeezenet_weights(tmp_path, tmp_path / "out.pth")


def test_not_an_ncnn_file_is_refused(tmp_path):
    (tmp_path / PARAM_NAME).write_text("name: squeezenet\nlayers: 49\n")
    (tmp_path / BIN_NAME).write_bytes(b"\0" * 16)
    with pytest.raises(EncoderWeightsError, match="not an ncnn .param file"):
        install_squeezenet_weights(tmp_path, tmp_path / "out.pth")


def test_missing_files_name_what_is_expected(tmp_path):
    with pytest.raises(EncoderWeightsError, match=PARAM_NAME.replace(".", r"\.")):
        install_squeezenet_weights(tmp_path, tmp_path / "out.pth")


def top3(model: torch.nn.Module, path: Path, names: list[str]) -> list[tuple[str, float]]:
    """The README's protocol: Resize(256), CenterCrop(224), ImageNet mean/std, softmax."""
    transform = torchvision.transforms.Compose([
        torchvision.transforms.Resize(256), torchvision.transforms.CenterCrop(224),
        torchvision.transforms.ToTensor(),
        torchvision.transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ])
    with Image.open(path) as image:
        batch = transform(image.convert("RGB"))[None]
    with torch.no_grad():
        probabilities = model.eval()(batch).softmax(1)[0]
    values, indices = probabilities.topk(3)
    return [(names[i].split(" ", 1)[1].split(",")[0], float(v)) for v, i in zip(values, indices)]


@needs_shared
def test_converted_shared_weights_classify_like_the_readme(tmp_path):
    result = CliRunner().invoke(train_cli, ["import-weights", str(SHARED_WEIGHTS), "--out",
                                            str(tmp_path / "squeezenet1_1.pth")])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "sha256" in result.output
    model = torchvision.models.squeezenet1_1(weights=None)
    model.load_state_dict(torch.load(tmp_path / "squeezenet1_1.pth", weights_only=True))
    names = (SHARED_WEIGHTS / "synset_words.txt").read_text().splitlines()
    expected = {"cat.jpg": [("kit fox", 0.362), ("tiger cat", 0.268), ("lynx", 0.103)],
                "horse.jpg": [("paddle", 0.483), ("horse cart", 0.074), ("sorrel", 0.031)]}
    for photo, want in expected.items():
        got = top3(model, SHARED_WEIGHTS / photo, names)
        assert [name for name, _ in got] == [name for name, _ in want], (photo, got)
        np.testing.assert_allclose([p for _, p in got], [p for _, p in want], atol=0.005)


@needs_shared
def test_generator_records_the_encoder_weights_it_started_from(tmp_path):
    path = install_squeezenet_weights(SHARED_WEIGHTS, tmp_path / "squeezenet1_1-b8a52dc0.pth")
    generator = build_generator("psag", render_size=64, width=0.25, encoder_weights=path)
    assert generator.config["encoder_weights"] == "imagenet"
    assert generator.config["encoder_weights_file"]["name"] == "squeezenet1_1-b8a52dc0.pth"
    assert len(generator.config["encoder_weights_file"]["sha256"]) == 64
