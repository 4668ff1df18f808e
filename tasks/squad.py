"""SQuAD 1.1 / 2.0 extractive question answering: data, features, model, predictions, metrics.

The task library behind run_squad.py. It takes plain arguments (no flags) and keeps the reference
run_squad.py's behaviour and names:

* Reading: `read_squad_examples` splits each context at whitespace as the reference does (space,
  tab, CR, LF, U+202F) and maps answers from characters to words. Unlike the reference it checks
  the file first: malformed JSON, missing fields, empty questions or contexts, duplicate ids and
  answers whose `answer_start` does not point at their text raise `SquadDataError`, one line naming
  the file, the question id and the fix. With `strict_answers=False` a mismatched answer gets the
  reference's treatment (kept if its words contain the text, else skipped with "Could not find
  answer").
* Features: `convert_examples_to_features` (same windows, positions, ids and order as the reference,
  `unique_id` from 1000000000) streams `SquadFeature`s to a callback such as `FeatureWriter`, which
  writes `train.tf_record` / `eval.tf_record` records equal to the reference's.
* Model: `create_model` (the `cls/squad/output_weights` / `output_bias` head), `compute_span_loss`,
  `model_fn_builder`, `input_fn_builder`.
* Predictions: `compute_predictions` / `write_predictions` give `predictions.json`,
  `nbest_predictions.json` and (SQuAD 2.0) `null_odds.json` with the reference's logic.
* Metrics: `evaluate_predictions`, the official SQuAD v1.1 and v2.0 evaluation scripts in-process
  (answer normalisation, HasAns/NoAns, best no-answer threshold).

Where the time goes, and what is done instead (the outputs are the same):
* The reference tokenizes a paragraph's words again for each of its questions; here each paragraph
  is tokenized once (`_Paragraph`), with its ids, while its questions are converted.
* The reference's `_check_is_max_context` loops over every window for every token of every window;
  here one pass per window keeps the best window of each token (`max_context_flags`).
* Features keep arrays and a reference to their paragraph instead of a token list and two dicts; the
  reference's attributes (`tokens`, `token_to_orig_map`, ...) are computed when asked for.
* `write_predictions` picks the n-best indexes and valid spans with NumPy (a stable sort, so ties
  come out in the reference's order) instead of sorting Python lists.
* Records are serialised by a small protobuf encoder, about 6x faster than building a
  `tf.train.Example` per feature (the parsed records are equal).

Reference quirks kept: train steps are counted from examples, not windows (in the runner); the
`is_impossible` feature is written but never read; start/end logits are summed and softmaxed over
the n-best only; predictions fall back to the whole original words when the character alignment of
`get_final_text` fails; a SQuAD 1.1 question without a valid span predicts the text "empty".
Deviation: on SQuAD 2.0, when no non-null span survives the filters the reference crashes
(AttributeError on `best_non_null_entry`); here the "empty" nonce entry is added instead, so the
question's null-odds are computed against logits 0.0.
"""

import bisect
import collections
import json
import math
import re
import string

import numpy as np
import tensorflow as tf

import cli
import inference
import modeling
import tokenization
import training

tf1 = tf.compat.v1

# Ids of the first feature, as in the reference (predictions are matched to features by them).
FIRST_UNIQUE_ID = 1000000000
# The reference splits contexts at these characters only (U+202F, the narrow no-break space, is
# the one non-ASCII one); other Unicode spaces stay inside words and the tokenizer splits them.
_WORD_RE = re.compile("[^ \t\r\n\u202f]+")
# The reference logs the features of the first 20 examples.
_LOGGED_EXAMPLES = 20


class SquadDataError(ValueError):
    """A SQuAD file that cannot be used; the message names the file, the question and the fix."""


# ------------------------------------------------------------------------------------------------
# Reading SQuAD files
# ------------------------------------------------------------------------------------------------


class SquadExample:
    """A question with its whitespace-split paragraph.

    For training, `start_position` / `end_position` are indexes into `doc_tokens` (both -1 for an
    impossible question). `doc_tokens` is one list shared by all questions of a paragraph.
    """

    def __init__(self, qas_id, question_text, doc_tokens, orig_answer_text=None,
                 start_position=None, end_position=None, is_impossible=False):
        self.qas_id = qas_id
        self.question_text = question_text
        self.doc_tokens = doc_tokens
        self.orig_answer_text = orig_answer_text
        self.start_position = start_position
        self.end_position = end_position
        self.is_impossible = is_impossible

    def __repr__(self):
        text = "qas_id: %s, question_text: %s, doc_tokens: [%s]" % (
            tokenization.printable_text(self.qas_id),
            tokenization.printable_text(self.question_text), " ".join(self.doc_tokens))
        if self.start_position:
            text += ", start_position: %d, end_position: %d, is_impossible: %r" % (
                self.start_position, self.end_position, self.is_impossible)
        return text


def split_context(context):
    """Splits a context at whitespace as the reference does.

    Args:
      context: str, a paragraph.

    Returns:
      (doc_tokens, word_starts): the words and the character offset where each starts. The
      reference's char_to_word_offset[c] is `bisect.bisect_right(word_starts, c) - 1`.
    """
    doc_tokens, word_starts = [], []
    for match in _WORD_RE.finditer(context):
        doc_tokens.append(match.group())
        word_starts.append(match.start())
    return doc_tokens, word_starts


def load_squad_json(input_file):
    """Reads a SQuAD file and returns its "data" list (articles), checking the top level.

    Raises:
      FileNotFoundError: no such file.
      SquadDataError: not UTF-8, not JSON, or no "data" list.
    """
    if not tf.io.gfile.exists(input_file):
        raise FileNotFoundError(f"SQuAD file {input_file} does not exist; check the path.")
    with tf.io.gfile.GFile(input_file, "rb") as reader:
        raw = reader.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SquadDataError(
            f"{input_file} is not UTF-8 (byte {e.start}); save it as UTF-8 JSON.") from None
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as e:
        raise SquadDataError(
            f"{input_file} is not valid JSON ({e.msg} at line {e.lineno} column {e.colno}); fix "
            "the file (a SQuAD file is {\"version\": ..., \"data\": [{\"title\": ..., "
            "\"paragraphs\": [{\"context\": ..., \"qas\": [...]}]}]})."
        ) from None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("data"), list):
        raise SquadDataError(
            f"{input_file} has no top-level \"data\" list; a SQuAD file is {{\"version\": ..., "
            "\"data\": [{\"title\": ..., \"paragraphs\": [...]}]}.")
    return parsed["data"]


def _where(input_file, qa=None, article_index=None, paragraph_index=None):
    if qa is not None and isinstance(qa, dict) and "id" in qa:
        return f"{input_file}: question {qa['id']!r}"
    return f"{input_file}: article {article_index} paragraph {paragraph_index}"


def iter_paragraphs(data, input_file):
    """Yields (context, qas) of every paragraph, checking the structure on the way.

    Args:
      data: the "data" list of a SQuAD file.
      input_file: its name, for messages.

    Raises:
      SquadDataError: a missing or empty "paragraphs", "context" or "qas", or an empty context.
    """
    for article_index, article in enumerate(data):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise SquadDataError(
                f"{input_file}: article {article_index} has no \"paragraphs\" list; every item "
                "of \"data\" needs one ({\"title\": ..., \"paragraphs\": [...]}).")
        for paragraph_index, paragraph in enumerate(paragraphs):
            qas = paragraph.get("qas") if isinstance(paragraph, dict) else None
            where = _where(input_file, None, article_index, paragraph_index)
            if not isinstance(qas, list):
                raise SquadDataError(
                    f"{where} has no \"qas\" list; every paragraph needs {{\"context\": ..., "
                    "\"qas\": [...]}.")
            context = paragraph.get("context")
            first = _where(input_file, qas[0], article_index, paragraph_index) if qas else where
            if not isinstance(context, str):
                raise SquadDataError(f"{first}: its paragraph has no \"context\" string; add it.")
            if not context.strip():
                raise SquadDataError(
                    f"{first}: its paragraph's context is empty; remove the paragraph or give "
                    "it its text.")
            yield context, qas


