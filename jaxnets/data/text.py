"""A real text corpus, offline: word lists read and checked, split by word, encoded as tokens.

    corpus = load_names()                       # the US Census first names shipped in bundled/
    split = split_by_item(corpus.words)         # train / validation / test, by name
    x, y = encode(split.train, corpus.alphabet, seq_len)

The shipped corpus is the 1990 US Census first-name lists from the `names` package on PyPI
(MIT; see bundled/ATTRIBUTION.md): 5163 distinct names in capitals A-Z, 2 to 11 letters.
`names:DIR` reads the same files from DIR (e.g. an installed `names` package's folder).

The reader checks every line: bytes that are not ASCII, an empty line, a line that is not
`WORD` or the Census's `WORD freq cumulative rank`, a character outside the alphabet given
explicitly: each raises `DataError` naming the file, the line and the problem; nothing is
skipped or changed silently.

The split is by item (a name), never by character: a name's bucket is a function of the name
alone (its MD5), so a name is in exactly one of train/validation/test, whatever the order of
the files or the other names, and adding names never moves an existing one.

Encoding (Karpathy's makemore convention): token 0 is the boundary "." that starts and ends a
name, tokens 1..A the alphabet. A name w of length L is the input x = [., w_1 .. w_L] and the
targets y = [w_1 .. w_L, .], padded to seq_len with x = 0 and y = -1: a target < 0 is no
target (the loss mask is y >= 0).
"""
from __future__ import annotations

import gzip
import hashlib
import string
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .errors import DataError, DataUnavailableError

NAMES_DIR = Path(__file__).resolve().parent / "bundled" / "names"
NAMES_FILES = ("dist.male.first", "dist.female.first")
NAMES_ALPHABET = string.ascii_uppercase
BOUNDARY = "."
#: the target of a padding step: never scored, never predicted
NO_TARGET = -1


class Corpus(NamedTuple):
    """Distinct words (sorted) over `alphabet`, and where they came from."""

    words: tuple
    alphabet: str
    source: str

    @property
    def vocab(self):
        """Token i's character: the boundary, then the alphabet."""
        return BOUNDARY + self.alphabet


class Split(NamedTuple):
    train: tuple
    val: tuple
    test: tuple


def check_alphabet(alphabet):
    if not isinstance(alphabet, str) or not alphabet:
        raise DataError(f"the alphabet must be a non-empty string of characters, got {alphabet!r}")
    if len(set(alphabet)) != len(alphabet):
        raise DataError(f"the alphabet {alphabet!r} repeats a character")
    if BOUNDARY in alphabet or any(c.isspace() for c in alphabet):
        raise DataError(f"the alphabet {alphabet!r} may not hold {BOUNDARY!r} (the boundary token) or white space")
    return alphabet


def _open_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise DataError(f"{path}: not a valid gzip file ({err})") from None
    return data


def _is_number(s):
    try:
        float(s)
        return True
    except ValueError:
        return False


def read_word_list(path, alphabet) -> list:
    """The words of a word list, one per line, in file order: a line is `WORD` or the US
    Census's `WORD freq cumulative rank` (the three numbers are checked, then dropped).
    Every character of a word must be in `alphabet`. `.gz` files are decompressed. Raises
    DataError naming the file, the line and the problem."""
    path = Path(path)
    alphabet = check_alphabet(alphabet)
    allowed = set(alphabet)
    data = _open_bytes(path)
    if not data.strip():
        raise DataError(f"{path}: the file holds no words")
    lines = data.split(b"\n")
    if lines[-1] == b"":  # the final newline ends the last line; it is not an empty line
        lines.pop()
    words = []
    for number, raw in enumerate(lines, 1):
        where = f"{path}, line {number}"
        try:
            line = raw.decode("ascii")
        except UnicodeDecodeError as err:
            raise DataError(f"{where}: byte {raw[err.start]:#04x} at column {err.start + 1} is not ASCII") from None
        line = line.rstrip("\r")
        if not line.strip():
            raise DataError(f"{where}: empty line")
        fields = line.split()
        if len(fields) not in (1, 4) or (len(fields) == 4 and not all(map(_is_number, fields[1:]))):
            raise DataError(f"{where}: expected `WORD` or `WORD freq cumulative rank`, got {line.strip()!r}")
        word = fields[0]
        bad = [c for c in word if c not in allowed]
        if bad:
            raise DataError(f"{where}: {word!r} has {bad[0]!r}, which is not in the alphabet {alphabet!r}")
        words.append(word)
    return words


