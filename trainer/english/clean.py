"""Markup to plain text, and how much a text reads like prose.

Each stripper keeps the sentences of a format and drops what is not running text: code blocks,
tables, directives, section rules, mail headers, footnotes. They are deliberately simple (a
line-based pass and a few regular expressions each): what they miss is caught by ``prose_score``,
which ranks documents for the build, so a page of leftover code sinks to the bottom of the pile.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterable, Iterator
from html.parser import HTMLParser

_BLANKS = re.compile(r"\n\s*\n\s*")
_SPACES = re.compile(r"[ \t\r\f\v]+")


def tidy(text: str) -> str:
    """Trailing spaces off, runs of blank lines to one, no blank start or end."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def paragraphs(text: str) -> list[str]:
    return [p for p in _BLANKS.split(text) if p.strip()]


def group(pieces: Iterable[str], target_chars: int) -> Iterator[str]:
    """Joins consecutive pieces (paragraphs, dictionary entries) into documents of about
    ``target_chars`` characters, so a dictionary is not 100,000 one-line documents."""
    batch: list[str] = []
    size = 0
    for piece in pieces:
        batch.append(piece)
        size += len(piece)
        if size >= target_chars:
            yield "\n\n".join(batch)
            batch, size = [], 0
    if batch:
        yield "\n\n".join(batch)


# ---------------------------------------------------------------------------------------------
# Prose score

_WORD = re.compile(r"[(\"'“‘\[]*[A-Za-z][A-Za-z'’-]*[.,;:!?)\"'”’\]]*")


def _sentence_like(line: str) -> bool:
    words = line.split()
    if len(words) < 6:
        return False
    return sum(1 for w in words if _WORD.fullmatch(w)) >= 0.8 * len(words)


def prose_score(text: str) -> float:
    """The share of a text's characters that sit on sentence-like lines: six words or more, at
    least 80 % of them plain words (letters, apostrophes, hyphens, with punctuation around).
    Narrative prose scores about 0.9, reference manuals 0.5 to 0.8, code and tables near 0."""
    total = prose = 0
    for line in text.split("\n"):
        n = len(line.strip())
        total += n
        if n and _sentence_like(line):
            prose += n
    return prose / total if total else 0.0


# ---------------------------------------------------------------------------------------------
# reStructuredText (the Linux kernel's and Python's documentation)

_RST_DROP = {  # directives whose indented body is code, tables or machinery, not prose
    "code-block", "code", "sourcecode", "literalinclude", "highlight", "math", "csv-table",
    "list-table", "table", "toctree", "image", "figure", "kernel-doc", "kernel-abi", "kernel-feat",
    "kernel-include", "raw", "productionlist", "doctest", "testcode", "testsetup", "testoutput",
    "index", "only", "include", "graphviz", "parsed-literal", "flat-table", "digraph", "cssclass",
    "tabularcolumns", "module", "currentmodule", "program", "option", "envvar", "opcode",
}  # fmt: skip
_RST_DIRECTIVE = re.compile(r"\.\.\s+([\w:-]+)::")
_RST_RULE = re.compile(r"([=\-~^\"'`#*+_.:<>])\1{3,}|[=\s]{8,}|\+[-=+]+\+")
_RST_ROLE = re.compile(r":[\w:+-]+:`[~!]?([^`<]*?)\s*(?:<[^`>]*>)?`")
_RST_LINK = re.compile(r"`([^`<]+?)\s*(?:<[^`>]*>)?`_{0,2}")


def _rst_block_line(stripped: str) -> tuple[bool, bool]:
    """For a line starting with '..': (drop the line, drop its indented body)."""
    m = _RST_DIRECTIVE.match(stripped)
    if m is None:  # a comment, a link target or a substitution definition
        return True, True
    return True, m.group(1).split(":")[-1] in _RST_DROP


def _rst_lines(text: str) -> Iterator[str]:
    skip_deeper_than: int | None = None
    for line in text.split("\n"):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if skip_deeper_than is not None:
            if not stripped or indent > skip_deeper_than:
                continue
            skip_deeper_than = None
        if stripped.startswith(".."):
            _, drop_body = _rst_block_line(stripped)
            if drop_body:
                skip_deeper_than = indent
            continue
        if _RST_RULE.fullmatch(stripped) or stripped.startswith(("|", "+-", "+=")):
            continue
        if stripped.startswith(":") and stripped.count(":") >= 2 and len(stripped.split()) <= 3:
            continue  # a field or directive option such as ':maxdepth: 2'
        if stripped.endswith("::"):  # a literal (code) block follows
            skip_deeper_than = indent
            line = line.rstrip()[:-1] if stripped != "::" else ""
        yield line.strip()