def _check_question(qa, input_file, seen_ids):
    """Returns (qas_id, question) after checking them; ids become str as JSON keys do."""
    if not isinstance(qa, dict) or not isinstance(qa.get("id"), (str, int)):
        raise SquadDataError(
            f"{input_file}: a question has no \"id\" (question: "
            f"{str(qa.get('question') if isinstance(qa, dict) else qa)[:60]!r}); give every "
            "question a unique id.")
    qas_id = str(qa["id"])
    if qas_id in seen_ids:
        raise SquadDataError(
            f"{input_file}: question {qas_id!r} appears twice; ids must be unique (predictions "
            "are keyed by them).")
    seen_ids.add(qas_id)
    question = qa.get("question")
    if not isinstance(question, str) or not question.strip():
        raise SquadDataError(
            f"{input_file}: question {qas_id!r} has an empty or missing \"question\"; write the "
            "question or remove the entry.")
    return qas_id, question


def _is_impossible(qa, qas_id, input_file, version_2_with_negative):
    if not version_2_with_negative:
        return False
    value = qa.get("is_impossible")
    if not isinstance(value, bool):
        raise SquadDataError(
            f"{input_file}: question {qas_id!r} has no true/false \"is_impossible\"; SQuAD 2.0 "
            "training data marks every question (for SQuAD 1.1 data drop "
            "--version_2_with_negative).")
    return value


