"""Tests for bench/gpu_check.py and its helpers (gpu_flops, gpu_launch, gpu_speed), on the CPU.

The GPU paths cannot run here; what can is tested for real: the FLOP arithmetic against values
computed by hand, the peak and published-figure tables, the budget split, the curve comparisons
and log parsing, the no-GPU line, a whole `--cpu` correctness run (tiny fine-tunes through
run_classifier.py, two logical CPUs, export_model.py) with its JSON and Markdown, a run whose
budget is too short, and the speed worker on the tiny model.
"""

import json
import math
import os
import subprocess
import sys
import time

import pytest

from bench import gpu_check, gpu_flops, gpu_launch
from tests import artifacts

REPO_ROOT = artifacts.REPO_ROOT
SCRIPT = os.path.join(REPO_ROOT, "bench", "gpu_check.py")


def _env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="-1",
               PYTHONPATH=REPO_ROOT)
    env.pop("BERT_DEBUG", None)
    return env


def _run(args, timeout):
    return subprocess.run([sys.executable, SCRIPT] + args, cwd=REPO_ROOT, env=_env(),
                          capture_output=True, text=True, timeout=timeout)


def _checks(report):
    return {item["check"]: item for item in report["correctness"]}


# ------------------------------------------------------------------------------------------------
# FLOPs, peaks, published figures
# ------------------------------------------------------------------------------------------------


def test_bert_base_flops_match_hand_computation():
    base = gpu_flops.BERT_BASE
    # Dense: 2 * 12 * (4 * 768^2 + 2 * 768 * 3072) = 24 * 7,077,888 = 169,869,312 per token;
    # attention at S=128: 4 * 128 * 768 * 12 = 4,718,592 per token.
    assert gpu_flops.encoder_flops_per_token(base, 128) == 169_869_312 + 4_718_592
    # 128 tokens = 22,347,251,712 (the 22.35 GFLOP of the README), pooler 2 * 768^2 = 1,179,648,
    # 2-class head 2 * 768 * 2 = 3,072.
    forward = gpu_flops.forward_flops_per_sequence(base, 128)
    assert forward == 22_347_251_712 + 1_179_648 + 3_072
    assert gpu_flops.flops_per_sequence(base, 128, training=True) == 3 * forward
    # Padded length enters twice: per token (linear) and in attention (quadratic).
    assert gpu_flops.forward_flops_per_sequence(base, 64, head="encoder") == \
        64 * (169_869_312 + 4 * 64 * 768 * 12) + 1_179_648


def test_bert_large_pretraining_flops_and_nvidia_utilisation():
    large = gpu_flops.BERT_LARGE
    # Encoder: 128 * (2 * 24 * (4 * 1024^2 + 2 * 1024 * 4096) + 4 * 128 * 1024 * 24)
    #        = 128 * (603,979,776 + 12,582,912) = 78,920,024,064.
    # Heads: pooler 2 * 1024^2 = 2,097,152; masked LM 20 * 2 * (1024^2 + 1024 * 30522)
    #        = 1,292,124,160; next sentence 2 * 1024 * 2 = 4,096.
    forward = gpu_flops.forward_flops_per_sequence(large, 128, head="pretraining",
                                                   masked_positions=20)
    assert forward == 78_920_024_064 + 2_097_152 + 1_292_124_160 + 4_096
    train = gpu_flops.flops_per_sequence(large, 128, True, head="pretraining",
                                         masked_positions=20)
    # NVIDIA's 356.8 sequences/s on an A100 (312 TFLOP/s fp16): 85.9 TFLOP/s, 27.5% of peak.
    achieved, fraction = gpu_flops.utilisation(356.8, train, 312.0)
    assert achieved == pytest.approx(356.8 * 240_642_748_416 / 1e12)
    assert achieved == pytest.approx(85.86, abs=0.01)
    assert fraction == pytest.approx(0.2752, abs=1e-4)
    assert gpu_flops.utilisation(10.0, train, None)[1] is None
    with pytest.raises(ValueError, match="unknown head"):
        gpu_flops.forward_flops_per_sequence(large, 128, head="squad")


