"""Tests for cli.py: errors, atomic outputs, progress, eval results, inputs and the flag groups."""

import os

import pytest
import tensorflow as tf
from absl import flags as absl_flags

import cli


def test_run_main_prints_one_error_line_and_exits_1(capsys, monkeypatch):
    monkeypatch.delenv("BERT_DEBUG", raising=False)

    def main(argv):
        raise cli.UsageError("--max_seq_length=600 is longer than 512;\n lower it")

    with pytest.raises(SystemExit) as exit_info:
        cli.run_main(main, argv=["prog"])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == "ERROR: --max_seq_length=600 is longer than 512; lower it\n"

    def missing_file(argv):
        tf.io.gfile.GFile("/nonexistent/vocab.txt").read()

    with pytest.raises(SystemExit):
        cli.run_main(missing_file, argv=["prog"])
    error = capsys.readouterr().err
    assert error.startswith("ERROR: ") and "/nonexistent/vocab.txt" in error
    assert error.count("\n") == 1

    monkeypatch.setenv("BERT_DEBUG", "1")
    with pytest.raises(cli.UsageError):
        cli.run_main(main, argv=["prog"])


def test_atomic_output_file_and_directory(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with cli.atomic_output(str(target)) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["out.txt"]
    with cli.atomic_output(str(target)) as tmp:
        assert os.path.basename(tmp) == f".out.txt.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            f.write("new")
    assert target.read_text() == "new"

    target_dir = tmp_path / "saved"
    with pytest.raises(ValueError):
        with cli.atomic_output(str(target_dir)) as tmp:
            os.makedirs(os.path.join(tmp, "sub"))
            raise ValueError("half-written directory")
    assert sorted(os.listdir(tmp_path)) == ["out.txt"]
    for content in ("first", "second"):
        with cli.atomic_output(str(target_dir)) as tmp:
            os.makedirs(tmp)
            (tmp_path / os.path.basename(tmp) / "f.txt").write_text(content)
        assert (target_dir / "f.txt").read_text() == content
    assert sorted(os.listdir(tmp_path)) == ["out.txt", "saved"]


def test_progress_logger_and_eval_results(tmp_path, tf_log):
    progress = cli.ProgressLogger(total=10, name="features", every_seconds=0.0)
    for _ in range(4):
        progress.update(1)
    assert progress.count == 4 and progress.rate > 0
    progress.done()
    assert "features: 4/10 examples (40.0%)" in tf_log.text()
    assert "ETA" in tf_log.text() and "features: done, 4 examples" in tf_log.text()

    path = cli.write_eval_results({"loss": 0.5, "eval_accuracy": 0.75, "global_step": 3},
                                      str(tmp_path))
    with open(path) as f:
        assert f.read() == "eval_accuracy = 0.75\nglobal_step = 3\nloss = 0.5\n"
    assert "***** Eval results *****" in tf_log.text()




def test_eval_results_use_the_reference_str_format(tmp_path):
    # The reference writes str(value): a float32 0.48 is "0.48", not its float64 expansion.
    path = cli.write_eval_results({"eval_accuracy": tf.constant(0.48).numpy(), "global_step": 5},
                                  str(tmp_path))
    with open(path) as f:
        assert f.read() == "eval_accuracy = 0.48\nglobal_step = 5\n"


def test_resolve_checkpoint(tmp_path):
    with pytest.raises(cli.UsageError, match="--init_checkpoint is required"):
        cli.resolve_checkpoint(None)
    with pytest.raises(cli.UsageError, match="directory without a checkpoint"):
        cli.resolve_checkpoint(str(tmp_path))
    with pytest.raises(cli.UsageError,
                       match=r"checkpoint not found: no such checkpoint --x=.*model.ckpt.index"):
        cli.resolve_checkpoint(str(tmp_path / "model.ckpt"), "--x")
    (tmp_path / "model.ckpt-7.index").write_text("")
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-7"\n')
    assert cli.resolve_checkpoint(str(tmp_path)) == str(tmp_path / "model.ckpt-7")
    assert cli.resolve_checkpoint(str(tmp_path / "model.ckpt-7")) == str(tmp_path / "model.ckpt-7")


def test_expand_input_files_keeps_glob_order_and_rejects_typos(tmp_path):
    for name in ("b.txt", "a.txt", "c.rec"):
        (tmp_path / name).write_text("x")
    files = cli.expand_input_files(f"{tmp_path}/*.txt,{tmp_path}/c.rec")
    assert files == tf.io.gfile.glob(f"{tmp_path}/*.txt") + [f"{tmp_path}/c.rec"]
    files = cli.expand_input_files(f"{tmp_path}/*.txt,{tmp_path}/c.rec", sort_matches=True)
    assert [os.path.basename(f) for f in files] == ["a.txt", "b.txt", "c.rec"]
    with pytest.raises(cli.UsageError, match=r"--input_file=.*/nope\*.txt matches no file"):
        cli.expand_input_files(f"{tmp_path}/a.txt,{tmp_path}/nope*.txt")
    with pytest.raises(cli.UsageError, match="is empty"):
        cli.expand_input_files(" , ", "--eval_input_file")


def test_read_text_lines_names_the_bad_line(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes("first\r\nsecond\n".encode("utf-8") + b"\xff bad\n")
    lines = cli.read_text_lines(str(path))
    assert [next(lines), next(lines)] == ["first", "second"]
    with pytest.raises(cli.UsageError, match="line 3 is not valid UTF-8"):
        next(lines)
    with pytest.raises(cli.UsageError, match="no such file"):
        list(cli.read_text_lines(str(tmp_path / "missing.txt")))


def test_small_helpers():
    assert cli.split_pair("Who ? ||| Jim") == ("Who ?", "Jim")
    assert cli.split_pair("A|||B") == ("A|||B", None)
    assert cli.human_size(512) == "512 B" and cli.human_size(1536) == "1.5 KB"
    assert list(cli.chunks(iter(range(5)), 2)) == [[0, 1], [2, 3], [4]]
    assert cli.one_line("a\n  b") == "a b"


def test_flag_groups_are_defined_once_and_clash_loudly():
    flag_values = absl_flags.FlagValues()
    cli.define_model_flags(flag_values=flag_values)
    cli.define_model_flags(names=("max_seq_length",), flag_values=flag_values)  # Same default.
    with pytest.raises(ValueError, match="--max_seq_length is defined twice"):
        cli.define_model_flags(names=("max_seq_length",), max_seq_length=384,
                               flag_values=flag_values)
    cli.define_eval_during_training_flags(early_stopping_metric="f1", flag_values=flag_values)
    cli.define_runtime_flags(flag_values=flag_values)
    flag_values(["prog", "--optimizer=lamb"])
    assert flag_values.early_stopping_metric == "f1" and flag_values.optimizer == "lamb"
    with pytest.raises(absl_flags.IllegalFlagValueError):
        flag_values(["prog", "--optimizer=sgd"])
