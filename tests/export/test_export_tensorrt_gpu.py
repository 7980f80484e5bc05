"""TensorRT on a CUDA GPU: build a plan from the tiny fp16 gpsagd, run it, refuse foreign plans.

Run with ``pytest -m tensorrt tests/export``. Skipped only when ``tensorrt`` cannot be imported;
with TensorRT but no GPU they fail, as they should.
"""

from __future__ import annotations

import json

import pytest
import torch
from export_testkit import TINY

from facecolor.checkpoint import load_generator
from facecolor.color import AB_SCALE
from facecolor.export.check import TOLERANCES
from facecolor.export.errors import EngineBuildError, PlanMismatchError
from facecolor.export.tensorrt import build_engine, check_plan, current_machine, timing_cache_path, trt_logger

trt = pytest.importorskip("tensorrt")
pytestmark = pytest.mark.tensorrt
SIZE = TINY["render_size"]


@pytest.fixture(scope="module")
def plan(gpsagd_fp16, tmp_path_factory):
    path = tmp_path_factory.mktemp("plan") / "gpsagd.plan"
    return build_engine(gpsagd_fp16, path, max_batch=8, opt_batch=4, workspace_gib=1.0)


def test_plan_and_sidecar_describe_this_machine(plan, gpsagd_fp16):
    document = check_plan(plan)
    machine = current_machine()
    assert document["tensorrt_version"] == trt.__version__ == machine.tensorrt_version
    assert document["gpu_name"] == torch.cuda.get_device_name()
    major, minor = torch.cuda.get_device_capability()
    assert document["compute_capability"] == f"{major}.{minor}"
    assert document["batch_profile"] == {"min": 1, "opt": 4, "max": 8}
    assert document["precision"] == "fp16" and document["strongly_typed"] is True
    assert [t["name"] for t in document["inputs"]] == ["L"] and document["inputs"][0]["dtype"] == "float32"
    assert [t["name"] for t in document["outputs"]] == ["ab"] and document["outputs"][0]["dtype"] == "float32"
    assert document["render_size"] == SIZE
    assert timing_cache_path(plan).stat().st_size > 0
    assert not plan.read_bytes().lstrip().startswith(b"{")  # metadata in the sidecar, not glued in front


def test_engine_matches_pytorch_through_execute_async_v3(plan, checkpoint):
    runtime = trt.Runtime(trt_logger())
    engine = runtime.deserialize_cuda_engine(plan.read_bytes())
    assert engine is not None
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    assert sorted(names) == ["L", "ab"]
    assert engine.get_tensor_mode("L") == trt.TensorIOMode.INPUT
    context = engine.create_execution_context()
    generator, _ = load_generator(checkpoint("gpsagd"), "cuda")
    stream = torch.cuda.Stream()  # never the default stream
    tolerance = TOLERANCES["fp16"]
    for batch in (1, 7):
        x = torch.rand(batch, 1, SIZE, SIZE, device="cuda", generator=torch.Generator("cuda").manual_seed(batch)) * 2 - 1
        ab = torch.empty(batch, 2, SIZE, SIZE, device="cuda", dtype=torch.float32)
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            assert context.set_input_shape("L", tuple(x.shape))
            assert context.set_tensor_address("L", x.data_ptr())
            assert context.set_tensor_address("ab", ab.data_ptr())
            assert context.execute_async_v3(stream.cuda_stream)
        stream.synchronize()
        with torch.no_grad():
            reference = generator(x)
        diff = (ab - reference).abs() * AB_SCALE
        assert torch.isfinite(ab).all()
        assert diff.max().item() <= tolerance.noise_max_ab and diff.mean().item() <= tolerance.mean_ab, (
            batch, diff.max().item(), diff.mean().item())


@pytest.mark.parametrize("field, value", [("tensorrt_version", "9.0.0.0"), ("compute_capability", "1.0"),
                                          ("gpu_name", "Some Other GPU")])
def test_plan_built_for_another_tensorrt_or_gpu_is_refused(plan, tmp_path, field, value):
    copy = tmp_path / plan.name
    copy.write_bytes(plan.read_bytes())
    document = json.loads(plan.with_name(plan.name + ".json").read_text())
    document[field] = value
    copy.with_name(copy.name + ".json").write_text(json.dumps(document))
    with pytest.raises(PlanMismatchError, match="--engine"):
        check_plan(copy)


def test_parser_errors_are_reported(tmp_path, gpsagd_fp16):
    import onnx

    model = onnx.load(str(gpsagd_fp16))
    model.graph.node[0].op_type = "NoSuchOpAnywhere"
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    with pytest.raises(EngineBuildError, match="could not parse"):
        build_engine(broken, tmp_path / "broken.plan", max_batch=2)
    assert not (tmp_path / "broken.plan").exists()
