"""Token classification (named-entity recognition) on BERT: data, label schemes, metrics, model.

The task library behind `run_ner.py`; every function takes plain arguments (no flags).

* Reading: CoNLL files (one token per line, the label in the last column, a blank line between
  sentences, `-DOCSTART-` lines ignored, tab or space separated), the same layout with one
  character per line (Chinese NER), and JSON lines with `tokens` and `labels` (and optionally the
  original `text`). Bad input raises UsageError naming the file, the line and the fix.
* Label schemes BIO (IOB2), IOB1 and BIOES (also spelled with M-/L-/U- for I-/E-/S-), read as
  given or detected; the label list; the transitions each scheme allows, used to decode only valid
  tag sequences.
* Entity metrics with the semantics of the CoNLL `conlleval` script (a chunk starts and ends where
  conlleval says; a found entity is correct when type, start and end all match).
* Features: each word is split into WordPieces; its first piece carries the word's label and the
  other pieces are ignored by the loss and the metrics (as in the BERT paper). A sentence longer
  than max_seq_length becomes overlapping windows; each word is predicted by the window in which
  it has the most context, and the windows are merged back, so no token is dropped.
* The model: BERT's sequence output, a token-level softmax layer, optionally a linear-chain CRF
  (tasks/crf.py); its model_fn, input_fn, TFRecords and an in-graph entity-F1 metric.
* Predictions written onto the original tokens (CoNLL) and as JSON lines of entity spans with
  character offsets into the sentence's text.

Decoding: the per-word scores of every window are merged (each word from the window that owns
it), then the best tag sequence that the scheme allows is found per sentence (Viterbi over the CRF's
emissions and transitions, or over log-probabilities with only the scheme's constraints for the
softmax head). Evaluation computes the same thing, so eval_results.txt and the prediction files
always agree. The settings decoding needs (constraints, CRF or not, which WordPieces start a word)
are stored as variables in the checkpoint, so exports and later evaluations decode as training did.

Export and serving: the `ner` inference head (SavedModel outputs `label_ids` [B, S], `scores`
[B, S, L], `transition_scores` [B, L + 2, L]) and `NerPredictor`, raw text in, entity spans out.
"""

import collections
import dataclasses
import json
import os
import re
from typing import List, Optional, Tuple

import numpy as np
import tensorflow as tf

import inference
import modeling
import tokenization
import training
from cli import ProgressLogger, UsageError, atomic_output
from tasks import crf

tf1 = tf.compat.v1

OUTSIDE = "O"
SCHEMES = ("bio", "iob1", "bioes")
# Prefix letter -> role. M-/L-/U- are the BMES/BILOU spellings of I-/E-/S-.
_ROLES = {"B": "B", "I": "I", "E": "E", "S": "S", "M": "I", "L": "E", "U": "S"}
_SCHEME_ROLES = {"bio": ("B", "I"), "iob1": ("I", "B"), "bioes": ("B", "I", "E", "S")}
DATA_FORMATS = ("auto", "conll", "jsonl")
_SPLIT_NAMES = {"train": ("train",), "dev": ("dev", "valid", "validation"), "test": ("test",)}
_EXTENSIONS = {"conll": ("txt", "conll", "bio", "iob", "tsv"), "jsonl": ("jsonl", "json")}
_DOCSTART = "-DOCSTART-"

# ------------------------------------------------------------------------------------------------
# Sentences and readers
# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Sentence:
    """One sentence of a data file.

    Attributes:
      guid: unique id ("<split>-<n>", or the JSON line's "id").
      tokens: the tokens (words, or characters for character-level files).
      labels: one label per token, or None when the file has no labels (a test file).
      text: the sentence as text; for CoNLL files the tokens joined by a space (nothing between
        the characters of a character-level file); for JSON lines the "text" field when given.
      offsets: (start, end) character offsets of each token in `text`.
      path: the file it came from.
      line_numbers: the line of each token in `path` (JSON lines: the sentence's line).
    """

    guid: str
    tokens: List[str]
    labels: Optional[List[str]]
    text: str = ""
    offsets: List[Tuple[int, int]] = dataclasses.field(default_factory=list)
    path: str = ""
    line_numbers: List[int] = dataclasses.field(default_factory=list)


def _utf8_lines(path):
    """Yields (line_number, line without its line break); a leading byte-order mark is dropped.

    Raises:
      UsageError: a line is not valid UTF-8.
    """
    with tf.io.gfile.GFile(path, "rb") as reader:
        for line_number, raw in enumerate(reader, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise UsageError(
                    f"{path}, line {line_number}: text is not valid UTF-8 (byte "
                    f"0x{raw[e.start]:02x}); re-save the file as UTF-8, e.g. iconv -f gbk -t utf-8 "
                    f"{os.path.basename(path)} > fixed") from None
            if line_number == 1 and line.startswith("\ufeff"):
                line = line[1:]
            yield line_number, line.rstrip("\r\n")


def _is_cjk(char):
    return tokenization._is_chinese_char(ord(char))


def is_character_level(token_lists):
    """True when every token is one character and some are CJK (a character-per-line file)."""
    has_cjk = False
    for tokens in token_lists:
        for token in tokens:
            if len(token) != 1:
                return False
            has_cjk = has_cjk or _is_cjk(token)
    return has_cjk


def join_tokens(tokens, joiner):
    """Returns (text, offsets) for tokens joined by `joiner`."""
    offsets, position = [], 0
    for token in tokens:
        offsets.append((position, position + len(token)))
        position += len(token) + len(joiner)
    return joiner.join(tokens), offsets


def locate_tokens(tokens, text, path, line_number):
    """Finds each token in `text`, in order, skipping only whitespace between them.

    Returns:
      list of (start, end) offsets.

    Raises:
      UsageError: a token is not where it should be.
    """
    offsets, position = [], 0
    for index, token in enumerate(tokens):
        start = text.find(token, position)
        if start < 0 or text[position:start].strip():
            raise UsageError(
                f"{path}, line {line_number}: token {index} {token!r} is not found in \"text\" "
                f"after offset {position}; make the tokens appear in the text in order (only "
                f"whitespace between them) or leave \"text\" out")
        offsets.append((start, start + len(token)))
        position = start + len(token)
    return offsets


def _split_columns(line):
    """Columns of a CoNLL line: tab-separated if it has a tab, else whitespace-separated."""
    if "\t" in line:
        return [cell.strip() for cell in line.split("\t") if cell.strip()]
    return line.split()


def _conll_blocks(path):
    """Yields lists of (line_number, columns) for the sentences of a CoNLL file."""
    block = []
    for line_number, line in _utf8_lines(path):
        columns = _split_columns(line)
        if not columns or columns[0] == _DOCSTART:
            if block:
                yield block
            block = []
            continue
        block.append((line_number, columns))
    if block:
        yield block


def read_conll(path, split="train", require_labels=True):
    """Reads a CoNLL-style file (word- or character-per-line).

    Args:
      path: the file.
      split: "train", "dev" or "test" (used in the guids).
      require_labels: when False, a file whose lines all have a single column is read without
        labels (a test file); otherwise every line needs a label column.

    Returns:
      list of Sentence.

    Raises:
      UsageError: a line without a label column, or a file that mixes labelled and unlabelled lines.
    """
    blocks = list(_conll_blocks(path))
    single = [(n, cols) for block in blocks for n, cols in block if len(cols) == 1]
    labelled = not (single and not require_labels and
                    len(single) == sum(len(block) for block in blocks))
    if labelled and single:
        line_number, columns = single[0]
        raise UsageError(
            f"{path}, line {line_number}: no label column (the line is {columns[0]!r}); each "
            f"token line needs the token and its label, separated by a tab or spaces")
    character_level = is_character_level([[cols[0] for _, cols in block] for block in blocks])
    sentences = []
    for index, block in enumerate(blocks):
        tokens = [cols[0] for _, cols in block]
        text, offsets = join_tokens(tokens, "" if character_level else " ")
        sentences.append(Sentence(
            guid=f"{split}-{index}", tokens=tokens,
            labels=[cols[-1] for _, cols in block] if labelled else None, text=text,
            offsets=offsets, path=path, line_numbers=[n for n, _ in block]))
    return sentences


def _jsonl_record(path, line_number, line):
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise UsageError(
            f"{path}, line {line_number}: not valid JSON ({e.msg}); each line must be one object "
            f"such as {{\"tokens\": [\"John\", \"lives\"], \"labels\": [\"B-PER\", \"O\"]}}"
        ) from None
    tokens = record.get("tokens") if isinstance(record, dict) else None
    if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens):
        raise UsageError(
            f"{path}, line {line_number}: needs \"tokens\", a list of non-empty strings; fix the "
            f"line")
    return record, tokens


