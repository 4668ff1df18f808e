"""Tests for tasks/squad.py: reading, features, predictions and metrics against the reference.

The oracle is tests/reference_squad.py, a literal transcription of the reference run_squad.py and of
the official SQuAD evaluation scripts. Features are compared attribute by attribute (and as parsed
TFRecord examples) on real news text cut into long paragraphs, so that every example has several
windows; predictions are compared as the JSON text the reference writes.
"""

import collections
import json
import os
import random

import numpy as np
import pytest
import tensorflow as tf

import modeling
import tokenization
from tasks import squad
from tests import artifacts
from tests import reference_squad as ref

tf1 = tf.compat.v1

SAMPLE_DIR = os.path.join(artifacts.REPO_ROOT, "sample_data", "squad")
FEATURE_FIELDS = ("unique_id", "example_index", "doc_span_index", "tokens", "token_to_orig_map",
                  "token_is_max_context", "input_ids", "input_mask", "segment_ids",
                  "start_position", "end_position", "is_impossible")
EXAMPLE_FIELDS = ("qas_id", "question_text", "doc_tokens", "orig_answer_text", "start_position",
                  "end_position", "is_impossible")


@pytest.fixture(scope="module")
def tokenizer(english_vocab):
    return tokenization.FullTokenizer(english_vocab, do_lower_case=True)


@pytest.fixture(scope="module")
def news_documents(gensim_test_data):
    with open(artifacts.news_corpus(), encoding="utf-8") as f:
        return f.read().splitlines()


def _write_json(tmp_path, obj, name="data.json"):
    path = str(tmp_path / name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f)
    return path


def _squad(context, qas):
    return {"version": "1.1", "data": [{"title": "t", "paragraphs": [
        {"context": context, "qas": qas}]}]}


def _qa(qas_id, question, text=None, start=None, **extra):
    qa = {"id": qas_id, "question": question,
          "answers": [] if text is None else [{"text": text, "answer_start": start}]}
    qa.update(extra)
    return qa


def _convert_both(path, tokenizer, is_training, version_2, max_seq_length, doc_stride,
                  max_query_length):
    ours, theirs = [], []
    examples = squad.read_squad_examples(path, is_training, version_2)
    ref_examples, _ = ref.read_squad_examples(path, is_training, version_2)
    squad.convert_examples_to_features(examples, tokenizer, max_seq_length, doc_stride,
                                       max_query_length, is_training, ours.append,
                                       log_examples=2)
    ref.convert_examples_to_features(ref_examples, tokenizer, max_seq_length, doc_stride,
                                     max_query_length, is_training, theirs.append)
    return examples, ref_examples, ours, theirs


def _assert_same_features(ours, theirs, is_training):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        for name in FEATURE_FIELDS:
            assert getattr(a, name) == getattr(b, name), (name, a.unique_id)
        parsed = tf.train.Example.FromString(squad.serialize_feature(a, is_training))
        assert parsed == ref.feature_to_example(b, is_training)


# ------------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,version_2,is_training", [
    ("train-v1.1.json", False, True), ("train-v2.0.json", True, True),
    ("train-v2.0.json", True, False), ("dev-v1.1.json", False, False),
    ("dev-v2.0.json", True, False)])
def test_read_sample_files_like_the_reference(name, version_2, is_training):
    path = os.path.join(SAMPLE_DIR, name)
    ours = squad.read_squad_examples(path, is_training, version_2)
    theirs, skipped = ref.read_squad_examples(path, is_training, version_2)
    assert not skipped
    assert [[getattr(e, f) for f in EXAMPLE_FIELDS] for e in ours] == [
        [getattr(e, f) for f in EXAMPLE_FIELDS] for e in theirs]
    if version_2 and is_training:
        assert any(e.is_impossible for e in ours) and any(not e.is_impossible for e in ours)


