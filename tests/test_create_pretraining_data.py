"""Tests of create_pretraining_data.py: reference-exact output, statistics, streaming mode, WWM,
errors.

Oracles: (1) an instance list derived by hand from a scripted random source on a tiny corpus, (2)
the literal reference implementation in tests/reference_pretraining_data.py, compared byte for byte
on real text (gensim's news corpus) with the real English vocab."""

import collections
import os
import random
import subprocess
import sys

import pytest
import tensorflow as tf

import cli
import create_pretraining_data as cpd
import tokenization
from tests import corpora as bench_data
from tests import reference_pretraining_data as reference

TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "dog", "ran",
              "a", "big", "##s"]


class ScriptedRng:
    """A random source that returns scripted values and checks the kind and order of every draw."""

    def __init__(self, script):
        self.script = list(script)

    def _next(self, kind, args=None):
        assert self.script, f"unexpected extra draw {kind}{args}"
        expected = self.script.pop(0)
        assert expected[0] == kind, f"draw {kind}{args} but the script expects {expected}"
        if kind == "randint":
            assert expected[1] == args, f"randint{args} but the script expects {expected}"
            return expected[2]
        return expected[1] if kind == "random" else None

    def random(self):
        return self._next("random")

    def randint(self, a, b):
        value = self._next("randint", (a, b))
        assert a <= value <= b
        return value

    def shuffle(self, x):
        self._next("shuffle")
        x.reverse()


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    vocab = d / "vocab.txt"
    vocab.write_text("\n".join(TINY_VOCAB) + "\n")
    corpus = d / "corpus.txt"
    corpus.write_text("The cat sat\nthe dog ran\n\nA big cat\n")
    return str(vocab), str(corpus)


@pytest.fixture(scope="module")
def news_corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("news") / "news.txt"
    bench_data.write_corpus(str(path), bench_data.news_documents())
    return str(path)


@pytest.fixture(scope="module")
def english_tokenizer(english_vocab):
    return tokenization.FullTokenizer(english_vocab, do_lower_case=True)


def _read_examples(path):
    return [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(path)]


def _ints(example, name):
    return list(example.features.feature[name].int64_list.value)


