"""Tests for tasks/ner.py: readers, label schemes, conlleval metrics, alignment, windows, model.

Oracles: hand-computed conlleval cases, and `conlleval_oracle` below, a literal transcription of the
main loop of the CoNLL-2000 `conlleval` Perl script (its startOfChunk/endOfChunk rules and its
in-chunk state machine), run against tasks.ner on random tag sequences.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import modeling
import tokenization
from cli import UsageError
from tasks import crf, ner

tf1 = tf.compat.v1


def write(path, text, mode="w"):
    with open(path, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
        f.write(text)
    return str(path)


# ------------------------------------------------------------------------------------------------
# The conlleval oracle (transcribed from conlleval.pl)
# ------------------------------------------------------------------------------------------------


def _perl_end_of_chunk(prev_tag, tag, prev_type, type_):
    chunk_end = False
    if prev_tag == "B" and tag == "B":
        chunk_end = True
    if prev_tag == "B" and tag == "O":
        chunk_end = True
    if prev_tag == "I" and tag == "B":
        chunk_end = True
    if prev_tag == "I" and tag == "O":
        chunk_end = True
    if prev_tag == "E" and tag == "E":
        chunk_end = True
    if prev_tag == "E" and tag == "I":
        chunk_end = True
    if prev_tag == "E" and tag == "O":
        chunk_end = True
    if prev_tag == "I" and tag == "O":
        chunk_end = True
    if prev_tag != "O" and prev_tag != "." and prev_type != type_:
        chunk_end = True
    if prev_tag == "]":
        chunk_end = True
    if prev_tag == "[":
        chunk_end = True
    return chunk_end


def _perl_start_of_chunk(prev_tag, tag, prev_type, type_):
    chunk_start = False
    if prev_tag == "B" and tag == "B":
        chunk_start = True
    if prev_tag == "I" and tag == "B":
        chunk_start = True
    if prev_tag == "O" and tag == "B":
        chunk_start = True
    if prev_tag == "O" and tag == "I":
        chunk_start = True
    if prev_tag == "E" and tag == "E":
        chunk_start = True
    if prev_tag == "E" and tag == "I":
        chunk_start = True
    if prev_tag == "O" and tag == "E":
        chunk_start = True
    if prev_tag == "O" and tag == "I":
        chunk_start = True
    if tag != "O" and tag != "." and prev_type != type_:
        chunk_start = True
    if tag == "[":
        chunk_start = True
    if tag == "]":
        chunk_start = True
    return chunk_start


def _perl_split(label):
    tag, dash, type_ = label.partition("-")
    return (tag, type_) if dash else (label, "")


def conlleval_oracle(pairs):
    """conlleval.pl's counts for sentences given as (gold labels, predicted labels)."""
    counts = {"correct_chunk": 0, "found_correct": 0, "found_guessed": 0, "tokens": 0,
              "correct_tags": 0, "per_type": {}}

    def bump(type_, key):
        counts["per_type"].setdefault(type_, {"correct": 0, "gold": 0, "predicted": 0})
        counts["per_type"][type_][key] += 1

    items = []
    for gold, predicted in pairs:
        items += list(zip(gold, predicted)) + [None]  # None: the blank line between sentences
    last_correct, last_correct_type, last_guessed, last_guessed_type = "O", "", "O", ""
    in_correct = False
    for item in items:
        if item is None:
            correct, correct_type, guessed, guessed_type = "O", "", "O", ""
        else:
            (correct, correct_type), (guessed, guessed_type) = map(_perl_split, item)
        end_c = _perl_end_of_chunk(last_correct, correct, last_correct_type, correct_type)
        end_g = _perl_end_of_chunk(last_guessed, guessed, last_guessed_type, guessed_type)
        if in_correct:
            if end_c and end_g and last_guessed_type == last_correct_type:
                in_correct = False
                counts["correct_chunk"] += 1
                bump(last_correct_type, "correct")
            elif end_c != end_g or guessed_type != correct_type:
                in_correct = False
        start_c = _perl_start_of_chunk(last_correct, correct, last_correct_type, correct_type)
        start_g = _perl_start_of_chunk(last_guessed, guessed, last_guessed_type, guessed_type)
        if start_c and start_g and guessed_type == correct_type:
            in_correct = True
        if start_c:
            counts["found_correct"] += 1
            bump(correct_type, "gold")
        if start_g:
            counts["found_guessed"] += 1
            bump(guessed_type, "predicted")
        if item is not None:
            counts["tokens"] += 1
            if correct == guessed and guessed_type == correct_type:
                counts["correct_tags"] += 1
        last_correct, last_correct_type = correct, correct_type
        last_guessed, last_guessed_type = guessed, guessed_type
    if in_correct:
        counts["correct_chunk"] += 1
        bump(last_correct_type, "correct")
    return counts


