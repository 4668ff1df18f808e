"""FLOPs per BERT sequence, GPU peak throughputs and NVIDIA's published TF1 BERT figures.

Pure Python (no TensorFlow), shared by bench/gpu_check.py and its tests.

FLOP model (multiply-add = 2 FLOPs; counts what the matmuls of one sequence execute, at the
padded length the graph really runs):
* encoder, per token: `2 * L * (4 H^2 + 2 H I)` for the dense layers (Q, K, V, attention output,
  intermediate, output), plus `4 * S * H * L` for the two attention products (Q K^T and A V);
* pooler: `2 H^2` per sequence; classifier head: `2 H * num_labels`;
* pretraining heads: `2 (H^2 + H V)` per predicted position (transform + tied output layer) and
  `2 H * 2` for next-sentence;
* training: 3x the forward pass (the backward pass costs about twice the forward), i.e.
  `6 * N * tokens` for the N matmul weights of the encoder plus the attention terms.
Embedding gathers, softmax, LayerNorm, GELU and the optimizer are memory-bound and not counted.
BERT-Base at S=128 costs 22.35 GFLOP per forward sequence (174.6 MFLOP per token).

Peaks are dense (no structured sparsity) tensor-core figures from NVIDIA's data sheets, in
TFLOP/s; `None` where the GPU has no such unit (TF32 before Ampere, bfloat16 before Ampere).
"""

import dataclasses
import math
import re
from typing import Optional

BERT_BASE = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.1,
                 attention_probs_dropout_prob=0.1, max_position_embeddings=512,
                 type_vocab_size=2, initializer_range=0.02)
BERT_LARGE = dict(BERT_BASE, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                  intermediate_size=4096)


@dataclasses.dataclass(frozen=True)
class GpuPeak:
    """Dense peak throughputs of one GPU model, TFLOP/s."""

    name: str
    pattern: str  # regular expression matched against the CUDA device name
    fp32: float
    tf32: Optional[float]
    fp16: float  # float16 on tensor cores (bfloat16 is the same where it exists)
    bf16: Optional[float]
    architecture: str


# Most specific names first: "H100 PCIe" must not fall through to "H100", nor "A100" to "A10".
GPU_PEAKS = (
    GpuPeak("H200 NVL", r"H200\s*NVL", 60.0, 417.5, 835.5, 835.5, "Hopper"),
    GpuPeak("H200 SXM", r"H200", 66.9, 494.7, 989.4, 989.4, "Hopper"),
    GpuPeak("H100 PCIe", r"H100.*PCIE", 51.2, 378.0, 756.0, 756.0, "Hopper"),
    GpuPeak("H100 NVL", r"H100\s*NVL", 60.0, 417.5, 835.5, 835.5, "Hopper"),
    GpuPeak("H100 SXM", r"H100", 66.9, 494.7, 989.4, 989.4, "Hopper"),
    GpuPeak("A100", r"A100", 19.5, 156.0, 312.0, 312.0, "Ampere"),
    GpuPeak("A10", r"\bA10\b|A10G", 31.2, 62.5, 125.0, 125.0, "Ampere"),
    GpuPeak("L4", r"\bL4\b", 30.3, 60.0, 121.0, 121.0, "Ada"),
    GpuPeak("T4", r"\bT4\b", 8.1, None, 65.0, None, "Turing"),
    GpuPeak("V100 PCIe", r"V100.*PCIE", 14.0, None, 112.0, None, "Volta"),
    GpuPeak("V100 SXM2", r"V100", 15.7, None, 125.0, None, "Volta"),
)


def find_peak(device_name):
    """The GpuPeak whose pattern matches a CUDA device name (e.g. "NVIDIA H200"), or None."""
    for peak in GPU_PEAKS:
        if re.search(peak.pattern, device_name or "", flags=re.IGNORECASE):
            return peak
    return None


def peak_for_precision(peak, precision):
    """Peak TFLOP/s for a row's precision, and which unit that is.

    Args:
      peak: GpuPeak or None.
      precision: "fp32" (TF32 off), "tf32", "amp" / "fp16" (float16 tensor cores) or "bf16".

    Returns:
      (tflops or None, unit name). TF32 on a GPU without TF32 falls back to fp32.
    """
    if peak is None:
        return None, "unknown GPU"
    if precision in ("amp", "fp16"):
        return peak.fp16, "fp16 tensor"
    if precision == "bf16" and peak.bf16:
        return peak.bf16, "bf16 tensor"
    if precision == "tf32" and peak.tf32:
        return peak.tf32, "tf32 tensor"
    return peak.fp32, "fp32"


def encoder_flops_per_token(config, seq_len):
    """Forward FLOPs of the encoder per token at padded length `seq_len` (dense + attention)."""
    layers = config["num_hidden_layers"]
    hidden = config["hidden_size"]
    intermediate = config["intermediate_size"]
    dense = 2 * layers * (4 * hidden * hidden + 2 * hidden * intermediate)
    attention = 4 * seq_len * hidden * layers
    return dense + attention


