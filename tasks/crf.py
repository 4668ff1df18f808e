"""A linear-chain conditional random field for token tagging, in TF 2.15 graph mode.

TensorFlow 2.15 has no `tf.contrib.crf` (and TensorFlow Addons is unmaintained), so the output layer
that `run_ner.py --use_crf` puts on top of BERT is written here:

* `create_transition_scores` makes the trainable scores under the scope `crf/` with stable names
  (`crf/transitions` [L, L], `crf/start_transitions` [L], `crf/end_transitions` [L]), optionally
  adding fixed constraint scores (`DISALLOWED` for a transition the label scheme forbids).
* `log_likelihood` (the forward algorithm over a length-masked batch) gives the training loss;
  `viterbi_decode` the best tag sequence. Both run inside an Estimator's model_fn.
* `viterbi_decode_numpy` decodes one sequence on the host, for sentences whose windows were
  merged after prediction (see tasks/ner.py).

Shapes: B = batch size, T = sequence length (time steps), L = number of labels. Tag sequences are
the first `lengths[b]` steps of row b; positions past the length are ignored.

What is not here: which transitions a scheme (BIO, IOB1, BIOES) forbids lives in tasks/ner.py,
which passes them in as constraint scores.
"""

import collections

import numpy as np
import tensorflow as tf

tf1 = tf.compat.v1

# Score added to a forbidden transition. Far below any sum of emission scores a real model produces
# (hundreds at most), so a path that breaks a constraint never beats one that does not, while
# staying finite: exp() of it is exactly 0 and sums of several of them do not overflow float32.
DISALLOWED = -1e9

TransitionScores = collections.namedtuple(
    "TransitionScores", ["transitions", "start", "end"])
TransitionScores.__doc__ = """Scores of a linear-chain CRF (tensors or numpy arrays).

Fields:
  transitions: [L, L]; transitions[i, j] scores label i followed by label j.
  start: [L]; score of a sequence starting with each label.
  end: [L]; score of a sequence ending with each label.
"""


def zero_transition_scores(num_labels):
    """TransitionScores of float32 zeros (no preference, no constraint) as numpy arrays."""
    return TransitionScores(np.zeros([num_labels, num_labels], np.float32),
                            np.zeros([num_labels], np.float32),
                            np.zeros([num_labels], np.float32))


def create_transition_scores(num_labels, constraints=None, scope="crf"):
    """Creates the trainable CRF scores, plus fixed constraint scores if given.

    Args:
      num_labels: L.
      constraints: optional TransitionScores of numpy arrays, 0 where allowed and DISALLOWED where
        forbidden; added to the trainable scores (constants, never trained).
      scope: variable scope of the three variables.

    Returns:
      TransitionScores of float32 tensors: transitions [L, L], start [L], end [L].
    """
    with tf1.variable_scope(scope):
        # Zeros: no transition is preferred before training sees data.
        transitions = tf1.get_variable("transitions", [num_labels, num_labels],
                                       initializer=tf1.zeros_initializer())
        start = tf1.get_variable("start_transitions", [num_labels],
                                 initializer=tf1.zeros_initializer())
        end = tf1.get_variable("end_transitions", [num_labels],
                               initializer=tf1.zeros_initializer())
        scores = TransitionScores(transitions, start, end)
        if constraints is not None:
            scores = add_constraints(scores, constraints)
    return scores


def add_constraints(scores, constraints):
    """Adds constant constraint scores to (possibly trainable) transition scores.

    Args:
      scores: TransitionScores of float tensors.
      constraints: TransitionScores of numpy arrays (0 or DISALLOWED).

    Returns:
      TransitionScores of float32 tensors.
    """
    return TransitionScores(*[
        tf.cast(value, tf.float32) + tf.constant(np.asarray(fixed, np.float32))
        for value, fixed in zip(scores, constraints)])


