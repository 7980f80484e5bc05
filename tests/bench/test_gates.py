"""Gates: limits by precision, n/a without truth, NaN always fails, messages say by how much."""

from __future__ import annotations

import json
import math

import pytest

from facecolor.bench.gates import DEFAULT_MAX_DAB, GateSettings, check_gates
from facecolor.bench.report import BenchReport, Row
from facecolor.files import write_json


def record(psnr=0.0, hist=0.0, max_dab=0.1, nonfinite=0, truth=True):
    delta = {"psnr": psnr, "hist": hist} if truth else {"psnr": None, "hist": None}
    return {"delta": delta, "agreement": {"max_dab": max_dab, "nonfinite": nonfinite}}


def test_defaults_pass_an_agreeing_engine():
    gates = check_gates(record(psnr=-0.05, hist=0.001, max_dab=0.5), "fp32", GateSettings())
    assert [g.name for g in gates] == ["|ΔPSNR|", "|ΔHist|", "max |Δab|"]
    assert all(g.passed for g in gates) and not [g for g in gates if g.passed is False]


def test_fp16_limit_is_looser_than_fp32():
    assert DEFAULT_MAX_DAB["fp32"] < DEFAULT_MAX_DAB["fp16"]
    gates = check_gates(record(max_dab=2.0), "fp16", GateSettings())
    assert gates[2].passed and gates[2].limit == DEFAULT_MAX_DAB["fp16"]
    gates = check_gates(record(max_dab=2.0), "fp32", GateSettings())
    assert gates[2].passed is False
    assert "over by 1" in gates[2].describe()


def test_failures_name_the_gate_and_the_excess():
    gates = [g for g in check_gates(record(psnr=-0.35, hist=0.02), "fp32", GateSettings()) if g.passed is False]
    assert [g.name for g in gates] == ["|ΔPSNR|", "|ΔHist|"]
    assert "0.35 > 0.1 dB (over by 0.25)" in gates[0].describe()


def test_flags_override_limits():
    settings = GateSettings(max_delta_psnr=0.5, max_delta_hist=0.05, max_dab=10.0)
    gates = check_gates(record(psnr=0.4, hist=0.04, max_dab=9.0), "fp32", settings)
    assert all(g.passed for g in gates)


def test_without_truth_only_agreement_is_gated():
    gates = check_gates(record(truth=False, max_dab=0.2), "fp32", GateSettings())
    assert [g.passed for g in gates] == [None, None, True]
    assert gates[0].status.startswith("n/a: no --data")


@pytest.mark.parametrize("max_dab, nonfinite", [(math.nan, 0), (0.1, 3), (math.inf, 0)])
def test_non_finite_outputs_always_fail(max_dab, nonfinite, tmp_path):
    gate = check_gates(record(max_dab=max_dab, nonfinite=nonfinite), "fp16", GateSettings())[2]
    assert gate.passed is False
    report = BenchReport(system={}, settings={}, engine={}, reference={}, rows={"x": Row("x", gates=[gate.to_dict()])})
    written = json.loads(write_json(tmp_path / "bench.json", report.to_dict()).read_text())  # JSON has no inf: null
    assert written["rows"]["x"]["gates"][0]["value"] is None


def test_negative_limits_are_refused():
    with pytest.raises(ValueError):
        GateSettings(max_dab=-1.0)
