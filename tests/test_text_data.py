"""The text corpus: the shipped Census names are the published ones, the reader refuses every
malformed line with one DataError naming the file, the line and the problem, the split is by
name and stable, and the encoding is the one the language models train on."""
import gzip

import numpy as np
import pytest

from jaxnets.data import DataError, encode, load_names, read_word_list, split_by_item
from jaxnets.data import make_bundled, text

AZ = text.NAMES_ALPHABET


def test_shipped_names_are_the_published_files():
    for member, (digest, name) in make_bundled.NAMES_FILES.items():
        stored = (make_bundled.BUNDLED_DIR / name).read_bytes()
        assert make_bundled.md5(gzip.decompress(stored)) == digest, member


def test_load_names_reads_both_lists_distinct():
    corpus = load_names()
    assert len(corpus.words) == 5163  # 1219 + 4275 lines, 331 names on both lists
    assert corpus.words == tuple(sorted(set(corpus.words)))
    assert {"MARY", "JAMES", "JOHN"} <= set(corpus.words)
    assert corpus.vocab == "." + AZ


def test_load_names_from_a_folder(tmp_path):
    (tmp_path / "dist.male.first").write_text("JOHN           3.271  6.589      2\nAL\n")
    (tmp_path / "dist.female.first").write_text("MARY           2.629  2.629      1\nJOHN\n")
    assert load_names(f"names:{tmp_path}").words == ("AL", "JOHN", "MARY")
    with pytest.raises(DataError, match="no such folder"):
        load_names(f"names:{tmp_path / 'missing'}")
    with pytest.raises(DataError, match="unknown corpus"):
        load_names("words")


@pytest.mark.parametrize("content, problem", [
    (b"ANNA\n\nBOB\n", "line 2: empty line"),
    (b"ANNA\nB\xe9B\n", r"line 2: byte 0xe9 at column 2 is not ASCII"),
    (b"ANNA\nBob\n", "line 2: 'Bob' has 'o', which is not in the alphabet"),
    (b"ANNA 1.0 2.0\n", "line 1: expected `WORD` or `WORD freq cumulative rank`"),
    (b"ANNA 1.0 x 3\n", "line 1: expected"),
    (b"  \n", "holds no words"),
    (b"", "holds no words"),
])
def test_malformed_word_lists(tmp_path, content, problem):
    path = tmp_path / "words.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=problem) as err:
        read_word_list(path, AZ)
    assert str(path) in str(err.value)


def test_reader_files_and_alphabet(tmp_path):
    path = tmp_path / "w.gz"
    path.write_bytes(gzip.compress(b"ANNA\r\nBOB"))  # CRLF and no final newline are fine
    assert read_word_list(path, AZ) == ["ANNA", "BOB"]
    (tmp_path / "bad.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match="not a valid gzip"):
        read_word_list(tmp_path / "bad.gz", AZ)
    with pytest.raises(DataError, match="no such file"):
        read_word_list(tmp_path / "none.txt", AZ)
    for alphabet, problem in (("", "non-empty"), ("ABA", "repeats"), ("AB.", "boundary")):
        with pytest.raises(DataError, match=problem):
            read_word_list(path, alphabet)


def test_split_is_by_item_and_stable():
    words = load_names().words
    split = split_by_item(words)
    parts = [set(p) for p in split]
    assert sum(map(len, parts)) == len(words) and set().union(*parts) == set(words)
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert 0.07 < len(parts[2]) / len(words) < 0.13 and 0.07 < len(parts[1]) / len(words) < 0.13
    # a word's part depends on the word alone: not on the order, nor on the other words
    assert split_by_item(list(reversed(words[:500]))) == tuple(
        tuple(w for w in p if w in set(words[:500])) for p in split)
    with pytest.raises(DataError, match="repeat"):
        split_by_item(["ANNA", "ANNA"])
    with pytest.raises(DataError, match="fractions"):
        split_by_item(words, val=0.6, test=0.5)


def test_encode_and_decode():
    x, y = encode(["AB", "C"], AZ, 4)
    np.testing.assert_array_equal(x, [[0, 1, 2, 0], [0, 3, 0, 0]])
    np.testing.assert_array_equal(y, [[1, 2, 0, -1], [3, 0, -1, -1]])
    assert x.dtype == y.dtype == np.int32
    assert text.decode([1, 2, 0, 5], AZ) == "AB"
    with pytest.raises(DataError, match="needs 1 to seq_len - 1 = 3"):
        encode(["ABCD"], AZ, 4)
    with pytest.raises(DataError, match="not in the alphabet"):
        encode(["Ab"], AZ, 4)