def test_hand_traced_tiny_corpus_is_byte_identical(tiny_files, tmp_path):
    """Instances and bytes derived by hand from a scripted draw sequence (trace in the comments)."""
    vocab_file, corpus = tiny_files
    tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
    # Documents: D1 = [the cat sat][the dog ran], D2 = [a big cat]; max_seq_length 10 -> 7 tokens.
    script = [
        ("shuffle",),                 # documents reversed -> [D2, D1]
        # D2: full target 7; one-sentence chunk -> random next without a draw.
        ("random", 0.9),              # >= short_seq_prob 0.1
        ("randint", (0, 1), 1),       # random document D1 (differs from 0: no retry)
        ("randint", (0, 1), 0),       # start sentence 0 -> B = the cat sat the dog ran (6 >= 4)
        ("random", 0.3),              # 3 + 6 > 7: truncate B at the front -> cat sat the dog ran
        ("random", 0.7),              # 8 > 7: truncate B at the back -> cat sat the dog
        ("shuffle",),                 # candidates [1,2,3,5,6,7,8] reversed; predict round(2.0)=2
        ("random", 0.1),              # position 8 (dog) -> [MASK]
        ("random", 0.85), ("random", 0.3),   # position 7 (the) -> kept
        # D1: short target.
        ("random", 0.05), ("randint", (2, 7), 4),
        ("randint", (1, 1), 1),       # chunk of 2 sentences (3 + 3 >= 4): A = the cat sat
        ("random", 0.6),              # >= 0.5: actual next, B = the dog ran; 6 <= 7, no cut
        ("shuffle",),                 # candidates [1,2,3,5,6,7] reversed; predict round(1.8)=2
        ("random", 0.95), ("random", 0.8), ("randint", (0, 12), 11),  # position 7 -> "big"
        ("random", 0.2),              # position 6 (dog) -> [MASK]
        ("shuffle",),                 # final shuffle: instances reversed
    ]
    rng = ScriptedRng(script)
    instances = cpd.create_training_instances(
        [corpus], tokenizer, max_seq_length=10, dupe_factor=1, short_seq_prob=0.1,
        masked_lm_prob=0.2, max_predictions_per_seq=3, rng=rng)
    assert rng.script == []
    expected = [
        ("[CLS] the cat sat [SEP] the [MASK] big [SEP]", [0, 0, 0, 0, 0, 1, 1, 1, 1], [6, 7],
         ["dog", "ran"], False),
        ("[CLS] a big cat [SEP] cat sat the [MASK] [SEP]", [0, 0, 0, 0, 0, 1, 1, 1, 1, 1], [7, 8],
         ["the", "dog"], True),
    ]
    got = [(" ".join(x.tokens), x.segment_ids, x.masked_lm_positions, x.masked_lm_labels,
            x.is_random_next) for x in instances]
    assert got == expected

    output = str(tmp_path / "tiny.tfrecord")
    assert cpd.write_instance_to_example_files(instances, tokenizer, 10, 3, [output]) == 2
    ids = {t: i for i, t in enumerate(TINY_VOCAB)}

    def example(tokens, segments, positions, labels, is_random_next):
        token_ids = [ids[t] for t in tokens.split()]
        pad, mlm_pad = 10 - len(token_ids), 3 - len(positions)
        f = collections.OrderedDict()
        f["input_ids"] = cpd.create_int_feature(token_ids + [0] * pad)
        f["input_mask"] = cpd.create_int_feature([1] * len(token_ids) + [0] * pad)
        f["segment_ids"] = cpd.create_int_feature(segments + [0] * pad)
        f["masked_lm_positions"] = cpd.create_int_feature(positions + [0] * mlm_pad)
        f["masked_lm_ids"] = cpd.create_int_feature([ids[t] for t in labels] + [0] * mlm_pad)
        f["masked_lm_weights"] = cpd.create_float_feature([1.0] * len(positions) + [0.0] * mlm_pad)
        f["next_sentence_labels"] = cpd.create_int_feature([1 if is_random_next else 0])
        return tf.train.Example(features=tf.train.Features(feature=f)).SerializeToString()

    records = [r.numpy() for r in tf.data.TFRecordDataset(output)]
    assert records == [example(*x) for x in expected]


def test_fast_rng_replicas_match_random_module():
    for seed in range(5):
        a, b = random.Random(seed), random.Random(seed)
        _, randint, shuffle = cpd._fast_rng_ops(a)
        for n in (1, 2, 5, 127, 30522):
            xs, ys = list(range(n)), list(range(n))
            shuffle(xs)
            b.shuffle(ys)
            assert xs == ys
            assert randint(0, n - 1) == b.randint(0, n - 1)
            assert randint(2, n + 2) == b.randint(2, n + 2)
        assert a.random() == b.random()


def test_string_api_matches_reference_functions(english_tokenizer):
    vocab_words = list(english_tokenizer.vocab.keys())
    text = ("the quick brown fox jumps over the lazy dog . unbelievably , tokenization splits "
            "words into pieces like ##ing and ##s")
    tokens = ["[CLS]"] + english_tokenizer.tokenize(text) + ["[SEP]"]
    for seed in range(20):
        for wwm in (False, True):
            got = cpd.create_masked_lm_predictions(tokens, 0.3, 8, vocab_words,
                                                   random.Random(seed), do_whole_word_mask=wwm)
            want = reference.create_masked_lm_predictions(tokens, 0.3, 8, vocab_words,
                                                          random.Random(seed), wwm)
            assert got == want
    documents = [[english_tokenizer.tokenize(s) for s in doc] for doc in
                 (["one sentence here .", "another one follows , longer than the first ."],
                  ["a second document .", "with two sentences ."], ["lonely ."])]
    for seed in range(10):
        got = cpd.create_instances_from_document(documents, seed % 3, 16, 0.5, 0.15, 3,
                                                 vocab_words, random.Random(seed))
        want = reference.create_instances_from_document(documents, seed % 3, 16, 0.5, 0.15, 3,
                                                        vocab_words, random.Random(seed))
        assert [str(x) for x in got] == [
            str(cpd.TrainingInstance(x.tokens, x.segment_ids, x.masked_lm_positions,
                                     x.masked_lm_labels, x.is_random_next)) for x in want]