@pytest.mark.parametrize("device_name,peak_name,fp16,tf32", [
    ("NVIDIA H200", "H200 SXM", 989.4, 494.7),
    ("NVIDIA H200 NVL", "H200 NVL", 835.5, 417.5),
    ("NVIDIA H100 80GB HBM3", "H100 SXM", 989.4, 494.7),
    ("NVIDIA H100 PCIe", "H100 PCIe", 756.0, 378.0),
    ("NVIDIA A100-SXM4-40GB", "A100", 312.0, 156.0),
    ("NVIDIA A10", "A10", 125.0, 62.5),
    ("NVIDIA L4", "L4", 121.0, 60.0),
    ("Tesla T4", "T4", 65.0, None),
    ("Tesla V100-PCIE-16GB", "V100 PCIe", 112.0, None),
    ("Tesla V100-SXM2-32GB", "V100 SXM2", 125.0, None),
])
def test_peak_lookup_by_cuda_device_name(device_name, peak_name, fp16, tf32):
    peak = gpu_flops.find_peak(device_name)
    assert peak.name == peak_name
    assert gpu_flops.peak_for_precision(peak, "amp") == (fp16, "fp16 tensor")
    # Without TF32 units the tf32 rows are measured against the fp32 peak.
    expected_tf32 = (tf32, "tf32 tensor") if tf32 else (peak.fp32, "fp32")
    assert gpu_flops.peak_for_precision(peak, "tf32") == expected_tf32
    assert gpu_flops.peak_for_precision(peak, "fp32") == (peak.fp32, "fp32")


def test_unknown_gpu_has_no_peak():
    assert gpu_flops.find_peak("Quadro K1200") is None
    assert gpu_flops.peak_for_precision(None, "amp") == (None, "unknown GPU")


def test_nearest_published_figures_and_peak_scaling():
    h200 = gpu_flops.find_peak("NVIDIA H200")
    figures = gpu_flops.nearest_published(h200)
    assert [(f["gpu"], f["sequences_per_s"]) for f in figures] == [("A100 40GB", 356.8),
                                                                   ("A100 40GB", 1216.0)]
    # Volta gets the V100 pretraining figure and, as nothing else is published, A100 inference.
    volta = gpu_flops.nearest_published(gpu_flops.find_peak("Tesla V100-SXM2-32GB"))
    assert [(f["gpu"], f["sequences_per_s"]) for f in volta] == [("V100 32GB", 168.6),
                                                                 ("A100 40GB", 1216.0)]
    entry = gpu_flops.compare_with_published(figures[0], 500.0, h200)
    assert entry["scaled_published_per_s"] == pytest.approx(356.8 * 989.4 / 312.0)
    assert entry["ratio"] == pytest.approx(500.0 / 356.8)
    assert entry["ratio_to_scaled"] == pytest.approx(500.0 / (356.8 * 989.4 / 312.0))
    missing = gpu_flops.compare_with_published(figures[1], None, None)
    assert missing["ratio"] is None and missing["scaled_published_per_s"] is None


# ------------------------------------------------------------------------------------------------
# Budget, comparisons, log parsing
# ------------------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_budget_splits_by_share_and_passes_unused_time_on():
    clock = FakeClock()
    budget = gpu_check.Budget(480, {"correctness": 0.35, "speed": 0.65}, clock=clock)
    clock.now += 10  # environment probe
    correctness = budget.start_phase("correctness")
    assert correctness.allowance_s == pytest.approx(470 * 0.35)
    assert correctness.fits(40) and not correctness.fits(165)
    clock.now += 100  # the phase used 100 of its 164.5 s
    assert correctness.left() == pytest.approx(64.5)
    speed = budget.start_phase("speed")
    assert speed.allowance_s == pytest.approx(370)  # its share plus what correctness left
    clock.now += 400  # overrun: nothing is left, every later step is skipped
    assert budget.left() == 0.0 and not speed.fits(1)
    assert "needs about 30 s, 0 s left of this phase's 370 s" in speed.skip_note(30)