def read_jsonl(path, split="train", require_labels=True):
    """Reads JSON lines with "tokens", "labels" and optionally "text" and "id".

    Without "text", the text is the tokens joined by a space (nothing between the characters of a
    character-level file). A test file may leave "labels" out.

    Raises:
      UsageError: bad JSON, missing tokens or labels, or as many labels as tokens not given.
    """
    records = []
    for line_number, line in _utf8_lines(path):
        if line.strip():
            records.append((line_number,) + _jsonl_record(path, line_number, line))
    has_labels = [isinstance(record.get("labels"), list) for _, record, _ in records]
    labelled = require_labels or any(has_labels)
    character_level = is_character_level(
        [tokens for _, record, tokens in records if not isinstance(record.get("text"), str)])
    sentences = []
    for index, (line_number, record, tokens) in enumerate(records):
        labels = record.get("labels") if labelled else None
        if labelled:
            if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
                raise UsageError(f"{path}, line {line_number}: needs \"labels\", a list of strings "
                                 f"(one per token); fix the line")
            if len(labels) != len(tokens):
                raise UsageError(
                    f"{path}, line {line_number}: {len(tokens)} tokens but {len(labels)} labels; "
                    f"give exactly one label per token")
        text = record.get("text")
        if isinstance(text, str):
            offsets = locate_tokens(tokens, text, path, line_number)
        else:
            text, offsets = join_tokens(tokens, "" if character_level else " ")
        guid = str(record["id"]) if record.get("id") is not None else f"{split}-{index}"
        sentences.append(Sentence(guid=guid, tokens=list(tokens),
                                  labels=list(labels) if labelled else None, text=text,
                                  offsets=offsets, path=path,
                                  line_numbers=[line_number] * len(tokens)))
    return sentences


def find_split_file(data_dir, split, data_format="auto"):
    """Returns the path of a split's file in data_dir (train.txt, dev.txt, test.jsonl, ...).

    Raises:
      UsageError: no such file.
    """
    formats = ("conll", "jsonl") if data_format == "auto" else (data_format,)
    candidates = [os.path.join(data_dir, f"{name}.{ext}") for name in _SPLIT_NAMES[split]
                  for fmt in formats for ext in _EXTENSIONS[fmt]]
    for path in candidates:
        if tf.io.gfile.exists(path):
            return path
    raise UsageError(f"no {split} file in {data_dir}: expected one of "
                     f"{', '.join(os.path.basename(p) for p in candidates)}")


def read_split(data_dir, split, data_format="auto"):
    """Reads train/dev/test sentences from data_dir in CoNLL or JSON-lines form.

    Args:
      data_dir: directory of the split files.
      split: "train", "dev" or "test" (test files may have no labels).
      data_format: "auto" (by file extension), "conll" or "jsonl".

    Returns:
      (path, list of Sentence).
    """
    path = find_split_file(data_dir, split, data_format)
    is_jsonl = path.endswith((".jsonl", ".json")) if data_format == "auto" \
        else data_format == "jsonl"
    reader = read_jsonl if is_jsonl else read_conll
    sentences = reader(path, split=split, require_labels=split != "test")
    if not any(s.tokens for s in sentences):
        raise UsageError(f"{path} holds no sentences; fill it or point --data_dir at the right "
                         f"directory")
    return path, sentences


# ------------------------------------------------------------------------------------------------
# Label schemes
# ------------------------------------------------------------------------------------------------


def split_label(label):
    """Returns (role, type) of a label: ("O", "") or e.g. ("B", "PER"); None if malformed.

    The role is B, I, E or S (M-, L-, U- spell I-, E-, S-); the type is what follows the first "-".
    """
    if label == OUTSIDE:
        return OUTSIDE, ""
    prefix, dash, entity_type = label.partition("-")
    if not dash or not entity_type or prefix not in _ROLES:
        return None
    return _ROLES[prefix], entity_type


def _parse_or_error(label, sentence, index):
    parsed = split_label(label)
    if parsed is None:
        raise UsageError(
            f"{sentence.path}, line {sentence.line_numbers[index]}: label {label!r} is not O or "
            f"<prefix>-<TYPE> with a prefix B, I, E or S (e.g. B-PER); fix the label")
    return parsed


def detect_scheme(sentences):
    """Guesses the label scheme of labelled sentences.

    Returns:
      "bioes" if any E-/S- (or L-/U-/M-) label occurs; "iob1" if some entity starts with I- and
      every B- directly follows an entity of its own type (the CoNLL-2003 original); else "bio".
    """
    starts_with_i = False
    b_after_other = False
    for sentence in sentences:
        previous = (OUTSIDE, "")
        for index, label in enumerate(sentence.labels or []):
            role, entity_type = _parse_or_error(label, sentence, index)
            if role in ("E", "S") or label.startswith("M-"):
                return "bioes"
            continues = previous[0] in ("B", "I") and previous[1] == entity_type
            if role == "I" and not continues:
                starts_with_i = True
            if role == "B" and not continues:
                b_after_other = True
            previous = (role, entity_type)
    return "iob1" if starts_with_i and not b_after_other else "bio"


def is_allowed(previous, label, scheme):
    """Whether `label` may follow `previous` (None at the start of a sentence) in `scheme`."""
    role, entity_type = split_label(label)
    previous_role, previous_type = split_label(previous) if previous else (OUTSIDE, "")
    inside = previous_role in ("B", "I")
    same = inside and previous_type == entity_type
    if scheme == "bio":
        return role != "I" or same
    if scheme == "iob1":
        return role != "B" or same
    # BIOES: an open B-/I- must continue with I-/E- of its type; otherwise no I-/E- may come.
    if inside:
        return same and role in ("I", "E")
    return role in (OUTSIDE, "B", "S")


def is_allowed_end(label, scheme):
    """Whether a sentence may end with `label` (BIOES entities must be closed by E- or S-)."""
    return scheme != "bioes" or split_label(label)[0] not in ("B", "I")


def _violation_message(previous, label, scheme):
    what = f"follows {previous!r}" if previous else "starts the sentence"
    role, entity_type = split_label(label)
    if scheme == "bio":
        return (f"{label!r} {what}, but in BIO an I- tag continues an entity (B-{entity_type} or "
                f"I-{entity_type} before it); fix the label, or pass --label_scheme=iob1 if the "
                f"file is IOB1")
    if scheme == "iob1":
        return (f"{label!r} {what}, but in IOB1 B- only starts an entity right after another "
                f"{entity_type} entity; fix the label, or pass --label_scheme=bio if the file is "
                f"BIO")
    if previous and split_label(previous)[0] in ("B", "I"):
        return (f"{label!r} {what}, but in BIOES an entity begun by {previous!r} continues with "
                f"I-/E-{split_label(previous)[1]}; fix the labels")
    return (f"{label!r} {what}, but in BIOES an entity starts with B- or S-; fix the label, or "
            f"pass --label_scheme if the file uses another scheme")


def validate_sentences(sentences, scheme, label_list=None, label_source="the label list"):
    """Checks every label of labelled sentences: its form, its list and the scheme's order.

    Raises:
      UsageError: naming the file, line and fix of the first bad label.
    """
    known = set(label_list) if label_list is not None else None
    for sentence in sentences:
        if sentence.labels is None:
            continue
        previous = None
        for index, label in enumerate(sentence.labels):
            _parse_or_error(label, sentence, index)
            where = f"{sentence.path}, line {sentence.line_numbers[index]}"
            if known is not None and label not in known:
                raise UsageError(
                    f"{where}: label {label!r} is not in {label_source} {sorted(known)}; fix the "
                    f"line or add the label to --labels")
            if not is_allowed(previous, label, scheme):
                raise UsageError(f"{where}: {_violation_message(previous, label, scheme)}")
            previous = label
        if previous is not None and not is_allowed_end(previous, scheme):
            raise UsageError(
                f"{sentence.path}, line {sentence.line_numbers[-1]}: the sentence ends inside an "
                f"entity ({previous!r}); in BIOES an entity ends with E- or S-")