# ------------------------------------------------------------------------------------------------
# Readers
# ------------------------------------------------------------------------------------------------


def test_conll_reader_tabs_spaces_docstart_bom_and_extra_columns(tmp_path):
    path = write(tmp_path / "train.txt",
                 "\ufeff-DOCSTART- -X- -X- O\n\n"
                 "EU\tNNP\tB-NP\tB-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n\n\n"
                 "Peter NNP B-NP B-PER\r\nBlackburn NNP I-NP I-PER\r\n")
    sentences = ner.read_conll(path)
    assert [s.tokens for s in sentences] == [["EU", "rejects", "German"], ["Peter", "Blackburn"]]
    assert [s.labels for s in sentences] == [["B-ORG", "O", "B-MISC"], ["B-PER", "I-PER"]]
    assert sentences[0].line_numbers == [3, 4, 5] and sentences[1].line_numbers == [8, 9]
    assert sentences[1].text == "Peter Blackburn" and sentences[1].offsets == [(0, 5), (6, 15)]
    assert sentences[0].guid == "train-0" and sentences[0].path == path


def test_character_level_file_joins_characters_without_spaces(tmp_path):
    path = write(tmp_path / "train.txt",
                 "张 B-PER\n三 I-PER\n在 O\n2 O\n0 O\n北 B-LOC\n京 I-LOC\n\n")
    [sentence] = ner.read_conll(path)
    assert sentence.text == "张三在20北京"
    assert sentence.offsets[5] == (5, 6)
    # Single-character tokens alone (no CJK) are an English file: joined with spaces.
    [english] = ner.read_conll(write(tmp_path / "en.txt", "I O\nA O\n"))
    assert english.text == "I A"


def test_unlabelled_test_file_and_labelled_file_errors(tmp_path):
    path = write(tmp_path / "test.txt", "John\nlives\n\nParis\n")
    sentences = ner.read_conll(path, split="test", require_labels=False)
    assert [s.labels for s in sentences] == [None, None]
    with pytest.raises(UsageError, match=r"test.txt, line 1: no label column"):
        ner.read_conll(path, split="dev")
    mixed = write(tmp_path / "mixed.txt", "John B-PER\nlives\n")
    with pytest.raises(UsageError, match=r"mixed.txt, line 2: no label column"):
        ner.read_conll(mixed, split="test", require_labels=False)
    bad = write(tmp_path / "bad.txt", b"ok O\n\xff\xfe O\n", mode="wb")
    with pytest.raises(UsageError, match=r"bad.txt, line 2: text is not valid UTF-8"):
        ner.read_conll(bad)


def test_jsonl_reader_offsets_and_errors(tmp_path):
    path = write(tmp_path / "train.jsonl", "\n".join([
        json.dumps({"tokens": ["Dr.", "Smith", "visited", "New", "York"],
                    "labels": ["O", "B-PER", "O", "B-LOC", "I-LOC"],
                    "text": "Dr. Smith  visited New York!", "id": "doc1"}),
        "",
        json.dumps({"tokens": ["北", "京"], "labels": ["B-LOC", "I-LOC"]}),
    ]) + "\n")
    first, second = ner.read_jsonl(path)
    assert first.guid == "doc1" and first.offsets[2] == (11, 18)
    assert first.text[first.offsets[3][0]:first.offsets[4][1]] == "New York"
    assert second.text == "北京" and second.line_numbers == [3, 3]
    cases = [
        ({"tokens": ["a", "b"], "labels": ["O"]}, r"line 1: 2 tokens but 1 labels"),
        ({"tokens": ["a"]}, r"line 1: needs \"labels\""),
        ({"tokens": "a b", "labels": ["O"]}, r"line 1: needs \"tokens\""),
        ({"tokens": ["ab"], "labels": ["O"], "text": "a b"}, r"line 1: token 0 'ab' is not found"),
    ]
    for record, message in cases:
        with pytest.raises(UsageError, match=message):
            ner.read_jsonl(write(tmp_path / "case.jsonl", json.dumps(record) + "\n"))
    with pytest.raises(UsageError, match=r"line 1: not valid JSON"):
        ner.read_jsonl(write(tmp_path / "case.jsonl", "{tokens\n"))
    unlabelled = ner.read_jsonl(write(tmp_path / "t.jsonl", json.dumps({"tokens": ["x"]})),
                                split="test", require_labels=False)
    assert unlabelled[0].labels is None