def test_budget_overrun_shortens_later_phases():
    clock = FakeClock()
    budget = gpu_check.Budget(100, {"a": 1.0, "b": 1.0, "c": 2.0}, clock=clock)
    assert budget.start_phase("a").allowance_s == pytest.approx(25)
    clock.now += 60  # phase a overran its 25 s
    assert budget.start_phase("b").allowance_s == pytest.approx(40 / 3)
    clock.now += 5
    assert budget.start_phase("c").allowance_s == pytest.approx(35)


def test_compare_curves_per_step_and_windows():
    base = {step: 1.0 / step for step in range(1, 31)}
    shifted = {step: loss + 0.01 * (step % 2) for step, loss in base.items()}
    measured = gpu_check.compare_curves(base, shifted)
    assert measured["steps"] == 30
    assert measured["max_step_abs"] == pytest.approx(0.01)
    assert measured["mean_step_abs"] == pytest.approx(0.005)
    assert measured["last10_mean_abs"] == pytest.approx(0.005)
    # A two-replica Estimator run logs the sum of the replicas' losses: scale 2 undoes that.
    summed = {step: 2 * loss for step, loss in base.items()}
    assert gpu_check.compare_curves(base, summed, scale=2.0)["max_step_abs"] == 0.0
    assert gpu_check.compare_curves(base, {99: 1.0}) == {"steps": 0}
    tolerance = gpu_check.TOLERANCES["xla"]
    assert gpu_check.over_tolerance(dict(measured, eval_accuracy_abs=0.0), tolerance) == []
    assert gpu_check.over_tolerance({"max_step_abs": 0.5, "mean_step_abs": 0.0,
                                     "eval_accuracy_abs": 0.0}, tolerance) == ["max_step_abs"]
    assert "eval_accuracy_abs" in gpu_check.over_tolerance({"max_step_abs": 0.0}, tolerance)


def _run_record(losses, accuracy=1.0, **extra):
    return dict({"exit_code": 0, "seconds": 1.0, "losses": losses,
                 "eval": {"eval_accuracy": accuracy}}, **extra)


def test_amp_check_demands_float16_on_a_gpu_only():
    base = _run_record({s: 0.7 - 0.02 * s for s in range(1, 31)})
    same = _run_record(dict(base["losses"]), record={"amp_graph_rewrite": False})
    assert gpu_check.amp_check(base, same, gpu_mode=False)["status"] == "passed"
    gpu = gpu_check.amp_check(base, same, gpu_mode=True)
    assert gpu["status"] == "failed" and "never switched on" in gpu["note"]
    used = _run_record(dict(base["losses"]), record={"amp_graph_rewrite": True},
                       fp16_conversions=[(812, 3021)])
    assert gpu_check.amp_check(base, used, gpu_mode=True)["status"] == "passed"
    off = _run_record({s: v + 0.1 for s, v in base["losses"].items()},
                      record={"amp_graph_rewrite": True}, fp16_conversions=[(812, 3021)])
    result = gpu_check.amp_check(base, off, gpu_mode=True)
    assert result["status"] == "failed" and "max_step_abs" in result["note"]
    # Training finished and was evaluated, then the export failed: the curve is still judged,
    # the export has its own check.
    export_failed = dict(used, exit_code=1, exported=False,
                         error="ERROR: saved_model does not match the checkpoint")
    assert gpu_check.amp_check(base, export_failed, gpu_mode=True)["status"] == "passed"
    export = gpu_check.amp_export_check(export_failed, gpu_mode=True)
    assert export["status"] == "failed" and "does not match" in export["note"]
    assert gpu_check.amp_export_check(dict(used, exported=True), True)["status"] == "passed"