def test_whitespace_split_and_character_offsets_follow_the_reference(tmp_path):
    # Tabs, CR, LF and U+202F split words; U+00A0 and U+3000 do not (the tokenizer splits them).
    context = "  Alpha\tbeta\r\ngamma\u202fdelta 10\u00a0km  x\u3000y (1895-1943).  "
    qas = [_qa("a", "q?", "beta", context.index("beta")),
           _qa("b", "q?", "delta", context.index("delta")),
           _qa("c", "q?", "1895", context.index("1895")),
           _qa("d", "q?", "km  x", context.index("km  x"))]
    path = _write_json(tmp_path, _squad(context, qas))
    ours = squad.read_squad_examples(path, True)
    theirs, _ = ref.read_squad_examples(path, True)
    assert [[getattr(e, f) for f in EXAMPLE_FIELDS] for e in ours] == [
        [getattr(e, f) for f in EXAMPLE_FIELDS] for e in theirs]
    assert ours[0].doc_tokens == ["Alpha", "beta", "gamma", "delta", "10\u00a0km", "x\u3000y",
                                  "(1895-1943)."]
    # "km  x" spans two words: the reference recovers "10\u00a0km x\u3000y", which contains it
    # only after whitespace normalisation of the answer ("km x").
    assert (ours[3].start_position, ours[3].end_position) == (4, 5)


def test_could_not_find_answer_is_skipped_as_in_the_reference(tmp_path):
    # The offsets are right, but the answer holds a no-break space that the reference's word
    # split keeps and whitespace_tokenize does not: the reference skips the question.
    context = "It costs 10\u00a0dollars today."
    qas = [_qa("skip", "How much?", "10\u00a0dollars", 9), _qa("keep", "When?", "today", 20)]
    path = _write_json(tmp_path, _squad(context, qas))
    ours = squad.read_squad_examples(path, True)
    theirs, skipped = ref.read_squad_examples(path, True)
    assert [e.qas_id for e in ours] == [e.qas_id for e in theirs] == ["keep"]
    assert skipped == ["skip"]


def test_lenient_answers_keep_the_reference_behaviour(tmp_path):
    # answer_start one character late, inside the same word: strict mode refuses it, lenient mode
    # keeps it exactly as the reference does (the word still contains the text).
    context = "The winner was Johansson after extra time."
    qas = [_qa("late", "Who won?", "Johansson", context.index("Johansson") + 1)]
    path = _write_json(tmp_path, _squad(context, qas))
    with pytest.raises(squad.SquadDataError, match=r"question 'late'.*occurs at offset 15"):
        squad.read_squad_examples(path, True)
    ours = squad.read_squad_examples(path, True, strict_answers=False)
    theirs, _ = ref.read_squad_examples(path, True)
    assert [[getattr(e, f) for f in EXAMPLE_FIELDS] for e in ours] == [
        [getattr(e, f) for f in EXAMPLE_FIELDS] for e in theirs]


