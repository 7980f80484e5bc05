"""Every preset builds, runs forward and backward at square and odd sizes, and rebuilds exactly.

Models are built at width 0.125 so the whole file runs in well under a minute on 2 CPU cores.
"""

from __future__ import annotations

import json

import pytest
import torch
import torchvision

from facecolor.models import (
    ENCODER_WEIGHT_FILES,
    PRESETS,
    EncoderWeightsError,
    EncoderWeightsNotFoundError,
    ModelConfigError,
    Preset,
    UnknownPresetError,
    build_discriminator,
    build_generator,
    build_generator_from_config,
    get_preset,
    model_config,
)
from facecolor.models.encoders import ENCODERS, build_encoder, probe_encoder
from facecolor.models.patchgan import receptive_field

TINY = 0.125
STUDY_PRESETS = ["pug", "gu", "prg", "gprg", "gprgd", "psg", "gpsg", "gpsgd", "psag", "gpsag", "gpsagd"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Run this module's small models on one intra-op thread, then restore the setting.

    On a shared 2-core machine torch's default thread pool spins against other processes and
    made these tiny forward/backward passes about 25x slower than a single thread.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No test may reach the network, and torchvision's cache is an empty temporary folder."""

    def refuse(*args, **kwargs):
        raise AssertionError("facecolor.models tried to download something")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    return hub


def _first_weight(generator: torch.nn.Module) -> torch.nn.Parameter:
    return next(p for p in generator.parameters() if p.dim() == 4)


# --------------------------------------------------------------------------- registry


def test_registry_holds_the_study_presets_in_order():
    assert list(PRESETS) == STUDY_PRESETS
    assert get_preset("pug") == Preset("pug", "unet", False, ("pretrain_g",), get_preset("pug").description)
    assert get_preset("gprgd").stages == ("pretrain_g", "pretrain_d", "gan")
    assert get_preset("gpsg").arch == "squeezenet1_1" and not get_preset("gpsg").attention
    assert {p.name for p in PRESETS.values() if p.attention} == {"psag", "gpsag", "gpsagd"}
    assert {p.name for p in PRESETS.values() if p.arch == "resnet18"} == {"prg", "gprg", "gprgd"}


def test_unknown_preset_lists_the_valid_names():
    with pytest.raises(UnknownPresetError) as caught:
        get_preset("gpsagdx")
    assert isinstance(caught.value, ValueError)
    for name in STUDY_PRESETS:
        assert name in str(caught.value)
    with pytest.raises(UnknownPresetError):
        build_generator("nope")


def test_bad_arguments_are_typed_errors():
    with pytest.raises(ModelConfigError, match="render_size"):
        model_config("psg", render_size=16)
    with pytest.raises(ModelConfigError, match="width"):
        build_discriminator(width=0)
    with pytest.raises(ModelConfigError, match="no pretrained encoder"):
        build_generator("pug", encoder_weights="x.pth")


# --------------------------------------------------------------------------- generators


@pytest.mark.parametrize("preset", STUDY_PRESETS)
def test_generator_forward_backward_any_size(preset):
    torch.manual_seed(0)
    generator = build_generator(preset, width=TINY)
    assert generator.config == model_config(preset, width=TINY)
    first = _first_weight(generator)
    for height, width in [(128, 128), (96, 80), (100, 75)]:
        generator.zero_grad()
        l_norm = torch.rand(2, 1, height, width) * 2 - 1
        ab = generator(l_norm)
        assert ab.shape == (2, 2, height, width) and ab.dtype == torch.float32
        assert ab.abs().max() <= 1.0
        ab.square().mean().backward()
        assert first.grad is not None and first.grad.abs().sum() > 0, "no gradient at the first layer"
    with torch.no_grad():  # the smallest supported size, batch 1 (BatchNorm in eval mode)
        assert generator.eval()(torch.zeros(1, 1, 32, 32)).shape == (1, 2, 32, 32)


@pytest.mark.parametrize("preset", ["pug", "prg", "psag"])
def test_config_round_trips_through_json_and_rebuilds_exactly(preset):
    generator = build_generator(preset, width=TINY)
    stored = json.loads(json.dumps({**generator.config, "color_convention": "v1"}))
    rebuilt = build_generator_from_config(stored)
    assert rebuilt.config == generator.config
    state = generator.state_dict()
    rebuilt.load_state_dict(state, strict=True)
    for key, value in rebuilt.state_dict().items():
        assert torch.equal(value, state[key]), key
    l_norm = torch.rand(1, 1, 64, 48) * 2 - 1
    torch.testing.assert_close(rebuilt.eval()(l_norm), generator.eval()(l_norm))


def test_rebuild_refuses_a_config_that_contradicts_its_preset():
    config = model_config("psg", width=TINY)
    with pytest.raises(ModelConfigError, match="attention"):
        build_generator_from_config({**config, "attention": True})
    with pytest.raises(ModelConfigError, match="preset"):
        build_generator_from_config({"arch": "unet"})
    with pytest.raises(ModelConfigError, match="cannot build"):
        build_generator_from_config({**config, "decoder_channels": [8]})
    with pytest.raises(UnknownPresetError):
        build_generator_from_config({**config, "preset": "psgx"})


def test_width_one_is_the_study_size():
    unet = model_config("gu")
    assert (unet["ngf"], unet["depth"]) == (64, 7)
    squeeze = model_config("gpsagd")
    assert squeeze["middle_channels"] == 512
    assert squeeze["upsample_channels"] == [256, 128, 64]
    assert squeeze["decoder_channels"] == [256, 128, 128]
    assert squeeze["attention_block"] == 0  # third-last of three decoder blocks


def test_attention_block_is_in_the_third_last_decoder_block():
    generator = build_generator("psag", width=TINY)
    blocks = list(generator.blocks)
    has_attention = [not isinstance(block.attention, torch.nn.Identity) for block in blocks]
    assert has_attention == [i == len(blocks) - 3 for i in range(len(blocks))]


# --------------------------------------------------------------------------- encoders and weights


@pytest.mark.parametrize("arch", sorted(ENCODERS))
def test_encoder_skips_match_a_dummy_forward(arch):
    spec = ENCODERS[arch]
    indices, channels, out_channels = probe_encoder(build_encoder(arch, None))
    assert indices == list(spec.skip_indices)
    assert channels == list(spec.skip_channels)
    assert out_channels == spec.out_channels


def test_encoder_weights_from_an_explicit_path(tmp_path):
    reference = torchvision.models.squeezenet1_1(weights=None).state_dict()
    path = tmp_path / ENCODER_WEIGHT_FILES["squeezenet1_1"]
    torch.save(reference, path)
    generator = build_generator("psg", width=TINY, encoder_weights=path)
    assert generator.config["encoder_weights"] == "imagenet"
    assert torch.equal(generator.encoder[0].weight, reference["features.0.weight"])
    assert torch.equal(generator.encoder[12].expand3x3.weight, reference["features.12.expand3x3.weight"])


def test_encoder_weights_found_in_torchvision_cache(offline):
    reference = torchvision.models.resnet18(weights=None).state_dict()
    (offline / "checkpoints").mkdir(parents=True)
    torch.save(reference, offline / "checkpoints" / ENCODER_WEIGHT_FILES["resnet18"])
    generator = build_generator("prg", width=TINY)
    assert generator.config["encoder_weights"] == "imagenet"
    assert torch.equal(generator.encoder[0].weight, reference["conv1.weight"])


def test_without_weights_the_encoder_is_random_and_nothing_downloads():
    assert build_generator("gpsagd", width=TINY).config["encoder_weights"] == "random"


def test_missing_weights_path_says_where_the_file_goes(tmp_path, offline):
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(EncoderWeightsNotFoundError) as caught:
        build_generator("psg", width=TINY, encoder_weights=missing)
    assert isinstance(caught.value, FileNotFoundError)
    message = str(caught.value)
    assert str(missing) in message and ENCODER_WEIGHT_FILES["squeezenet1_1"] in message
    assert str(offline / "checkpoints") in message


def test_weights_of_the_wrong_model_are_refused(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(EncoderWeightsError, match="squeezenet1_1"):
        build_generator("psg", width=TINY, encoder_weights=path)


# --------------------------------------------------------------------------- discriminator


def test_discriminator_is_a_70px_patchgan():
    discriminator = build_discriminator(width=TINY)
    lab = torch.rand(2, 3, 128, 128) * 2 - 1
    assert discriminator(lab).shape == (2, 1, 14, 14)
    assert build_discriminator(width=TINY)(torch.rand(1, 3, 256, 256)).shape == (1, 1, 30, 30)
    assert receptive_field() == 70
    # Measure it: the input gradient of one central logit covers exactly 70x70 pixels (eval mode,
    # so BatchNorm does not mix positions).
    discriminator.eval()
    lab.requires_grad_(True)
    discriminator(lab)[0, 0, 7, 7].backward()
    rows = lab.grad[0].abs().sum(dim=(0, 2)).nonzero()
    cols = lab.grad[0].abs().sum(dim=(0, 1)).nonzero()
    assert int(rows.max() - rows.min() + 1) == 70 and int(cols.max() - cols.min() + 1) == 70


def test_discriminator_backward_reaches_its_first_layer():
    discriminator = build_discriminator(width=TINY)
    discriminator(torch.rand(2, 3, 96, 80) * 2 - 1).mean().backward()
    assert discriminator.model[0].weight.grad.abs().sum() > 0


# --------------------------------------------------------------------------- ONNX


def test_attention_is_plain_matmul_softmax(monkeypatch):
    """scaled_dot_product_attention would export as ONNX Attention (opset 23), which TensorRT
    before 10.14 cannot parse; the block must never call it."""

    def refuse(*args, **kwargs):
        raise AssertionError("SelfAttention must not use scaled_dot_product_attention")

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", refuse)
    generator = build_generator("psag", width=TINY)
    with torch.no_grad():
        generator.blocks[0].attention.gamma.fill_(1.0)
    assert generator(torch.rand(2, 1, 64, 64) * 2 - 1).shape == (2, 2, 64, 64)


@pytest.mark.slow
def test_attention_generator_exports_to_onnx_opset20(tmp_path):
    """The hardest preset exports with dynamic batch: MatMul + Softmax (no Attention op), the
    odd SqueezeNet sizes as Resize, and the same output as PyTorch in ONNX Runtime.

    Slow (about 15 s idle, most of it the exporter); tests/export covers the whole export path
    from checkpoints, this one pins the models package's own promise.
    """
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    generator = build_generator("psag", width=TINY).eval()
    with torch.no_grad():
        generator.blocks[0].attention.gamma.fill_(0.5)  # make the attention path count
    path = tmp_path / "psag.onnx"
    torch.onnx.export(
        generator, (torch.rand(2, 1, 96, 80) * 2 - 1,), str(path), input_names=["L"], output_names=["ab"],
        opset_version=20, dynamic_shapes={"l_norm": {0: torch.export.Dim("batch", min=1, max=64)}},
        external_data=False, dynamo=True, verbose=False,
    )
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert {"MatMul", "Softmax", "Resize", "DepthToSpace"} <= ops and "Attention" not in ops
    l_norm = torch.rand(3, 1, 96, 80) * 2 - 1
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (ab,) = session.run(None, {"L": l_norm.numpy()})
    with torch.no_grad():
        expected = generator(l_norm).numpy()
    assert ab.shape == (3, 2, 96, 80)
    assert abs(ab - expected).max() < 1e-4


def test_scaling_the_encoder_keeps_the_output_and_shrinks_its_activations():
    """What the exporter does before tracing an ImageNet encoder for fp16 (exact in fp32)."""
    torch.manual_seed(0)
    generator = build_generator("psag", render_size=32, width=0.125)
    with torch.no_grad():  # large activations, as ImageNet weights give, and trained statistics
        for conv in [m for m in generator.encoder.modules() if isinstance(m, torch.nn.Conv2d)][:3]:
            conv.weight.mul_(8)
        generator.train()(torch.rand(8, 1, 32, 32) * 2 - 1)
    generator.eval()
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        before, peak_before = generator(x), generator.encoder(generator.stem(x)).abs().max()
        generator.scale_encoder_(64.0)
        after, peak_after = generator(x), generator.encoder(generator.stem(x)).abs().max()
    assert torch.allclose(before, after, atol=1e-5)
    assert torch.isclose(peak_after * 64, peak_before, rtol=1e-5)