def build_label_list(sentences, scheme):
    """The label list in id order: "O", then per entity type (sorted) every role of the scheme.

    Roles a file never uses are added (e.g. I-X for a type whose entities are all one word), with
    the prefix letters the file uses (M- rather than I- in a BMES file).
    """
    letters = {}
    types = set()
    for sentence in sentences:
        for index, label in enumerate(sentence.labels or []):
            role, entity_type = _parse_or_error(label, sentence, index)
            if role != OUTSIDE:
                types.add(entity_type)
                letters.setdefault(role, label.partition("-")[0])
    labels = [OUTSIDE]
    for entity_type in sorted(types):
        labels += [f"{letters.get(role, role)}-{entity_type}" for role in _SCHEME_ROLES[scheme]]
    return labels


def check_label_list(label_list, scheme):
    """Validates a user-given label list.

    Raises:
      UsageError: a duplicate, a malformed label, or no "O".
    """
    duplicates = sorted({x for x in label_list if label_list.count(x) > 1})
    if duplicates:
        raise UsageError(f"--labels names {duplicates} more than once; list each label once")
    bad = [x for x in label_list if split_label(x) is None]
    if bad:
        raise UsageError(f"--labels: {bad} are not O or <prefix>-<TYPE> (prefix B, I, E or S)")
    if OUTSIDE not in label_list:
        raise UsageError("--labels must contain O (the label of tokens outside every entity)")
    if scheme != "bioes" and any(split_label(x)[0] in ("E", "S") for x in label_list):
        raise UsageError(f"--labels has E-/S- labels but the scheme is {scheme}; pass "
                         f"--label_scheme=bioes")


def entity_types(label_list):
    """Sorted entity types of a label list."""
    return sorted({split_label(x)[1] for x in label_list if x != OUTSIDE})


def scheme_constraints(label_list, scheme):
    """The scheme's allowed transitions as additive CRF scores (0 allowed, crf.DISALLOWED not).

    Returns:
      crf.TransitionScores of float32 numpy arrays: transitions [L, L], start [L], end [L].
    """
    num_labels = len(label_list)

    def score(allowed):
        return 0.0 if allowed else crf.DISALLOWED

    transitions = np.array([[score(is_allowed(a, b, scheme)) for b in label_list]
                            for a in label_list], np.float32).reshape([num_labels, num_labels])
    start = np.array([score(is_allowed(None, b, scheme)) for b in label_list], np.float32)
    end = np.array([score(is_allowed_end(b, scheme)) for b in label_list], np.float32)
    return crf.TransitionScores(transitions, start, end)


def is_valid_sequence(labels, scheme):
    """Whether a whole tag sequence is valid in the scheme."""
    previous = None
    for label in labels:
        if not is_allowed(previous, label, scheme):
            return False
        previous = label
    return previous is None or is_allowed_end(previous, scheme)


# ------------------------------------------------------------------------------------------------
# Entity metrics with conlleval semantics
# ------------------------------------------------------------------------------------------------


def _chunk_ends(previous_role, role, previous_type, entity_type):
    """conlleval's endOfChunk, with the E-/S- cases of BIOES (a chunk ends after E- and S-)."""
    if previous_role in ("E", "S"):
        return True
    if previous_role in ("B", "I") and role in (OUTSIDE, "B", "S"):
        return True
    return previous_role != OUTSIDE and previous_type != entity_type


def _chunk_starts(previous_role, role, previous_type, entity_type):
    """conlleval's startOfChunk, with the E-/S- cases of BIOES."""
    if role in ("B", "S"):
        return True
    if role in ("I", "E") and previous_role in (OUTSIDE, "E", "S"):
        return True
    return role != OUTSIDE and previous_type != entity_type


def extract_entities(labels):
    """Entities of a tag sequence as conlleval reads them (an I- after O starts an entity).

    Args:
      labels: list of label strings of one sentence.

    Returns:
      list of (type, start, end) with `end` exclusive, in order.
    """
    entities = []
    start = None
    previous_role, previous_type = OUTSIDE, ""
    # A final O closes an entity that runs to the end (conlleval treats the sentence break as O).
    for index, label in enumerate(list(labels) + [OUTSIDE]):
        role, entity_type = split_label(label) or (OUTSIDE, "")
        if start is not None and _chunk_ends(previous_role, role, previous_type, entity_type):
            entities.append((previous_type, start, index))
            start = None
        if _chunk_starts(previous_role, role, previous_type, entity_type):
            start = index
        previous_role, previous_type = role, entity_type
    return entities


@dataclasses.dataclass
class EntityCounts:
    """Counts behind the conlleval numbers."""

    tokens: int = 0
    correct_tokens: int = 0
    gold: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    predicted: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    correct: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    def add(self, gold_labels, predicted_labels):
        """Adds one sentence (gold and predicted labels of the same length)."""
        if len(gold_labels) != len(predicted_labels):
            raise ValueError(f"{len(gold_labels)} gold labels but {len(predicted_labels)} "
                             f"predicted ones")
        self.tokens += len(gold_labels)
        self.correct_tokens += sum(g == p for g, p in zip(gold_labels, predicted_labels))
        gold = extract_entities(gold_labels)
        predicted = extract_entities(predicted_labels)
        self.gold.update(t for t, _, _ in gold)
        self.predicted.update(t for t, _, _ in predicted)
        self.correct.update(t for t, _, _ in set(gold) & set(predicted))


def _prf(correct, predicted, gold):
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def count_entities(gold_sequences, predicted_sequences):
    """EntityCounts over sentences (lists of label lists)."""
    counts = EntityCounts()
    for gold, predicted in zip(gold_sequences, predicted_sequences):
        counts.add(gold, predicted)
    return counts


def metric_key(entity_type, metric):
    """eval_results.txt key of a per-type metric, e.g. eval_PER_f1 (whitespace becomes _)."""
    return "eval_%s_%s" % (re.sub(r"\s+", "_", entity_type), metric)


def entity_metrics(counts, types=None):
    """eval_results.txt metrics of EntityCounts (fractions, not percentages).

    Args:
      counts: EntityCounts.
      types: entity types to report (default: every type seen in gold or predictions).

    Returns:
      dict: eval_precision, eval_recall, eval_f1 (micro over entities), eval_accuracy (tokens) and
      eval_<TYPE>_precision / _recall / _f1 per type.
    """
    precision, recall, f1 = _prf(sum(counts.correct.values()), sum(counts.predicted.values()),
                                 sum(counts.gold.values()))
    result = {"eval_precision": precision, "eval_recall": recall, "eval_f1": f1,
              "eval_accuracy": counts.correct_tokens / counts.tokens if counts.tokens else 0.0}
    if types is None:
        types = sorted(set(counts.gold) | set(counts.predicted))
    for entity_type in types:
        values = _prf(counts.correct[entity_type], counts.predicted[entity_type],
                      counts.gold[entity_type])
        for name, value in zip(("precision", "recall", "f1"), values):
            result[metric_key(entity_type, name)] = value
    return result