@pytest.mark.parametrize("wwm,seq,preds,seed,files", [
    (False, 128, 20, 12345, 1), (True, 64, 7, 3, 2)])
def test_default_mode_byte_identical_to_reference(news_corpus, english_vocab, english_tokenizer,
                                                  tmp_path, wwm, seq, preds, seed, files):
    ref_out = [str(tmp_path / f"ref{k}.tfrecord") for k in range(files)]
    new_out = [str(tmp_path / f"new{k}.tfrecord") for k in range(files)]
    reference.run(news_corpus, ",".join(ref_out), english_vocab, do_whole_word_mask=wwm,
                  max_seq_length=seq, max_predictions_per_seq=preds, random_seed=seed,
                  dupe_factor=1)
    options = cpd.Options(vocab_file=english_vocab, do_whole_word_mask=wwm, max_seq_length=seq,
                          max_predictions_per_seq=preds, random_seed=seed, dupe_factor=1)
    cpd.create_reference_mode([news_corpus], new_out, english_tokenizer, options)
    for a, b in zip(ref_out, new_out):
        with open(a, "rb") as fa, open(b, "rb") as fb:
            assert fa.read() == fb.read()
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


def test_encoder_matches_protobuf_on_edge_cases():
    for seq, preds in ((5, 0), (7, 1), (128, 20), (300, 45)):
        encoder = cpd.ExampleEncoder(seq, preds, 30522)
        assert encoder.exact
        rng = random.Random(seq)
        for _ in range(20):
            n = rng.randint(5, seq)
            ids = [rng.choice([0, 1, 127, 128, 16383, 16384, 30521]) for _ in range(n)]
            k = rng.randint(0, min(preds, n))
            positions = sorted(rng.sample(range(n), k))
            args = (ids, rng.randint(1, n - 4), positions, ids[:k], rng.random() < 0.5)
            assert encoder.encode(*args) == cpd._proto_example(
                *args, seq, preds).SerializeToString()


class CountingRandom(random.Random):
    """Counts the a_end draws, i.e. the chunks of two or more sentences (same draws otherwise)."""

    multi_sentence_chunks = 0

    def randint(self, a, b):
        if a == 1:
            self.multi_sentence_chunks += 1
        return super().randint(a, b)


def test_statistics_on_real_corpus(news_corpus, english_tokenizer):
    rng = CountingRandom(7)
    instances = cpd.create_training_instances(
        [news_corpus], english_tokenizer, max_seq_length=128, dupe_factor=2, short_seq_prob=0.1,
        masked_lm_prob=0.15, max_predictions_per_seq=20, rng=rng)
    assert len(instances) > 1000
    num_tokens = sum(len(x.tokens) for x in instances)
    num_masked = sum(len(x.masked_lm_positions) for x in instances)
    assert abs(num_masked / num_tokens - 0.15) < 0.01
    counts = collections.Counter()
    for x in instances:
        for position, label in zip(x.masked_lm_positions, x.masked_lm_labels):
            token = x.tokens[position]
            counts["mask" if token == "[MASK]" else "keep" if token == label else "random"] += 1
    assert abs(counts["mask"] / num_masked - 0.8) < 0.02
    assert abs(counts["keep"] / num_masked - 0.1) < 0.02
    assert abs(counts["random"] / num_masked - 0.1) < 0.02
    # Multi-sentence chunks take a random next half the time; one-sentence chunks always do.
    random_share = sum(x.is_random_next for x in instances) / len(instances)
    single_share = 1 - rng.multi_sentence_chunks / len(instances)
    assert abs(random_share - (single_share + (1 - single_share) * 0.5)) < 0.03
    assert 0.5 - 0.03 < random_share < 0.5 + single_share


def test_same_seed_twice_is_identical(news_corpus, english_vocab, english_tokenizer, tmp_path):
    options = cpd.Options(vocab_file=english_vocab, dupe_factor=1, random_seed=99)
    outputs = []
    for run in range(2):
        path = str(tmp_path / f"run{run}.tfrecord")
        cpd.create_reference_mode([news_corpus], [path], english_tokenizer, options)
        with open(path, "rb") as f:
            outputs.append(f.read())
    assert outputs[0] == outputs[1]