def rst_to_text(text: str) -> str:
    text = "\n".join(_rst_lines(text))
    text = _RST_ROLE.sub(r"\1", text)
    text = re.sub(r"``([^`]+)``", r"\1", text)
    text = _RST_LINK.sub(r"\1", text)
    text = re.sub(r"\*\*([^*\n]+)\*\*|\*([^*\s][^*\n]*)\*", lambda m: m.group(1) or m.group(2), text)
    return tidy(text)


# ---------------------------------------------------------------------------------------------
# POD (Perl's documentation)

_POD_ENTITIES = {"lt": "<", "gt": ">", "sol": "/", "verbar": "|", "quot": '"', "amp": "&"}
_POD_MULTI = re.compile(r"([A-Z])<{2,}\s+(.*?)\s+>{2,}", re.S)
_POD_SINGLE = re.compile(r"([A-Z])<([^<>]*)>")


def _pod_code(m: re.Match) -> str:
    code, inner = m.group(1), m.group(2)
    if code == "E":
        return _POD_ENTITIES.get(inner, "")
    if code in "XZ":
        return ""
    if code == "L":
        return inner.split("|", 1)[0] if "|" in inner else inner.replace('"', "")
    return inner


def pod_to_text(text: str) -> str:
    kept, in_begin = [], False
    for para in re.split(r"\n[ \t]*\n", text):
        if para.startswith("=begin"):
            in_begin = True
        if in_begin:
            in_begin = not para.startswith("=end")
            continue
        if para.startswith("="):
            command, _, rest = para.partition(" ")
            if command.startswith("=head") or (command == "=item" and rest.strip() not in ("", "*")):
                kept.append(rest.strip())
            continue
        if para[:1] not in (" ", "\t"):  # indented paragraphs are verbatim code
            kept.append(para)
    out = _POD_MULTI.sub(_pod_code, "\n\n".join(kept))
    while True:
        replaced = _POD_SINGLE.sub(_pod_code, out)
        if replaced == out:
            return tidy(out)
        out = replaced


# ---------------------------------------------------------------------------------------------
# HTML (DocBook manuals) and OSIS (SWORD Bible modules)

_HTML_BLOCKS = {"p", "div", "br", "li", "dt", "dd", "tr", "table", "h1", "h2", "h3", "h4", "h5", "h6"}
_HTML_BLOCKS |= {"section", "blockquote", "ul", "ol", "dl", "title", "caption"}
_HTML_SKIP = {"script", "style", "pre", "head", "nav"}


class _HtmlText(HTMLParser):
    """Collects the text outside skipped elements; navigation bars (class *nav*) are skipped too."""

    def __init__(self, skip: set[str]):
        super().__init__(convert_charrefs=True)
        self.skip, self.parts, self.depth, self.stack = skip, [], 0, []

    def handle_starttag(self, tag, attrs):
        if tag in _HTML_BLOCKS:
            self.parts.append("\n\n")
        klass = dict(attrs).get("class") or ""
        skipped = tag in self.skip or (tag in ("div", "table") and "nav" in klass)
        if tag not in ("br", "img", "hr", "meta", "link", "input"):
            self.stack.append(skipped)
            self.depth += skipped

    def handle_endtag(self, tag):
        if tag in _HTML_BLOCKS:
            self.parts.append("\n\n")
        if tag not in ("br", "img", "hr", "meta", "link", "input") and self.stack:
            self.depth -= self.stack.pop()

    def handle_data(self, data):
        if not self.depth:
            self.parts.append(_SPACES.sub(" ", data.replace("\n", " ")))


def html_to_text(html: str, skip: set[str] = _HTML_SKIP) -> str:
    parser = _HtmlText(skip)
    parser.feed(html)
    parser.close()
    return tidy("\n".join(line.strip() for line in "".join(parser.parts).split("\n")))


def osis_to_text(xml: str) -> str:
    """A SWORD module's OSIS text: footnotes and cross-references out, then every tag."""
    xml = re.sub(r"<note\b.*?</note>", "", xml, flags=re.S)
    xml = re.sub(r"</?(?:title|div|lg)\b[^>]*>", "\n\n", xml)
    xml = re.sub(r"</?l\b[^>]*>", "\n", xml)
    text = re.sub(r"<[^>]+>", "", xml)
    return tidy(_SPACES.sub(" ", text))


# ---------------------------------------------------------------------------------------------
# Mail (the SpamAssassin public corpus)

_LIST_FOOTER = "_______________________________________________"


def _part_text(part) -> str:
    payload = part.get_payload(decode=True) or b""
    charset = part.get_content_charset() or "latin-1"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        return payload.decode("latin-1")