def load_names(spec="names", alphabet=NAMES_ALPHABET) -> Corpus:
    """The first names of the two Census lists (male and female), distinct and sorted: from
    the copy shipped in the package (`names`) or from DIR (`names:DIR`, holding
    dist.male.first and dist.female.first, optionally .gz)."""
    if spec == "names":
        folder, suffix = NAMES_DIR, ".gz"
    elif isinstance(spec, str) and spec.startswith("names:") and spec[6:]:
        folder, suffix = Path(spec[6:]), ""
        if not folder.is_dir():
            raise DataUnavailableError(f"{folder}: no such folder (names:DIR needs the `names` package's files)")
        if not (folder / NAMES_FILES[0]).is_file() and (folder / (NAMES_FILES[0] + ".gz")).is_file():
            suffix = ".gz"
    else:
        raise DataError(f"unknown corpus {spec!r}; known: names, names:DIR")
    words = set()
    for name in NAMES_FILES:
        words.update(read_word_list(folder / (name + suffix), alphabet))
    return Corpus(tuple(sorted(words)), alphabet, str(folder))


def item_bucket(word) -> float:
    """A number in [0, 1) that is a function of the word alone (its MD5)."""
    return int.from_bytes(hashlib.md5(word.encode("utf-8")).digest()[:8], "big") / 2.0 ** 64


def split_by_item(words, val=0.1, test=0.1) -> Split:
    """Train / validation / test by word: word w goes to test when item_bucket(w) < test, to
    validation when it is < test + val, else to train (each part sorted). Duplicates are
    refused: a repeated word would be one item counted twice."""
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise DataError(f"split fractions must be >= 0 with val + test < 1, got val={val}, test={test}")
    words = list(words)
    if len(set(words)) != len(words):
        raise DataError("split_by_item: the words repeat; split distinct items")
    parts = ([], [], [])
    for w in sorted(words):
        b = item_bucket(w)
        parts[0 if b >= test + val else (2 if b < test else 1)].append(w)
    return Split(*map(tuple, parts))


def encode(words, alphabet, seq_len):
    """(x, y) int32 (N, seq_len): inputs [., w...] padded with 0, targets [w..., .] padded
    with NO_TARGET (see the module docstring). A word longer than seq_len - 1 is an error,
    never cut."""
    alphabet = check_alphabet(alphabet)
    index = {c: i + 1 for i, c in enumerate(alphabet)}
    words = list(words)
    if not words:
        raise DataError("encode: no words")
    x = np.zeros((len(words), seq_len), np.int32)
    y = np.full((len(words), seq_len), NO_TARGET, np.int32)
    for n, w in enumerate(words):
        if not w or len(w) > seq_len - 1:
            raise DataError(f"encode: {w!r} has {len(w)} characters; a word needs 1 to seq_len - 1 = {seq_len - 1}")
        try:
            ids = [index[c] for c in w]
        except KeyError as err:
            raise DataError(f"encode: {w!r} has {err.args[0]!r}, which is not in the alphabet {alphabet!r}") from None
        x[n, 1:len(w) + 1] = ids
        y[n, :len(w)] = ids
        y[n, len(w)] = 0
    return x, y


def decode(tokens, alphabet):
    """The characters of tokens 1..A; the boundary token 0 ends the word."""
    out = []
    for t in tokens:
        t = int(t)
        if t == 0:
            break
        out.append(alphabet[t - 1])
    return "".join(out)
