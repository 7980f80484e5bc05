"""The TensorRT backend on a real engine: ``pytest -m tensorrt`` on a CUDA machine with TensorRT.

Skipped when ``tensorrt`` cannot be imported or torch sees no GPU. The engines are tiny and built
in seconds with TensorRT's network API (a 3x3 convolution and tanh: ``[N,1,S,S] -> [N,2,S,S]``,
exactly the model interface), in fp32 and in strongly typed fp16, so the backend's own code
(deserialise, profile, buffers, chunking, fp16 casts, streams) is what is under test; one more
test goes through the export stage's ``build_engine`` from the tiny model's fp16 ONNX and
compares the engine with PyTorch.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facecolor.errors import Unavailable
from facecolor.runtime.backends.base import BackendError

trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed (pip install facecolor[tensorrt])")

pytestmark = [
    pytest.mark.tensorrt,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="TensorRT needs a CUDA GPU"),
]

SIZE = 16
PROFILE = (1, 4, 8)  # min, opt, max batch


def build_tiny_plan(path, half: bool = False, seed: int = 0):
    """A plan for conv3x3(1->2) + tanh; returns (path, weight, bias) as float32 torch tensors."""
    rng = np.random.default_rng(seed)
    weight = (rng.normal(size=(2, 1, 3, 3)) * 0.5).astype(np.float32)
    bias = rng.normal(size=(2,)).astype(np.float32) * 0.1
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    dtype, np_dtype = (trt.float16, np.float16) if half else (trt.float32, np.float32)
    source = network.add_input("L", dtype, (-1, 1, SIZE, SIZE))
    kernel, offset = weight.astype(np_dtype), bias.astype(np_dtype)  # kept alive until the build
    conv = network.add_convolution_nd(source, 2, (3, 3), trt.Weights(kernel), trt.Weights(offset))
    conv.padding_nd = (1, 1)
    act = network.add_activation(conv.get_output(0), trt.ActivationType.TANH)
    output = act.get_output(0)
    output.name = "ab"
    network.mark_output(output)
    config = builder.create_builder_config()
    if hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # compare fp32 with fp32
    profile = builder.create_optimization_profile()
    profile.set_shape("L", *[(n, 1, SIZE, SIZE) for n in PROFILE])
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    assert serialized is not None, "TensorRT could not build the tiny engine"
    path.write_bytes(bytes(serialized))
    return path, torch.from_numpy(weight), torch.from_numpy(bias)


def reference(l_norm: torch.Tensor, weight, bias) -> torch.Tensor:
    return torch.tanh(torch.nn.functional.conv2d(l_norm, weight.to(l_norm.device), bias.to(l_norm.device), padding=1))


@pytest.mark.parametrize("half", [False, True])
def test_engine_matches_torch_with_chunks_and_casts(tmp_path, half):
    from facecolor.runtime.backends.tensorrt import TensorRTBackend

    plan, weight, bias = build_tiny_plan(tmp_path / "tiny.plan", half=half)
    with TensorRTBackend(plan, max_batch=None, verify=False) as backend:
        assert backend.render_size == SIZE and backend.max_batch == PROFILE[2]
        assert backend.name == "tensorrt" and backend.device == "cuda"
        for count in (1, 3, 8, 13):  # 13: two chunks over the profile's max of 8
            l_norm = torch.rand(count, 1, SIZE, SIZE, device="cuda") * 2 - 1
            ab = backend.predict_ab(l_norm)
            torch.cuda.current_stream().synchronize()
            expected = reference(l_norm, weight, bias)
            diff = (ab - expected).abs().max().item()
            print(f"half={half} batch {count}: out {tuple(ab.shape)} {ab.dtype}, max |diff| {diff:.2e}")
            assert ab.shape == (count, 2, SIZE, SIZE) and ab.dtype == torch.float32 and ab.is_cuda
            assert diff < (1e-2 if half else 1e-4)


def test_smaller_max_batch_and_stream_ordering(tmp_path):
    """The backend's stream waits for the caller's, and the caller's for the backend's."""
    from facecolor.runtime.backends.tensorrt import TensorRTBackend

    plan, weight, bias = build_tiny_plan(tmp_path / "tiny.plan")
    caller = torch.cuda.Stream()
    with TensorRTBackend(plan, max_batch=2, verify=False) as backend, torch.cuda.stream(caller):
        assert backend.max_batch == 2
        busy = torch.randn(4096, 4096, device="cuda")
        for _ in range(10):
            busy = busy @ busy / 64  # keeps the caller's stream busy before the input is written
        l_norm = torch.empty(5, 1, SIZE, SIZE, device="cuda").uniform_(-1, 1)
        ab = backend.predict_ab(l_norm)
        result = (ab - reference(l_norm, weight, bias)).abs().max()
    caller.synchronize()
    print("max |diff| under a busy caller stream:", result.item())
    assert result.item() < 1e-4


def test_wrong_input_and_closed_backend_are_named(tmp_path):
    from facecolor.runtime.backends.tensorrt import TensorRTBackend

    plan, _, _ = build_tiny_plan(tmp_path / "tiny.plan")
    backend = TensorRTBackend(plan, verify=False)
    with pytest.raises(BackendError, match="CUDA tensor"):
        backend.predict_ab(torch.zeros(2, 1, SIZE + 1, SIZE + 1, device="cuda"))
    with pytest.raises(BackendError, match="CUDA tensor"):
        backend.predict_ab(np.zeros((2, 1, SIZE, SIZE), np.float32))
    backend.close()
    backend.close()  # idempotent
    with pytest.raises(BackendError, match="closed"):
        backend.predict_ab(torch.zeros(1, 1, SIZE, SIZE, device="cuda"))


def test_garbage_and_unchecked_plans_are_refused(tmp_path):
    from facecolor.runtime.backends.tensorrt import TensorRTBackend

    garbage = tmp_path / "garbage.plan"
    garbage.write_bytes(b"not an engine" * 100)
    with pytest.raises(Unavailable, match="rebuild|deserial|sidecar"):
        TensorRTBackend(garbage, verify=False)
    plan, _, _ = build_tiny_plan(tmp_path / "tiny.plan")
    with pytest.raises(Unavailable, match="sidecar"):  # no NAME.plan.json beside it
        TensorRTBackend(plan)


def test_engine_inside_the_gpu_pipeline(tmp_path):
    """The backend's streams and the pipeline's compute stream together, end to end."""
    from runtime_helpers import encode_cv2, portrait

    from facecolor.runtime.backends.tensorrt import TensorRTBackend
    from facecolor.runtime.executor import ThreadExecutor
    from facecolor.runtime.pipeline import Settings
    from facecolor.runtime.run import run_batch
    from facecolor.runtime.pipeline_gpu import build_stages

    plan, _, _ = build_tiny_plan(tmp_path / "tiny.plan")
    root = tmp_path / "in"
    root.mkdir()
    for index in range(11):
        (root / f"p{index}.jpg").write_bytes(encode_cv2(portrait(240, 180, seed=index), ".jpg"))
    with TensorRTBackend(plan, max_batch=4, verify=False) as backend:
        settings = Settings(in_dir=root, out_dir=tmp_path / "out", batch_size=4, workers=4)
        report = run_batch(settings, ThreadExecutor(backend, "test", lambda s: build_stages(s, backend)),
                           progress=False)
    assert report.done == 11 and report.failed == 0, report.summary_lines()


def test_exported_tiny_model_matches_pytorch(tiny_checkpoint, tmp_path):
    """facecolor.export's fp16 ONNX -> build_engine -> check_plan -> TensorRTBackend vs torch fp32."""
    from facecolor.checkpoint import load_generator
    from facecolor.export.cache import cached_onnx
    from facecolor.export.tensorrt import build_engine
    from facecolor.runtime.backends.tensorrt import TensorRTBackend

    onnx = cached_onnx(tiny_checkpoint, fp16=True)
    plan = build_engine(onnx, tmp_path / "tiny-pug.plan", max_batch=8)
    model, checkpoint = load_generator(tiny_checkpoint, "cuda")
    size = checkpoint.render_size
    with TensorRTBackend(plan, max_batch=8) as backend:  # verify=True: the sidecar is checked
        assert backend.render_size == size and backend.model.preset == "pug", backend
        l_norm = torch.rand(11, 1, size, size, device="cuda") * 2 - 1
        ab = backend.predict_ab(l_norm)
        with torch.inference_mode():
            expected = model(l_norm).float()
        diff = (ab - expected).abs()
        print(f"fp16 engine vs torch fp32: max {diff.max().item():.2e} mean {diff.mean().item():.2e}")
        assert diff.max().item() < 5e-2 and diff.mean().item() < 5e-3