def conlleval_report(counts):
    """The text conlleval prints for the same counts (percentages, per-type lines)."""
    found_gold = sum(counts.gold.values())
    found_predicted = sum(counts.predicted.values())
    correct = sum(counts.correct.values())
    lines = [f"processed {counts.tokens} tokens with {found_gold} phrases; found: "
             f"{found_predicted} phrases; correct: {correct}."]
    precision, recall, f1 = _prf(correct, found_predicted, found_gold)
    if counts.tokens:
        accuracy = 100.0 * counts.correct_tokens / counts.tokens
        lines.append(f"accuracy: {accuracy:6.2f}%; precision: {100 * precision:6.2f}%; "
                     f"recall: {100 * recall:6.2f}%; FB1: {100 * f1:6.2f}")
    for entity_type in sorted(set(counts.correct) | set(counts.predicted)):
        precision, recall, f1 = _prf(counts.correct[entity_type], counts.predicted[entity_type],
                                     counts.gold[entity_type])
        lines.append(f"{entity_type:>17}: precision: {100 * precision:6.2f}%; recall: "
                     f"{100 * recall:6.2f}%; FB1: {100 * f1:6.2f}  "
                     f"{counts.predicted[entity_type]}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------
# WordPieces and windows
# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Window:
    """The words of one sentence that one model input holds.

    Attributes:
      sentence_index: index of the sentence in its split.
      word_start: first word of the sentence in this window.
      num_words: number of words in the window.
      owned: per word of the window, whether this window's prediction is the one kept (each word
        is owned by exactly one window: the one where it has the most context on both sides).
      word_base: index of word `word_start` in the split's flat word numbering (see `word_bases`).
    """

    sentence_index: int
    word_start: int
    num_words: int
    owned: List[bool]
    word_base: int


def word_pieces(tokens, tokenizer, max_pieces_per_word):
    """WordPieces of each word; a word that yields none becomes [UNK], a long one is cut.

    Only the first piece of a word is used for its label, so cutting a word to fit a window (one
    of several hundred pieces, in practice a URL or garbage) loses nothing the model predicts.
    """
    pieces = []
    for token in tokens:
        word = tokenizer.tokenize(token) or ["[UNK]"]
        pieces.append(word[:max_pieces_per_word])
    return pieces


def plan_windows(piece_counts, capacity, stride):
    """Splits a sentence into overlapping windows of whole words.

    Args:
      piece_counts: WordPieces per word (each <= capacity).
      capacity: pieces one window holds (max_seq_length - 2 for [CLS] and [SEP]).
      stride: pieces between the starts of consecutive windows (as SQuAD's doc_stride); a window
        always starts at a word, at most where the previous one ended, so no word is skipped.

    Returns:
      list of (word_start, word_end, owned) with word_end exclusive and `owned` a list of bools.
    """
    num_words = len(piece_counts)
    cumulative = np.concatenate([[0], np.cumsum(piece_counts)]).astype(int)
    ranges = []
    start = 0
    while start < num_words:
        end = start + 1
        while end < num_words and cumulative[end + 1] - cumulative[start] <= capacity:
            end += 1
        ranges.append((start, end))
        if end == num_words:
            break
        next_start = start + 1
        while next_start < end and cumulative[next_start] - cumulative[start] < stride:
            next_start += 1
        start = next_start
    # Each word goes to the window where min(context on the left, on the right) is largest, as
    # SQuAD's max-context rule; ties go to the earlier window.
    best = np.full([num_words], -1.0)
    owner = np.zeros([num_words], int)
    for window_index, (start, end) in enumerate(ranges):
        for word in range(start, end):
            left = cumulative[word] - cumulative[start]
            right = cumulative[end] - cumulative[word + 1]
            score = min(left, right) + 0.01 * (cumulative[end] - cumulative[start])
            if score > best[word]:
                best[word], owner[word] = score, window_index
    return [(start, end, [bool(owner[w] == i) for w in range(start, end)])
            for i, (start, end) in enumerate(ranges)]


def word_bases(sentences):
    """Flat index of each sentence's first word, leaving one unused index between sentences.

    The gap marks sentence breaks in the flat numbering the evaluation metric collects words by.
    """
    bases, position = [], 0
    for sentence in sentences:
        bases.append(position)
        position += len(sentence.tokens) + 1
    return bases


def _window_features(pieces, label_ids, window, tokenizer, max_seq_length):
    """Model inputs of one window: a dict of int lists (see `name_to_features`)."""
    tokens, first_piece, owned = ["[CLS]"], [0], [0]
    labels = [0]
    for offset in range(window.num_words):
        word = window.word_start + offset
        for piece_index, piece in enumerate(pieces[word]):
            tokens.append(piece)
            first_piece.append(int(piece_index == 0))
            owned.append(int(piece_index == 0 and window.owned[offset]))
            labels.append(label_ids[word] if piece_index == 0 else 0)
    tokens.append("[SEP]")
    first_piece.append(0)
    owned.append(0)
    labels.append(0)
    padding = max_seq_length - len(tokens)
    if padding < 0:
        raise AssertionError("window longer than max_seq_length")
    input_ids = tokenizer.convert_tokens_to_ids(tokens)
    return {
        "input_ids": input_ids + [0] * padding,
        "input_mask": [1] * len(tokens) + [0] * padding,
        "segment_ids": [0] * max_seq_length,
        "label_ids": labels + [0] * padding,
        "label_mask": first_piece + [0] * padding,
        "owned_mask": owned + [0] * padding,
        "word_base": [window.word_base],
        "is_real_example": [1],
    }, tokens


def convert_sentences(sentences, label_list, max_seq_length, tokenizer, doc_stride=None,
                      name="features"):
    """Converts sentences into windows and their model inputs.

    Args:
      sentences: list of Sentence (labels may be None: label ids are then 0).
      label_list: labels in id order.
      max_seq_length: model input length (>= 3).
      tokenizer: tokenization.FullTokenizer.
      doc_stride: pieces between window starts; None = half a window.
      name: what the progress log calls this conversion.

    Returns:
      (windows, features): a Window and a feature dict per model input, in the same order.
    """
    capacity = max_seq_length - 2
    stride = doc_stride or max(1, capacity // 2)
    label_map = {label: i for i, label in enumerate(label_list)}
    bases = word_bases(sentences)
    windows, features = [], []
    progress = ProgressLogger(total=len(sentences), unit="sentences", name=name)
    for sentence_index, sentence in enumerate(sentences):
        pieces = word_pieces(sentence.tokens, tokenizer, capacity)
        label_ids = [label_map[x] for x in sentence.labels] if sentence.labels \
            else [0] * len(pieces)
        for start, end, owned in plan_windows([len(p) for p in pieces], capacity, stride):
            window = Window(sentence_index, start, end - start, owned,
                            bases[sentence_index] + start)
            feature, tokens = _window_features(pieces, label_ids, window, tokenizer,
                                               max_seq_length)
            if len(features) < 3:
                tf1.logging.info("*** Example %s (words %d-%d) ***", sentence.guid, start, end - 1)
                tf1.logging.info("tokens: %s", " ".join(tokenization.printable_text(t)
                                                         for t in tokens))
                tf1.logging.info("label_ids: %s", " ".join(
                    str(x) for x in feature["label_ids"][:len(tokens)]))
            windows.append(window)
            features.append(feature)
        progress.update()
    progress.done()
    if len(windows) > sum(1 for s in sentences if s.tokens):
        tf1.logging.info("%s: %d sentences longer than %d WordPieces became %d windows", name,
                         len({w.sentence_index for w in windows if w.word_start > 0}),
                         capacity, len(windows))
    return windows, features


def padding_features(max_seq_length):
    """A feature dict of zeros marked not real (pads a TPU's last batch; ignored by metrics)."""
    feature = {name: [0] * max_seq_length for name in
               ("input_ids", "input_mask", "segment_ids", "label_ids", "label_mask",
                "owned_mask")}
    feature.update({"word_base": [0], "is_real_example": [0]})
    return feature


def name_to_features(max_seq_length):
    """The TFRecord schema of the NER inputs."""
    per_position = ("input_ids", "input_mask", "segment_ids", "label_ids", "label_mask",
                    "owned_mask")
    schema = {name: tf.io.FixedLenFeature([max_seq_length], tf.int64) for name in per_position}
    schema["word_base"] = tf.io.FixedLenFeature([], tf.int64)
    schema["is_real_example"] = tf.io.FixedLenFeature([], tf.int64)
    return schema


def write_tf_record(features, output_file):
    """Writes feature dicts to a TFRecord file (atomically)."""
    progress = ProgressLogger(total=len(features), unit="windows",
                              name=f"Writing {os.path.basename(output_file)}")
    with atomic_output(output_file) as tmp_path:
        with tf.io.TFRecordWriter(tmp_path) as writer:
            for feature in features:
                example = tf.train.Example(features=tf.train.Features(feature={
                    name: tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))
                    for name, values in feature.items()}))
                writer.write(example.SerializeToString())
                progress.update()
    progress.done()


