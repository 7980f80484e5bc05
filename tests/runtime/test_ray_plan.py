"""How ``--ray`` sizes its actor pool (no Ray needed: plain resource dictionaries)."""

from __future__ import annotations

import pytest

from facecolor.runtime.cli import Location
from facecolor.runtime.distributed.ray_job import ClusterTooSmall, plan_actors
from facecolor.runtime.storage import is_url, open_storage


def test_cpu_cluster_gets_one_actor_per_cpu():
    plan = plan_actors({"CPU": 2.0}, "auto", None, None)
    assert (plan.num_actors, plan.num_cpus, plan.num_gpus, plan.device) == (2, 1, 0, "cpu")
    assert plan.describe() == "2 CPU actors (1 CPU each)"
    assert plan_actors({"CPU": 16.0}, "cpu", None, 4).num_actors == 4


def test_gpu_cluster_gets_one_actor_per_gpu_with_cpus_for_decoding():
    plan = plan_actors({"CPU": 64.0, "GPU": 8.0}, "auto", None, None)
    assert (plan.num_actors, plan.num_cpus, plan.num_gpus, plan.device) == (8, 7, 1, "cuda")
    assert plan_actors({"CPU": 64.0, "GPU": 8.0}, "cpu", None, None).device == "cpu"  # --device cpu wins
    assert plan_actors({"CPU": 8.0, "GPU": 8.0}, "auto", None, None).num_cpus == 1


def test_impossible_plans_say_what_to_change():
    with pytest.raises(ClusterTooSmall, match="no GPUs"):
        plan_actors({"CPU": 8.0}, "cuda", None, None)
    with pytest.raises(ClusterTooSmall, match="--num-actors 2"):
        plan_actors({"CPU": 32.0, "GPU": 2.0}, "auto", 4, None)
    with pytest.raises(ClusterTooSmall, match="need 6 CPUs"):
        plan_actors({"CPU": 4.0}, "cpu", 3, 2)
    with pytest.raises(ValueError):
        plan_actors({"CPU": 4.0}, "tpu", None, None)


def test_locations_and_dispatch(tmp_path):
    assert Location(exists=True).convert("s3://bucket/prefix", None, None) == "s3://bucket/prefix"
    assert Location(exists=True).convert(str(tmp_path), None, None) == tmp_path
    with pytest.raises(Exception, match="does not exist"):
        Location(exists=True).convert(str(tmp_path / "missing"), None, None)
    # No dispatch is left (one run for every kind): a URL is object storage, a folder local storage.
    assert is_url("s3://b/in") and not is_url(tmp_path) and not is_url(tmp_path / "out")
    assert open_storage(tmp_path, {}).is_local and open_storage(tmp_path / "out", {}).is_local