def _bad_inputs():
    good_context = "Anna built the tower in 1900."
    good = _qa("q1", "Who built it?", "Anna", 0)
    return [
        ("not json", '{"data": [', r"not valid JSON \(.* line 1 column", False, False),
        ("no data", {"version": "1.1"}, r"no top-level \"data\" list", False, False),
        ("no paragraphs", {"data": [{"title": "x"}]}, r"article 0 has no \"paragraphs\"", False,
         False),
        ("no qas", {"data": [{"paragraphs": [{"context": "c"}]}]},
         r"article 0 paragraph 0 has no \"qas\" list", False, False),
        ("no context", {"data": [{"paragraphs": [{"qas": [good]}]}]},
         r"question 'q1': its paragraph has no \"context\"", False, False),
        ("empty context", _squad(" \n ", [good]), r"question 'q1': its paragraph's context is "
         r"empty", False, False),
        ("no id", _squad(good_context, [{"question": "Who?"}]), r"a question has no \"id\"",
         False, False),
        ("duplicate id", _squad(good_context, [good, dict(good)]),
         r"question 'q1' appears twice", False, False),
        ("empty question", _squad(good_context, [_qa("q2", "  ", "Anna", 0)]),
         r"question 'q2' has an empty or missing \"question\"", False, False),
        ("two answers", _squad(good_context, [dict(good, answers=[
            {"text": "Anna", "answer_start": 0}, {"text": "1900", "answer_start": 24}])]),
         r"question 'q1' has 2 answers; for training", True, False),
        ("no answers", _squad(good_context, [dict(good, answers=None)]),
         r"question 'q1' has no answers", True, False),
        ("empty answer", _squad(good_context, [_qa("q1", "Who?", "", 0)]),
         r"question 'q1' has an answer without \"text\"", True, False),
        ("start not int", _squad(good_context, [_qa("q1", "Who?", "Anna", "0")]),
         r"question 'q1' has no integer \"answer_start\"", True, False),
        ("start outside", _squad(good_context, [_qa("q1", "Who?", "1900", 40)]),
         r"question 'q1': answer_start 40 .* outside the context", True, False),
        ("start mismatch", _squad(good_context, [_qa("q1", "Who?", "tower", 3)]),
         r"question 'q1': answer_start 3 points at 'a bui', not at the answer 'tower' \(the text "
         r"occurs at offset 15\); fix answer_start", True, False),
        ("text elsewhere", _squad(good_context, [_qa("q1", "Who?", "castle", 3)]),
         r"the text does not occur in the context", True, False),
        ("v2 without is_impossible", _squad(good_context, [good]),
         r"question 'q1' has no true/false \"is_impossible\"", True, True),
    ]