def mail_body(raw: str) -> str:
    """A message's own words: the text/plain parts (else the HTML ones, stripped), without
    headers, quoted lines ('>') and what follows a signature or mailing-list footer."""
    message = email.message_from_string(raw, policy=email.policy.compat32)
    plain = [p for p in message.walk() if p.get_content_type() == "text/plain"]
    html = [p for p in message.walk() if p.get_content_type() == "text/html"]
    body = "\n\n".join(_part_text(p) for p in plain) or "\n\n".join(html_to_text(_part_text(p)) for p in html)
    lines = []
    for line in body.split("\n"):
        if line.rstrip() == "--" or line.startswith(_LIST_FOOTER):  # a signature ("-- ") or list footer
            break
        if not line.lstrip().startswith(">"):
            lines.append(line)
    return tidy("\n".join(lines))


# ---------------------------------------------------------------------------------------------
# Dictionaries (dictd format: an index of base64 offsets into a dictzip file)

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_VALUE = {c: i for i, c in enumerate(_B64)}


def _b64_number(text: str) -> int:
    value = 0
    for c in text:
        value = value * 64 + _B64_VALUE[c]
    return value


def dict_entries(body: str, index: str) -> Iterator[str]:
    """The entries of a dictd dictionary in index order, each once, its database notes left out.

    Offsets and lengths count bytes of the UTF-8 file, so ``body`` is encoded back first."""
    raw = body.encode("utf-8")
    seen = set()
    for line in index.split("\n"):
        fields = line.split("\t")
        if len(fields) < 3 or fields[0].startswith(("00-database", "00database")):
            continue
        start, length = _b64_number(fields[1]), _b64_number(fields[2])
        if start not in seen:
            seen.add(start)
            yield raw[start : start + length].decode("utf-8", errors="replace")


_PRONUNCIATION = re.compile(r"\\[^\\\n]{1,80}\\")
_SOURCE_TAG = re.compile(r"^\s*\[[^\]\n]{1,60}\]\s*$", re.M)


def dict_entry_text(entry: str) -> str:
    """One entry: pronunciation keys (``\\Ap"ple\\``) and source tags on lines of their own
    (``[1913 Webster]``) out, the braces of cross-references (``{Sagittaria}``) and the
    indentation of the definition lines off."""
    entry = _SOURCE_TAG.sub("", _PRONUNCIATION.sub("", entry)).replace("{", "").replace("}", "")
    return tidy("\n".join(line.strip() for line in entry.split("\n")))


# ---------------------------------------------------------------------------------------------
# Markdown (Node.js's API docs) and AsciiDoc (Git's manual pages)

_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)|\[([^\]]+)\]\[[^\]]*\]")


def markdown_to_text(text: str) -> str:
    """Fenced code, HTML comments, tables and link definitions out; headings, emphasis, links
    and inline code reduced to their words."""
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    kept, fenced = [], False
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if fenced or stripped.startswith("|") or re.match(r"\[[^\]]+\]:\s", stripped):
            continue
        kept.append(re.sub(r"^#{1,6}\s+", "", stripped))
    out = _MD_LINK.sub(lambda m: m.group(1) or m.group(2) or "", "\n".join(kept))
    out = re.sub(r"`([^`\n]*)`", r"\1", out)
    return tidy(re.sub(r"(\*\*|__)(.+?)\1", r"\2", out))


_ADOC_DELIMITER = re.compile(r"(-{4,}|\.{4,}|\+{4,}|/{4,})")
_ADOC_SKIP = re.compile(r"\[[\w ,=\"'-]*\]|:[\w-]+:.*|ifdef::.*|endif::.*|ifndef::.*|include::.*|[=\-~^]{3,}")


def asciidoc_to_text(text: str) -> str:
    """Listing and literal blocks (between ---- or .... lines), attribute and macro lines, and
    title underlines out; ``linkgit:git-add[1]`` to ``git-add``; quotes around words off."""
    kept, block, previous = [], None, ""
    for line in text.split("\n"):
        stripped = line.strip()
        underline = previous and abs(len(previous) - len(stripped)) <= 1 and block is None
        if _ADOC_DELIMITER.fullmatch(stripped) and not underline:
            block = None if block == stripped else (block or stripped)
        elif block is None and not _ADOC_SKIP.fullmatch(stripped):
            kept.append(stripped)
        previous = stripped
    out = re.sub(r"linkgit:([\w.-]+)\[\d\]", r"\1", "\n".join(kept))
    out = re.sub(r"`([^`\n]*)`|'([^'\n]+)'(?!\w)", lambda m: m.group(1) or m.group(2) or "", out)
    return tidy(out.replace("``", '"').replace("''", '"'))
