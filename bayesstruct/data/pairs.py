"""Sentence-pair similarity data (SemEval/STS pairs scored 0..5 by annotators).

A pair set stores each example as a ``(2, T, D + 1)`` array: the two sentences' word vectors,
padded with zeros to ``T = max_len`` steps, and a 0/1 mask in the last column that says which
steps hold a word (:class:`bayesstruct.nets.PairClassifier` reads it). Labels are the scores
rounded to the classes ``0..5``.

* :func:`read_pairs_tsv` reads STS-style TSV files: either three columns
  ``score<TAB>sentence_a<TAB>sentence_b`` or the STS-benchmark layout (score in column 5,
  sentences in 6 and 7).
* :func:`read_word_vectors` reads pre-computed vectors in GloVe / word2vec text format
  (``word v_1 ... v_D`` per line; a word2vec ``count dim`` header line is skipped).
* :func:`synthetic_pairs` generates a small seeded task for tests (random word vectors; the
  second sentence keeps ``score / 5`` of the first one's words and replaces the rest), since
  the SemEval files cannot ship with the package.

A file that does not exist raises :class:`bayesstruct.data.DataNotFoundError`; one that cannot
be read or parsed (not UTF-8, a bad line) raises :class:`bayesstruct.errors.DataError`. Both
messages are one line naming the file (and line) and the config field that points at it.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ..errors import DataError
from .sets import DataNotFoundError

__all__ = ["N_SCORES", "encode_pairs", "read_pairs_tsv", "read_word_vectors", "synthetic_pairs",
           "tokenize"]

N_SCORES = 6  # similarity scores 0..5
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")


def tokenize(sentence: str) -> list[str]:
    """Lower-cased words and punctuation marks (``"Don't stop!" -> ["don't", "stop", "!"]``)."""
    return _TOKEN.findall(sentence.lower())


def _check_file(path: Path, what: str, field: str, fmt: str) -> None:
    """:class:`DataNotFoundError` (one line, naming ``field``) unless ``path`` is a file."""
    if not path.exists():
        raise DataNotFoundError(f"{what} {path} ({field}) does not exist ({fmt})")
    if not path.is_file():
        raise DataNotFoundError(f"{what} {path} ({field}) is not a file ({fmt})")


def _unreadable(path: Path, field: str, e: Exception) -> DataError:
    """The :class:`DataError` for a file that cannot be opened or decoded (a
    :class:`UnicodeDecodeError` from decoding the whole file, so its offset is the file's)."""
    if isinstance(e, UnicodeDecodeError):
        line = e.object.count(b"\n", 0, e.start) + 1
        return DataError(f"{path} ({field}) is not UTF-8 text (byte {e.object[e.start]:#04x} "
                         f"at offset {e.start}, line {line}); is it the right file, or "
                         "compressed?")
    if isinstance(e, OSError):
        return DataError(f"cannot read {path} ({field}): {e.strerror or e}")
    return DataError(f"{path} ({field}) cannot be parsed: {e}")


_PAIRS_FORMAT = ("a TSV of score<TAB>sentence_a<TAB>sentence_b lines, or the STS benchmark's "
                 "sts-train.csv layout")


def read_pairs_tsv(path: str | os.PathLike) -> list[tuple[float, str, str]]:
    """``(score, sentence_a, sentence_b)`` from an STS-style TSV file (see the module doc).

    Raises:
        DataNotFoundError: ``path`` does not exist.
        DataError: it is not UTF-8 text or a line is not a scored pair (file and line named).
    """
    path = Path(path)
    field = "data.pairs_file"
    _check_file(path, "sentence-pair file", field, _PAIRS_FORMAT)
    rows: list[tuple[float, str, str]] = []
    try:
        text = path.read_bytes().decode("utf-8")  # STS files are small; offsets stay exact
        with io.StringIO(text, newline="") as f:
            for lineno, fields in enumerate(csv.reader(f, delimiter="\t",
                                                       quoting=csv.QUOTE_NONE), start=1):
                if not fields or not "".join(fields).strip():
                    continue
                if len(fields) == 3:
                    score, a, b = fields
                elif len(fields) >= 7:
                    score, a, b = fields[4], fields[5], fields[6]
                else:
                    raise DataError(f"{path}:{lineno}: expected 3 tab-separated fields (score, "
                                    f"sentence_a, sentence_b) or the STS-benchmark's 7, got "
                                    f"{len(fields)} ({field})")
                try:
                    value = float(score)
                except ValueError:
                    if lineno == 1:  # a header line
                        continue
                    raise DataError(f"{path}:{lineno}: score {score[:40]!r} is not a number "
                                    f"({field})") from None
                if not 0.0 <= value <= 5.0:
                    raise DataError(f"{path}:{lineno}: score {value} outside 0..5 ({field})")
                rows.append((value, a, b))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise _unreadable(path, field, e) from None
    if not rows:
        raise DataError(f"{path}: no sentence pairs found ({field}; {_PAIRS_FORMAT})")
    return rows


def read_word_vectors(path: str | os.PathLike, vocabulary: Iterable[str] | None = None
                      ) -> dict[str, np.ndarray]:
    """Word vectors from a GloVe / word2vec text file, only for ``vocabulary`` if given.

    Raises:
        DataNotFoundError: ``path`` does not exist.
        DataError: a line is not ``word v_1 ... v_D`` with the file's ``D`` (file and line
            named), or the file holds no vectors.
    """
    path = Path(path)
    field = "data.word_vectors"
    fmt = "GloVe text format, e.g. glove.6B.50d.txt from https://nlp.stanford.edu/projects/glove/"
    _check_file(path, "word-vector file", field, fmt)
    wanted = set(vocabulary) if vocabulary is not None else None
    vectors: dict[str, np.ndarray] = {}
    dim = None
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, start=1):
                parts = line.rstrip().split(" ")
                if lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                    continue  # word2vec header
                if len(parts) < 2:
                    continue
                if dim is None:
                    dim = len(parts) - 1
                elif len(parts) - 1 != dim:
                    raise DataError(f"{path}:{lineno}: {len(parts) - 1} values, expected {dim} "
                                    f"({field}; {fmt})")
                word = parts[0]
                if wanted is None or word in wanted:
                    try:
                        vectors[word] = np.asarray(parts[1:], dtype=np.float32)
                    except ValueError:
                        bad = next((v for v in parts[1:] if not _is_float(v)), parts[1])
                        raise DataError(f"{path}:{lineno}: value {bad[:40]!r} is not a number "
                                        f"({field}; {fmt})") from None
    except OSError as e:
        raise _unreadable(path, field, e) from None
    if dim is None:
        raise DataError(f"{path}: no word vectors found ({field}; {fmt})")
    return vectors


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def encode_pairs(pairs: Sequence[tuple[float, Sequence[str], Sequence[str]]],
                 vectors: dict[str, np.ndarray], max_len: int
                 ) -> tuple[np.ndarray, np.ndarray, float]:
    """``(x, y, oov)``: ``x`` of shape ``(N, 2, max_len, D + 1)`` (vectors and mask), ``y`` the
    rounded scores, ``oov`` the fraction of tokens without a vector (dropped). Sentences longer
    than ``max_len`` known words keep their first ``max_len``."""
    dim = len(next(iter(vectors.values())))
    x = np.zeros((len(pairs), 2, max_len, dim + 1), dtype=np.float32)
    y = np.empty(len(pairs), dtype=np.int64)
    total = missing = 0
    for i, (score, a, b) in enumerate(pairs):
        y[i] = int(np.clip(np.rint(score), 0, N_SCORES - 1))
        for j, words in enumerate((a, b)):
            known = [vectors[w] for w in words if w in vectors]
            total += len(words)
            missing += len(words) - len(known)
            for t, v in enumerate(known[:max_len]):
                x[i, j, t, :dim] = v
                x[i, j, t, dim] = 1.0
    return x, y, missing / max(total, 1)


def synthetic_pairs(n: int, *, vocab: int = 100, dim: int = 8, max_len: int = 10,
                    min_len: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded sentence-pair task with the shapes of the real one (synthetic by design).

    Word vectors are ``N(0, I / dim)``; sentence ``a`` draws ``min_len..max_len`` words
    uniformly; the score ``y`` is uniform on ``0..5`` and ``b`` is ``a`` with
    ``round((5 - y) / 5 * len(a))`` random positions replaced by random words, so the score is
    the share of words the two sentences have in common."""
    rng = np.random.default_rng(seed)
    table = rng.normal(0.0, dim ** -0.5, (vocab, dim)).astype(np.float32)
    words = {str(k): table[k] for k in range(vocab)}
    pairs = []
    y = rng.integers(0, N_SCORES, n)
    for score in y:
        length = int(rng.integers(min_len, max_len + 1))
        a = rng.integers(0, vocab, length)
        b = a.copy()
        swap = rng.choice(length, int(round((5 - score) / 5 * length)), replace=False)
        b[swap] = rng.integers(0, vocab, len(swap))
        pairs.append((float(score), [str(w) for w in a], [str(w) for w in b]))
    x, labels, _ = encode_pairs(pairs, words, max_len)
    return x, labels
