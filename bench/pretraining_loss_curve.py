"""Pretraining loss curve of a tiny BERT on a real English corpus, on CPU, through the two scripts.

Pipeline (every step is the command-line script a user would run):
  1. gensim's lee_background.cor (news documents, one per line; tests/artifacts.py) is split into
     sentences on ". ", one sentence per line, blank line between documents; the last 30 documents
     are held out.
  2. create_pretraining_data.py with the released uncased English vocab (30,522 WordPieces):
     sequence length 128, 20 predictions, dupe_factor 5 for training (1 for the held-out set).
  3. run_pretraining.py from scratch: 2 layers, hidden 128, 2 heads, intermediate 512, batch 32,
     learning rate 1e-3 (30 warmup steps), evaluated on the held-out TFRecords (3 batches of 32,
     about all of its ~100 instances) after every checkpoint (every 50 steps) with early stopping
     on masked_lm_loss (patience 150 steps).

Prints the held-out masked-LM loss / accuracy and next-sentence accuracy at each evaluation, the
training loss (from the Estimator's summaries), wall times and the machine.

    python bench/pretraining_loss_curve.py                 # 300 steps, about 2-3 minutes on 2 cores
    python bench/pretraining_loss_curve.py --steps 1000    # longer curve
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from bench.machine import cpu_model  # noqa: E402
from tests import artifacts  # noqa: E402

HELD_OUT_DOCUMENTS = 30


def write_sentence_corpus(documents, path):
    """One sentence per line (split on '. '), a blank line between documents."""
    sentences = 0
    with open(path, "w", encoding="utf-8") as f:
        for document in documents:
            parts = [p.strip() for p in document.strip().split(". ") if p.strip()]
            for i, part in enumerate(parts):
                f.write(part + ("." if i < len(parts) - 1 else "") + "\n")
            sentences += len(parts)
            f.write("\n")
    return sentences


def run(cmd, log_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    start = time.time()
    with open(log_path, "w") as log:
        result = subprocess.run(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        with open(log_path) as log:
            tail = log.read()[-3000:]
        raise SystemExit(f"ERROR: {' '.join(cmd[:2])} failed (exit {result.returncode}):\n{tail}")
    return time.time() - start


def scalar_events(event_dir, tags):
    import tensorflow as tf

    values = {tag: {} for tag in tags}
    for name in sorted(tf.io.gfile.listdir(event_dir)):
        if not name.startswith("events."):
            continue
        for event in tf.compat.v1.train.summary_iterator(os.path.join(event_dir, name)):
            for value in event.summary.value:
                if value.tag in values:
                    number = (
                        float(tf.make_ndarray(value.tensor))
                        if value.HasField("tensor")
                        else value.simple_value
                    )
                    values[value.tag][event.step] = number
    return values


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    # From scratch, 1e-3 left this 2-layer model at the unigram plateau (always predicting the most
    # frequent tokens) for 300 steps; 5e-4 with a longer warmup gets past it.
    parser.add_argument("--learning_rate", type=float, default=5e-4)
    parser.add_argument("--warmup_steps", type=int, default=100)
    parser.add_argument("--eval_every", type=int, default=100)
    parser.add_argument("--work_dir", default=None, help="default: a fresh temporary directory")
    args = parser.parse_args()

    work_dir = args.work_dir or tempfile.mkdtemp(prefix="pretraining_loss_curve-")
    os.makedirs(work_dir, exist_ok=True)
    vocab = artifacts.english_vocab()
    with open(artifacts.news_corpus(), encoding="utf-8") as f:
        documents = [line for line in f if line.strip()]
    train_txt, heldout_txt = (os.path.join(work_dir, n) for n in ("train.txt", "heldout.txt"))
    train_sentences = write_sentence_corpus(documents[:-HELD_OUT_DOCUMENTS], train_txt)
    heldout_sentences = write_sentence_corpus(documents[-HELD_OUT_DOCUMENTS:], heldout_txt)
    corpus_mb = os.path.getsize(train_txt) / 1e6
    print(
        f"corpus: {len(documents) - HELD_OUT_DOCUMENTS} training documents ({train_sentences} "
        f"sentences, {corpus_mb:.2f} MB), {HELD_OUT_DOCUMENTS} held out ({heldout_sentences} "
        f"sentences)"
    )

    seconds = {}
    for name, text, dupe in (("train", train_txt, 5), ("heldout", heldout_txt, 1)):
        seconds["data_" + name] = run(
            [
                sys.executable,
                "create_pretraining_data.py",
                f"--input_file={text}",
                f"--output_file={os.path.join(work_dir, name + '.tfrecord')}",
                f"--vocab_file={vocab}",
                "--do_lower_case=True",
                "--max_seq_length=128",
                "--max_predictions_per_seq=20",
                f"--dupe_factor={dupe}",
                "--random_seed=12345",
            ],
            os.path.join(work_dir, f"create_{name}.log"),
        )

    config = {
        "vocab_size": 30522,
        "hidden_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 512,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": 128,
        "type_vocab_size": 2,
        "initializer_range": 0.02,
    }
    config_path = os.path.join(work_dir, "bert_config.json")
    with open(config_path, "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)

    output_dir = os.path.join(work_dir, "model")
    seconds["pretraining"] = run(
        [
            sys.executable,
            "run_pretraining.py",
            f"--bert_config_file={config_path}",
            f"--input_file={os.path.join(work_dir, 'train.tfrecord')}",
            f"--eval_input_file={os.path.join(work_dir, 'heldout.tfrecord')}",
            f"--output_dir={output_dir}",
            "--do_train",
            "--do_eval",
            "--max_seq_length=128",
            "--max_predictions_per_seq=20",
            "--train_batch_size=32",
            "--eval_batch_size=32",
            f"--num_train_steps={args.steps}",
            f"--num_warmup_steps={args.warmup_steps}",
            f"--learning_rate={args.learning_rate}",
            f"--save_checkpoints_steps={args.eval_every}",
            "--max_eval_steps=3",
            "--max_steps_without_decrease=300",
            "--early_stopping_metric=masked_lm_loss",
            "--save_summary_steps=10",
            "--log_step_count_steps=50",
            "--keep_checkpoint_max=2",
            "--tf_random_seed=1",
        ],
        os.path.join(work_dir, "run_pretraining.log"),
    )

    evals = scalar_events(
        os.path.join(output_dir, "eval"),
        ["masked_lm_loss", "masked_lm_accuracy", "next_sentence_accuracy", "loss"],
    )
    train = scalar_events(output_dir, ["loss"])["loss"]

    def train_loss_near(step):
        # Mean of the training summaries in the window (step - eval_every, step].
        window = [v for s, v in train.items() if step - args.eval_every < s <= step]
        return sum(window) / len(window) if window else float("nan")

    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; TF_CPP_MIN_LOG_LEVEL=2, fp32")
    print(
        f"model: 2 layers, hidden 128, vocab 30,522; batch 32 x 128 tokens; "
        f"uniform-guess masked-LM loss ln(30522) = {math.log(30522):.2f}"
    )
    first_step = min(train)
    print(f"training loss (MLM + NSP) at step {first_step}: {train[first_step]:.3f}")
    print(f"{'step':>6} {'train loss':>11} {'held-out mlm loss':>18} {'mlm acc':>8} {'nsp acc':>8}")
    for step in sorted(evals["masked_lm_loss"]):
        print(
            f"{step:>6} {train_loss_near(step):>11.3f} {evals['masked_lm_loss'][step]:>18.3f} "
            f"{evals['masked_lm_accuracy'][step]:>8.3f} "
            f"{evals['next_sentence_accuracy'][step]:>8.3f}"
        )
    print("wall seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items()))
    with open(os.path.join(output_dir, "eval_results.txt")) as f:
        print("eval_results.txt: " + "; ".join(line.strip() for line in f))
    print(f"work dir: {work_dir}")


if __name__ == "__main__":
    main()