@pytest.mark.parametrize("case", _bad_inputs(), ids=lambda case: case[0])
def test_bad_input_names_file_question_and_fix(tmp_path, case):
    _, content, pattern, is_training, version_2 = case
    path = str(tmp_path / "bad.json")
    with open(path, "w", encoding="utf-8") as f:
        f.write(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(squad.SquadDataError, match=pattern) as info:
        squad.read_squad_examples(path, is_training, version_2)
    message = str(info.value)
    assert message.startswith(path) and "\n" not in message


def test_unreadable_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        squad.read_squad_examples(str(tmp_path / "missing.json"), False)
    path = str(tmp_path / "latin1.json")
    with open(path, "wb") as f:
        f.write(json.dumps(_squad("caf\xe9", [_qa("q", "?")])).encode("utf-8").replace(
            b"caf\\u00e9", b"caf\xe9"))
    with pytest.raises(squad.SquadDataError, match="is not UTF-8"):
        squad.read_squad_examples(path, False)
    with pytest.raises(squad.SquadDataError, match="has no questions"):
        squad.read_squad_examples(_write_json(tmp_path, _squad("text", [])), False)


def test_gold_answers_are_checked_for_evaluation(tmp_path):
    data = _squad("Anna built it.", [_qa("q1", "Who?")])["data"]
    with pytest.raises(squad.SquadDataError, match=r"question 'q1' has no answer; SQuAD 1.1 "
                                                   r"evaluation needs at least one"):
        squad.check_gold_answers(data, "dev.json", False)
    squad.check_gold_answers(data, "dev.json", True)  # Unanswerable is fine in 2.0.
    data[0]["paragraphs"][0]["qas"][0]["answers"] = "Anna"
    with pytest.raises(squad.SquadDataError, match=r"no \"answers\" list"):
        squad.check_gold_answers(data, "dev.json", True)


def test_window_settings_that_cannot_work():
    with pytest.raises(ValueError, match=r"max_seq_length \(67\) must be greater than "
                                         r"max_query_length \(64\) \+ 3"):
        squad.check_lengths(67, 128, 64)
    with pytest.raises(ValueError, match="doc_stride=0 must be at least 1"):
        squad.check_lengths(384, 0, 64)


# ------------------------------------------------------------------------------------------------
# Features
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version_2", [False, True])
@pytest.mark.parametrize("is_training", [True, False])
def test_features_equal_the_reference_on_long_real_paragraphs(tmp_path, tokenizer, news_documents,
                                                              version_2, is_training):
    data = ref.cloze_squad(news_documents[:40], 60, seed=3, max_words=220,
                           questions_per_paragraph=3, version_2_with_negative=version_2)
    path = _write_json(tmp_path, data)
    _, _, ours, theirs = _convert_both(path, tokenizer, is_training, version_2,
                                       max_seq_length=64, doc_stride=24, max_query_length=12)
    _assert_same_features(ours, theirs, is_training)
    # The case the test is about: many windows per example, and tokens whose maximum context is
    # a later window than the first that holds them.
    windows = collections.Counter(f.example_index for f in ours)
    assert min(windows.values()) >= 3 and max(windows.values()) >= 8
    later = [f for f in ours if f.doc_span_index > 0 and not all(f.max_context)]
    assert later and any(f.max_context.any() for f in later)
    if is_training:
        inside = [f for f in ours if f.start_position > 0]
        assert len(inside) >= 60 and any(f.start_position == 0 for f in ours)


def test_stride_longer_than_the_window_and_unique_ids(tmp_path, tokenizer, news_documents):
    data = ref.cloze_squad(news_documents[40:50], 12, seed=4, max_words=150)
    path = _write_json(tmp_path, data)
    _, _, ours, theirs = _convert_both(path, tokenizer, True, False, max_seq_length=48,
                                       doc_stride=100, max_query_length=64 - 30)
    _assert_same_features(ours, theirs, True)
    assert [f.unique_id for f in ours] == list(range(1000000000, 1000000000 + len(ours)))


def test_long_questions_are_truncated_and_chinese_text_matches(tmp_path, chinese_vocab):
    context = "长江是中国最长的河流，全长约六千三百公里，流经十一个省级行政区。" * 3
    question = "哪条河流是中国最长的河流并且流经十一个省级行政区以及很多城市？"
    length = "约六千三百公里"
    qas = [_qa("z1", question, "长江", 0), _qa("z2", "全长多少？", length, context.index(length))]
    path = _write_json(tmp_path, _squad(context, qas))
    chinese = tokenization.FullTokenizer(chinese_vocab, do_lower_case=True)
    _, _, ours, theirs = _convert_both(path, chinese, True, False, max_seq_length=40,
                                       doc_stride=10, max_query_length=8)
    _assert_same_features(ours, theirs, True)
    assert all(len(f.query_tokens) <= 8 for f in ours) and len(ours) > 4


def test_max_context_example_from_the_reference_docstring():
    # "the man went to the store and bought a gallon of milk", spans A [0, 5), B [3, 8), C [6, 11):
    # "bought" (7) has 4 left and 0 right context in B, 1 and 3 in C, so C is its max context.
    spans = [squad.DocSpan(0, 5), squad.DocSpan(3, 5), squad.DocSpan(6, 5)]
    flags = squad.max_context_flags(spans, 12)
    assert bool(flags[2][7 - 6]) and not bool(flags[1][7 - 3])
    for index, (start, length) in enumerate(spans):
        for offset in range(length):
            assert bool(flags[index][offset]) == ref._check_is_max_context(
                spans, index, start + offset)


def test_doc_spans_match_the_reference_loop():
    for num_tokens in (1, 5, 37, 100):
        for window in (1, 7, 40):
            for stride in (1, 3, 16, 128):
                ours = squad.doc_spans(num_tokens, window, stride)
                start, theirs = 0, []
                while start < num_tokens:
                    length = min(num_tokens - start, window)
                    theirs.append((start, length))
                    if start + length == num_tokens:
                        break
                    start += min(length, stride)
                assert [tuple(s) for s in ours] == theirs


def test_improve_answer_span(tokenizer):
    doc = tokenizer.tokenize("The leader was John Smith (1895-1943). Japanese electronics.")
    for answer in ("1895", "John Smith", "Japan", "1943"):
        start, end = 0, len(doc) - 1
        assert squad.improve_answer_span(doc, start, end, tokenizer, answer) == \
            ref._improve_answer_span(doc, start, end, tokenizer, answer)
    word = doc.index("(")
    assert squad.improve_answer_span(doc, word, word + 5, tokenizer, "1895") == (word + 1,
                                                                                  word + 1)


def test_conversion_streams_one_feature_at_a_time(tmp_path, tokenizer):
    examples = squad.read_squad_examples(os.path.join(SAMPLE_DIR, "train-v1.1.json"), True)
    seen = []

    class Stop(Exception):
        pass

    def output_fn(feature):
        seen.append(feature.unique_id)
        raise Stop()

    with pytest.raises(Stop):
        squad.convert_examples_to_features(examples, tokenizer, 64, 32, 16, True, output_fn)
    assert seen == [1000000000]


def test_feature_writer_and_input_fn_round_trip(tmp_path, tokenizer):
    examples = squad.read_squad_examples(os.path.join(SAMPLE_DIR, "train-v2.0.json"), True, True)
    path = str(tmp_path / "train.tf_record")
    writer = squad.FeatureWriter(path, is_training=True)
    features = []

    def output_fn(feature):
        features.append(feature)
        writer.process_feature(feature)

    squad.convert_examples_to_features(examples, tokenizer, 64, 32, 16, True, output_fn)
    writer.close()
    assert writer.num_features == len(features)
    dataset = squad.input_fn_builder(path, 64, is_training=False, drop_remainder=False)(
        {"batch_size": 1000})
    batch = next(iter(dataset))
    assert batch["input_ids"].dtype == tf.int32
    np.testing.assert_array_equal(batch["input_ids"].numpy(), [f.input_ids for f in features])
    np.testing.assert_array_equal(batch["segment_ids"].numpy(), [f.segment_ids for f in features])
    arrays = squad.features_to_arrays(features, 64)
    np.testing.assert_array_equal(arrays["input_mask"], [f.input_mask for f in features])
    np.testing.assert_array_equal(arrays["segment_ids"], [f.segment_ids for f in features])


# ------------------------------------------------------------------------------------------------
# Predictions
# ------------------------------------------------------------------------------------------------


def _random_results(features, seed, ties=False):
    rng = np.random.RandomState(seed)
    results = []
    for feature in features:
        logits = rng.randn(2, len(feature.input_ids)).astype(np.float32) * 3
        if ties:  # Coarse values make many equal logits: the order of ties matters.
            logits = np.round(logits).astype(np.float32)
        results.append(ref.RawResult(feature.unique_id, [float(x) for x in logits[0]],
                                     [float(x) for x in logits[1]]))
    return results


@pytest.mark.parametrize("version_2", [False, True])
@pytest.mark.parametrize("ties", [False, True])
def test_write_predictions_files_equal_the_reference(tmp_path, tokenizer, news_documents,
                                                     version_2, ties):
    data = ref.cloze_squad(news_documents[60:80], 40, seed=5, max_words=160,
                           version_2_with_negative=version_2)
    path = _write_json(tmp_path, data)
    examples, ref_examples, ours, theirs = _convert_both(path, tokenizer, False, version_2, 64,
                                                         24, 12)
    results = _random_results(theirs, seed=7, ties=ties)
    our_results = [squad.RawResult(r.unique_id, np.asarray(r.start_logits, np.float32),
                                   np.asarray(r.end_logits, np.float32)) for r in results]
    # Small n-best lists with short answers: on SQuAD 2.0 some questions would then keep no span,
    # where the reference crashes (see the next tests), so 2.0 uses less extreme settings.
    for n_best_size, max_answer_length in ((20, 30), (10, 10) if version_2 else (5, 3)):
        names = [str(tmp_path / f"{who}_{name}.json") for who in ("ours", "ref")
                 for name in ("predictions", "nbest", "null_odds")]
        squad.write_predictions(examples, ours, our_results, n_best_size, max_answer_length, True,
                                *names[:3], version_2_with_negative=version_2)
        ref.write_predictions(ref_examples, theirs, results, n_best_size, max_answer_length, True,
                              *names[3:], version_2_with_negative=version_2)
        for our_file, ref_file in zip(names[:3], names[3:]):
            if not version_2 and "null_odds" in our_file:
                assert not os.path.exists(our_file)
                continue
            with open(our_file, encoding="utf-8") as a, open(ref_file, encoding="utf-8") as b:
                assert a.read() == b.read()


def _one_window_example(tokenizer, context, question):
    examples = [squad.SquadExample("q", question, squad.split_context(context)[0])]
    features = []
    squad.convert_examples_to_features(examples, tokenizer, 32, 16, 8, False, features.append)
    return examples, features


def _logits(feature, start_at, end_at, null=0.0):
    start, end = np.full(32, -10.0, np.float32), np.full(32, -10.0, np.float32)
    start[0] = end[0] = null
    tokens = feature.tokens
    last = {token: i for i, token in enumerate(tokens)}  # The context's, not the question's.
    start[last[start_at]] = 5.0
    end[last[end_at]] = 4.0
    return squad.RawResult(feature.unique_id, start, end)


def test_hand_made_logits_pick_the_span_and_map_it_to_the_original_text(tokenizer):
    examples, features = _one_window_example(tokenizer, "Yesterday Steve Smith's café opened.",
                                             "Whose café?")
    (feature,) = features
    # WordPieces "steve" .. "smith" map back to "Steve Smith" without the "'s".
    predictions, nbest, null_odds = squad.compute_predictions(
        examples, features, [_logits(feature, "steve", "smith")], 20, 30, True)
    assert predictions == {"q": "Steve Smith"} and null_odds == {}
    assert nbest["q"][0]["start_logit"] == 5.0 and nbest["q"][0]["end_logit"] == 4.0
    assert abs(sum(entry["probability"] for entry in nbest["q"]) - 1.0) < 1e-9
    # The accent that lower-casing stripped comes back from the original text.
    assert squad.compute_predictions(examples, features, [_logits(feature, "cafe", "cafe")], 20,
                                     30, True)[0] == {"q": "café"}
    # SQuAD 2.0: the null score (start[0] + end[0]) minus the best span's score is compared with
    # the threshold.
    result = _logits(feature, "steve", "smith", null=4.6)
    for threshold, expected in ((0.0, ""), (0.5, "Steve Smith")):
        predictions, nbest, null_odds = squad.compute_predictions(
            examples, features, [result], 20, 30, True, True, threshold)
        assert predictions == {"q": expected}
        assert null_odds["q"] == pytest.approx(9.2 - 9.0, abs=1e-6)
        assert "" in [entry["text"] for entry in nbest["q"]]


def test_get_final_text_against_the_reference(tokenizer, news_documents):
    rng = random.Random(0)
    words = " ".join(news_documents[:5]).split() + ["Zürich's", "naïve-café", "(1895-1943)."]
    for _ in range(300):
        start = rng.randrange(len(words) - 4)
        orig_text = " ".join(words[start:start + rng.randint(1, 4)])
        pieces = tokenizer.tokenize(orig_text)
        for a in range(len(pieces)):
            pred = " ".join(pieces[a:a + 2]).replace(" ##", "").replace("##", "")
            for lower in (True, False):
                assert squad.get_final_text(pred, orig_text, lower) == ref.get_final_text(
                    pred, orig_text, lower)
    assert squad.get_final_text("xyz", "Steve Smith's", True) == "Steve Smith's"


def test_no_valid_span_gives_empty_and_the_v2_crash_is_avoided(tokenizer):
    examples, features = _one_window_example(tokenizer, "Anna built the tower.", "Who built it?")
    (feature,) = features
    start = np.full(32, -10.0, np.float32)
    start[1:4] = 10.0  # Only question tokens score: no valid span.
    start[0] = 5.0  # The null score start[0] + end[0] = 10.
    results = [squad.RawResult(feature.unique_id, start, start.copy())]
    predictions, nbest, _ = squad.compute_predictions(examples, features, results, 3, 30, True)
    assert predictions == {"q": "empty"} and [e["text"] for e in nbest["q"]] == ["empty"]
    ref_features = []
    ref.convert_examples_to_features(
        [ref.SquadExample("q", "Who built it?", examples[0].doc_tokens)], tokenizer, 32, 16, 8,
        False, ref_features.append)
    ref_results = [ref.RawResult(feature.unique_id, [float(x) for x in start],
                                 [float(x) for x in start])]
    assert ref.write_predictions(examples, ref_features, ref_results, 3, 30, True, None, None,
                                 None)[0] == predictions
    # SQuAD 2.0: the reference raises AttributeError here; ours keeps the null answer and
    # measures its odds against the "empty" nonce (logits 0): 10 - 0 > 0 predicts "".
    with pytest.raises(AttributeError):
        ref.write_predictions(examples, ref_features, ref_results, 3, 30, True, None, None, None,
                              version_2_with_negative=True)
    predictions, nbest, null_odds = squad.compute_predictions(examples, features, results, 3, 30,
                                                              True, True)
    assert predictions == {"q": ""} and [e["text"] for e in nbest["q"]] == ["", "empty"]
    assert null_odds["q"] == pytest.approx(10.0)


def test_missing_results_are_reported(tokenizer):
    examples, features = _one_window_example(tokenizer, "Anna built the tower.", "Who?")
    with pytest.raises(ValueError, match="No model output for feature"):
        squad.compute_predictions(examples, features, [], 20, 30, True)


# ------------------------------------------------------------------------------------------------
# Metrics
# ------------------------------------------------------------------------------------------------


def _dataset(questions):
    """questions: (id, [gold texts])."""
    return [{"title": "t", "paragraphs": [{"context": "c", "qas": [
        {"id": qas_id, "question": "?", "answers": [{"text": t, "answer_start": 0} for t in golds]}
        for qas_id, golds in questions]}]}]


def test_normalize_answer():
    assert squad.normalize_answer("The Cat!") == "cat"
    assert squad.normalize_answer("an apple,  a pear; THE end.") == "apple pear end"
    assert squad.normalize_answer("Theatre's") == "theatres"
    assert squad.normalize_answer("“quoted”") == "“quoted”"  # Only ASCII punctuation goes.


def test_squad_v1_metrics_by_hand():
    data = _dataset([("exact", ["The Eiffel Tower"]),
                     ("partial", ["red dog house"]),
                     ("several", ["Paris", "the city of Paris"]),
                     ("missing", ["anything"])])
    predictions = {"exact": "eiffel tower.", "partial": "the big red dog",
                   "several": "city of Paris"}
    # exact: 1/1. partial: {big, red, dog} vs {red, dog, house}: P = R = 2/3, F1 = 2/3.
    # several: "city of paris" vs "city of paris" (article removed) -> 1. missing: 0.
    result = squad.squad_v1_metrics(data, predictions)
    assert list(result) == ["exact_match", "f1"]
    assert result["exact_match"] == pytest.approx(100.0 * 2 / 4)
    assert result["f1"] == pytest.approx(100.0 * (1 + 2 / 3 + 1 + 0) / 4)
    assert result == ref.evaluate_v1(data, predictions)


def test_squad_v2_metrics_by_hand():
    data = _dataset([("a1", ["blue whale"]), ("a2", ["42"]), ("n1", []), ("n2", [])])
    predictions = {"a1": "the blue whale", "a2": "", "n1": "", "n2": "whale"}
    # Raw: a1 exact 1, a2 0 (empty vs "42"), n1 1 (both empty), n2 0.
    result = squad.squad_v2_metrics(data, predictions)
    assert result["exact"] == result["f1"] == pytest.approx(50.0)
    assert result["HasAns_exact"] == pytest.approx(50.0) and result["HasAns_total"] == 2
    assert result["NoAns_f1"] == pytest.approx(50.0) and result["NoAns_total"] == 2
    assert "best_f1" not in result
    # With no-answer scores: at threshold 1.0 n2 (score 2.0) counts as "no answer", correct.
    na_probs = {"a1": -3.0, "a2": 0.5, "n1": 1.5, "n2": 2.0}
    result = squad.squad_v2_metrics(data, predictions, na_probs)
    assert result["exact"] == pytest.approx(75.0)
    # Best threshold: all "no answer" scores 2/4; answering a1 (-3.0) adds 1 -> 3/4; a2 adds 0;
    # n1 (empty prediction) 0; n2 (non-empty) -1. Best 75% at -3.0.
    assert (result["best_exact"], result["best_exact_thresh"]) == (75.0, -3.0)
    assert result == ref.evaluate_v2(data, predictions, na_probs)


def test_metrics_agree_with_the_official_scripts_on_many_predictions(news_documents):
    rng = random.Random(1)
    data = ref.cloze_squad(news_documents[100:140], 120, seed=6, version_2_with_negative=True)
    qas = [qa for article in data["data"] for qa in article["paragraphs"][0]["qas"]]
    for qa in qas[::5]:  # Several gold answers for some questions.
        qa["answers"] = qa["answers"] * 2
    words = " ".join(news_documents[100:110]).split()
    predictions, na_probs = {}, {}
    for qa in qas:
        choice = rng.random()
        if choice < 0.3 and qa["answers"]:
            predictions[qa["id"]] = qa["answers"][0]["text"]
        elif choice < 0.5:
            predictions[qa["id"]] = ""
        else:
            start = rng.randrange(len(words) - 5)
            predictions[qa["id"]] = " ".join(words[start:start + rng.randint(1, 5)])
        na_probs[qa["id"]] = rng.choice([-1.0, 0.0, 0.5, 1.5]) + rng.random()
    v2 = squad.squad_v2_metrics(data["data"], predictions, na_probs)
    assert v2 == ref.evaluate_v2(data["data"], predictions, na_probs)
    assert v2["HasAns_total"] + v2["NoAns_total"] == v2["total"] == len(qas)
    # v1.1: every question has an answer; a missing prediction scores 0 but counts.
    for qa in qas:
        qa["answers"] = qa["answers"] or [{"text": "unknown", "answer_start": 0}]
    del predictions[qas[3]["id"]]
    assert squad.squad_v1_metrics(data["data"], predictions) == ref.evaluate_v1(data["data"],
                                                                                predictions)


# ------------------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------------------


def test_head_variable_names_logits_and_loss():
    config = modeling.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=20,
                                 max_position_embeddings=16)
    rng = np.random.RandomState(0)
    ids = rng.randint(1, 50, size=(3, 8)).astype(np.int32)
    positions = np.array([1, 7, 3], np.int32)
    with tf.Graph().as_default():
        inputs = [tf1.placeholder(tf.int32, [None, 8]) for _ in range(3)]
        start_logits, end_logits = squad.create_model(config, False, *inputs, False)
        loss = squad.compute_span_loss(start_logits, tf.constant(positions))
        variables = {v.op.name: v.shape.as_list() for v in tf1.global_variables()}
        assert variables["cls/squad/output_weights"] == [2, 16]
        assert variables["cls/squad/output_bias"] == [2]
        with tf1.Session() as session:
            session.run(tf1.global_variables_initializer())
            feed = dict(zip(inputs, (ids, np.ones_like(ids), np.zeros_like(ids))))
            start, end, value = session.run([start_logits, end_logits, loss], feed)
    assert start.shape == end.shape == (3, 8)
    log_probs = start - np.log(np.exp(start).sum(-1, keepdims=True))
    assert value == pytest.approx(-log_probs[np.arange(3), positions].mean(), rel=1e-5)