def test_xla_and_mirrored_checks():
    base = _run_record({s: 0.7 - 0.02 * s for s in range(1, 31)})
    assert gpu_check.xla_check(base, _run_record(dict(base["losses"])))["status"] == "failed"
    compiled = _run_record(dict(base["losses"]), xla_platforms=["CUDA"])
    assert gpu_check.xla_check(base, compiled)["status"] == "passed"
    strategy = {"num_replicas": 2, "devices": ["/gpu:0", "/gpu:1"],
                "cross_device_ops": "NcclAllReduce"}
    summed = _run_record({s: 2 * v for s, v in base["losses"].items()},
                         record={"strategies": [strategy], "logical_split": None})
    result = gpu_check.mirrored_check(base, summed, gpu_mode=True)
    assert result["status"] == "passed", result
    assert result["measured"]["all_reduce"] == "NcclAllReduce"
    crashed = {"exit_code": 1, "error": "InternalError: ncclInvalidUsage", "seconds": 3.0,
               "record": {"strategies": [strategy], "logical_split": "GPU 0 carved into 2"}}
    result = gpu_check.mirrored_check(base, crashed, gpu_mode=True)
    assert result["status"] == "failed" and "logical GPUs of one physical GPU" in result["note"]


def test_log_parsing():
    log = "\n".join([
        "I tensorflow/core/grappler/optimizers/auto_mixed_precision.cc:2235] Converted 812/3021 "
        "nodes to float16 precision using 96 cast(s) to float16 (excluding Const and Variable "
        "casts)",
        "I external/local_xla/xla/service/service.cc:168] XLA service 0x55d0 initialized for "
        "platform CUDA (this does not guarantee that XLA will be used). Devices:",
        "ERROR: --bert_config_file=/x: no such file",
    ])
    assert gpu_check.fp16_conversions(log) == [(812, 3021)]
    assert gpu_check.xla_platforms(log) == ["CUDA"]
    assert gpu_check.error_line(log) == "ERROR: --bert_config_file=/x: no such file"
    traceback = "Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: bad\n"
    assert gpu_check.error_line(traceback) == "ValueError: bad"
    worker_log = "gpu_speed: start a\nConverted 1/2 nodes to float16 precision\ngpu_speed: end a\n"
    assert gpu_check.fp16_conversions(gpu_check.section(worker_log + "gpu_speed: start b\n",
                                                        "b")) == []
    assert gpu_check.fp16_conversions(gpu_check.section(worker_log, "a")) == [(1, 2)]


def test_argument_errors():
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--budget_s=0"])
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--phases=correctness,bench"])
    assert gpu_check.parse_args(["--cpu"]).phases == ["correctness"]
    assert gpu_check.parse_args([]).phases == ["correctness", "speed"]
    with pytest.raises(SystemExit, match="usage"):
        gpu_launch.parse_args(["--record=x.json", "run_classifier.py"])
    args, script = gpu_launch.parse_args(["--record=x.json", "--logical_gpus=2", "--",
                                          "run_classifier.py", "--use_amp"])
    assert args.logical_gpus == 2 and script == ["run_classifier.py", "--use_amp"]


def test_language_id_data_is_balanced_and_labelled_by_script():
    rows = gpu_check.language_id_rows(os.path.join(gpu_check.CLASSIFIER_DATA, "train.tsv"))
    labels = [label for label, _ in rows]
    assert len(rows) == 240 and set(labels) == {"en", "zh"}
    assert 0.4 < labels.count("zh") / len(labels) < 0.6
    assert all((label == "zh") == any("\u4e00" <= ch <= "\u9fff" for ch in text)
               for label, text in rows)


# ------------------------------------------------------------------------------------------------
# The script: no GPU, --cpu, a budget too short
# ------------------------------------------------------------------------------------------------