def constant_transition_scores(scores):
    """TransitionScores of numpy arrays as float32 graph constants."""
    return TransitionScores(*[tf.constant(np.asarray(value, np.float32)) for value in scores])


def _num_steps(potentials):
    """T when known when the graph is built, else None."""
    return tf.compat.dimension_value(potentials.shape[1])


def _time_major(potentials):
    """[B, T, L] -> [T, B, L] (the loops below step over time)."""
    return tf.transpose(potentials, [1, 0, 2])


def sequence_score(potentials, tags, lengths, scores):
    """Unnormalised score of given tag sequences.

    Args:
      potentials: float Tensor [B, T, L], the emission scores (e.g. the tagger's logits).
      tags: int32 Tensor [B, T] of label ids in [0, L); positions past the length may hold any
        valid id.
      lengths: int32 Tensor [B], number of real steps per row (0 allowed: score 0).
      scores: TransitionScores of float32 tensors.

    Returns:
      float32 Tensor [B]: sum of emission, transition, start and end scores of each sequence.
    """
    potentials = tf.cast(potentials, tf.float32)
    tags = tf.cast(tags, tf.int32)
    lengths = tf.cast(lengths, tf.int32)
    max_length = tf.shape(potentials)[1]
    mask = tf.sequence_mask(lengths, max_length, dtype=tf.float32)  # [B, T]
    emissions = tf.gather(potentials, tags, batch_dims=2)  # [B, T]
    unary = tf.reduce_sum(emissions * mask, axis=1)
    # Score of tags[t - 1] -> tags[t], counted for the steps t < length.
    pairs = tf.stack([tags[:, :-1], tags[:, 1:]], axis=-1)  # [B, T - 1, 2]
    binary = tf.reduce_sum(tf.gather_nd(scores.transitions, pairs) * mask[:, 1:], axis=1)
    first = tf.gather(scores.start, tags[:, 0])
    last_tags = tf.gather(tags, tf.maximum(lengths - 1, 0), batch_dims=1)  # [B]
    last = tf.gather(scores.end, last_tags)
    total = unary + binary + first + last
    return tf.where(lengths > 0, total, tf.zeros_like(total))


def log_partition(potentials, lengths, scores):
    """Log of the sum of exp(score) over all tag sequences (the forward algorithm).

    Args:
      potentials: float Tensor [B, T, L].
      lengths: int32 Tensor [B] (0 allowed: result 0).
      scores: TransitionScores of float32 tensors.

    Returns:
      float32 Tensor [B].
    """
    potentials = tf.cast(potentials, tf.float32)
    lengths = tf.cast(lengths, tf.int32)
    alpha = potentials[:, 0, :] + scores.start[tf.newaxis, :]  # [B, L]

    def step(alpha, inputs):
        emission, t = inputs  # [B, L], scalar
        # [B, L_prev, 1] + [1, L_prev, L] -> [B, L_prev, L]; sum out the previous label.
        candidates = alpha[:, :, tf.newaxis] + scores.transitions[tf.newaxis, :, :]
        updated = tf.reduce_logsumexp(candidates, axis=1) + emission  # [B, L]
        # Rows whose sequence already ended keep their last alpha.
        return tf.where((t < lengths)[:, tf.newaxis], updated, alpha)

    if _num_steps(potentials) != 1:
        emissions = _time_major(potentials)[1:]  # [T - 1, B, L]
        steps = tf.range(1, tf.shape(potentials)[1])
        alpha = tf.foldl(step, (emissions, steps), initializer=alpha)
    log_z = tf.reduce_logsumexp(alpha + scores.end[tf.newaxis, :], axis=1)  # [B]
    return tf.where(lengths > 0, log_z, tf.zeros_like(log_z))