def test_read_split_finds_files_and_says_which_it_wanted(tmp_path):
    write(tmp_path / "train.txt", "a O\n")
    write(tmp_path / "valid.jsonl", json.dumps({"tokens": ["a"], "labels": ["O"]}) + "\n")
    assert ner.read_split(str(tmp_path), "train")[0].endswith("train.txt")
    assert ner.read_split(str(tmp_path), "dev")[0].endswith("valid.jsonl")
    with pytest.raises(UsageError, match=r"no test file in .*: expected one of test.txt"):
        ner.read_split(str(tmp_path), "test")


# ------------------------------------------------------------------------------------------------
# Schemes
# ------------------------------------------------------------------------------------------------


def sentences_of(*label_lists, path="f.txt"):
    return [ner.Sentence(guid=str(i), tokens=["w"] * len(labels), labels=list(labels), path=path,
                         line_numbers=list(range(10 * i + 1, 10 * i + 1 + len(labels))))
            for i, labels in enumerate(label_lists)]


def test_detect_scheme():
    assert ner.detect_scheme(sentences_of(["B-PER", "I-PER", "O", "B-LOC"])) == "bio"
    assert ner.detect_scheme(sentences_of(["I-PER", "I-PER", "B-PER", "O", "I-LOC"])) == "iob1"
    assert ner.detect_scheme(sentences_of(["B-PER", "E-PER", "S-LOC"])) == "bioes"
    assert ner.detect_scheme(sentences_of(["B-PER", "M-PER", "E-PER"])) == "bioes"
    # An I- that starts an entity in a file that otherwise starts entities with B-: BIO, with an
    # error to fix rather than a silent switch to IOB1.
    assert ner.detect_scheme(sentences_of(["B-PER", "O", "I-LOC"])) == "bio"


def test_validation_errors_name_file_line_and_fix():
    with pytest.raises(UsageError, match=r"f.txt, line 13: 'I-LOC' follows 'O'.*B-LOC or I-LOC.*"
                                         r"--label_scheme=iob1"):
        ner.validate_sentences(sentences_of(["O"], ["B-PER", "O", "I-LOC"]), "bio")
    with pytest.raises(UsageError, match=r"line 1: 'I-PER' starts the sentence"):
        ner.validate_sentences(sentences_of(["I-PER"]), "bio")
    ner.validate_sentences(sentences_of(["I-PER", "B-PER"]), "iob1")
    with pytest.raises(UsageError, match=r"line 2: 'B-PER' follows 'O', but in IOB1"):
        ner.validate_sentences(sentences_of(["O", "B-PER"]), "iob1")
    with pytest.raises(UsageError, match=r"line 2: the sentence ends inside an entity"):
        ner.validate_sentences(sentences_of(["O", "B-PER"]), "bioes")
    with pytest.raises(UsageError, match=r"line 2: 'O' follows 'B-PER'"):
        ner.validate_sentences(sentences_of(["B-PER", "O"]), "bioes")
    with pytest.raises(UsageError, match=r"line 1: label 'PER' is not O or <prefix>-<TYPE>"):
        ner.validate_sentences(sentences_of(["PER"]), "bio")
    with pytest.raises(UsageError, match=r"line 2: label 'B-MISC' is not in the label list"):
        ner.validate_sentences(sentences_of(["O", "B-MISC"]), "bio", ["O", "B-PER", "I-PER"])


def test_label_lists_and_scheme_constraints():
    assert ner.build_label_list(sentences_of(["B-PER", "O", "B-LOC", "I-LOC"]), "bio") == \
        ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert ner.build_label_list(sentences_of(["S-PER", "B-ORG", "M-ORG", "E-ORG"]), "bioes") == \
        ["O", "B-ORG", "M-ORG", "E-ORG", "S-ORG", "B-PER", "M-PER", "E-PER", "S-PER"]
    with pytest.raises(UsageError, match="must contain O"):
        ner.check_label_list(["B-PER", "I-PER"], "bio")
    with pytest.raises(UsageError, match="--label_scheme=bioes"):
        ner.check_label_list(["O", "S-PER"], "bio")
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    bio = ner.scheme_constraints(labels, "bio")
    allowed = bio.transitions == 0
    assert not allowed[0, 2] and allowed[1, 2] and allowed[2, 2] and not allowed[1, 4]
    assert list(bio.start == 0) == [True, True, False, True, False] and (bio.end == 0).all()
    # IOB1: an entity may start with I-, and B- only follows an entity of its own type.
    iob1 = ner.scheme_constraints(labels, "iob1")
    assert list(iob1.start == 0) == [True, False, True, False, True]
    assert list(iob1.transitions[:, 1] == 0) == [False, True, True, False, False]
    bioes = ner.scheme_constraints(["O", "B-X", "I-X", "E-X", "S-X"], "bioes")
    assert list(bioes.end == 0) == [True, False, False, True, True]
    assert list(bioes.transitions[1] == 0) == [False, False, True, True, False]