def input_fn_builder(input_file, max_seq_length, is_training, drop_remainder):
    """An Estimator input_fn reading a TFRecord file written by write_tf_record."""
    return training.tfrecord_input_fn(input_file, name_to_features(max_seq_length), is_training,
                                      drop_remainder)


# ------------------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------------------

# The decoding settings travel with the checkpoint (non-trainable variables under `ner/`, next to
# `crf/`), so that an export or an evaluation decodes exactly as training did without being told
# the scheme, whether a CRF was used, or which WordPieces start a word.
DECODING_SCOPE = "ner"

DecodingSettings = collections.namedtuple(
    "DecodingSettings", ["scores", "uses_crf", "word_start_table"])
DecodingSettings.__doc__ = """The model's decoding settings, as tensors.

Fields:
  scores: crf.TransitionScores, the CRF scores (zeros without a CRF) plus the scheme constraints.
  uses_crf: float32 scalar, 1.0 when the logits are CRF emissions, 0.0 for the softmax head.
  word_start_table: int32 [vocab_size], 1 for the ids that begin a word (not "##" pieces, not
    [CLS]/[SEP]/[PAD]/[MASK]); used when the input has no label_mask (serving raw text).
"""

NerOutputs = collections.namedtuple("NerOutputs", [
    "loss", "per_example_loss", "logits", "scores", "word_scores", "num_words", "word_order",
    "word_label_ids", "label_predictions", "decoding"])
NerOutputs.__doc__ = """What create_model builds.

Fields:
  loss: float32 scalar.
  per_example_loss: float32 [B] (softmax: mean over the window's words; CRF: -log-likelihood).
  logits: float [B, S, L], per WordPiece position.
  scores: float32 [B, S, L], what the decoder reads per position: the logits (CRF emissions) or
    their log-softmax (softmax head).
  word_scores: float32 [B, S, L], `scores` of the words' first pieces moved to the front (row b
    holds num_words[b] words; the rest is filler).
  num_words: int32 [B].
  word_order: int32 [B, S], the positions gathered into word_scores.
  word_label_ids: int32 [B, S], the best scheme-valid tag sequence of each window's words.
  label_predictions: int32 [B, S], word_label_ids put back at each word's first piece, -1 at
    every other position.
  decoding: DecodingSettings.
"""

_NOT_WORD_STARTS = ("[CLS]", "[SEP]", "[PAD]", "[MASK]")


def word_start_table(vocab, vocab_size):
    """1 for each id that begins a word, 0 for "##" pieces and special tokens (int32 [V])."""
    table = np.zeros([vocab_size], np.int32)
    for token, index in vocab.items():
        if index < vocab_size and not token.startswith("##") and token not in _NOT_WORD_STARTS:
            table[index] = 1
    return table


def _constant_or_zeros(values, shape, dtype):
    if values is None:
        return tf1.zeros_initializer()
    return tf1.constant_initializer(np.asarray(values, dtype.as_numpy_dtype).reshape(shape))


def decoding_settings(num_labels, vocab_size, use_crf=None, constraints=None, word_starts=None):
    """Creates the `crf/` and `ner/` variables that decoding reads.

    When training, pass the settings: they become the initial values (and the CRF scores are
    trainable if use_crf). For inference pass nothing: the values come from the checkpoint.

    Args:
      num_labels: L.
      vocab_size: V.
      use_crf: True / False when training; None to read it from the checkpoint.
      constraints: crf.TransitionScores (numpy) of the scheme, or None (none / from checkpoint).
      word_starts: int array [V] from word_start_table, or None (from the checkpoint).

    Returns:
      DecodingSettings.
    """
    if use_crf:
        trained = crf.create_transition_scores(num_labels)
    else:
        # Untrained zeros without a CRF: every NER checkpoint has the same variables.
        with tf1.variable_scope("crf"):
            trained = crf.TransitionScores(*[
                tf1.get_variable(name, shape, initializer=tf1.zeros_initializer(),
                                 trainable=False)
                for name, shape in (("transitions", [num_labels, num_labels]),
                                    ("start_transitions", [num_labels]),
                                    ("end_transitions", [num_labels]))])
    fixed = constraints if constraints is not None else (None, None, None)
    with tf1.variable_scope(DECODING_SCOPE):
        constraint_vars = crf.TransitionScores(*[
            tf1.get_variable(name, shape, initializer=_constant_or_zeros(values, shape, tf.float32),
                             trainable=False)
            for name, shape, values in (
                ("transition_constraints", [num_labels, num_labels], fixed[0]),
                ("start_constraints", [num_labels], fixed[1]),
                ("end_constraints", [num_labels], fixed[2]))])
        uses_crf = tf1.get_variable(
            "uses_crf", [], initializer=_constant_or_zeros(
                None if use_crf is None else float(bool(use_crf)), [], tf.float32),
            trainable=False)
        table = tf1.get_variable("word_start_table", [vocab_size], dtype=tf.int32,
                                 initializer=_constant_or_zeros(word_starts, [vocab_size],
                                                                tf.int32),
                                 trainable=False)
    scores = crf.TransitionScores(*[tf.cast(a, tf.float32) + b
                                    for a, b in zip(trained, constraint_vars)])
    return DecodingSettings(scores, uses_crf, table)


def gather_words(values, label_mask):
    """Moves the values at first-piece positions to the front of each row, in order.

    Args:
      values: Tensor [B, S, ...].
      label_mask: int Tensor [B, S], 1 at each word's first piece.

    Returns:
      (gathered [B, S, ...], order int32 [B, S], num_words int32 [B]).
    """
    is_word = tf.cast(label_mask, tf.int32)
    # A stable sort on "not a first piece" keeps the words in order and moves them to the front.
    order = tf.argsort(1 - is_word, axis=1, stable=True)  # [B, S]
    return tf.gather(values, order, batch_dims=1), order, tf.reduce_sum(is_word, axis=1)


def scatter_words(word_values, order, label_mask, fill):
    """Inverse of gather_words for [B, S] values: back to positions, `fill` where not a word."""
    inverse = tf.argsort(order, axis=1)  # [B, S]
    values = tf.gather(word_values, inverse, batch_dims=1)
    return tf.where(tf.cast(label_mask, tf.bool), values, tf.fill(tf.shape(values), fill))


def _token_head(sequence_output, num_labels, is_training):
    """The dense layer over every position: [B, S, H] -> logits [B, S, L]."""
    hidden_size = modeling.get_shape_list(sequence_output, expected_rank=3)[2]
    # Root-scope names, as the reference's classifier head, for interchangeable checkpoints.
    output_weights = tf1.get_variable(
        "output_weights", [num_labels, hidden_size],
        initializer=tf1.truncated_normal_initializer(stddev=0.02))
    output_bias = tf1.get_variable("output_bias", [num_labels], initializer=tf1.zeros_initializer())
    if is_training:
        sequence_output = tf.nn.dropout(sequence_output, rate=0.1)
    logits = tf.einsum("bsh,lh->bsl", sequence_output, output_weights)
    return tf.nn.bias_add(logits, output_bias)  # [B, S, L]


def _loss(logits, word_logits, word_labels, num_words, label_ids, label_mask, use_crf, scores):
    """(loss, per_example_loss [B]): CRF negative log-likelihood or first-piece cross-entropy."""
    if use_crf:
        per_example_loss = -crf.log_likelihood(word_logits, word_labels, num_words, scores)
        return tf.reduce_mean(per_example_loss), per_example_loss
    mask = tf.cast(label_mask, tf.float32)
    token_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=label_ids, logits=tf.cast(logits, tf.float32))  # [B, S]
    per_example_loss = (tf.reduce_sum(token_loss * mask, axis=1)
                        / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0))
    # Every word of the batch weighs the same, whatever the length of its sentence.
    loss = tf.reduce_sum(token_loss * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)
    return loss, per_example_loss