def log_likelihood(potentials, tags, lengths, scores):
    """Log-probability of each given tag sequence under the CRF.

    Args:
      potentials: float Tensor [B, T, L].
      tags: int32 Tensor [B, T].
      lengths: int32 Tensor [B] (rows of length 0 get 0).
      scores: TransitionScores of float32 tensors.

    Returns:
      float32 Tensor [B]; the training loss is its negative mean.
    """
    return (sequence_score(potentials, tags, lengths, scores)
            - log_partition(potentials, lengths, scores))


def viterbi_decode(potentials, lengths, scores):
    """Highest-scoring tag sequence of each row (Viterbi).

    The loop over time is unrolled (T must be known when the graph is built, as max_seq_length
    is): no while loop or TensorArray, so exported taggers convert to TFLite and compile with XLA.

    Args:
      potentials: float Tensor [B, T, L], T static.
      lengths: int32 Tensor [B].
      scores: TransitionScores of float32 tensors.

    Returns:
      (tags, best_scores): int32 Tensor [B, T] with 0 past each row's length, and float32 Tensor
      [B] with the score of that sequence (0 for rows of length 0).

    Raises:
      ValueError: T is not static.
    """
    num_steps = _num_steps(potentials)
    if num_steps is None:
        raise ValueError("viterbi_decode needs the sequence length (dimension 1) to be static")
    potentials = tf.cast(potentials, tf.float32)
    lengths = tf.cast(lengths, tf.int32)
    delta = potentials[:, 0, :] + scores.start[tf.newaxis, :]  # [B, L]
    # Past a row's end every label points back at itself, so backtracking walks through unchanged.
    identity = tf.broadcast_to(tf.range(tf.shape(potentials)[2])[tf.newaxis, :], tf.shape(delta))
    backpointers = []  # backpointers[t - 1] maps the label at step t to the one at t - 1: [B, L]
    for t in range(1, num_steps):
        candidates = delta[:, :, tf.newaxis] + scores.transitions[tf.newaxis, :, :]  # [B, L, L]
        active = (t < lengths)[:, tf.newaxis]  # [B, 1]
        backpointers.append(tf.where(active, tf.argmax(candidates, axis=1, output_type=tf.int32),
                                     identity))
        delta = tf.where(active, tf.reduce_max(candidates, axis=1) + potentials[:, t, :], delta)
    final = delta + scores.end[tf.newaxis, :]
    tag = tf.argmax(final, axis=1, output_type=tf.int32)  # [B]
    tags = [tag]
    for pointers in reversed(backpointers):
        tag = tf.gather(pointers, tag, batch_dims=1)
        tags.append(tag)
    tags = tf.stack(tags[::-1], axis=1)  # [B, T]
    tags = tf.where(tf.sequence_mask(lengths, num_steps), tags, tf.zeros_like(tags))
    best_scores = tf.reduce_max(final, axis=1)
    best_scores = tf.where(lengths > 0, best_scores, tf.zeros_like(best_scores))
    return tags, best_scores


def viterbi_decode_numpy(potentials, scores):
    """Host-side Viterbi for one sequence (used after merging a long sentence's windows).

    Args:
      potentials: float array [T, L] (T >= 0).
      scores: TransitionScores of numpy arrays.

    Returns:
      (tags, score): a list of T label ids and the path's score (0.0 when T == 0).
    """
    potentials = np.asarray(potentials, np.float64)
    if potentials.shape[0] == 0:
        return [], 0.0
    transitions = np.asarray(scores.transitions, np.float64)
    delta = potentials[0] + np.asarray(scores.start, np.float64)  # [L]
    backpointers = []
    for emission in potentials[1:]:
        candidates = delta[:, np.newaxis] + transitions  # [L_prev, L]
        best_previous = candidates.argmax(axis=0)
        backpointers.append(best_previous)
        delta = candidates[best_previous, np.arange(len(emission))] + emission
    final = delta + np.asarray(scores.end, np.float64)
    tags = [int(final.argmax())]
    for pointers in reversed(backpointers):
        tags.append(int(pointers[tags[-1]]))
    tags.reverse()
    return tags, float(final.max())