# ------------------------------------------------------------------------------------------------
# conlleval
# ------------------------------------------------------------------------------------------------


def test_entities_as_conlleval_reads_them():
    assert ner.extract_entities(["B-PER", "I-PER", "O", "B-LOC"]) == [("PER", 0, 2), ("LOC", 3, 4)]
    # An I- after O starts an entity; a type change inside ends one and starts another.
    assert ner.extract_entities(["O", "I-PER", "I-LOC", "B-LOC"]) == \
        [("PER", 1, 2), ("LOC", 2, 3), ("LOC", 3, 4)]
    # IOB1 and IOB2 spellings of the same entities.
    assert ner.extract_entities(["I-PER", "I-PER", "B-PER", "O", "I-LOC"]) == \
        ner.extract_entities(["B-PER", "I-PER", "B-PER", "O", "B-LOC"]) == \
        [("PER", 0, 2), ("PER", 2, 3), ("LOC", 4, 5)]
    assert ner.extract_entities(["S-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]) == \
        [("PER", 0, 1), ("PER", 1, 2), ("LOC", 2, 5), ("LOC", 5, 6)]
    assert ner.extract_entities(["B-ORG", "M-ORG", "E-ORG"]) == [("ORG", 0, 3)]


def test_metrics_partial_match_and_type_mismatch_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG", "I-ORG", "I-ORG"]]
    # PER: right; LOC: predicted as ORG (type mismatch); ORG: only two of three words (partial).
    pred = [["B-PER", "I-PER", "O", "B-ORG", "O", "B-ORG", "I-ORG", "O"]]
    counts = ner.count_entities(gold, pred)
    metrics = ner.entity_metrics(counts)
    assert metrics["eval_precision"] == pytest.approx(1 / 3)
    assert metrics["eval_recall"] == pytest.approx(1 / 3)
    assert metrics["eval_f1"] == pytest.approx(1 / 3)
    assert metrics["eval_accuracy"] == pytest.approx(6 / 8)
    assert metrics["eval_PER_f1"] == 1.0 and metrics["eval_LOC_recall"] == 0.0
    assert metrics["eval_ORG_precision"] == 0.0 and metrics["eval_LOC_precision"] == 0.0
    assert ner.conlleval_report(counts) == (
        "processed 8 tokens with 3 phrases; found: 3 phrases; correct: 1.\n"
        "accuracy:  75.00%; precision:  33.33%; recall:  33.33%; FB1:  33.33\n"
        "              ORG: precision:   0.00%; recall:   0.00%; FB1:   0.00  2\n"
        "              PER: precision: 100.00%; recall: 100.00%; FB1: 100.00  1\n")


def test_iob1_gold_against_iob2_predictions_counts_entities_not_spellings():
    gold = [["I-PER", "I-PER", "B-PER", "O", "I-LOC"]]
    pred = [["B-PER", "I-PER", "B-PER", "O", "B-LOC"]]
    metrics = ner.entity_metrics(ner.count_entities(gold, pred))
    assert metrics["eval_f1"] == 1.0 and metrics["eval_accuracy"] == pytest.approx(3 / 5)


def test_metrics_match_conlleval_oracle_on_random_sequences():
    rng = np.random.RandomState(0)
    tags = ["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-X-Y", "I-X-Y"]
    for _ in range(300):
        pairs = []
        for _ in range(rng.randint(1, 4)):
            length = rng.randint(1, 9)
            pairs.append((list(rng.choice(tags, length)), list(rng.choice(tags, length))))
        oracle = conlleval_oracle(pairs)
        counts = ner.count_entities(*zip(*pairs))
        assert sum(counts.correct.values()) == oracle["correct_chunk"]
        assert sum(counts.gold.values()) == oracle["found_correct"]
        assert sum(counts.predicted.values()) == oracle["found_guessed"]
        assert (counts.tokens, counts.correct_tokens) == (oracle["tokens"],
                                                          oracle["correct_tags"])
        for type_, per_type in oracle["per_type"].items():
            assert (counts.correct[type_], counts.gold[type_], counts.predicted[type_]) == \
                (per_type["correct"], per_type["gold"], per_type["predicted"])


# ------------------------------------------------------------------------------------------------
# WordPieces, windows, merging
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def english_tokenizer(english_vocab):
    return tokenization.FullTokenizer(english_vocab, do_lower_case=True)


@pytest.fixture(scope="module")
def chinese_tokenizer(chinese_vocab):
    return tokenization.FullTokenizer(chinese_vocab, do_lower_case=True)


def test_first_piece_carries_the_label(english_tokenizer):
    sentence = ner.Sentence("s", ["Johanson", "visited", "Zürichbergstrasse", "\u200b", "."],
                            ["B-PER", "O", "B-LOC", "O", "O"])
    labels = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    windows, features = ner.convert_sentences([sentence], labels, 32, english_tokenizer)
    [feature] = features
    pieces = ner.word_pieces(sentence.tokens, english_tokenizer, 30)
    assert len(pieces[2]) > 3 and pieces[3] == ["[UNK]"]  # many pieces; none becomes [UNK]
    tokens = english_tokenizer.convert_ids_to_tokens(feature["input_ids"][:feature["input_mask"]
                                                                          .count(1)])
    assert tokens == ["[CLS]"] + sum(pieces, []) + ["[SEP]"]
    firsts = [i for i, m in enumerate(feature["label_mask"]) if m]
    assert len(firsts) == 5 and [tokens[i] for i in firsts] == [p[0] for p in pieces]
    assert [feature["label_ids"][i] for i in firsts] == [3, 0, 1, 0, 0]
    assert sum(feature["label_ids"]) == 4  # zero at every other position
    assert feature["owned_mask"] == feature["label_mask"] and len(windows) == 1


def test_chinese_characters_are_one_word_each(chinese_tokenizer):
    [sentence] = [ner.Sentence("z", list("王小明在上海"), ["B-PER", "I-PER", "I-PER", "O",
                                                          "B-LOC", "I-LOC"])]
    _, [feature] = ner.convert_sentences([sentence], ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"],
                                         16, chinese_tokenizer)
    assert feature["label_mask"][:8] == [0, 1, 1, 1, 1, 1, 1, 0]
    assert feature["label_ids"][1:7] == [3, 4, 4, 0, 1, 2]


def test_plan_windows_by_hand():
    # Five words of 2, 1, 3, 1, 2 pieces, windows of 4 pieces, stride 2.
    windows = ner.plan_windows([2, 1, 3, 1, 2], capacity=4, stride=2)
    # Piece offsets 0 2 3 6 7 9: (0, 2) holds 3 pieces (word 2 would make 6); the next window
    # starts 2 pieces later at word 1: (1, 3) holds 4; then word 3 (word 2 ended the window).
    assert [(s, e) for s, e, _ in windows] == [(0, 2), (1, 3), (3, 5)]
    owners = {}
    for index, (start, end, owned) in enumerate(windows):
        for word, is_owner in zip(range(start, end), owned):
            if is_owner:
                assert word not in owners
                owners[word] = index
    # Word 1: context 2 left | 0 right in window 0 (score 0 + 0.01 * 3 pieces), 0 | 3 in window 1
    # (0 + 0.01 * 4): the bigger window wins the tie of min(left, right).
    assert owners == {0: 0, 1: 1, 2: 1, 3: 2, 4: 2}
    # A long sentence of one-piece words: the middle of each window owns, nothing is dropped.
    windows = ner.plan_windows([1] * 20, capacity=8, stride=4)
    owned = sorted(w for s, e, o in windows for w, x in zip(range(s, e), o) if x)
    assert owned == list(range(20)) and all(e - s <= 8 for s, e, _ in windows)


def test_long_sentences_split_and_merge_back(english_tokenizer):
    rng = np.random.RandomState(1)
    words = ["Alexander", "antidisestablishmentarianism", "in", "Tokyo", ",", "the", "city"]
    labels = ["O", "B-LOC", "I-LOC"]
    sentences = []
    for i, length in enumerate([3, 60, 1, 45]):
        tokens = list(rng.choice(words, length))
        sentences.append(ner.Sentence(f"s{i}", tokens, list(rng.choice(labels, length))))
    windows, features = ner.convert_sentences(sentences, labels, 16, english_tokenizer,
                                              doc_stride=5)
    assert len(windows) > 10 and all(len(f["input_ids"]) == 16 for f in features)
    # Fake model: the scores of each first piece encode the word's flat index and gold label id.
    bases = ner.word_bases(sentences)
    predictions = []
    for window, feature in zip(windows, features):
        firsts = [i for i, m in enumerate(feature["label_mask"]) if m]
        assert len(firsts) == window.num_words
        word_scores = np.zeros([16, 3], np.float32)
        for j, position in enumerate(firsts):
            word_scores[j, feature["label_ids"][position]] = window.word_base + j
        predictions.append({"word_scores": word_scores, "num_words": len(firsts),
                            "word_owned": [feature["owned_mask"][p] for p in firsts] + [0] * 9,
                            "word_base": window.word_base})
    merged = ner.merge_predictions(sentences, predictions, 3)
    label_map = {label: i for i, label in enumerate(labels)}
    for base, sentence, scores in zip(bases, sentences, merged):
        assert scores.shape == (len(sentence.tokens), 3)
        assert list(scores.argmax(1)) == [label_map[x] for x in sentence.labels] or \
            base == 0  # word 0 of sentence 0 has all-zero scores
        np.testing.assert_array_equal(scores.max(1), np.arange(base, base + len(sentence.tokens)))
    with pytest.raises(ValueError, match="got no prediction"):
        ner.merge_predictions(sentences, predictions[:-1], 3)


def test_sentence_from_text_offsets():
    text = "Dr. Müller-Lüdenscheidt flew to 北京 (China) at 9:30.\u200b"
    sentence = ner.sentence_from_text(text)
    assert sentence.tokens == ["Dr", ".", "Müller", "-", "Lüdenscheidt", "flew", "to", "北", "京",
                               "(", "China", ")", "at", "9", ":", "30", "."]
    assert all(text[a:b] == t for t, (a, b) in zip(sentence.tokens, sentence.offsets))


def test_writers(tmp_path):
    sentence = ner.Sentence("d1", ["John", "Smith", "flew"], ["B-PER", "I-PER", "O"],
                            text="John  Smith flew", offsets=[(0, 4), (6, 11), (12, 16)])
    unlabelled = ner.Sentence("d2", ["上", "海"], None, text="上海", offsets=[(0, 1), (1, 2)])
    conll, jsonl = str(tmp_path / "p.txt"), str(tmp_path / "p.jsonl")
    predicted = [["B-PER", "O", "O"], ["B-LOC", "I-LOC"]]
    ner.write_conll_predictions(conll, [sentence, unlabelled], predicted)
    ner.write_entity_jsonl(jsonl, [sentence, unlabelled], predicted)
    assert open(conll, encoding="utf-8").read() == \
        "John B-PER B-PER\nSmith I-PER O\nflew O O\n\n上 B-LOC\n海 I-LOC\n\n"
    first, second = [json.loads(line) for line in open(jsonl, encoding="utf-8")]
    assert first["entities"] == [{"type": "PER", "start": 0, "end": 4, "text": "John",
                                  "token_start": 0, "token_end": 1}]
    assert first["gold_entities"][0]["text"] == "John  Smith"
    assert second["entities"][0]["text"] == "上海" and "gold_entities" not in second


# ------------------------------------------------------------------------------------------------
# Model and in-graph metric
# ------------------------------------------------------------------------------------------------

TINY = modeling.BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=4, intermediate_size=37,
                           max_position_embeddings=64, type_vocab_size=2)
LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def random_batch(rng, batch=6, seq=12):
    label_mask = (rng.rand(batch, seq) < 0.6).astype(np.int32)
    label_mask[:, 0] = 0
    label_mask[0] = 0  # a window with no words at all (a padding example)
    return {"input_ids": rng.randint(1, 60, size=[batch, seq]).astype(np.int32),
            "input_mask": np.ones([batch, seq], np.int32),
            "segment_ids": np.zeros([batch, seq], np.int32),
            "label_ids": rng.randint(0, len(LABELS), size=[batch, seq]).astype(np.int32),
            "label_mask": label_mask}


@pytest.mark.parametrize("use_crf", [False, True])
def test_create_model_decodes_only_valid_sequences(use_crf):
    rng = np.random.RandomState(5)
    batch = random_batch(rng)
    constraints = ner.scheme_constraints(LABELS, "bio")
    with tf.Graph().as_default():
        tf1.set_random_seed(0)
        inputs = {k: tf.constant(v) for k, v in batch.items()}
        outputs = ner.create_model(TINY, False, inputs["input_ids"], inputs["input_mask"],
                                   inputs["segment_ids"], inputs["label_ids"],
                                   inputs["label_mask"], len(LABELS), False, use_crf,
                                   constraints)
        trainable = sorted(v.op.name for v in tf1.trainable_variables()
                           if not v.op.name.startswith("bert/"))
        stored = sorted(v.op.name for v in tf1.global_variables()
                        if not v.op.name.startswith("bert/"))
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            if use_crf:  # Make the unconstrained transitions favour O -> I-PER strongly.
                transitions = tf1.trainable_variables("crf/transitions")[0]
                sess.run(transitions[0, 2].assign(50.0))
            out = sess.run(outputs._asdict())
            logits = out["logits"]
    crf_names = ["crf/end_transitions", "crf/start_transitions", "crf/transitions"]
    assert trainable == (crf_names if use_crf else []) + ["output_bias", "output_weights"]
    # Every NER checkpoint stores the same variables: the CRF's (zeros without one) and the
    # decoding settings.
    assert stored == crf_names + ["ner/end_constraints", "ner/start_constraints",
                                  "ner/transition_constraints", "ner/uses_crf",
                                  "ner/word_start_table", "output_bias", "output_weights"]
    assert np.isfinite(out["loss"]) and out["per_example_loss"].shape == (6,)
    np.testing.assert_array_equal(out["num_words"], batch["label_mask"].sum(1))
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    np.testing.assert_allclose(out["scores"], logits if use_crf else log_probs, atol=1e-5)
    for b in range(6):
        firsts = np.flatnonzero(batch["label_mask"][b])
        np.testing.assert_allclose(out["word_scores"][b, :len(firsts)],
                                   out["scores"][b, firsts], rtol=1e-6)
        path = [LABELS[i] for i in out["word_label_ids"][b, :len(firsts)]]
        assert ner.is_valid_sequence(path, "bio"), path
        np.testing.assert_array_equal(out["label_predictions"][b, firsts],
                                      out["word_label_ids"][b, :len(firsts)])
        assert (np.delete(out["label_predictions"][b], firsts) == -1).all()
        scores = crf.TransitionScores(*[np.asarray(x) for x in out["decoding"].scores])
        assert ner.decode(out["word_scores"][b, :len(firsts)], scores) == \
            list(out["word_label_ids"][b, :len(firsts)])


def test_words_found_from_ids_when_there_is_no_label_mask(english_tokenizer):
    """Raw text: each WordPiece that is not a "##" piece or a special token starts a word."""
    sentence = ner.sentence_from_text("Johanson's unbelievably tiny café.")
    _, [feature] = ner.convert_sentences([sentence], LABELS, 24, english_tokenizer)
    table = ner.word_start_table(english_tokenizer.vocab, len(english_tokenizer.vocab))
    assert table[english_tokenizer.vocab["[CLS]"]] == 0 and table[english_tokenizer.vocab["the"]]
    ids = np.array([feature["input_ids"]], np.int32)
    mask = np.array([feature["input_mask"]], np.int32)
    config = modeling.BertConfig(vocab_size=len(table), hidden_size=16, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=16,
                                 max_position_embeddings=32)
    with tf.Graph().as_default():
        outputs = ner.create_model(config, False, tf.constant(ids), tf.constant(mask),
                                   tf.zeros_like(ids), tf.zeros_like(ids), None, len(LABELS),
                                   False, use_crf=False, word_starts=table)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            predictions = sess.run(outputs.label_predictions)
    assert list(predictions[0] >= 0) == [bool(m) for m in feature["label_mask"]]


def test_softmax_loss_is_mean_cross_entropy_over_first_pieces():
    rng = np.random.RandomState(2)
    batch = random_batch(rng)
    with tf.Graph().as_default():
        inputs = {k: tf.constant(v) for k, v in batch.items()}
        outputs = ner.create_model(TINY, False, inputs["input_ids"], inputs["input_mask"],
                                   inputs["segment_ids"], inputs["label_ids"],
                                   inputs["label_mask"], len(LABELS), False)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            loss, logits = sess.run([outputs.loss, outputs.logits])
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_probs, batch["label_ids"][..., None], -1)[..., 0]
    mask = batch["label_mask"].astype(bool)
    assert loss == pytest.approx(-picked[mask].mean(), rel=1e-5)