def create_model(bert_config, is_training, input_ids, input_mask, segment_ids, label_ids,
                 label_mask, num_labels, use_one_hot_embeddings, use_crf=False, constraints=None,
                 word_starts=None):
    """Creates the tagger: BERT, a token-level layer and optionally a CRF.

    Args:
      bert_config: modeling.BertConfig.
      is_training: bool, enables dropout.
      input_ids, input_mask, segment_ids: int32 Tensors [B, S].
      label_ids: int32 Tensor [B, S], gold label at first pieces (anything elsewhere).
      label_mask: int32 Tensor [B, S], 1 at each word's first piece; None to take every word-start
        WordPiece (see word_start_table), as for raw text split by `sentence_from_text`.
      num_labels: L.
      use_one_hot_embeddings: one-hot embedding lookup (TPU).
      use_crf: a linear-chain CRF output layer instead of per-token softmax; None for inference
        (the setting and everything decoding needs are restored from the checkpoint).
      constraints: optional crf.TransitionScores (numpy) of the scheme's forbidden transitions;
        decoding never produces them (and the CRF never scores them).
      word_starts: int array [vocab_size] from word_start_table (stored with the model).

    Returns:
      NerOutputs.
    """
    model = modeling.BertModel(config=bert_config, is_training=is_training, input_ids=input_ids,
                               input_mask=input_mask, token_type_ids=segment_ids,
                               use_one_hot_embeddings=use_one_hot_embeddings)
    logits = _token_head(model.get_sequence_output(), num_labels, is_training)
    decoding = decoding_settings(num_labels, bert_config.vocab_size, use_crf, constraints,
                                 word_starts)
    if label_mask is None:
        label_mask = tf.gather(decoding.word_start_table, input_ids) * tf.cast(input_mask, tf.int32)
    float_logits = tf.cast(logits, tf.float32)
    # Decoding reads CRF emissions as they are and the softmax head's log-probabilities.
    scores = (decoding.uses_crf * float_logits
              + (1.0 - decoding.uses_crf) * tf.nn.log_softmax(float_logits, axis=-1))
    word_scores, order, num_words = gather_words(scores, label_mask)
    word_labels = tf.gather(label_ids, order, batch_dims=1)  # [B, S]
    loss, per_example_loss = _loss(logits, gather_words(float_logits, label_mask)[0],
                                   word_labels, num_words, label_ids, label_mask, use_crf,
                                   decoding.scores)
    decoded, _ = crf.viterbi_decode(word_scores, num_words, decoding.scores)
    predictions = scatter_words(decoded, order, label_mask, -1)
    return NerOutputs(loss, per_example_loss, logits, scores, word_scores, num_words, order,
                      decoded, predictions, decoding)


# ------------------------------------------------------------------------------------------------
# Decoding merged windows and the entity metric
# ------------------------------------------------------------------------------------------------


def decode(word_scores, scores):
    """Best scheme-valid label ids of one sentence from its merged word scores.

    Args:
      word_scores: float array [num_words, L]: CRF emissions or log-probabilities (the model's
        `scores` output).
      scores: crf.TransitionScores (numpy): the CRF's scores plus the scheme's constraints.

    Returns:
      list of label ids.
    """
    return crf.viterbi_decode_numpy(word_scores, scores)[0]


def _decoded_counts(word_index, word_scores, gold_ids, scores, label_list):
    """EntityCounts of words collected across windows, numbered as by `word_bases`."""
    order = np.argsort(word_index, kind="stable")
    word_index, word_scores, gold_ids = word_index[order], word_scores[order], gold_ids[order]
    # A jump in the numbering is a sentence break (word_bases leaves one index between sentences).
    breaks = np.flatnonzero(np.diff(word_index) != 1) + 1
    counts = EntityCounts()
    for sentence_scores, gold in zip(np.split(word_scores, breaks), np.split(gold_ids, breaks)):
        if len(gold):
            predicted = decode(sentence_scores, scores)
            counts.add([label_list[i] for i in gold], [label_list[i] for i in predicted])
    return counts


def metric_fn_builder(label_list):
    """Returns metric_fn(...) for eval_metrics: the conlleval metrics of the merged sentences.

    The update op collects each owned word's flat index, scores and gold label; the value op
    decodes every sentence on the host, as prediction does, and counts entities. Keys:
    eval_precision, eval_recall, eval_f1, eval_accuracy, eval_<TYPE>_{precision,recall,f1}
    and eval_loss.
    """
    types = entity_types(label_list)
    keys = sorted(entity_metrics(EntityCounts(), types))

    def compute(word_index, word_scores, gold_ids, transition_scores):
        scores = unpack_transition_scores(transition_scores[0])
        counts = _decoded_counts(word_index, word_scores, gold_ids, scores, label_list)
        result = entity_metrics(counts, types)
        return np.array([result[key] for key in keys], np.float32)

    def metric_fn(per_example_loss, word_scores, word_labels, word_owned, word_base,
                  transition_scores, is_real_example):
        with tf1.variable_scope("entity_metrics"):
            owned = tf.cast(word_owned, tf.bool)  # [B, S]
            positions = tf.range(tf.shape(word_owned)[1])[tf.newaxis, :]
            index = tf.cast(word_base, tf.int32)[:, tf.newaxis] + positions  # [B, S]
            collected = [training.streaming_concat(name, tf.boolean_mask(values, owned))
                         for name, values in (("word_index", index), ("word_scores", word_scores),
                                              ("gold_ids", tf.cast(word_labels, tf.int32)))]
            # The value op runs after the last batch, when no input can be read any more: it may
            # only read variables, so the transition scores are kept in one as well.
            collected.append(training.streaming_last("transition_scores", transition_scores[:1]))
            update = tf.group(*[u for _, u in collected])
            values = tf1.py_func(compute, [v for v, _ in collected], tf.float32, stateful=True)
        metrics = {key: (values[i], update) for i, key in enumerate(keys)}
        metrics["eval_loss"] = tf1.metrics.mean(values=per_example_loss,
                                                weights=tf.cast(is_real_example, tf.float32))
        return metrics

    return metric_fn


def eval_metric_names(label_list):
    """Keys of eval_results.txt for this label list (with the Estimator's loss and global_step)."""
    return sorted(list(entity_metrics(EntityCounts(), entity_types(label_list)))
                  + ["eval_loss", "global_step", "loss"])


def pack_transition_scores(scores, batch_size):
    """TransitionScores -> float32 [B, L + 2, L]: transitions, then the start and end rows.

    One batch-major tensor, since TPU metric inputs and exported outputs need a batch dimension.
    """
    packed = tf.concat([scores.transitions, scores.start[tf.newaxis], scores.end[tf.newaxis]], 0)
    return tf.tile(packed[tf.newaxis], [batch_size, 1, 1])


def unpack_transition_scores(packed):
    """One row of pack_transition_scores ([L + 2, L], numpy) -> crf.TransitionScores."""
    packed = np.asarray(packed, np.float32)
    return crf.TransitionScores(packed[:-2], packed[-2], packed[-1])