def _training_answer(qa, qas_id, context, input_file):
    """Returns (text, answer_start) of a training question's single answer, checked."""
    answers = qa.get("answers")
    if not isinstance(answers, list) or len(answers) != 1:
        count = len(answers) if isinstance(answers, list) else "no"
        raise SquadDataError(
            f"{input_file}: question {qas_id!r} has {count} answers; for training, each question "
            "should have exactly 1 answer (keep one, or mark it \"is_impossible\" with "
            "--version_2_with_negative).")
    answer = answers[0]
    text = answer.get("text") if isinstance(answer, dict) else None
    start = answer.get("answer_start") if isinstance(answer, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise SquadDataError(
            f"{input_file}: question {qas_id!r} has an answer without \"text\"; give the answer "
            "text.")
    if not isinstance(start, int) or isinstance(start, bool):
        raise SquadDataError(
            f"{input_file}: question {qas_id!r} has no integer \"answer_start\"; give the "
            "character offset of the answer in the context.")
    if start < 0 or start + len(text) > len(context):
        raise SquadDataError(
            f"{input_file}: question {qas_id!r}: answer_start {start} with an answer of "
            f"{len(text)} characters lies outside the context ({len(context)} characters); fix "
            "answer_start.")
    return text, start


def _answer_mismatch_error(input_file, qas_id, context, text, start):
    found = context[start:start + len(text)]
    elsewhere = context.find(text)
    hint = (f"the text occurs at offset {elsewhere}" if elsewhere >= 0
            else "the text does not occur in the context")
    return SquadDataError(
        f"{input_file}: question {qas_id!r}: answer_start {start} points at {found!r}, not at "
        f"the answer {text!r} ({hint}); fix answer_start (or pass --strict_answers=false to keep "
        "the reference's lenient handling).")


def _answer_word_span(doc_tokens, word_starts, text, start):
    """The reference's word span of an answer, or None when it skips the question.

    The word span comes from the characters; the answer is kept only if its whitespace-normalised
    text occurs in the words of the span ("Could not find answer" otherwise).
    """
    start_position = bisect.bisect_right(word_starts, start) - 1
    end_position = bisect.bisect_right(word_starts, start + len(text) - 1) - 1
    actual_text = " ".join(doc_tokens[start_position:(end_position + 1)])
    cleaned_answer_text = " ".join(tokenization.whitespace_tokenize(text))
    if actual_text.find(cleaned_answer_text) == -1:
        tf1.logging.warning("Could not find answer: '%s' vs. '%s'", actual_text,
                            cleaned_answer_text)
        return None
    return start_position, end_position


def read_squad_examples(input_file, is_training, version_2_with_negative=False,
                        strict_answers=True, data=None):
    """Reads a SQuAD json file into a list of SquadExample, in file order.

    Args:
      input_file: path of the SQuAD json file (also named in error messages).
      is_training: read the answers as training targets (exactly one per answerable question).
      version_2_with_negative: SQuAD 2.0 (training questions carry "is_impossible").
      strict_answers: a training answer whose answer_start does not point at its text is an error;
        False gives the reference's behaviour (such answers may be skipped or kept).
      data: the file's already loaded "data" list (read from input_file when None).

    Returns:
      list of SquadExample (training questions whose answer cannot be found are skipped, with the
      reference's "Could not find answer" warning).

    Raises:
      FileNotFoundError, SquadDataError: see load_squad_json, iter_paragraphs and the checks above.
    """
    if data is None:
        data = load_squad_json(input_file)
    examples, seen_ids, skipped = [], set(), 0
    for context, qas in iter_paragraphs(data, input_file):
        doc_tokens, word_starts = split_context(context)
        for qa in qas:
            qas_id, question = _check_question(qa, input_file, seen_ids)
            example = SquadExample(qas_id=qas_id, question_text=question, doc_tokens=doc_tokens)
            if is_training:
                example.is_impossible = _is_impossible(qa, qas_id, input_file,
                                                       version_2_with_negative)
                if example.is_impossible:
                    example.start_position, example.end_position = -1, -1
                    example.orig_answer_text = ""
                else:
                    text, start = _training_answer(qa, qas_id, context, input_file)
                    if strict_answers and context[start:start + len(text)] != text:
                        raise _answer_mismatch_error(input_file, qas_id, context, text, start)
                    span = _answer_word_span(doc_tokens, word_starts, text, start)
                    if span is None:
                        skipped += 1
                        continue
                    example.start_position, example.end_position = span
                    example.orig_answer_text = text
            examples.append(example)
    if skipped:
        tf1.logging.warning("%s: skipped %d training question(s) whose answer could not be found "
                            "in the context's words (as the reference does).", input_file,
                            skipped)
    if not examples:
        raise SquadDataError(f"{input_file} has no questions; it needs at least one.")
    return examples


# ------------------------------------------------------------------------------------------------
# Features
# ------------------------------------------------------------------------------------------------

DocSpan = collections.namedtuple("DocSpan", ["start", "length"])


class _Paragraph:
    """A paragraph's WordPiece tokens, their ids and word indexes, computed once per paragraph."""

    __slots__ = ("doc_tokens", "tokens", "ids", "tok_to_orig", "orig_to_tok")

    def __init__(self, doc_tokens, tokenizer):
        tokens, tok_to_orig, orig_to_tok = [], [], []
        tokenize = tokenizer.tokenize
        for i, word in enumerate(doc_tokens):
            orig_to_tok.append(len(tokens))
            pieces = tokenize(word)
            tokens += pieces
            tok_to_orig += [i] * len(pieces)
        self.doc_tokens = doc_tokens  # Keeps the list alive, so its id() stays unique.
        self.tokens = tokens
        self.ids = np.asarray(tokenizer.convert_tokens_to_ids(tokens), np.int32)
        self.tok_to_orig = np.asarray(tok_to_orig, np.int32)
        self.orig_to_tok = orig_to_tok


class SquadFeature:
    """One window `[CLS] query [SEP] doc[start:start+length] [SEP]` of one example.

    Holds arrays and a reference to the tokenized paragraph. The reference InputFeatures'
    attributes (`tokens`, `token_to_orig_map`, `token_is_max_context`, `input_ids`, `input_mask`,
    `segment_ids`) are properties computed from them.
    """

    __slots__ = ("unique_id", "example_index", "doc_span_index", "query_tokens", "query_ids",
                 "paragraph", "doc_start", "doc_length", "max_context", "max_seq_length",
                 "start_position", "end_position", "is_impossible", "cls_id", "sep_id")

    def __init__(self, **fields):
        for name in self.__slots__:
            setattr(self, name, fields.get(name))

    @property
    def doc_offset(self):
        """Position of the window's first document token: after [CLS], the query and [SEP]."""
        return len(self.query_tokens) + 2

    @property
    def num_tokens(self):
        return self.doc_offset + self.doc_length + 1

    @property
    def tokens(self):
        doc = self.paragraph.tokens[self.doc_start:self.doc_start + self.doc_length]
        return ["[CLS]"] + list(self.query_tokens) + ["[SEP]"] + doc + ["[SEP]"]

    @property
    def token_to_orig_map(self):
        words = self.paragraph.tok_to_orig[self.doc_start:self.doc_start + self.doc_length]
        return {self.doc_offset + i: int(w) for i, w in enumerate(words)}

    @property
    def token_is_max_context(self):
        return {self.doc_offset + i: bool(flag) for i, flag in enumerate(self.max_context)}

    def ids_array(self):
        """int32 [num_tokens]: the window's ids without padding."""
        doc = self.paragraph.ids[self.doc_start:self.doc_start + self.doc_length]
        return np.concatenate(([self.cls_id], self.query_ids, [self.sep_id], doc, [self.sep_id]))

    @property
    def input_ids(self):
        ids = self.ids_array().tolist()
        return ids + [0] * (self.max_seq_length - len(ids))

    @property
    def input_mask(self):
        return [1] * self.num_tokens + [0] * (self.max_seq_length - self.num_tokens)

    @property
    def segment_ids(self):
        first = self.doc_offset
        return [0] * first + [1] * (self.doc_length + 1) + [0] * (
            self.max_seq_length - self.num_tokens)


def doc_spans(num_tokens, max_tokens_for_doc, doc_stride):
    """The reference's sliding windows over `num_tokens` document tokens.

    Each window holds up to `max_tokens_for_doc` tokens; the next starts `doc_stride` tokens later
    (or right after a shorter window); the last one ends at the document's end.

    Returns:
      list of DocSpan(start, length).
    """
    spans = []
    start_offset = 0
    while start_offset < num_tokens:
        length = min(num_tokens - start_offset, max_tokens_for_doc)
        spans.append(DocSpan(start=start_offset, length=length))
        if start_offset + length == num_tokens:
            break
        start_offset += min(length, doc_stride)
    return spans


def max_context_flags(spans, num_tokens):
    """For each window, which of its tokens have their maximum context in it.

    A token's score in a window is min(left context, right context) + 0.01 * window length; its
    best window is the first with the highest score, as in the reference's _check_is_max_context.
    One pass per window over its own tokens instead of the reference's loop over all windows for
    every token of every window.

    Returns:
      list of bool arrays, one per window, of the window's length.
    """
    best_score = np.full(num_tokens, -np.inf)
    best_span = np.zeros(num_tokens, np.int64)
    for span_index, (start, length) in enumerate(spans):
        positions = np.arange(start, start + length)
        end = start + length - 1
        score = np.minimum(positions - start, end - positions) + 0.01 * length
        window = slice(start, start + length)
        # Strictly greater: on a tie the earlier window keeps the token, as in the reference.
        better = score > best_score[window]
        best_score[window] = np.where(better, score, best_score[window])
        best_span[window] = np.where(better, span_index, best_span[window])
    return [best_span[start:start + length] == index
            for index, (start, length) in enumerate(spans)]


def improve_answer_span(doc_tokens, input_start, input_end, tokenizer, orig_answer_text):
    """Returns the tokenized answer span that better matches the annotated answer.

    SQuAD answers are character spans, projected first to whitespace words: "(1895-1943)." for the
    answer "1895". WordPiece splits that word into "( 1895 - 1943 ) .", so the exact answer can be
    found among the word's tokens. The reference compares space-joined strings for every (start,
    end) pair; WordPiece tokens contain no spaces, so only the span with the answer's token count
    can match and comparing token lists gives the same first match.
    """
    answer_tokens = tokenizer.tokenize(orig_answer_text)
    count = len(answer_tokens)
    if count:
        for new_start in range(input_start, input_end - count + 2):
            if doc_tokens[new_start:new_start + count] == answer_tokens:
                return new_start, new_start + count - 1
    return input_start, input_end


def _answer_token_span(example, paragraph, tokenizer):
    """(tok_start, tok_end) of a training example's answer in the paragraph's tokens."""
    if example.is_impossible:
        return -1, -1
    orig_to_tok = paragraph.orig_to_tok
    tok_start = orig_to_tok[example.start_position]
    if example.end_position < len(example.doc_tokens) - 1:
        tok_end = orig_to_tok[example.end_position + 1] - 1
    else:
        tok_end = len(paragraph.tokens) - 1
    return improve_answer_span(paragraph.tokens, tok_start, tok_end, tokenizer,
                               example.orig_answer_text)


def _window_positions(example, answer_span, span, doc_offset):
    """Training targets in one window: the answer's positions, or 0/0 (outside or impossible)."""
    if example.is_impossible:
        return 0, 0
    tok_start, tok_end = answer_span
    doc_end = span.start + span.length - 1
    if not (tok_start >= span.start and tok_end <= doc_end):
        return 0, 0
    return tok_start - span.start + doc_offset, tok_end - span.start + doc_offset


def _log_feature(feature, is_training):
    """Logs a feature the way the reference logs the first examples' features."""
    info = tf1.logging.info
    info("*** Example ***")
    info("unique_id: %s", feature.unique_id)
    info("example_index: %s", feature.example_index)
    info("doc_span_index: %s", feature.doc_span_index)
    tokens = feature.tokens
    info("tokens: %s", " ".join(tokenization.printable_text(x) for x in tokens))
    info("token_to_orig_map: %s",
         " ".join("%d:%d" % item for item in feature.token_to_orig_map.items()))
    info("token_is_max_context: %s",
         " ".join("%d:%s" % item for item in feature.token_is_max_context.items()))
    info("input_ids: %s", " ".join(str(x) for x in feature.input_ids))
    info("input_mask: %s", " ".join(str(x) for x in feature.input_mask))
    info("segment_ids: %s", " ".join(str(x) for x in feature.segment_ids))
    if is_training and feature.is_impossible:
        info("impossible example")
    elif is_training:
        answer = " ".join(tokens[feature.start_position:feature.end_position + 1])
        info("start_position: %d", feature.start_position)
        info("end_position: %d", feature.end_position)
        info("answer: %s", tokenization.printable_text(answer))


def check_lengths(max_seq_length, doc_stride, max_query_length):
    """Raises ValueError for window settings that leave no room for the document or never move."""
    if max_seq_length <= max_query_length + 3:
        raise ValueError(
            f"The max_seq_length ({max_seq_length}) must be greater than max_query_length "
            f"({max_query_length}) + 3, or no document token fits after [CLS] query [SEP] ... "
            "[SEP]; raise --max_seq_length or lower --max_query_length.")
    if doc_stride < 1:
        raise ValueError(f"--doc_stride={doc_stride} must be at least 1.")


def convert_examples_to_features(examples, tokenizer, max_seq_length, doc_stride,
                                 max_query_length, is_training, output_fn,
                                 log_examples=_LOGGED_EXAMPLES, progress_name="features"):
    """Cuts every example into windows and calls `output_fn(SquadFeature)` for each, in order.

    Same features, in the same order, as the reference's convert_examples_to_features: the question
    is truncated to max_query_length tokens, the document is cut into windows of
    max_seq_length - len(query) - 3 tokens every doc_stride tokens, and training targets are the
    answer's positions in the window, or 0/0 when it lies outside (or is impossible).

    Args:
      examples: list of SquadExample.
      tokenizer: tokenization.FullTokenizer.
      max_seq_length: int, tokens per window including [CLS] and two [SEP].
      doc_stride: int, tokens between the starts of consecutive windows.
      max_query_length: int, question tokens kept.
      is_training: compute start/end positions.
      output_fn: called with each SquadFeature (e.g. FeatureWriter.process_feature).
      log_examples: log the features of this many first examples (the reference logs 20).
      progress_name: name of the progress log lines (None: no progress lines).

    Returns:
      The number of features produced.
    """
    check_lengths(max_seq_length, doc_stride, max_query_length)
    cls_id, sep_id = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])
    paragraphs = {}
    progress = (cli.ProgressLogger(total=len(examples), unit="examples", name=progress_name)
                if progress_name else None)
    unique_id = FIRST_UNIQUE_ID
    for example_index, example in enumerate(examples):
        paragraph = paragraphs.get(id(example.doc_tokens))
        if paragraph is None:
            paragraph = _Paragraph(example.doc_tokens, tokenizer)
            paragraphs[id(example.doc_tokens)] = paragraph
        query_tokens = tokenizer.tokenize(example.question_text)[:max_query_length]
        query_ids = np.asarray(tokenizer.convert_tokens_to_ids(query_tokens), np.int32)
        answer_span = _answer_token_span(example, paragraph, tokenizer) if is_training else None
        spans = doc_spans(len(paragraph.tokens), max_seq_length - len(query_tokens) - 3,
                          doc_stride)
        for doc_span_index, (span, max_context) in enumerate(
                zip(spans, max_context_flags(spans, len(paragraph.tokens)))):
            feature = SquadFeature(
                unique_id=unique_id, example_index=example_index, doc_span_index=doc_span_index,
                query_tokens=query_tokens, query_ids=query_ids, paragraph=paragraph,
                doc_start=span.start, doc_length=span.length, max_context=max_context,
                max_seq_length=max_seq_length, is_impossible=example.is_impossible,
                cls_id=cls_id, sep_id=sep_id)
            if is_training:
                feature.start_position, feature.end_position = _window_positions(
                    example, answer_span, span, feature.doc_offset)
            if example_index < log_examples:
                _log_feature(feature, is_training)
            output_fn(feature)
            unique_id += 1
        if progress:
            progress.update()
    if progress:
        progress.done()
    return unique_id - FIRST_UNIQUE_ID