def test_without_gpu_prints_one_line_and_exits_0(tmp_path):
    output_dir = tmp_path / "out"
    result = _run([f"--output_dir={output_dir}"], timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: no GPU visible to TensorFlow")
    assert "--cpu" in lines[0]
    assert not output_dir.exists()  # nothing written


@pytest.mark.slow
def test_cpu_correctness_run(tmp_path):
    output_dir = tmp_path / "out"
    result = _run([f"--output_dir={output_dir}", "--cpu", "--budget_s=900"], timeout=900)
    with open(output_dir / "gpu_check.json", encoding="utf-8") as f:
        report = json.load(f)
    assert result.returncode == (1 if report["status"] == "failed" else 0), result.stdout[-3000:]
    assert report["environment"]["mode"] == "cpu" and report["speed"] == []
    assert report["environment_lines"][0].startswith("CPU only")
    checks = _checks(report)

    baseline = checks["fp32 fine-tune learns"]
    assert baseline["status"] == "passed", baseline
    assert baseline["measured"]["eval_accuracy"] >= 0.9
    losses = report["fine_tunes"]["fp32"]["losses"]
    assert len(losses) == 30 and losses["30"] < 0.2 < losses["1"]

    amp = checks["--use_amp vs fp32: loss curve"]
    assert amp["status"] == "passed", amp
    assert amp["measured"]["float16_rewrite_enabled"] is False  # float32 on the CPU, as documented
    assert amp["measured"]["max_step_abs"] <= gpu_check.TOLERANCES["amp"]["max_step_abs"]

    amp_export = checks["--use_amp training then --do_export in one run"]
    assert amp_export["status"] == "passed" and amp_export["measured"]["exported"], amp_export

    mirrored = checks["two replicas vs one: loss curve"]
    assert mirrored["status"] == "passed", mirrored
    assert mirrored["measured"]["replicas"] == 2
    assert [d[-5:] for d in mirrored["measured"]["devices"]] == ["CPU:0", "CPU:1"]
    assert mirrored["measured"]["all_reduce"] == "ReductionToOneDevice"

    xla = checks["--use_xla vs fp32: loss curve"]
    within = xla["measured"]["max_step_abs"] <= gpu_check.TOLERANCES["xla"]["max_step_abs"]
    compiled = bool(xla["measured"]["xla_compiled_for"])
    assert xla["status"] == ("passed" if within and compiled else "failed"), xla

    saved_model = checks["export: SavedModel vs checkpoint"]
    assert saved_model["status"] == "passed" and saved_model["measured"]["max_abs_diff"] <= 1e-5
    assert checks["export: TF-TRT FP16 vs checkpoint"]["status"] == "unavailable"

    failed = [c for c in report["correctness"] if c["status"] == "failed"]
    assert report["status"] == ("failed" if failed else "passed")
    with open(output_dir / "gpu_check.md", encoding="utf-8") as f:
        markdown = f.read()
    for text in ("# GPU check", "## (a) Correctness", "| fp32 fine-tune learns | PASSED |",
                 "| two replicas vs one: loss curve | PASSED |", "max_step_abs 0.05"):
        assert text in markdown
    assert "## (a) Correctness" in result.stdout
    # Written atomically, and only the logs are left of the work directory.
    assert sorted(os.listdir(output_dir)) == ["gpu_check.json", "gpu_check.md", "work"]
    assert os.listdir(output_dir / "work") == ["logs"]


def test_budget_too_short_skips_with_a_note(tmp_path):
    output_dir = tmp_path / "out"
    result = _run([f"--output_dir={output_dir}", "--cpu", "--budget_s=5"], timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    with open(output_dir / "gpu_check.json", encoding="utf-8") as f:
        report = json.load(f)
    [only] = report["correctness"]
    assert only["status"] == "skipped" and "skipped: budget (needs about 55 s" in only["note"]
    assert report["status"] == "passed" and report["fine_tunes"] == {}
    assert any("skipped: budget" in note for note in report["notes"])


# ------------------------------------------------------------------------------------------------
# The speed worker, on the tiny model
# ------------------------------------------------------------------------------------------------


def test_speed_worker_rows_on_the_tiny_model(tmp_path):
    size = gpu_check.speed_size("tiny")
    jobs = {job["id"]: job for job in gpu_check.main_speed_jobs("tiny", size)}
    chosen = [jobs["train_tiny_amp"], jobs["infer_tiny_fp32"], jobs["bucketing_tiny_amp"],
              gpu_check.pretrain_job("tiny", size),
              {"id": "ckpt", "kind": "checkpoint", "config": size["encoder"],
               "path": str(tmp_path / "ckpt" / "model.ckpt")},
              {"id": "too_long", "kind": "infer", "estimate_s": 1e9}]
    jobs_path, results_path = tmp_path / "jobs.json", tmp_path / "results.jsonl"
    # Separate workers: run_classifier.py and run_pretraining.py define the same flags.
    for part in ([0, 1, 2, 4, 5], [3]):
        jobs_path.write_text(json.dumps([chosen[i] for i in part]))
        subprocess.run([sys.executable, os.path.join("bench", "gpu_speed.py"),
                        f"--jobs={jobs_path}", f"--results={results_path}",
                        f"--deadline={time.time() + 600:.0f}"], cwd=REPO_ROOT,
                       env=_env(), check=True, timeout=600, capture_output=True)
    rows = {}
    for line in results_path.read_text().splitlines():
        row = json.loads(line)
        rows[row["id"]] = row
    assert rows["too_long"]["status"] == "skipped" and "budget" in rows["too_long"]["note"]
    assert os.path.exists(str(tmp_path / "ckpt" / "model.ckpt.index"))
    for rid in ("train_tiny_amp", "infer_tiny_fp32", "bucketing_tiny_amp", "pretrain_tiny_amp_xla"):
        assert rows[rid]["status"] == "ok", rows[rid]
        assert rows[rid]["sequences_per_s"] > 0
    assert math.isfinite(rows["train_tiny_amp"]["final_loss"])
    assert rows["train_tiny_amp"]["precision_effective"].startswith("fp32 (no GPU")

    train = gpu_check.annotate_row(dict(rows["train_tiny_amp"], job=jobs["train_tiny_amp"]),
                                   size, None, gpu_mode=False)
    assert train["flops_per_seq"] == gpu_flops.flops_per_sequence(size["encoder"], 32, True)
    assert train["utilisation"] is None and train["achieved_tflops"] > 0
    bucket = gpu_check.annotate_row(dict(rows["bucketing_tiny_amp"]), size, None, False)
    # Padded: every batch at 32 tokens; bucketed: sorted, each batch at most 32 (multiples of 8).
    assert bucket["padded"]["flops_per_sentence"] == \
        gpu_flops.forward_flops_per_sequence(size["encoder"], 32)
    assert bucket["bucketed"]["flops_per_sentence"] < bucket["padded"]["flops_per_sentence"]
    assert bucket["sentences"] == 243 and bucket["speedup"] > 0


def test_gpu_rows_report_from_recorded_results():
    """The GPU-only path from worker result lines to the report, on lines shaped like a GPU's."""
    h200 = gpu_flops.find_peak("NVIDIA H200")
    size = gpu_check.speed_size("base")
    jobs = {job["id"]: job for job in gpu_check.main_speed_jobs("base", size)}
    jobs["pretrain_large_amp_xla"] = gpu_check.pretrain_job("base", size)
    lines = [
        dict(id="train_base_amp", kind="train", status="ok", sequences_per_s=900.0,
             precision_effective="amp", fp16_conversions=[[2100, 8000]], peak_memory_mb=9000.0,
             job=jobs["train_base_amp"]),
        dict(id="infer_base_amp", kind="infer", status="ok", sequences_per_s=3000.0,
             precision_effective="amp", fp16_conversions=[], job=jobs["infer_base_amp"]),
        dict(id="pretrain_large_amp_xla", kind="train", status="ok", sequences_per_s=1000.0,
             precision_effective="amp + XLA", fp16_conversions=[[5000, 20000]],
             job=jobs["pretrain_large_amp_xla"]),
        dict(id="infer_base_fp32", kind="infer", status="failed", job=jobs["infer_base_fp32"],
             error="ResourceExhaustedError: OOM when allocating tensor"),
        dict(id="saved_model_base", kind="saved_model", status="ok", sequences_per_s=2000.0,
             batch1_ms=2.5, precision_effective="saved_model: tf32", export_max_abs_diff=2e-3,
             export_tolerance=1e-5, trt_native_fallbacks=0),
        dict(id="tftrt_base", kind="saved_model", status="unavailable",
             note="TensorRT 8.6 (libnvinfer.so.8) is not loadable"),
        dict(id="bucketing_base_amp", kind="bucketing", status="ok", sentences=243,
             mean_tokens=23.2, speedup=3.0, sequences_per_s=6000.0, precision_effective="amp",
             fp16_conversions=[[900, 4000]],
             padded={"sentences_per_s": 2000.0, "shapes": [[32, 128]] * 7 + [[19, 128]]},
             bucketed={"sentences_per_s": 6000.0, "shapes": [[32, 16]] * 4 + [[32, 32]] * 3
                       + [[19, 64]]}),
    ]
    rows = [gpu_check.annotate_row(dict(line), size, h200, gpu_mode=True) for line in lines]
    by_id = {row["id"]: row for row in rows}

    base_train = gpu_flops.flops_per_sequence(gpu_flops.BERT_BASE, 128, True)
    assert by_id["train_base_amp"]["flops_per_seq"] == base_train
    assert by_id["train_base_amp"]["utilisation"] == pytest.approx(900 * base_train / 989.4e12)
    assert by_id["train_base_amp"]["warnings"] == []
    assert "float16 rewrite may not have run" in by_id["infer_base_amp"]["warnings"][0]
    assert by_id["saved_model_base"]["peak_unit"] == "tf32 tensor"
    assert "differs from the checkpoint by 2.00e-03" in by_id["saved_model_base"]["warnings"][0]
    padded = by_id["bucketing_base_amp"]["padded"]
    assert padded["flops_per_sentence"] == pytest.approx(
        gpu_flops.forward_flops_per_sequence(gpu_flops.BERT_BASE, 128))
    assert by_id["bucketing_base_amp"]["bucketed"]["flops_per_sentence"] < \
        padded["flops_per_sentence"] / 4

    table = gpu_check.comparison_table(rows, h200)
    pretrain = [e for e in table if e["our_row"] == "pretrain_large_amp_xla"][0]
    assert pretrain["ratio"] == pytest.approx(1000 / 356.8)
    assert pretrain["scaled_published_per_s"] == pytest.approx(356.8 * 989.4 / 312)
    infer_xla = [e for e in table if e["our_row"] == "infer_base_amp_xla"][0]
    assert infer_xla["measured_per_s"] is None and infer_xla["our_status"] == "not run"

    report = {"finished": "now", "budget_s": 480, "elapsed_s": 470.0, "command": "x",
              "environment_lines": ["GPU 0: NVIDIA H200 (compute capability 9.0)"],
              "correctness": [], "speed": rows, "comparison": table,
              "notes": gpu_check.summary_notes([], rows)}
    markdown = gpu_check.markdown_report(report)
    assert "| train_base_amp | BERT-Base fine-tuning step (AdamW), batch 32, S=128 | amp | " \
           "900.0 |" in markdown
    assert "% of 989 (fp16 tensor)" in markdown and "batch 1: 2.50 ms" in markdown
    assert "| infer_base_fp32 |" in markdown and "FAILED: ResourceExhaustedError" in markdown
    assert "UNAVAILABLE: TensorRT 8.6" in markdown
    assert "padded 2000.0 sentences/s, bucketed 6000.0 (3.00x)" in markdown
    assert any(note.startswith("infer_base_amp: no 'Converted") for note in report["notes"])


def test_environment_lines_of_a_gpu_machine():
    env = {"gpus": [{"device_name": "NVIDIA H200", "compute_capability": "9.0"}],
           "machine": "x", "tensorflow": "2.15.1",
           "driver": {"driver_version": "550.54.15", "driver_cuda_version": "12.4"},
           "build": {"is_cuda_build": True, "cuda_version": "12.2", "cudnn_version": "8",
                     "is_tensorrt_build": True},
           "tensorrt": {"enabled": False}, "nccl_kernel": True}
    lines = gpu_check.environment_lines(env)
    assert lines[0] == "GPU 0: NVIDIA H200 (compute capability 9.0)"
    assert lines[1] == "driver 550.54.15 (supports CUDA 12.4)"
    assert "CUDA 12.2, cuDNN 8" in lines[2] and "libnvinfer is not loadable" in lines[2]
    env["tensorrt"] = {"enabled": True, "linked": "8.6.1", "loaded": "8.6.1"}
    assert "TensorRT linked 8.6.1, loaded 8.6.1" in gpu_check.environment_lines(env)[2]
    env["build"]["is_tensorrt_build"] = False
    assert "TensorRT not in this build" in gpu_check.environment_lines(env)[2]