def model_fn_builder(bert_config, label_list, init_checkpoint, learning_rate, num_train_steps,
                     num_warmup_steps, use_tpu, use_one_hot_embeddings, use_crf=False,
                     constraints=None, word_starts=None):
    """Returns the Estimator model_fn of the tagger (built by runtime.build_runner).

    Args:
      bert_config, init_checkpoint, learning_rate, num_train_steps, num_warmup_steps, use_tpu,
        use_one_hot_embeddings: as for the classifier.
      label_list: labels in id order.
      use_crf, constraints, word_starts: see create_model.

    Estimator.predict yields `label_ids` [S] (the label at each word's first piece, -1 elsewhere),
    `word_scores` [S, L], `num_words`, `word_owned` [S] and `word_base`, from which
    `merge_predictions` rebuilds the sentences.
    """
    num_labels = len(label_list)

    def model_fn(features, labels, mode, params):  # pylint: disable=unused-argument
        input_ids = features["input_ids"]
        label_mask = features["label_mask"]
        label_ids = features.get("label_ids", tf.zeros_like(input_ids))
        is_training = mode == tf.estimator.ModeKeys.TRAIN
        outputs = create_model(bert_config, is_training, input_ids, features["input_mask"],
                               features["segment_ids"], label_ids, label_mask, num_labels,
                               use_one_hot_embeddings, use_crf, constraints, word_starts)
        scaffold_fn = training.init_from_checkpoint(init_checkpoint, use_tpu)
        if mode == tf.estimator.ModeKeys.TRAIN:
            train_op = training.create_train_op(outputs.loss, params, learning_rate,
                                                num_train_steps, num_warmup_steps, use_tpu)
            return training.make_spec(mode, params, loss=outputs.loss, train_op=train_op,
                                      scaffold_fn=scaffold_fn)
        word_owned = tf.gather(features["owned_mask"], outputs.word_order, batch_dims=1)
        if mode == tf.estimator.ModeKeys.EVAL:
            tensors = {
                "per_example_loss": outputs.per_example_loss,
                "word_scores": outputs.word_scores,
                "word_labels": tf.gather(label_ids, outputs.word_order, batch_dims=1),
                "word_owned": word_owned, "word_base": features["word_base"],
                "transition_scores": pack_transition_scores(outputs.decoding.scores,
                                                            tf.shape(input_ids)[0]),
                "is_real_example": features["is_real_example"],
            }
            return training.make_spec(mode, params, loss=outputs.loss, scaffold_fn=scaffold_fn,
                                      eval_metrics=(metric_fn_builder(label_list), tensors))
        predictions = {"label_ids": outputs.label_predictions, "word_scores": outputs.word_scores,
                       "num_words": outputs.num_words, "word_owned": word_owned,
                       "word_base": features["word_base"]}
        return training.make_spec(mode, params, predictions=predictions, scaffold_fn=scaffold_fn)

    return model_fn


def read_decoding_settings(checkpoint):
    """The decoding settings stored in a NER checkpoint, as numpy.

    Returns:
      (crf.TransitionScores with the CRF scores plus the constraints, uses_crf as a bool).

    Raises:
      UsageError: the checkpoint is not one of run_ner.py.
    """
    reader = tf.train.load_checkpoint(checkpoint)
    names = ("crf/transitions", "crf/start_transitions", "crf/end_transitions",
             "ner/transition_constraints", "ner/start_constraints", "ner/end_constraints",
             "ner/uses_crf")
    missing = [name for name in names if not reader.has_tensor(name)]
    if missing:
        raise UsageError(f"checkpoint {checkpoint} has no {missing[0]}: it is not a model "
                         f"trained by run_ner.py; train one with --do_train first")
    values = [reader.get_tensor(name) for name in names]
    scores = crf.TransitionScores(*[np.asarray(a, np.float32) + np.asarray(b, np.float32)
                                    for a, b in zip(values[:3], values[3:6])])
    return scores, bool(values[6] > 0.5)


# ------------------------------------------------------------------------------------------------
# Inference head (exports, serving) and the predictor of raw text
# ------------------------------------------------------------------------------------------------


def _build_outputs(bert_config, inputs, num_labels):
    """The export graph: `label_ids` [B, S], `scores` [B, S, L], `transition_scores`
    [B, L + 2, L]; words are found from the ids (every WordPiece that is not "##..." starts one).
    """
    outputs = create_model(bert_config, False, inputs["input_ids"], inputs["input_mask"],
                           inputs["segment_ids"], tf.zeros_like(inputs["input_ids"]), None,
                           num_labels, use_one_hot_embeddings=False, use_crf=None)
    return {"label_ids": outputs.label_predictions, "scores": outputs.scores,
            "transition_scores": pack_transition_scores(outputs.decoding.scores,
                                                        tf.shape(inputs["input_ids"])[0])}


NER_HEAD = inference.register_head(inference.Head(
    name="ner", output_names=("label_ids", "scores", "transition_scores"), build=_build_outputs,
    predictor="tasks.ner:NerPredictor", int8_checked=("scores",), label_output="scores"))


class NerPredictor(inference.Predictor):
    """Finds entities in raw text with an export of run_ner.py, loading it only once.

        predictor = inference.load_predictor("/tmp/ner/export/saved_model")
        predictor.predict(["Ann Lee flew to Paris.", "王小明在北京工作。"])
        # [{"text": ..., "entities": [{"type": "PER", "start": 0, "end": 7, "text": "Ann Lee",
        #   "token_start": 0, "token_end": 2}, ...], "tokens": [...], "labels": [...]}, ...]

    Text is split into words as `sentence_from_text` does (whitespace, punctuation, CJK
    characters); a text longer than max_seq_length is tagged in overlapping windows merged back,
    then decoded as a whole (valid for the scheme, with the CRF's scores when it has one).
    """

    def predict(self, texts, doc_stride=None):
        """Tags texts; returns one dict per text (text, entities, tokens, labels)."""
        sentences = [sentence_from_text(text, f"text-{i}") for i, text in enumerate(texts)]
        windows, features = convert_sentences(sentences, self.labels, self.max_seq_length,
                                              self.tokenizer, doc_stride, name="Tagging")
        batch = {name: np.array([f[name] for f in features], np.int32).reshape(
            [len(features), self.max_seq_length]) for name in inference.INPUT_NAMES}
        outputs = self.run_features(batch) if features else {}
        predictions = []
        for i, feature in enumerate(features):
            firsts = np.flatnonzero(feature["label_mask"])
            predictions.append({"word_scores": outputs["scores"][i][firsts],
                                "num_words": len(firsts),
                                "word_owned": np.asarray(feature["owned_mask"])[firsts],
                                "word_base": windows[i].word_base})
        merged = merge_predictions(sentences, predictions, len(self.labels))
        scores = unpack_transition_scores(outputs["transition_scores"][0]) if features else None
        results = []
        for sentence, word_scores in zip(sentences, merged):
            labels = [self.labels[i] for i in decode(word_scores, scores)] if len(word_scores) \
                else []
            results.append({"text": sentence.text, "entities": entity_spans(sentence, labels),
                            "tokens": sentence.tokens, "labels": labels})
        return results


# ------------------------------------------------------------------------------------------------
# Predictions back onto sentences, and the output files
# ------------------------------------------------------------------------------------------------


def merge_predictions(sentences, predictions, num_labels):
    """Collects each word's scores from the window that owns it.

    Args:
      sentences: the split's sentences (the word numbering of `word_bases`).
      predictions: iterable of Estimator prediction dicts (word_scores, num_words, word_owned,
        word_base), padding examples already dropped.
      num_labels: L.

    Returns:
      list of float32 arrays [len(sentence.tokens), L], one per sentence.

    Raises:
      ValueError: a word was predicted by no window (a bug, never bad input).
    """
    bases = word_bases(sentences)
    total = bases[-1] + len(sentences[-1].tokens) + 1 if sentences else 0
    merged = np.zeros([total, num_labels], np.float32)
    seen = np.zeros([total], bool)
    for prediction in predictions:
        count = int(prediction["num_words"])
        owned = np.asarray(prediction["word_owned"][:count], bool)
        index = int(prediction["word_base"]) + np.flatnonzero(owned)
        merged[index] = np.asarray(prediction["word_scores"][:count])[owned]
        seen[index] = True
    result = []
    for base, sentence in zip(bases, sentences):
        span = slice(base, base + len(sentence.tokens))
        if not seen[span].all():
            raise ValueError(f"{sentence.guid}: {int((~seen[span]).sum())} words got no "
                             f"prediction")
        result.append(merged[span])
    return result


def entity_spans(sentence, labels):
    """Entities of a labelled sentence as dicts with character offsets into sentence.text."""
    spans = []
    for entity_type, start, end in extract_entities(labels):
        char_start, char_end = sentence.offsets[start][0], sentence.offsets[end - 1][1]
        spans.append({"type": entity_type, "start": char_start, "end": char_end,
                      "text": sentence.text[char_start:char_end], "token_start": start,
                      "token_end": end})
    return spans