# ------------------------------------------------------------------------------------------------
# TFRecords
# ------------------------------------------------------------------------------------------------


def _varint(value):
    """Protobuf varint bytes of a non-negative int (negative int64s as their 64-bit pattern)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# Varint bytes of the ints below 2**17 (token ids of every released vocab), indexed by value.
_VARINTS = [_varint(i) for i in range(1 << 17)]


def _packed_int64(values, padding=0):
    """Serialized Int64List: packed varints of `values` then `padding` zeros."""
    if values and 0 <= min(values) and max(values) < len(_VARINTS):
        payload = b"".join(map(_VARINTS.__getitem__, values))
    else:
        payload = b"".join(map(_varint, values))
    payload += b"\x00" * padding
    return b"\x0a" + _varint(len(payload)) + payload


def _map_entry(name, int64_list):
    """One entry of Features.feature: key `name`, value Feature{int64_list}."""
    key = name.encode("utf-8")
    feature = b"\x1a" + _varint(len(int64_list)) + int64_list
    entry = b"\x0a" + _varint(len(key)) + key + b"\x12" + _varint(len(feature)) + feature
    return b"\x0a" + _varint(len(entry)) + entry


def serialize_feature(feature, is_training):
    """The tf.train.Example bytes of a feature, as the reference's FeatureWriter writes them.

    Encoded directly (the parsed message equals the reference's): unique_ids, input_ids,
    input_mask, segment_ids and, for training, start_positions, end_positions, is_impossible (the
    last is written but never read, as in the reference).
    """
    num_tokens, pad = feature.num_tokens, feature.max_seq_length - feature.num_tokens
    doc_start = feature.doc_offset
    entries = [
        _map_entry("unique_ids", _packed_int64([feature.unique_id])),
        _map_entry("input_ids", _packed_int64(feature.ids_array().tolist(), pad)),
        _map_entry("input_mask", _packed_int64([1] * num_tokens, pad)),
        _map_entry("segment_ids",
                   _packed_int64([0] * doc_start + [1] * (num_tokens - doc_start), pad)),
    ]
    if is_training:
        entries += [
            _map_entry("start_positions", _packed_int64([feature.start_position])),
            _map_entry("end_positions", _packed_int64([feature.end_position])),
            _map_entry("is_impossible", _packed_int64([1 if feature.is_impossible else 0])),
        ]
    features = b"".join(entries)
    return b"\x0a" + _varint(len(features)) + features


class FeatureWriter:
    """Writes SquadFeatures to a TFRecord file, like the reference's FeatureWriter."""

    def __init__(self, filename, is_training):
        self.filename = filename
        self.is_training = is_training
        self.num_features = 0
        self._writer = tf.io.TFRecordWriter(filename)

    def process_feature(self, feature):
        """Writes one feature as a serialized tf.train.Example."""
        self.num_features += 1
        self._writer.write(serialize_feature(feature, self.is_training))

    def close(self):
        self._writer.close()


def input_fn_builder(input_file, seq_length, is_training, drop_remainder):
    """Creates an `input_fn(params)` reading train/eval.tf_record, as the reference's.

    Training repeats and shuffles (buffer 100: the examples were shuffled before conversion);
    int64 features are cast to int32.
    """
    name_to_features = {
        "unique_ids": tf.io.FixedLenFeature([], tf.int64),
        "input_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
        "input_mask": tf.io.FixedLenFeature([seq_length], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([seq_length], tf.int64),
    }
    if is_training:
        name_to_features["start_positions"] = tf.io.FixedLenFeature([], tf.int64)
        name_to_features["end_positions"] = tf.io.FixedLenFeature([], tf.int64)

    return training.tfrecord_input_fn(input_file, name_to_features, is_training, drop_remainder)


# ------------------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------------------


def create_model(bert_config, is_training, input_ids, input_mask, segment_ids,
                 use_one_hot_embeddings):
    """BERT with the reference's span head: a start and an end logit for every token.

    Args:
      bert_config: modeling.BertConfig.
      is_training: bool, enables dropout in BERT.
      input_ids, input_mask, segment_ids: int32 Tensors [batch_size, seq_length].
      use_one_hot_embeddings: one-hot matmul embedding lookup (TPU) instead of a gather.

    Returns:
      (start_logits, end_logits): float32 Tensors [batch_size, seq_length].
    """
    model = modeling.BertModel(
        config=bert_config, is_training=is_training, input_ids=input_ids, input_mask=input_mask,
        token_type_ids=segment_ids, use_one_hot_embeddings=use_one_hot_embeddings)
    final_hidden = model.get_sequence_output()  # [B, S, H]
    batch_size, seq_length, hidden_size = modeling.get_shape_list(final_hidden, expected_rank=3)

    # The released SQuAD checkpoints name the head like this (root scope, "cls/squad/...").
    output_weights = tf1.get_variable(
        "cls/squad/output_weights", [2, hidden_size],
        initializer=tf1.truncated_normal_initializer(stddev=0.02))
    output_bias = tf1.get_variable(
        "cls/squad/output_bias", [2], initializer=tf1.zeros_initializer())

    final_hidden_matrix = tf.reshape(final_hidden, [batch_size * seq_length, hidden_size])
    logits = tf.matmul(final_hidden_matrix, output_weights, transpose_b=True)
    logits = tf.nn.bias_add(logits, output_bias)  # [B*S, 2]
    logits = tf.reshape(logits, [batch_size, seq_length, 2])
    logits = tf.transpose(logits, [2, 0, 1])  # [2, B, S]
    start_logits, end_logits = tf.unstack(logits, axis=0)  # each [B, S]
    return tf.cast(start_logits, tf.float32), tf.cast(end_logits, tf.float32)


def compute_span_loss(logits, positions):
    """The reference's loss for one end of the span: mean over the batch of -log p(position).

    Args:
      logits: float32 [batch_size, seq_length].
      positions: int32 [batch_size], the target token of each example.

    Returns:
      Scalar float32.
    """
    seq_length = modeling.get_shape_list(logits)[1]
    one_hot_positions = tf.one_hot(positions, depth=seq_length, dtype=tf.float32)
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    return -tf.reduce_mean(tf.reduce_sum(one_hot_positions * log_probs, axis=-1))


def model_fn_builder(bert_config, init_checkpoint, learning_rate, num_train_steps,
                     num_warmup_steps, use_tpu, use_one_hot_embeddings):
    """Returns a `model_fn` for runtime.build_runner.

    TRAIN: loss (start loss + end loss) / 2. EVAL (not in the reference, which raises): the same
    loss, for evaluations that only need it. PREDICT and export: `unique_ids`, `start_logits`,
    `end_logits` (a SavedModel's serving input has no unique_ids; they are then zeros).
    """

    def model_fn(features, labels, mode, params):  # pylint: disable=unused-argument
        tf1.logging.info("*** Features ***")
        for name in sorted(features):
            tf1.logging.info("  name = %s, shape = %s", name, features[name].shape)
        input_ids = features["input_ids"]
        unique_ids = features.get("unique_ids", tf.zeros_like(input_ids[:, 0]))
        is_training = mode == tf.estimator.ModeKeys.TRAIN
        start_logits, end_logits = create_model(
            bert_config, is_training, input_ids, features["input_mask"],
            features["segment_ids"], use_one_hot_embeddings)
        scaffold_fn = training.init_from_checkpoint(init_checkpoint, use_tpu)

        if mode in (tf.estimator.ModeKeys.TRAIN, tf.estimator.ModeKeys.EVAL):
            total_loss = (compute_span_loss(start_logits, features["start_positions"])
                          + compute_span_loss(end_logits, features["end_positions"])) / 2.0
            if mode == tf.estimator.ModeKeys.EVAL:
                return training.make_spec(mode, params, loss=total_loss, scaffold_fn=scaffold_fn)
            train_op = training.create_train_op(total_loss, params, learning_rate,
                                                num_train_steps, num_warmup_steps, use_tpu)
            return training.make_spec(mode, params, loss=total_loss, train_op=train_op,
                                     scaffold_fn=scaffold_fn)
        predictions = {"unique_ids": unique_ids, "start_logits": start_logits,
                       "end_logits": end_logits}
        export_outputs = {
            tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY: tf.estimator.export.PredictOutput(
                {"start_logits": start_logits, "end_logits": end_logits}),
        }
        return training.make_spec(mode, params, predictions=predictions, scaffold_fn=scaffold_fn,
                                 export_outputs=export_outputs)

    return model_fn


def _build_squad_outputs(bert_config, inputs, num_labels=None):
    """The inference graph of a fine-tuned SQuAD checkpoint: start and end logits [batch, seq]."""
    del num_labels  # Span extraction has no labels.
    start_logits, end_logits = create_model(
        bert_config, False, inputs["input_ids"], inputs["input_mask"], inputs["segment_ids"],
        use_one_hot_embeddings=False)
    return {"start_logits": start_logits, "end_logits": end_logits}


# Exports of run_squad.py checkpoints (--do_export, export_model.py --task=squad) and their
# predictor, which answers (question, context) pairs.
SQUAD_HEAD = inference.register_head(inference.Head(
    name="squad", output_names=("start_logits", "end_logits"), build=_build_squad_outputs,
    predictor="tasks.squad:QAPredictor", int8_checked=("start_logits", "end_logits")))


# ------------------------------------------------------------------------------------------------
# Predictions
# ------------------------------------------------------------------------------------------------

RawResult = collections.namedtuple("RawResult", ["unique_id", "start_logits", "end_logits"])
NbestEntry = collections.namedtuple("NbestEntry", ["text", "start_logit", "end_logit"])


def best_indexes(logits, n_best_size):
    """Indexes of the n_best_size largest logits, highest first; ties in index order.

    The reference sorts (index, logit) pairs with Python's stable sort in reverse, which keeps equal
    logits in index order; a stable argsort of the negated logits does the same.
    """
    return np.argsort(-np.asarray(logits, np.float64), kind="stable")[:n_best_size]


def _feature_candidates(feature, result, n_best_size, max_answer_length):
    """Valid (start, end) pairs of one window, in the reference's loop order.

    Returns:
      (starts, ends, start_logits, end_logits): arrays, candidates in (start rank, end rank) order.
    """
    start_logits = np.asarray(result.start_logits, np.float64)
    end_logits = np.asarray(result.end_logits, np.float64)
    starts = best_indexes(start_logits, n_best_size)
    ends = best_indexes(end_logits, n_best_size)
    first, stop = feature.doc_offset, feature.doc_offset + feature.doc_length
    # Only document tokens map to words; a start must also have its maximum context here.
    start_in_doc = (starts >= first) & (starts < stop)
    start_ok = start_in_doc & feature.max_context[np.where(start_in_doc, starts - first, 0)]
    end_ok = (ends >= first) & (ends < stop)
    length = ends[None, :] - starts[:, None] + 1  # [n_start, n_end]
    valid = start_ok[:, None] & end_ok[None, :] & (length >= 1) & (length <= max_answer_length)
    rows, cols = np.nonzero(valid)  # row-major: the reference's nested loop order
    starts, ends = starts[rows], ends[cols]
    return starts, ends, start_logits[starts], end_logits[ends]


class _Prelim:
    """The prelim predictions of one example, as parallel lists, and their order by score."""

    def __init__(self, parts, null):
        """Collects the candidates of every window, plus the null span for SQuAD 2.0.

        Args:
          parts: per window, (feature_index, starts, ends, start_logits, end_logits) arrays.
          null: (feature_index, 0, 0, start_logit, end_logit) of the smallest null score, or None.
        """
        columns = [[], [], [], [], []]
        for part in parts:
            for column, values in zip(columns, part):
                column += values.tolist()
        if null is not None:
            # SQuAD 2.0: the null span of the window with the smallest null score comes last.
            for column, value in zip(columns, null):
                column.append(value)
        self.feature_index, self.starts, self.ends, self.start_logits, self.end_logits = columns
        scores = (np.asarray(self.start_logits, np.float64)
                  + np.asarray(self.end_logits, np.float64))
        # A stable sort on the negated score: the reference's sorted(..., reverse=True).
        self.order = np.argsort(-scores, kind="stable").tolist()


def _null_prelim(results):
    """(score_null, (feature_index, 0, 0, start_logit, end_logit)) of the smallest null score."""
    score_null = 1000000  # Large and positive, as in the reference.
    null = (0, 0, 0, 0, 0)
    for feature_index, result in enumerate(results):
        start_logit, end_logit = float(result.start_logits[0]), float(result.end_logits[0])
        if start_logit + end_logit < score_null:
            score_null = start_logit + end_logit
            null = (feature_index, 0, 0, start_logit, end_logit)
    return score_null, null


def _span_text(feature, example, start_index, end_index, do_lower_case, basic_tokenizer,
               verbose_logging):
    """The answer text of window positions start..end, mapped back onto the original words."""
    first = feature.doc_start + start_index - feature.doc_offset
    last = feature.doc_start + end_index - feature.doc_offset
    paragraph = feature.paragraph
    tok_text = " ".join(paragraph.tokens[first:last + 1])
    orig_text = " ".join(example.doc_tokens[paragraph.tok_to_orig[first]:
                                            paragraph.tok_to_orig[last] + 1])
    # De-tokenize WordPieces that have been split off, then clean whitespace.
    tok_text = tok_text.replace(" ##", "").replace("##", "")
    tok_text = " ".join(tok_text.strip().split())
    return get_final_text(tok_text, orig_text, do_lower_case, verbose_logging, basic_tokenizer)


def _nbest_entries(example, features, prelim, n_best_size, do_lower_case, basic_tokenizer,
                   verbose_logging):
    """The n-best entries of one example: distinct texts, best first ("" is the null answer)."""
    seen, nbest = set(), []
    for i in prelim.order:
        if len(nbest) >= n_best_size:
            break
        start_index = prelim.starts[i]
        if start_index > 0:  # a non-null prediction
            text = _span_text(features[prelim.feature_index[i]], example, start_index,
                              prelim.ends[i], do_lower_case, basic_tokenizer, verbose_logging)
            if text in seen:
                continue
        else:
            text = ""
        seen.add(text)
        nbest.append(NbestEntry(text, prelim.start_logits[i], prelim.end_logits[i]))
    return nbest, seen


def compute_softmax(scores):
    """Softmax of a list of floats with math.exp, as the reference computes probabilities."""
    if not scores:
        return []
    max_score = max(scores)
    exp_scores = [math.exp(score - max_score) for score in scores]
    total = 0.0
    for value in exp_scores:
        total += value  # In order, as the reference sums.
    return [value / total for value in exp_scores]


def _example_prediction(example, features, results, settings, basic_tokenizer):
    """Returns (answer text, nbest json list, null score diff or None) for one example."""
    (n_best_size, max_answer_length, do_lower_case, version_2_with_negative,
     null_score_diff_threshold, verbose_logging) = settings
    parts = []
    for feature_index, (feature, result) in enumerate(zip(features, results)):
        starts, ends, start_logits, end_logits = _feature_candidates(
            feature, result, n_best_size, max_answer_length)
        parts.append((np.full(len(starts), feature_index), starts, ends, start_logits,
                      end_logits))
    score_null, null = _null_prelim(results) if version_2_with_negative else (0, None)
    prelim = _Prelim(parts, null)
    nbest, seen = _nbest_entries(example, features, prelim, n_best_size, do_lower_case,
                                 basic_tokenizer, verbose_logging)
    if version_2_with_negative and "" not in seen:
        nbest.append(NbestEntry("", null[3], null[4]))
    best_non_null = next((entry for entry in nbest if entry.text), None)
    if best_non_null is None:
        # Nothing valid (SQuAD 1.1), or only the null answer (2.0, where the reference crashes):
        # a nonce entry, as the reference's 1.1 fallback.
        best_non_null = NbestEntry("empty", 0.0, 0.0)
        nbest.append(best_non_null)
    probs = compute_softmax([entry.start_logit + entry.end_logit for entry in nbest])
    nbest_json = [collections.OrderedDict([("text", entry.text), ("probability", prob),
                                           ("start_logit", entry.start_logit),
                                           ("end_logit", entry.end_logit)])
                  for entry, prob in zip(nbest, probs)]
    if not version_2_with_negative:
        return nbest_json[0]["text"], nbest_json, None
    score_diff = score_null - best_non_null.start_logit - best_non_null.end_logit
    text = "" if score_diff > null_score_diff_threshold else best_non_null.text
    return text, nbest_json, score_diff


def compute_predictions(all_examples, all_features, all_results, n_best_size, max_answer_length,
                        do_lower_case, version_2_with_negative=False,
                        null_score_diff_threshold=0.0, verbose_logging=False):
    """The reference's write_predictions logic, returning what it would write.

    Args:
      all_examples: list of SquadExample (the order of the outputs).
      all_features: SquadFeatures of those examples (their example_index points into the list).
      all_results: RawResult(unique_id, start_logits [seq_length], end_logits [seq_length]) per
        feature, in any order.
      n_best_size, max_answer_length, do_lower_case, version_2_with_negative,
      null_score_diff_threshold, verbose_logging: as the reference's flags.

    Returns:
      (predictions, nbest, null_odds): OrderedDicts keyed by qas_id; null_odds is empty for SQuAD
      1.1.

    Raises:
      ValueError: a feature has no result.
    """
    by_example = collections.defaultdict(list)
    for feature in all_features:
        by_example[feature.example_index].append(feature)
    results = {result.unique_id: result for result in all_results}
    settings = (n_best_size, max_answer_length, do_lower_case, version_2_with_negative,
                null_score_diff_threshold, verbose_logging)
    basic_tokenizer = tokenization.BasicTokenizer(do_lower_case=do_lower_case)
    predictions, nbest, null_odds = (collections.OrderedDict() for _ in range(3))
    for example_index, example in enumerate(all_examples):
        features = by_example[example_index]
        missing = [f.unique_id for f in features if f.unique_id not in results]
        if missing:
            raise ValueError(f"No model output for feature(s) {missing[:5]} of question "
                             f"{example.qas_id!r}; the prediction run did not finish.")
        text, nbest_json, score_diff = _example_prediction(
            example, features, [results[f.unique_id] for f in features], settings,
            basic_tokenizer)
        predictions[example.qas_id] = text
        nbest[example.qas_id] = nbest_json
        if score_diff is not None:
            null_odds[example.qas_id] = score_diff
    return predictions, nbest, null_odds


def write_json(obj, path):
    """Writes `json.dumps(obj, indent=4)` and a newline atomically, as the reference formats it."""
    with cli.atomic_output(path) as tmp_path:
        with tf.io.gfile.GFile(tmp_path, "w") as writer:
            writer.write(json.dumps(obj, indent=4) + "\n")


def write_predictions(all_examples, all_features, all_results, n_best_size, max_answer_length,
                      do_lower_case, output_prediction_file, output_nbest_file,
                      output_null_log_odds_file, version_2_with_negative=False,
                      null_score_diff_threshold=0.0, verbose_logging=False):
    """The reference's write_predictions: computes and writes the prediction files.

    Writes predictions.json, nbest_predictions.json and, with version_2_with_negative,
    null_odds.json (each atomically). Returns (predictions, nbest, null_odds) as
    compute_predictions does.
    """
    tf1.logging.info("Writing predictions to: %s", output_prediction_file)
    tf1.logging.info("Writing nbest to: %s", output_nbest_file)
    outputs = compute_predictions(all_examples, all_features, all_results, n_best_size,
                                  max_answer_length, do_lower_case, version_2_with_negative,
                                  null_score_diff_threshold, verbose_logging)
    predictions, nbest, null_odds = outputs
    write_json(predictions, output_prediction_file)
    write_json(nbest, output_nbest_file)
    if version_2_with_negative:
        write_json(null_odds, output_null_log_odds_file)
    return outputs


def _strip_spaces(text):
    """(text without spaces, map from its character indexes to those in `text`)."""
    ns_chars, ns_to_s_map = [], {}
    for i, char in enumerate(text):
        if char == " ":
            continue
        ns_to_s_map[len(ns_chars)] = i
        ns_chars.append(char)
    return "".join(ns_chars), ns_to_s_map


def get_final_text(pred_text, orig_text, do_lower_case, verbose_logging=False,
                   basic_tokenizer=None):
    """Projects the tokenized prediction back onto the original text.

    `orig_text` is the whole original words of the span ("Steve Smith's"); `pred_text` the
    normalised WordPiece text ("steve smith"). The original words are basic-tokenized; if, with the
    spaces removed, they have as many characters as the original, the characters are taken as
    aligned one to one and the prediction's characters are mapped back ("Steve Smith"). When that
    fails, the whole original words are returned, as in the reference.

    Args:
      pred_text: str, the de-tokenized prediction.
      orig_text: str, the original words it came from, joined by spaces.
      do_lower_case: bool, as the tokenizer.
      verbose_logging: log why an alignment failed.
      basic_tokenizer: a tokenization.BasicTokenizer to reuse (one is made when None).

    Returns:
      str, a substring of orig_text.
    """
    if basic_tokenizer is None:
        basic_tokenizer = tokenization.BasicTokenizer(do_lower_case=do_lower_case)
    tok_text = " ".join(basic_tokenizer.tokenize(orig_text))
    start_position = tok_text.find(pred_text)
    if start_position == -1:
        if verbose_logging:
            tf1.logging.info("Unable to find text: '%s' in '%s'", pred_text, orig_text)
        return orig_text
    end_position = start_position + len(pred_text) - 1

    orig_ns_text, orig_ns_to_s_map = _strip_spaces(orig_text)
    tok_ns_text, tok_ns_to_s_map = _strip_spaces(tok_text)
    if len(orig_ns_text) != len(tok_ns_text):
        if verbose_logging:
            tf1.logging.info("Length not equal after stripping spaces: '%s' vs '%s'",
                             orig_ns_text, tok_ns_text)
        return orig_text
    tok_s_to_ns_map = {s: ns for ns, s in tok_ns_to_s_map.items()}

    positions = []
    for position, what in ((start_position, "start"), (end_position, "end")):
        ns_position = tok_s_to_ns_map.get(position)
        orig_position = orig_ns_to_s_map.get(ns_position) if ns_position is not None else None
        if orig_position is None:
            if verbose_logging:
                tf1.logging.info("Couldn't map %s position", what)
            return orig_text
        positions.append(orig_position)
    return orig_text[positions[0]:positions[1] + 1]


# ------------------------------------------------------------------------------------------------
# The official SQuAD metrics
# ------------------------------------------------------------------------------------------------

_ARTICLES_RE = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION_TABLE = str.maketrans("", "", string.punctuation)


def normalize_answer(text):
    """Lower-cases, removes ASCII punctuation, the articles a/an/the and extra whitespace."""
    text = text.lower().translate(_PUNCTUATION_TABLE)
    return " ".join(_ARTICLES_RE.sub(" ", text).split())


def _token_f1(pred_tokens, gold_tokens):
    common = collections.Counter(pred_tokens) & collections.Counter(gold_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(pred_tokens)
    recall = 1.0 * num_same / len(gold_tokens)
    return (2 * precision * recall) / (precision + recall)


def f1_score_v1(prediction, ground_truth):
    """SQuAD 1.1 token F1 (0 when either side normalises to nothing)."""
    return _token_f1(normalize_answer(prediction).split(), normalize_answer(ground_truth).split())


def f1_score_v2(prediction, ground_truth):
    """SQuAD 2.0 token F1: two empty answers agree (1), an empty and a non-empty one do not (0)."""
    pred_tokens = normalize_answer(prediction).split() if prediction else []
    gold_tokens = normalize_answer(ground_truth).split() if ground_truth else []
    if not pred_tokens or not gold_tokens:
        return int(pred_tokens == gold_tokens)
    return _token_f1(pred_tokens, gold_tokens)


def exact_match(prediction, ground_truth):
    """1 if both normalise to the same text, else 0."""
    return int(normalize_answer(prediction) == normalize_answer(ground_truth))


def _iter_gold(data, input_file, version_2_with_negative):
    """Yields (qas_id, [answer texts]) for every question, checking that answers are usable."""
    for _, qas in iter_paragraphs(data, input_file):
        for qa in qas:
            qas_id = str(qa.get("id")) if isinstance(qa, dict) else None
            answers = qa.get("answers") if isinstance(qa, dict) else None
            if not isinstance(answers, list) or not all(
                    isinstance(a, dict) and isinstance(a.get("text"), str) for a in answers):
                raise SquadDataError(
                    f"{input_file}: question {qas_id!r} has no \"answers\" list of "
                    "{\"text\": ...} entries; evaluation (--do_eval) needs the gold answers.")
            if not answers and not version_2_with_negative:
                raise SquadDataError(
                    f"{input_file}: question {qas_id!r} has no answer; SQuAD 1.1 evaluation needs "
                    "at least one (pass --version_2_with_negative for unanswerable questions).")
            yield qas_id, [a["text"] for a in answers]


def check_gold_answers(data, input_file, version_2_with_negative):
    """Raises SquadDataError unless every question has the answers evaluation needs."""
    for _ in _iter_gold(data, input_file, version_2_with_negative):
        pass


def squad_v1_metrics(data, predictions, input_file="dev file"):
    """The official SQuAD v1.1 evaluation: exact match and F1 in percent.

    Every question counts; one without a prediction scores 0. The best score over the gold answers
    is taken.

    Returns:
      OrderedDict(exact_match=..., f1=...).
    """
    total = exact = f1 = 0
    missing = 0
    for qas_id, golds in _iter_gold(data, input_file, False):
        total += 1
        if qas_id not in predictions:
            missing += 1
            continue
        prediction = predictions[qas_id]
        exact += max(exact_match(prediction, gold) for gold in golds)
        f1 += max(f1_score_v1(prediction, gold) for gold in golds)
    if missing:
        tf1.logging.warning("%d question(s) have no prediction and score 0.", missing)
    return collections.OrderedDict([("exact_match", 100.0 * exact / total),
                                    ("f1", 100.0 * f1 / total)])


def _raw_scores_v2(gold, predictions):
    """Per-question exact and F1 without a no-answer threshold (questions with a prediction)."""
    exact_scores, f1_scores = {}, {}
    for qas_id, golds in gold.items():
        golds = [text for text in golds if normalize_answer(text)] or [""]
        if qas_id not in predictions:
            continue
        prediction = predictions[qas_id]
        exact_scores[qas_id] = max(exact_match(gold_text, prediction) for gold_text in golds)
        f1_scores[qas_id] = max(f1_score_v2(prediction, gold_text) for gold_text in golds)
    return exact_scores, f1_scores


def _apply_no_answer_threshold(scores, na_probs, has_answer, na_prob_thresh):
    return {qas_id: (float(not has_answer[qas_id]) if na_probs[qas_id] > na_prob_thresh
                     else score)
            for qas_id, score in scores.items()}


def _summary(exact_scores, f1_scores, qas_ids):
    total = len(qas_ids)
    return collections.OrderedDict([
        ("exact", 100.0 * sum(exact_scores[k] for k in qas_ids) / total),
        ("f1", 100.0 * sum(f1_scores[k] for k in qas_ids) / total),
        ("total", total),
    ])


def best_threshold(predictions, scores, na_probs, has_answer):
    """The official search for the no-answer threshold that maximises a score.

    Questions are taken by increasing no-answer score; predicting "no answer" for all of them
    scores the unanswerable ones; each question moved to "answered" adds its score (answerable),
    or loses a point if it was unanswerable and the prediction was not empty.

    Returns:
      (best score in percent of the scored questions, the threshold reaching it).
    """
    current = best = sum(1 for value in has_answer.values() if not value)
    threshold = 0.0
    for qas_id in sorted(na_probs, key=lambda k: na_probs[k]):
        if qas_id not in scores:
            continue
        if has_answer[qas_id]:
            current += scores[qas_id]
        elif predictions[qas_id]:
            current -= 1
        if current > best:
            best, threshold = current, na_probs[qas_id]
    return 100.0 * best / len(scores), threshold


def squad_v2_metrics(data, predictions, na_probs=None, na_prob_thresh=1.0,
                     input_file="dev file"):
    """The official SQuAD v2.0 evaluation.

    Args:
      data: the dev file's "data" list.
      predictions: {qas_id: answer text} ("" = no answer).
      na_probs: {qas_id: no-answer score}, e.g. null_odds.json; None = 0.0 for all (and no
        best-threshold search), as the official script without --na-prob-file.
      na_prob_thresh: predict "" where the no-answer score exceeds it (official default 1.0).
      input_file: the dev file's name, for messages.

    Returns:
      OrderedDict: exact, f1, total, HasAns_exact/f1/total, NoAns_exact/f1/total (the splits that
      have questions) and, with na_probs, best_exact, best_exact_thresh, best_f1, best_f1_thresh.
    """
    gold = collections.OrderedDict(_iter_gold(data, input_file, True))
    has_answer = {qas_id: bool(golds) for qas_id, golds in gold.items()}
    with_na_probs = na_probs is not None
    if not with_na_probs:
        na_probs = {qas_id: 0.0 for qas_id in predictions}
    exact_raw, f1_raw = _raw_scores_v2(gold, predictions)
    if not exact_raw:
        raise ValueError(f"None of the questions of {input_file} has a prediction.")
    exact = _apply_no_answer_threshold(exact_raw, na_probs, has_answer, na_prob_thresh)
    f1 = _apply_no_answer_threshold(f1_raw, na_probs, has_answer, na_prob_thresh)
    result = _summary(exact, f1, list(exact))
    for prefix, wanted in (("HasAns", True), ("NoAns", False)):
        # The official script raises KeyError when a question of a split has no prediction.
        qas_ids = [k for k, v in has_answer.items() if v == wanted and k in exact]
        if qas_ids:
            for key, value in _summary(exact, f1, qas_ids).items():
                result[f"{prefix}_{key}"] = value
    if with_na_probs:
        result["best_exact"], result["best_exact_thresh"] = best_threshold(
            predictions, exact_raw, na_probs, has_answer)
        result["best_f1"], result["best_f1_thresh"] = best_threshold(
            predictions, f1_raw, na_probs, has_answer)
    return result


def evaluate_predictions(data, predictions, version_2_with_negative, null_odds=None,
                         input_file="dev file"):
    """The official metrics of the matching SQuAD version (v2.0 with null_odds as na-probs).

    Returns:
      OrderedDict of metrics; "f1" is in both versions (the early-stopping metric).
    """
    if version_2_with_negative:
        return squad_v2_metrics(data, predictions, null_odds, input_file=input_file)
    return squad_v1_metrics(data, predictions, input_file=input_file)


# ------------------------------------------------------------------------------------------------
# Model outputs -> RawResults, and the predictor of exports
# ------------------------------------------------------------------------------------------------


def collect_results(predictions, total=None, progress_name="predictions"):
    """RawResults from model outputs (dicts with unique_ids, start_logits, end_logits).

    Args:
      predictions: iterable of per-feature dicts, e.g. Estimator.predict(yield_single_examples).
      total: the number of features expected (for the progress line and the check).
      progress_name: name of the progress log lines (None: none).

    Returns:
      list of RawResult with float32 logit arrays.

    Raises:
      ValueError: fewer results than `total`.
    """
    progress = (cli.ProgressLogger(total=total, unit="features", name=progress_name)
                if progress_name else None)
    results = []
    for output in predictions:
        results.append(RawResult(int(output["unique_ids"]),
                                 np.asarray(output["start_logits"], np.float32).reshape(-1),
                                 np.asarray(output["end_logits"], np.float32).reshape(-1)))
        if progress:
            progress.update()
    if progress:
        progress.done()
    if total is not None and len(results) != total:
        raise ValueError(f"The model returned {len(results)} results for {total} features.")
    return results


def examples_from_pairs(pairs):
    """SquadExamples (ids "0", "1", ...) of (question, context) pairs, for prediction.

    Raises:
      ValueError: an empty question or context, or an item that is not a pair of strings.
    """
    examples = []
    for index, pair in enumerate(pairs):
        if (not isinstance(pair, (tuple, list)) or len(pair) != 2
                or not all(isinstance(text, str) for text in pair)):
            raise ValueError(f"Item {index} is not a (question, context) pair of strings: "
                             f"{str(pair)[:80]!r}")
        question, context = pair
        for name, text in (("question", question), ("context", context)):
            if not text.strip():
                raise ValueError(f"Item {index} has an empty {name}; both texts are needed.")
        doc_tokens, _ = split_context(context)
        examples.append(SquadExample(qas_id=str(index), question_text=question,
                                     doc_tokens=doc_tokens))
    return examples


def features_to_arrays(features, max_seq_length):
    """dict name -> int32 [len(features), max_seq_length] of the signature's inputs."""
    arrays = {name: np.zeros([len(features), max_seq_length], np.int32)
              for name in inference.INPUT_NAMES}
    for row, feature in enumerate(features):
        ids = feature.ids_array()
        arrays["input_ids"][row, :len(ids)] = ids
        arrays["input_mask"][row, :len(ids)] = 1
        arrays["segment_ids"][row, feature.doc_offset:len(ids)] = 1
    return arrays


class QAPredictor(inference.Predictor):
    """Answers questions about contexts of any length with a SQuAD export, loaded once.

    Long contexts are cut into windows as in training (`doc_stride`), every window runs through
    the SavedModel, and the windows' spans are combined as write_predictions combines them.

        predictor = inference.load_predictor("/tmp/squad/export/saved_model")
        predictor.predict([("Who built the lighthouse?", "The lighthouse was built by ...")])
        # [{"question": ..., "answer": "...", "probability": 0.93, "start_logit": ...,
        #   "end_logit": ..., "null_odds": ... (version_2_with_negative), "nbest": [...]}]
    """

    def __init__(self, saved_model_dir, batch_size=32, doc_stride=128, max_query_length=64,
                 n_best_size=20, max_answer_length=30, version_2_with_negative=False,
                 null_score_diff_threshold=0.0):
        """Loads the export; the other arguments are run_squad.py's flags of the same names."""
        super().__init__(saved_model_dir, batch_size=batch_size)
        if self.task != "squad":
            raise cli.UsageError(f"{saved_model_dir} is a {self.task!r} export, not a SQuAD one; "
                                 "export a run_squad.py checkpoint (export_model.py --task=squad)")
        self.doc_stride = doc_stride
        self.max_query_length = min(max_query_length, self.max_seq_length - 4)
        self.n_best_size = n_best_size
        self.max_answer_length = max_answer_length
        self.version_2_with_negative = version_2_with_negative
        self.null_score_diff_threshold = null_score_diff_threshold

    def predict(self, pairs):
        """Answers (question, context) pairs.

        Returns:
          One dict per pair: question, answer ("" = no answer, SQuAD 2.0 only), probability,
          start_logit and end_logit of the answer's n-best entry, nbest (the n-best list as in
          nbest_predictions.json) and, with version_2_with_negative, null_odds.
        """
        examples = examples_from_pairs(list(pairs))
        features = []
        convert_examples_to_features(examples, self.tokenizer, self.max_seq_length,
                                     self.doc_stride, self.max_query_length, False,
                                     features.append, log_examples=0, progress_name=None)
        outputs = self.run_features(features_to_arrays(features, self.max_seq_length))
        results = [RawResult(f.unique_id, outputs["start_logits"][i], outputs["end_logits"][i])
                   for i, f in enumerate(features)]
        answers, nbest, null_odds = compute_predictions(
            examples, features, results, self.n_best_size, self.max_answer_length,
            bool(self.config["do_lower_case"]), self.version_2_with_negative,
            self.null_score_diff_threshold)
        output = []
        for example in examples:
            answer = answers[example.qas_id]
            entry = next((e for e in nbest[example.qas_id] if e["text"] == answer),
                         nbest[example.qas_id][0])
            item = {"question": example.question_text, "answer": answer,
                    "probability": entry["probability"], "start_logit": entry["start_logit"],
                    "end_logit": entry["end_logit"], "nbest": nbest[example.qas_id]}
            if self.version_2_with_negative:
                item["null_odds"] = null_odds[example.qas_id]
            output.append(item)
        return output