def _batches(arrays, size):
    total = len(arrays["input_ids"])
    return [{k: v[start:start + size] for k, v in arrays.items()}
            for start in range(0, total, size)]


@pytest.mark.parametrize("use_crf", [False, True])
def test_eval_metric_equals_decoding_merged_windows_in_python(use_crf, english_tokenizer,
                                                              tmp_path):
    """The streaming metric over batches of windows equals conlleval on the merged sentences.

    Predictions come from a PREDICT graph whose weights are then saved; the EVAL graph starts
    from that checkpoint (as a run's evaluation does), and Python decodes with the transition
    scores read back from it.
    """
    rng = np.random.RandomState(3)
    words = ["Ann", "Lee", "met", "Bob", "in", "Paris", "and", "Rome", "yesterday"]
    sentences = []
    for i, n in enumerate([5, 30, 2, 17, 9]):
        tokens = list(rng.choice(words, n))
        labels = ["B-PER" if t in ("Ann", "Bob") else "B-LOC" if t in ("Paris", "Rome") else "O"
                  for t in tokens]
        sentences.append(ner.Sentence(f"s{i}", tokens, labels))
    windows, features = ner.convert_sentences(sentences, LABELS, 12, english_tokenizer,
                                              doc_stride=4)
    features.append(ner.padding_features(12))
    constraints = ner.scheme_constraints(LABELS, "bio")
    arrays = {name: np.array([f[name] for f in features]) for name in features[0]}
    arrays["word_base"] = arrays["word_base"][:, 0]
    arrays["is_real_example"] = arrays["is_real_example"][:, 0]
    arrays["input_ids"] %= TINY.vocab_size  # the tiny model's vocab; the words do not matter here
    checkpoint = str(tmp_path / "model.ckpt")

    def graph_outputs(mode, init_checkpoint):
        model_fn = ner.model_fn_builder(TINY, LABELS, init_checkpoint, 1e-3, 10, 1, False, False,
                                        use_crf, constraints)
        placeholders = {k: tf1.placeholder(tf.int32, [None] + list(v.shape[1:]), name=k)
                        for k, v in arrays.items()}
        return placeholders, model_fn(placeholders, None, mode, {})

    predictions = []
    with tf.Graph().as_default():
        placeholders, spec = graph_outputs(tf.estimator.ModeKeys.PREDICT, None)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            if use_crf:  # Trained-looking transitions, so that decoding depends on them.
                sess.run(tf1.trainable_variables("crf/transitions")[0].assign(
                    rng.normal(size=[5, 5]).astype(np.float32)))
            for batch in _batches(arrays, 4):
                out = sess.run(spec.predictions, {placeholders[k]: v for k, v in batch.items()})
                predictions += [{k: v[i] for k, v in out.items()}
                                for i in range(len(out["num_words"]))]
            tf1.train.Saver().save(sess, checkpoint)
    with tf.Graph().as_default():
        placeholders, spec = graph_outputs(tf.estimator.ModeKeys.EVAL, checkpoint)
        with tf1.Session() as sess:
            sess.run([tf1.global_variables_initializer(), tf1.local_variables_initializer()])
            for batch in _batches(arrays, 4):
                sess.run([v[1] for v in spec.eval_metric_ops.values()],
                         {placeholders[k]: v for k, v in batch.items()})
            metrics = sess.run({k: v[0] for k, v in spec.eval_metric_ops.items()})
    scores, uses_crf = ner.read_decoding_settings(checkpoint)
    assert uses_crf == use_crf
    merged = ner.merge_predictions(sentences, predictions[:len(windows)], len(LABELS))
    predicted = [[LABELS[i] for i in ner.decode(word_scores, scores)] for word_scores in merged]
    expected = ner.entity_metrics(ner.count_entities([s.labels for s in sentences], predicted),
                                  ner.entity_types(LABELS))
    assert all(ner.is_valid_sequence(p, "bio") for p in predicted)
    assert 0 < expected["eval_accuracy"] < 1  # an untrained model: some right, some wrong
    assert set(metrics) == set(ner.eval_metric_names(LABELS)) - {"global_step", "loss"}
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=1e-6), key


def test_tf_record_round_trip(tmp_path, english_tokenizer):
    sentence = ner.Sentence("s", ["Ann", "met", "Bob"], ["B-PER", "O", "B-PER"])
    _, features = ner.convert_sentences([sentence], LABELS, 8, english_tokenizer)
    path = str(tmp_path / "train.tf_record")
    ner.write_tf_record(features + [ner.padding_features(8)], path)
    dataset = ner.input_fn_builder(path, 8, is_training=False, drop_remainder=False)(
        {"batch_size": 2})
    [batch] = list(dataset.as_numpy_iterator())
    for name, values in features[0].items():
        np.testing.assert_array_equal(batch[name][0], values if len(values) > 1 else values[0])
    assert batch["is_real_example"].tolist() == [1, 0]
    assert not os.path.exists(path + ".tmp")