def write_conll_predictions(path, sentences, predicted_labels):
    """Writes `token gold predicted` lines (`token predicted` without gold), a blank line between
    sentences."""
    with atomic_output(path) as tmp_path:
        with tf.io.gfile.GFile(tmp_path, "w") as writer:
            for sentence, predicted in zip(sentences, predicted_labels):
                for index, (token, label) in enumerate(zip(sentence.tokens, predicted)):
                    columns = [token] + ([sentence.labels[index]] if sentence.labels else [])
                    writer.write(" ".join(columns + [label]) + "\n")
                writer.write("\n")


def write_entity_jsonl(path, sentences, predicted_labels):
    """Writes one JSON object per sentence: id, text, predicted entities (and gold ones if known).

    Each entity has its type, `start`/`end` character offsets into `text` (end exclusive), its
    `text`, and `token_start`/`token_end` (token indexes, end exclusive).
    """
    with atomic_output(path) as tmp_path:
        with tf.io.gfile.GFile(tmp_path, "w") as writer:
            for sentence, predicted in zip(sentences, predicted_labels):
                record = {"id": sentence.guid, "text": sentence.text,
                          "entities": entity_spans(sentence, predicted)}
                if sentence.labels:
                    record["gold_entities"] = entity_spans(sentence, sentence.labels)
                writer.write(json.dumps(record, ensure_ascii=False) + "\n")


# ------------------------------------------------------------------------------------------------
# Raw text (for serving)
# ------------------------------------------------------------------------------------------------


def sentence_from_text(text, guid="text-0"):
    """Splits raw text into words with their character offsets, as the tagger sees words.

    Whitespace separates words; each punctuation mark and each CJK character is a word of its
    own (as BERT's basic tokenizer splits them); control characters are dropped.

    Returns:
      Sentence without labels, whose offsets point into `text` itself.
    """
    tokens, offsets = [], []
    start = None
    for position, char in enumerate(text):
        if tokenization._is_whitespace(char) or tokenization._is_control(char) or \
                char == "\ufffd" or ord(char) == 0:
            alone = False
            separator = True
        else:
            alone = tokenization._is_punctuation(char) or _is_cjk(char)
            separator = False
        if start is not None and (separator or alone):
            tokens.append(text[start:position])
            offsets.append((start, position))
            start = None
        if alone:
            tokens.append(char)
            offsets.append((position, position + 1))
        elif not separator and start is None:
            start = position
    if start is not None:
        tokens.append(text[start:])
        offsets.append((start, len(text)))
    return Sentence(guid=guid, tokens=tokens, labels=None, text=text, offsets=offsets)


# ------------------------------------------------------------------------------------------------
# The runner's steps, as functions of plain arguments
# ------------------------------------------------------------------------------------------------

LABELS_FILE = inference.LABELS_FILE


def read_splits(data_dir, splits, data_format="auto"):
    """Reads every split a run needs before any work, so a bad file fails within seconds.

    Returns:
      dict split -> list of Sentence.
    """
    return {split: read_split(data_dir, split, data_format)[1] for split in splits}


def resolve_labels(sentences, label_scheme="auto", labels=None, trained_labels=None):
    """Settles the scheme and the label list, and checks every labelled sentence against them.

    Args:
      sentences: dict split -> sentences (as read_splits returns).
      label_scheme: "auto" (detected from the training file, else the dev file) or a scheme.
      labels: comma-separated label list in id order, or None.
      trained_labels: labels.txt of the model being evaluated or used (None when training).

    Returns:
      (label_list, scheme).

    Raises:
      UsageError: a bad label list, a label outside it, or a label out of the scheme's order.
    """
    labelled = [s for split in ("train", "dev", "test") for s in sentences.get(split, [])
                if s.labels is not None]
    source = sentences.get("train") or sentences.get("dev") or labelled
    scheme = label_scheme if label_scheme != "auto" else detect_scheme(source)
    if labels:
        label_list = [x.strip() for x in labels.split(",") if x.strip()]
        check_label_list(label_list, scheme)
        origin = "--labels"
        if trained_labels is not None and label_list != trained_labels:
            raise UsageError(f"--labels={labels} differs from the labels the model was trained "
                             f"with ({','.join(trained_labels)}, in {LABELS_FILE}); drop --labels")
    elif "train" in sentences:
        label_list, origin = build_label_list(sentences["train"], scheme), "the training file"
    elif trained_labels is not None:
        label_list, origin = trained_labels, LABELS_FILE
    else:
        raise UsageError(f"no label list: train with --do_train, or pass --labels, or point "
                         f"--output_dir at a trained model (it holds {LABELS_FILE})")
    validate_sentences(labelled, scheme, label_list, f"the label list (from {origin})")
    tf1.logging.info("Label scheme %s; %d labels: %s", scheme, len(label_list), label_list)
    return label_list, scheme


def prepare_input(name, sentences, label_list, tokenizer, max_seq_length, doc_stride, output_dir,
                  batch_size, use_tpu, is_training=False):
    """Converts sentences into windows, writes <output_dir>/<name>.tf_record.

    Args:
      name: "train", "eval" or "predict".
      sentences, label_list, tokenizer, max_seq_length, doc_stride: see convert_sentences.
      output_dir: where the TFRecord file goes.
      batch_size: the phase's batch size (a TPU needs full batches: padding windows are added).
      use_tpu: whether the run is on a TPU.
      is_training: shuffle and repeat.

    Returns:
      (input_fn, windows, steps): steps is the number of batches on a TPU, else None.
    """
    windows, features = convert_sentences(sentences, label_list, max_seq_length, tokenizer,
                                          doc_stride, name=f"{name} windows")
    if use_tpu and not is_training:
        while len(features) % batch_size:
            features.append(padding_features(max_seq_length))
    path = os.path.join(output_dir, f"{name}.tf_record")
    write_tf_record(features, path)
    tf1.logging.info("***** %s: %d sentences, %d windows *****", name, len(sentences),
                     len(windows))
    input_fn = input_fn_builder(path, max_seq_length, is_training=is_training,
                                drop_remainder=is_training or use_tpu)
    steps = len(features) // batch_size if use_tpu and not is_training else None
    return input_fn, windows, steps


def decode_predictions(predictions, sentences, windows, label_list, checkpoint):
    """Merges the Estimator's window predictions back into sentences and decodes them.

    Args:
      predictions: iterator of Estimator prediction dicts (padding windows at the end are
        skipped).
      sentences: the sentences the windows came from.
      windows: their windows, in prediction order.
      label_list: labels in id order.
      checkpoint: the checkpoint that predicted (its decoding settings are read).

    Returns:
      list of label lists, one per sentence.
    """
    scores, _ = read_decoding_settings(checkpoint)
    progress = ProgressLogger(total=len(windows), unit="windows", name="Predicting")
    kept = []
    for prediction, _ in zip(predictions, windows):
        kept.append(prediction)
        progress.update()
    progress.done()
    merged = merge_predictions(sentences, kept, len(label_list))
    return [[label_list[i] for i in decode(word_scores, scores)] if len(word_scores) else []
            for word_scores in merged]


def write_prediction_files(output_dir, sentences, predicted, prefix="test"):
    """Writes <prefix>_predictions.txt (CoNLL) and .jsonl (entity spans); with gold labels also
    <prefix>_conlleval.txt (conlleval's report).

    Returns:
      dict of the written paths.
    """
    paths = {"conll": os.path.join(output_dir, f"{prefix}_predictions.txt"),
             "jsonl": os.path.join(output_dir, f"{prefix}_predictions.jsonl")}
    write_conll_predictions(paths["conll"], sentences, predicted)
    write_entity_jsonl(paths["jsonl"], sentences, predicted)
    gold = [(s.labels, p) for s, p in zip(sentences, predicted) if s.labels is not None]
    if gold:
        paths["conlleval"] = os.path.join(output_dir, f"{prefix}_conlleval.txt")
        report = conlleval_report(count_entities(*zip(*gold)))
        with atomic_output(paths["conlleval"]) as tmp_path:
            with tf.io.gfile.GFile(tmp_path, "w") as f:
                f.write(report)
        tf1.logging.info("Test set (gold labels known):\n%s", report)
    tf1.logging.info("Wrote %s", ", ".join(paths.values()))
    return paths
