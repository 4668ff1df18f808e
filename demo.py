"""The whole BERT workflow on the bundled sample data, end to end, on a CPU (`make demo`).

Every stage runs the real script with the same command line a user would type, and the summary after
each stage is read from the files that stage wrote (nothing is canned):

1. create_pretraining_data.py  English + Chinese sample corpus -> masked-LM/NSP TFRecords
2. run_pretraining.py          a tiny BERT (2 layers, hidden 64) pretrained from scratch
3. run_classifier.py           fine-tuned from that checkpoint on the bilingual sample task, with
                               evaluation after each checkpoint, early stopping and test predictions
4. export_model.py             SavedModel + TFLite exports, each verified against the checkpoint
5. export_model.py --predict_saved_model   the exported model classifies new texts
6. extract_features.py         per-token features (reference JSON lines) and mean-pooled vectors
7. run_squad.py                SQuAD 2.0 question answering from the same checkpoint, with the
                               official metrics, early stopping and the prediction files

    python demo.py [--output_dir demo_output] [--pretrain_steps 300]

Outputs go to --output_dir (default ./demo_output, removed and recreated on each run).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

import cli

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = os.path.dirname(os.path.abspath(__file__))
SAMPLE = os.path.join(REPO_ROOT, "sample_data")
CONFIG = os.path.join(SAMPLE, "pretraining", "bert_config_tiny.json")
VOCAB = os.path.join(SAMPLE, "pretraining", "vocab.txt")
MAX_SEQ_LENGTH = 64
NUM_STAGES = 7


def run_stage(number, title, args, log_path):
    """Runs one script with `args`; its log goes to `log_path`. Exits the demo if it fails."""
    print("\n[%d/%d] %s" % (number, NUM_STAGES, title), flush=True)
    print("      $ python %s" % " ".join(args[:1] + [a if len(a) < 70 else a[:67] + "..."
                                                      for a in args[1:]]), flush=True)
    start = time.time()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO_ROOT)
    with open(log_path, "w") as log:
        proc = subprocess.run([sys.executable] + args, cwd=REPO_ROOT, env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    seconds = time.time() - start
    if proc.returncode != 0:
        with open(log_path) as f:
            tail = f.read().splitlines()[-15:]
        print("\n".join("      | " + line for line in tail))
        sys.exit("demo: stage %d (%s) failed after %.0f s; full log in %s"
                 % (number, title, seconds, log_path))
    print("      done in %.0f s (log: %s)" % (seconds, os.path.relpath(log_path, REPO_ROOT)))
    return seconds


def file_summary(paths):
    return ", ".join("%s (%s)" % (os.path.basename(p), cli.human_size(path_size(p))) for p in paths)


def path_size(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
    return os.path.getsize(path)


def read_results(path):
    """Parses an eval_results.txt (`key = value` lines)."""
    results = {}
    with open(path) as f:
        for line in f:
            key, _, value = line.partition(" = ")
            results[key.strip()] = value.strip()
    return results


def count_records(paths):
    import tensorflow as tf
    return sum(1 for p in paths for _ in tf.data.TFRecordDataset(p))


def stage_pretraining_data(out, logs):
    """1. English and word-segmented Chinese text -> TFRecords, with Chinese whole-word masking."""
    data_dir = os.path.join(out, "pretraining_data")
    os.makedirs(data_dir)
    train_files = [os.path.join(data_dir, "train_en.tfrecord"),
                   os.path.join(data_dir, "train_zh.tfrecord")]
    run_stage(1, "create_pretraining_data.py: sample corpus -> TFRecords", [
        "create_pretraining_data.py",
        "--input_file=%s,%s" % (os.path.join(SAMPLE, "pretraining", "sample_text_en.txt"),
                                os.path.join(SAMPLE, "pretraining",
                                             "sample_text_zh_segmented.txt")),
        "--output_file=%s" % ",".join(train_files),
        "--vocab_file=%s" % VOCAB, "--do_lower_case=True",
        "--max_seq_length=%d" % MAX_SEQ_LENGTH, "--max_predictions_per_seq=10",
        "--dupe_factor=10", "--num_workers=2", "--chinese_whole_word_mask=True",
    ], os.path.join(logs, "1_create_pretraining_data.log"))
    print("      wrote %s: %d training instances"
          % (file_summary(train_files), count_records(train_files)))
    return data_dir


def stage_pretraining(out, logs, data_dir, steps):
    """2. A tiny BERT pretrained from scratch; returns its final checkpoint.

    It is evaluated on the training data at the end, as the reference does; --eval_input_file
    points at held-out data in real use.
    """
    pretrain_dir = os.path.join(out, "pretrained")
    run_stage(2, "run_pretraining.py: tiny BERT from scratch", [
        "run_pretraining.py", "--bert_config_file=%s" % CONFIG,
        "--input_file=%s" % os.path.join(data_dir, "*.tfrecord"),
        "--output_dir=%s" % pretrain_dir, "--do_train=True", "--do_eval=True",
        "--max_seq_length=%d" % MAX_SEQ_LENGTH, "--max_predictions_per_seq=10",
        # From scratch a tiny model needs a few hundred steps at this rate to get past predicting
        # the most frequent tokens (masked-LM accuracy ~0.07) and learn from context.
        "--train_batch_size=32", "--learning_rate=5e-4",
        "--num_train_steps=%d" % steps, "--num_warmup_steps=100", "--tf_random_seed=12345",
        "--save_checkpoints_steps=%d" % steps, "--max_eval_steps=20",
    ], os.path.join(logs, "2_run_pretraining.log"))
    results = read_results(os.path.join(pretrain_dir, "eval_results.txt"))
    print("      global_step %s: masked_lm_loss %.3f, masked_lm_accuracy %.3f, "
          "next_sentence_accuracy %.3f"
          % (results["global_step"], float(results["masked_lm_loss"]),
             float(results["masked_lm_accuracy"]), float(results["next_sentence_accuracy"])))
    return os.path.join(pretrain_dir, "model.ckpt-%d" % steps)


def stage_fine_tuning(out, logs, pretrained_checkpoint):
    """3. Fine-tune with evaluation during training and early stopping, predict the test set.

    Returns:
      (the best checkpoint, the output directory with labels.txt).
    """
    finetune_dir = os.path.join(out, "classifier")
    log_path = os.path.join(logs, "3_run_classifier.log")
    run_stage(3, "run_classifier.py: fine-tune with evaluation during training + early stopping", [
        "run_classifier.py", "--task_name=tsv",
        "--data_dir=%s" % os.path.join(SAMPLE, "classifier"),
        "--text_a_column=text", "--label_column=label",
        "--bert_config_file=%s" % CONFIG, "--vocab_file=%s" % VOCAB,
        "--init_checkpoint=%s" % pretrained_checkpoint, "--output_dir=%s" % finetune_dir,
        "--do_train=True", "--do_eval=True", "--do_predict=True",
        "--max_seq_length=%d" % MAX_SEQ_LENGTH, "--train_batch_size=16",
        "--learning_rate=5e-4", "--num_train_epochs=15", "--save_checkpoints_steps=15",
        # Fixed seeds make the demo repeatable; a tiny model's fine-tuning varies a lot with them.
        "--max_steps_without_decrease=60", "--tf_random_seed=1",
    ], log_path)
    results = read_results(os.path.join(finetune_dir, "eval_results.txt"))
    with open(log_path) as f:
        events = [line.split("] ", 1)[-1].strip() for line in f
                  if "early stopping" in line.lower() or "New best checkpoint" in line]
    print("      %s" % (events[-1] if events else "trained to the last step (no early stop)"))
    print("      dev (best checkpoint): eval_accuracy %.3f, eval_macro_f1 %.3f, eval_loss %.3f "
          "at global_step %s" % (float(results["eval_accuracy"]), float(results["eval_macro_f1"]),
                                 float(results["eval_loss"]), results["global_step"]))
    with open(os.path.join(finetune_dir, "test_results.tsv")) as f:
        print("      test_results.tsv: %d predictions; labels.txt: %s"
              % (sum(1 for _ in f), read_labels(finetune_dir)))
    import tensorflow as tf
    best = os.path.join(finetune_dir, "best")
    checkpoint = ((tf.train.latest_checkpoint(best) if os.path.isdir(best) else None)
                  or tf.train.latest_checkpoint(finetune_dir))
    print("      best checkpoint (exported next): %s" % os.path.relpath(checkpoint, out))
    return checkpoint, finetune_dir


def stage_export(out, logs, checkpoint, finetune_dir):
    """4. SavedModel, frozen graph and TFLite exports, each verified against the checkpoint."""
    export_dir = os.path.join(out, "export")
    run_stage(4, "export_model.py: SavedModel + TFLite, verified against the checkpoint", [
        "export_model.py", "--task=classifier", "--init_checkpoint=%s" % checkpoint,
        "--bert_config_file=%s" % CONFIG, "--vocab_file=%s" % VOCAB,
        "--labels=%s" % ",".join(read_labels(finetune_dir)),
        "--max_seq_length=%d" % MAX_SEQ_LENGTH, "--export_dir=%s" % export_dir,
        "--format=saved_model,frozen_graph,tflite,tflite_int8",
    ], os.path.join(logs, "4_export_model.log"))
    with open(os.path.join(export_dir, "export_report.json")) as f:
        report = json.load(f)
    for name, entry in sorted(report.get("formats", report).items()):
        if isinstance(entry, dict) and "size_bytes" in entry:
            # The checked difference is on probabilities for the quantised formats, where logits
            # drift more but the predicted labels (and probabilities) barely move.
            print("      %-13s %9s  checked diff %.2e (tolerance %.0e)  p50 %.2f ms"
                  % (name, cli.human_size(entry["size_bytes"]), entry["checked_diff"],
                     entry["tolerance"], entry["latency_ms"]["p50"]))
    return os.path.join(export_dir, "saved_model")


def stage_predictor(out, logs, saved_model):
    """5. The exported model, loaded once, classifies new texts."""
    texts_path = os.path.join(out, "new_texts.txt")
    with open(texts_path, "w", encoding="utf-8") as f:
        f.write("This phone is wonderful, I love it.\nThe service was terrible and slow.\n"
                "这家餐厅的菜非常好吃。\n这个手机太差了，我很失望。\n")
    predictions_path = os.path.join(out, "new_texts_predictions.tsv")
    run_stage(5, "export_model.py --predict_saved_model: classify new texts", [
        "export_model.py", "--predict_saved_model=%s" % saved_model,
        "--input_file=%s" % texts_path, "--output_file=%s" % predictions_path,
    ], os.path.join(logs, "5_predict.log"))
    with open(predictions_path, encoding="utf-8") as f:
        for line in f.read().splitlines()[1:]:
            text, label = line.split("\t")[:2]
            print("      %-40s -> %s" % (text, label))


def stage_features(out, logs, pretrained_checkpoint):
    """6. Reference JSON lines (the top 2 layers) and mean-pooled sentence vectors."""
    features_jsonl = os.path.join(out, "features.jsonl")
    features_npy = os.path.join(out, "sentence_vectors.npy")
    common = ["--input_file=%s" % os.path.join(SAMPLE, "extract_features_input.txt"),
              "--bert_config_file=%s" % CONFIG, "--vocab_file=%s" % VOCAB,
              "--init_checkpoint=%s" % pretrained_checkpoint,
              "--max_seq_length=%d" % MAX_SEQ_LENGTH, "--layers=-1,-2"]
    run_stage(6, "extract_features.py: token features and pooled sentence vectors",
              ["extract_features.py", "--output_file=%s" % features_jsonl] + common,
              os.path.join(logs, "6_extract_features.log"))
    subprocess.run([sys.executable, "extract_features.py", "--output_file=%s" % features_npy,
                    "--pooling_strategy=mean", "--output_format=npy"] + common, cwd=REPO_ROOT,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(features_jsonl, encoding="utf-8") as f:
        first = json.loads(f.readline())
        lines = 1 + sum(1 for _ in f)
    vectors = np.load(features_npy)
    print("      %s: %d lines, first has %d tokens x %d layers x %d values; %s: %s float32"
          % (os.path.basename(features_jsonl), lines, len(first["features"]),
             len(first["features"][0]["layers"]), len(first["features"][0]["layers"][0]["values"]),
             os.path.basename(features_npy), "x".join(map(str, vectors.shape))))


def read_labels(output_dir):
    with open(os.path.join(output_dir, "labels.txt"), encoding="utf-8") as f:
        return f.read().split()


def stage_squad(out, logs, pretrained_checkpoint):
    """7. SQuAD 2.0 question answering: official metrics, early stopping, prediction files."""
    squad_dir = os.path.join(out, "squad")
    run_stage(7, "run_squad.py: question answering with the official SQuAD 2.0 metrics", [
        "run_squad.py", "--bert_config_file=%s" % CONFIG, "--vocab_file=%s" % VOCAB,
        "--init_checkpoint=%s" % pretrained_checkpoint, "--output_dir=%s" % squad_dir,
        "--train_file=%s" % os.path.join(SAMPLE, "squad", "train-v2.0.json"),
        "--predict_file=%s" % os.path.join(SAMPLE, "squad", "dev-v2.0.json"),
        "--version_2_with_negative=True", "--do_train=True", "--do_eval=True",
        "--do_predict=True", "--max_seq_length=%d" % MAX_SEQ_LENGTH, "--doc_stride=32",
        "--max_query_length=16", "--train_batch_size=16", "--learning_rate=5e-4",
        "--num_train_epochs=4", "--save_checkpoints_steps=4",
        "--max_steps_without_decrease=8", "--tf_random_seed=1",
    ], os.path.join(logs, "7_run_squad.log"))
    results = read_results(os.path.join(squad_dir, "eval_results.txt"))
    print("      dev (best checkpoint): exact %.1f, f1 %.1f, HasAns_f1 %.1f, NoAns_f1 %.1f, "
          "best_f1 %.1f at null threshold %.2f" % tuple(float(results[k]) for k in (
              "exact", "f1", "HasAns_f1", "NoAns_f1", "best_f1", "best_f1_thresh")))
    with open(os.path.join(squad_dir, "predictions.json"), encoding="utf-8") as f:
        predictions = json.load(f)
    print("      predictions.json: %d answers (%d \"no answer\"); nbest_predictions.json, "
          "null_odds.json" % (len(predictions), sum(1 for v in predictions.values() if not v)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default=os.path.join(REPO_ROOT, "demo_output"))
    parser.add_argument("--pretrain_steps", type=int, default=1000)
    args = parser.parse_args()
    out = os.path.abspath(args.output_dir)
    if os.path.exists(out):
        shutil.rmtree(out)
    logs = os.path.join(out, "logs")
    os.makedirs(logs)
    start = time.time()
    print("BERT demo: every stage below runs a real script on sample_data/; outputs in %s" % out)

    data_dir = stage_pretraining_data(out, logs)
    pretrained = stage_pretraining(out, logs, data_dir, args.pretrain_steps)
    best_checkpoint, finetune_dir = stage_fine_tuning(out, logs, pretrained)
    saved_model = stage_export(out, logs, best_checkpoint, finetune_dir)
    stage_predictor(out, logs, saved_model)
    stage_features(out, logs, pretrained)
    stage_squad(out, logs, pretrained)
    print("\nDemo finished in %.0f s. Everything is in %s" % (time.time() - start, out))


if __name__ == "__main__":
    main()