def forward_flops_per_sequence(config, seq_len, head="classifier", num_labels=2,
                               masked_positions=0):
    """Forward FLOPs of one sequence of padded length `seq_len`.

    Args:
      config: dict with the BertConfig fields (num_hidden_layers, hidden_size, intermediate_size,
        vocab_size).
      seq_len: padded sequence length the graph runs at.
      head: "classifier" (pooler + num_labels-way layer), "pretraining" (pooler, masked-LM over
        `masked_positions` positions, next-sentence) or "encoder" (pooler only).
      num_labels: classes of the classifier head.
      masked_positions: predicted positions per sequence of the masked-LM head.

    Returns:
      FLOPs (int).
    """
    hidden = config["hidden_size"]
    flops = seq_len * encoder_flops_per_token(config, seq_len) + 2 * hidden * hidden
    if head == "classifier":
        flops += 2 * hidden * num_labels
    elif head == "pretraining":
        flops += masked_positions * 2 * (hidden * hidden + hidden * config["vocab_size"])
        flops += 2 * hidden * 2
    elif head != "encoder":
        raise ValueError(f"unknown head {head!r}: use classifier, pretraining or encoder")
    return flops


def flops_per_sequence(config, seq_len, training, **head_args):
    """Forward FLOPs (inference) or 3x forward (a training step) of one sequence."""
    forward = forward_flops_per_sequence(config, seq_len, **head_args)
    return 3 * forward if training else forward


def utilisation(sequences_per_s, flops_per_seq, peak_tflops):
    """(achieved TFLOP/s, fraction of peak or None)."""
    achieved = sequences_per_s * flops_per_seq / 1e12
    if not peak_tflops:
        return achieved, None
    return achieved, achieved / peak_tflops


# NVIDIA DeepLearningExamples, TensorFlow 1 BERT README (the figures users quote), each with the
# ids of the gpu_check speed rows it is compared with.
PUBLISHED = (
    dict(gpu="A100 40GB", generation="ampere+", sequences_per_s=356.8, precision="amp",
         what="BERT-Large pretraining, S=128, 1 GPU, AMP + XLA, LAMB",
         rows=("pretrain_large_amp_xla",)),
    dict(gpu="V100 32GB", generation="volta", sequences_per_s=168.6, precision="amp",
         what="BERT-Large pretraining, S=128, 1 GPU, AMP + XLA, LAMB",
         rows=("pretrain_large_amp_xla",)),
    dict(gpu="A100 40GB", generation="ampere+", sequences_per_s=1216.0, precision="amp",
         what="BERT-Base inference, S=128, batch 8, FP16",
         rows=("infer_base_amp", "infer_base_amp_xla")),
)
PUBLISHED_PEAKS = {"A100 40GB": "A100", "V100 32GB": "V100 SXM2"}


def generation(peak):
    """"volta" for Volta and Turing, "ampere+" for Ampere and newer, None when unknown."""
    if peak is None:
        return None
    return "volta" if peak.architecture in ("Volta", "Turing") else "ampere+"


def nearest_published(peak):
    """The published figures of the GPU nearest to `peak`: the same generation's where there is
    one for a task, else the A100 40GB's (the only inference figure)."""
    group = generation(peak)
    chosen = [figure for figure in PUBLISHED if figure["generation"] == group]
    tasks = {figure["what"] for figure in chosen}
    chosen += [figure for figure in PUBLISHED
               if figure["gpu"] == "A100 40GB" and figure["what"] not in tasks]
    return chosen


def peak_by_name(name):
    for peak in GPU_PEAKS:
        if peak.name == name:
            return peak
    raise KeyError(name)


def compare_with_published(figure, measured_per_s, peak):
    """One row of the comparison table.

    Args:
      figure: an entry of PUBLISHED.
      measured_per_s: our sequences/s for that row, or None when it did not run.
      peak: GpuPeak of our GPU, or None.

    Returns:
      dict with the figure, ours, ours / published and ours / (published scaled by the peak
      ratio of the two GPUs at the row's precision: what the same utilisation would give here).
    """
    theirs_peak, _ = peak_for_precision(peak_by_name(PUBLISHED_PEAKS[figure["gpu"]]),
                                        figure["precision"])
    ours_peak, _ = peak_for_precision(peak, figure["precision"])
    scaled = figure["sequences_per_s"] * ours_peak / theirs_peak if ours_peak else None
    entry = dict(figure, measured_per_s=measured_per_s, scaled_published_per_s=scaled,
                 ratio=None, ratio_to_scaled=None)
    if measured_per_s:
        entry["ratio"] = measured_per_s / figure["sequences_per_s"]
        entry["ratio_to_scaled"] = measured_per_s / scaled if scaled else None
    return entry


def round_up(value, multiple):
    """`value` rounded up to a multiple of `multiple` (bucket lengths)."""
    return int(math.ceil(value / float(multiple)) * multiple)