def test_streaming_output_independent_of_num_workers(english_vocab, english_tokenizer, tmp_path):
    shard_dir = tmp_path / "shards"
    shard_dir.mkdir()
    documents = bench_data.news_documents()[:120]
    inputs = bench_data.write_shards(str(shard_dir), documents, 3)
    results = {}
    for workers in (1, 2):
        options = cpd.Options(vocab_file=english_vocab, dupe_factor=2, num_workers=workers,
                              shuffle_buffer_size=50)
        prefix = str(tmp_path / f"w{workers}.tfrecord")
        totals = cpd.create_streaming_mode(inputs, prefix, english_tokenizer, options)
        paths = cpd.shard_output_files(prefix, 3)
        assert paths[2].endswith(".tfrecord-00002-of-00003")
        contents = []
        for path in paths:
            with open(path, "rb") as f:
                contents.append(f.read())
        results[workers] = (contents, totals["instances"])
    assert results[1] == results[2]
    examples = _read_examples(cpd.shard_output_files(str(tmp_path / "w2.tfrecord"), 3)[0])
    assert len(examples) > 50
    labels = [_ints(e, "next_sentence_labels")[0] for e in examples]
    assert 0.35 < sum(labels) / len(labels) < 0.75
    # A different seed gives different data; per-shard seeds differ from each other.
    assert cpd.shard_seed(1, 0) != cpd.shard_seed(1, 1) != cpd.shard_seed(2, 1)


def test_tokenizer_whitespace_set_is_exact():
    import unicodedata
    spaces = {chr(c) for c in range(sys.maxunicode + 1)
              if chr(c) in " \t\n\r" or unicodedata.category(chr(c)) == "Zs"}
    assert {c for c in spaces if cpd._WORD_SPLIT_RE.fullmatch(c)} == spaces
    assert len([c for c in map(chr, range(0x3100)) if cpd._WORD_SPLIT_RE.fullmatch(c)]) == len(
        [c for c in spaces if ord(c) < 0x3100])


def test_chinese_whole_word_masking_groups_characters(chinese_vocab):
    tokenizer = tokenization.FullTokenizer(chinese_vocab, do_lower_case=True)
    lines = ["我 喜欢 北京 天安门 。", "中华人民共和国 的 首都 是 北京 ， 人口 很多 。",
             "他们 在 研究 自然语言处理 和 machine learning 方法 。"]
    coder = cpd.TokenCoder(tokenizer, word_segmented=True)
    plain = cpd.TokenCoder(tokenizer)
    for line in lines:
        codes = coder.encode_line(line)
        # Same ids as without the flag (and, for Chinese-only text, as the unsegmented text):
        # only the grouping comes from the spaces.
        ids = [c if c >= 0 else ~c for c in codes]
        assert ids == plain.encode_line(line)
        if "machine" not in line:
            assert ids == plain.encode_line(line.replace(" ", ""))
        words = [w for w in line.split(" ")]
        starts = [c >= 0 for c in codes]
        assert sum(starts) == len(words)
    assert [c < 0 for c in coder.encode_line("我 喜欢 北京")] == [False, False, True, False, True]

    vocab = tokenizer.vocab
    maker = cpd.InstanceMaker(64, 0.0, 0.3, 20, vocab["[CLS]"], vocab["[SEP]"], vocab["[MASK]"],
                              list(vocab.values()), whole_word_mask=True)
    sentence = coder.encode_line(lines[1]) + coder.encode_line(lines[2])
    tokens = [vocab["[CLS]"]] + sentence + [vocab["[SEP]"]]
    word_of = {}
    word = -1
    for position, code in enumerate(tokens):
        if position in (0, len(tokens) - 1):
            continue
        word += code >= 0
        word_of[position] = word
    for seed in range(30):
        _, positions, labels = maker.mask_tokens(list(tokens), random.Random(seed))
        assert positions and labels
        masked_words = {word_of[p] for p in positions}
        for w in masked_words:  # Every character of a masked word is masked.
            assert {p for p, x in word_of.items() if x == w} <= set(positions)
        # Without the flag, characters are masked independently.
    independent = cpd.InstanceMaker(64, 0.0, 0.3, 20, vocab["[CLS]"], vocab["[SEP]"],
                                    vocab["[MASK]"], list(vocab.values()), whole_word_mask=False)
    partial = 0
    for seed in range(30):
        plain_tokens = [c if c >= 0 else ~c for c in tokens]
        _, positions, _ = independent.mask_tokens(plain_tokens, random.Random(seed))
        for w in {word_of[p] for p in positions}:
            partial += not {p for p, x in word_of.items() if x == w} <= set(positions)
    assert partial > 0


def _run_script(args, env):
    return subprocess.Popen([sys.executable, "create_pretraining_data.py"] + args,
                            cwd=os.path.dirname(os.path.abspath(cpd.__file__)), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _error_cases(vocab_file, corpus, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n   \n")
    out = str(tmp_path / "out.tfrecord")
    return out, {
        "vocab": ([f"--input_file={corpus}", f"--output_file={out}",
                   f"--vocab_file={tmp_path}/missing_vocab.txt"], "does not exist"),
        "no_match": ([f"--input_file={tmp_path}/nothing*.txt", f"--output_file={out}",
                      f"--vocab_file={vocab_file}"], "matched no files"),
        "empty": ([f"--input_file={empty}", f"--output_file={out}", f"--vocab_file={vocab_file}"],
                  "no documents"),
        "short": ([f"--input_file={corpus}", f"--output_file={out}", f"--vocab_file={vocab_file}",
                   "--max_seq_length=4"], "--max_seq_length=4 is too small"),
        "outputs": ([f"--input_file={corpus},{corpus}", f"--output_file={out},{out}2,{out}3",
                     f"--vocab_file={vocab_file}", "--num_workers=2"], "one path per input file"),
    }


def test_errors_are_one_line_with_exit_status_1(tiny_files, tmp_path, capsys, monkeypatch):
    """Every error case through cli.run_main in this process (no TF start-up per case)."""
    monkeypatch.delenv("BERT_DEBUG", raising=False)
    if "dupe_factor" not in cpd.FLAGS:  # The script defines its flags only when it runs.
        cpd.define_flags()
    vocab_file, corpus = tiny_files
    out, cases = _error_cases(vocab_file, corpus, tmp_path)
    for name, (args, message) in cases.items():
        cpd.FLAGS.unparse_flags()  # Back to the defaults: absl keeps values between parses.
        with pytest.raises(SystemExit) as exit_info:
            cli.run_main(cpd.main, argv=["create_pretraining_data.py"] + args)
        assert exit_info.value.code == 1, name
        stderr = capsys.readouterr().err
        error_lines = [line for line in stderr.splitlines() if line.startswith("ERROR:")]
        assert len(error_lines) == 1 and message in error_lines[0], (name, stderr[-2000:])
    cpd.FLAGS.unparse_flags()
    assert not os.path.exists(out)


def test_command_line_error_and_smoke_run(tiny_files, tmp_path):
    """The real entry point as a subprocess: one error case and one successful run."""
    vocab_file, corpus = tiny_files
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("BERT_DEBUG", None)
    _, cases = _error_cases(vocab_file, corpus, tmp_path)
    smoke_out = str(tmp_path / "smoke.tfrecord")
    smoke = _run_script([f"--input_file={corpus}", f"--output_file={smoke_out}",
                         f"--vocab_file={vocab_file}", "--max_seq_length=10",
                         "--max_predictions_per_seq=1", "--dupe_factor=3"], env)
    error = _run_script(cases["empty"][0], env)
    _, stderr = error.communicate(timeout=300)
    assert error.returncode == 1
    error_lines = [line for line in stderr.splitlines() if line.startswith("ERROR:")]
    assert len(error_lines) == 1 and "no documents" in error_lines[0], stderr[-2000:]
    assert "Traceback" not in stderr
    _, stderr = smoke.communicate(timeout=300)
    assert smoke.returncode == 0, stderr[-3000:]
    examples = _read_examples(smoke_out)
    assert f"Wrote {len(examples)} total instances" in stderr and len(examples) >= 6
    assert "max_predictions_per_seq=1 is less than" in stderr  # round(10 * 0.15) = 2: a warning
    assert "*** Example ***" in stderr
    for e in examples:
        lengths = [len(_ints(e, n)) for n in ("input_ids", "input_mask", "segment_ids",
                                               "masked_lm_positions", "masked_lm_ids")]
        assert lengths == [10, 10, 10, 1, 1]
