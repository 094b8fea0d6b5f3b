"""HTML → plain text for matching. Pure: no I/O.

Semantics of `html_to_text`:

- The text of every element is kept, except inside script, style, template, noscript, svg, iframe, object
  and head (code, styling, fallbacks and metadata a reader never sees as article text). Attributes, including
  `alt` and `title`, are not text.
- Character references (`&amp;`, `&#8217;`, `&nbsp;`) are decoded exactly once. Text that was escaped twice
  by its author (a forum post *about* `<pre>`) therefore keeps its literal `<pre>`: it is what the reader sees.
- Block elements (p, div, li, h1–h6, blockquote, tr, ...) end a paragraph: paragraphs are separated by one
  empty line. `<br>` ends a line. Table cells are separated by a space.
- Inside a line, every run of whitespace (including no-break and other Unicode spaces) becomes one space;
  lines are stripped; inside `<pre>` line breaks are kept. Control characters other than newline are dropped,
  except C1 characters that windows-1252 assigns (text mis-decoded as ISO-8859-1): they get that meaning.
- Never raises on malformed HTML: unclosed tags end at the end of the input, stray end tags are ignored.
  Text inside an element that hides it (object, iframe, noscript, ...) but is never closed is kept, since a
  browser shows it too (an unclosed <object> used to swallow the rest of the article); an unclosed script or
  style stays hidden. An unclosed comment hides the rest of the input, as in a browser.

How: most feed HTML is a few well-nested paragraphs, links and emphasis. That is parsed by libxml2 (lxml), in C,
and its text read from the tree. Everything else — comments, CDATA, scripts and other hidden elements, <pre>,
document structure, tags the fast path does not know, tags that are not properly nested or closed, references
that HTML 4 and HTML 5 decode differently, control characters — goes to Python's html.parser, which implements
the rules above event by event (and against which the fast path is tested to give identical text).
"""

from __future__ import annotations

import re
import threading
from html.entities import name2codepoint
from html.parser import HTMLParser

from lxml import etree

__all__ = ["html_to_text", "looks_like_html", "normalize_plain_text", "single_line"]

# Elements whose content is never reader-visible article text.
_HIDDEN = frozenset({"script", "style", "template", "noscript", "svg", "iframe", "object", "head"})

# Hidden elements whose content is code: hidden even when the element is never closed.
_CODE = frozenset({"script", "style"})

# Elements that start and end a paragraph.
_BLOCKS = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "caption",
        "dd",
        "details",
        "dialog",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "tfoot",
        "thead",
        "tr",
        "ul",
    }
)
_CELLS = frozenset({"td", "th"})

# Markers placed in the raw text stream; they cannot occur in decoded text because control characters are
# removed from text before it is appended.
_LINE = "\x01"
_PARAGRAPH = "\x02"

# Element names common in feed HTML; a tag with one of them in "plain" text means the text is mislabelled HTML.
_LOOKS_LIKE_HTML = re.compile(
    r"<!\[CDATA\[|</?(?:a|abbr|article|b|blockquote|br|cite|code|dd|div|dl|dt|em|figcaption|figure|footer|"
    r"h[1-6]|header|hr|i|iframe|img|li|ol|p|picture|pre|q|s|script|section|small|source|span|strong|style|"
    r"sub|sup|table|tbody|td|th|thead|tr|u|ul|video)(?:\s[^<>]*)?/?>",
    re.IGNORECASE,
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _c1_as_cp1252() -> dict[int, str]:
    table: dict[int, str] = {}
    for code in range(0x80, 0xA0):
        try:
            table[code] = bytes([code]).decode("cp1252")
        except UnicodeDecodeError:  # 0x81, 0x8D, 0x8F, 0x90, 0x9D are unassigned in cp1252
            continue
    return table


# C1 control characters in decoded text are windows-1252 bytes that were decoded as ISO-8859-1 (a feed
# declaring latin-1 but written with curly quotes and dashes): give them their windows-1252 meaning.
_C1_REPAIR = _c1_as_cp1252()
_BLANK_LINES = re.compile(r"\n{3,}")


class _TextCollector(HTMLParser):
    """Collects reader-visible text and break markers from a stream of HTML events."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden_stack: list[str] = []
        self._pre_depth = 0
        # Text met while hidden: (index of its placeholder in parts, text, the hidden stack at that point).
        # close() restores it when the elements hiding it turn out never to be closed.
        self._held: list[tuple[int, str, tuple[str, ...]]] = []

    def close(self) -> None:
        super().close()
        if not self._hidden_stack:
            return
        unclosed = tuple(self._hidden_stack)
        for index, text, stack in self._held:
            hidden_by_unclosed_only = unclosed[: len(stack)] == stack
            if hidden_by_unclosed_only and not _CODE.intersection(stack):
                self.parts[index] = text

    def _hold(self, text: str) -> None:
        self._held.append((len(self.parts), text, tuple(self._hidden_stack)))
        self.parts.append("")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden_stack.append(tag)
            return
        self._break_for(tag)
        if self._hidden_stack:
            return
        if tag == "pre":
            self._pre_depth += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <br/>, <p/>, <script/>: a self-closed element has no content, so it never opens a hidden scope.
        self._break_for(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._hidden_stack:
            if tag in self._hidden_stack:
                # Close the innermost matching hidden element and anything left open inside it.
                while self._hidden_stack and self._hidden_stack.pop() != tag:
                    pass
            self._break_for(tag, end=True)
            return
        if tag == "pre" and self._pre_depth:
            self._pre_depth -= 1
        self._break_for(tag, end=True)

    def parse_marked_section(self, i: int, report: bool = True) -> int:
        try:
            return super().parse_marked_section(i, report)
        except AssertionError:
            # `<![` not followed by a name is no marked section; CPython's scanner asserts instead of recovering.
            self.handle_data(self.rawdata[i : i + 3])
            return i + 3

    def unknown_decl(self, data: str) -> None:
        # A CDATA section inside HTML is a feed that wrapped its HTML twice; its inside is the article.
        if data.startswith("CDATA[") and not self._hidden_stack:
            inner = _TextCollector()
            inner.feed(data[len("CDATA[") :])
            inner.close()
            self.parts.extend(inner.parts)

    def handle_data(self, data: str) -> None:
        data = _CONTROL.sub(" ", data.translate(_C1_REPAIR).replace("\r\n", "\n").replace("\r", "\n"))
        if self._pre_depth:
            data = data.replace("\n", _LINE)
        self._emit(data)

    def _emit(self, text: str) -> None:
        if self._hidden_stack:
            self._hold(text)
        else:
            self.parts.append(text)

    def _break_for(self, tag: str, *, end: bool = False) -> None:
        if tag == "br" and not end:
            self._emit(_LINE)
        elif tag in _BLOCKS:
            self._emit(_PARAGRAPH)
        elif tag in _CELLS:
            self._emit(" ")


def html_to_text(html: str) -> str:
    """Plain text of an HTML fragment or document (see the module docstring for the exact rules)."""
    if "<" not in html and "&" not in html:
        # No markup: all whitespace, newlines included, is one space in HTML.
        return " ".join(_CONTROL.sub(" ", html.translate(_C1_REPAIR)).split())
    if _fast_path_can_read(html):
        fast = _text_by_lxml(html)
        if fast is not None:
            return fast
    return _text_by_html_parser(html)


# -- the fast path: libxml2 on simple, well-nested HTML ------------------------------------------------------

# Elements the fast path reads: blocks, cells, and inline elements that libxml2 and html.parser both take as
# they come. Document structure, <pre>, hidden elements and anything else (<center>, <menu>, forms, ...) whose
# handling libxml2 may restructure go to html.parser.
_INLINE = frozenset(
    [
        "a",
        "abbr",
        "b",
        "bdi",
        "bdo",
        "big",
        "cite",
        "code",
        "data",
        "del",
        "dfn",
        "em",
        "font",
        "i",
        "ins",
        "kbd",
        "mark",
        "q",
        "s",
        "samp",
        "small",
        "span",
        "strike",
        "strong",
        "sub",
        "sup",
        "time",
        "tt",
        "u",
        "var",
        "picture",
    ]
)
_VOID = frozenset({"br", "img", "wbr", "hr", "source"})
_PHRASING = _INLINE | {"br", "img", "wbr", "source"}
# What an element may hold on the fast path, for the elements libxml2 closes by itself when something else starts
# inside them (HTML 4's implied end tags): then html.parser and libxml2 would put the breaks in other places.
_FLOW_IN_ITEMS = _PHRASING | {"ul", "ol", "dl", "div", "p", "blockquote", "hr"}
_HOLDS: dict[str, frozenset[str]] = {
    **dict.fromkeys(("p", "h1", "h2", "h3", "h4", "h5", "h6", "dt", "caption"), _PHRASING),
    **dict.fromkeys(("li", "dd", "td", "th"), _FLOW_IN_ITEMS),
    "tr": frozenset({"td", "th"}),
    **dict.fromkeys(("table", "thead", "tbody", "tfoot"), frozenset({"tr", "thead", "tbody", "tfoot"})),
    **dict.fromkeys(("ul", "ol"), frozenset({"li"})),
    "dl": frozenset({"dt", "dd"}),
}
_NO_TEXT = frozenset({"table", "thead", "tbody", "tfoot", "tr", "ul", "ol", "dl"})
# Elements that must have one of these parents (libxml2 would add or close one around them).
_NEEDS_PARENT: dict[str, frozenset[str]] = {
    "li": frozenset({"ul", "ol"}),
    "dt": frozenset({"dl"}),
    "dd": frozenset({"dl"}),
    "tr": frozenset({"table", "thead", "tbody", "tfoot"}),
    "td": frozenset({"tr"}),
    "th": frozenset({"tr"}),
    **dict.fromkeys(("thead", "tbody", "tfoot"), frozenset({"table"})),
}


def _may_hold(parent: str, child: str) -> bool:
    allowed = _HOLDS.get(parent)
    if allowed is not None and child not in allowed:
        return False
    needs = _NEEDS_PARENT.get(child)
    if needs is not None and parent not in needs:
        return False
    # A block inside <b> or <a>: libxml2 may end the inline element.
    return parent not in _INLINE or child in _PHRASING


_FAST_TAGS = (
    (_BLOCKS - {"pre", "form", "fieldset", "dialog", "details", "summary"}) | _CELLS | _INLINE | _VOID
)
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)(?:\s[^<>]*?)?(/?)>")
# References both parsers decode alike: HTML 4 names (libxml2's table) with their semicolon, numeric references
# to ordinary characters (not C0/C1 controls, surrogates or beyond Unicode, which HTML 5 remaps).
_REFERENCE = re.compile(r"&(?:([a-zA-Z][a-zA-Z0-9]*)|#([0-9]{1,7})|#[xX]([0-9a-fA-F]{1,6}));")
_HTML4_NAMES = frozenset(name2codepoint)
_UNSAFE_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
# After libxml2 decoded the references: control characters other than the break markers become spaces.
_CONTROL_AFTER = re.compile(r"[\x03-\x08\x0b-\x1f\x7f-\x9f]")
# One parser per thread: making one costs as much as parsing a short summary, and an lxml parser must not be
# used by two threads at once.
_PARSERS = threading.local()


def _parser() -> etree.HTMLParser:
    parser: etree.HTMLParser | None = getattr(_PARSERS, "parser", None)
    if parser is None:
        parser = _PARSERS.parser = etree.HTMLParser(no_network=True, remove_comments=True, remove_pis=True)
    return parser


_FAST_LIMIT = 1 << 20  # libxml2 has its own limits for huge text nodes; such input is rare anyway


def _safe_code(code: int) -> bool:
    return (
        0x20 <= code < 0x7F
        or 0xA0 <= code < 0xD800
        or (0xE000 <= code <= 0x10FFFF and code & 0xFFFE != 0xFFFE)
    )


def _fast_path_can_read(html: str) -> bool:
    """True when libxml2 and html.parser are known to read `html` alike: only known tags, properly nested and
    closed, every `<` a tag, every `&` a reference both decode the same, no control characters."""
    if len(html) > _FAST_LIMIT or _UNSAFE_CHARS.search(html):
        return False
    open_tags: list[str] = []
    tags = 0
    last = 0
    for found in _TAG.finditer(html):
        tags += 1
        closing, name, self_closing = found.group(1), found.group(2).lower(), found.group(3)
        if name not in _FAST_TAGS:
            return False
        parent = open_tags[-1] if open_tags else ""
        if parent in _NO_TEXT and not html[last : found.start()].isspace() and last != found.start():
            return False  # text straight inside a table or a list: libxml2 may move it
        last = found.end()
        if not closing and not _may_hold(parent, name):
            return False  # libxml2 would end the parent here (a cell in a cell, a block in a <p>, ...)
        if name in _VOID:
            if closing:
                return False  # </br> is a <br> to libxml2 and nothing to html.parser
            continue
        if self_closing:
            return False  # <div/> opens a div for libxml2, and is empty for html.parser
        if not closing:
            open_tags.append(name)
        elif not open_tags or open_tags.pop() != name:
            return False
    if open_tags or tags != html.count("<"):
        return False
    references = 0
    for found in _REFERENCE.finditer(html):
        references += 1
        name, decimal, hexadecimal = found.groups()
        if name is not None:
            if name not in _HTML4_NAMES:
                return False
        elif not _safe_code(int(decimal) if decimal is not None else int(hexadecimal, 16)):
            return False
    return references == html.count("&")


def _text_by_lxml(html: str) -> str | None:
    try:
        root = etree.fromstring(html, _parser())
    except etree.LxmlError:
        return None
    if root is None:
        return None
    body = root.find("body")
    if body is None or len(root) != 1:
        return None  # libxml2 put something into <head>: not what html.parser sees
    # The break markers go where html.parser's events put them: a block's (a cell's) at its start and its end,
    # a <br>'s after it. Reading the tree's text and tails in document order is html.parser's event order.
    parts: list[str] = []
    append = parts.append
    for event, element in etree.iterwalk(body, events=("start", "end")):
        tag = element.tag
        if event == "start":
            if tag in _BLOCKS:
                append(_PARAGRAPH)
            elif tag in _CELLS:
                append(" ")
            if element.text:
                append(element.text)
        elif element is not body:
            if tag in _BLOCKS:
                append(_PARAGRAPH)
            elif tag in _CELLS:
                append(" ")
            elif tag == "br":
                append(_LINE)
            if element.tail:
                append(element.tail)
    raw = "".join(parts)
    if _CONTROL_AFTER.search(raw):  # rare: str.translate with a table costs more than the parse
        raw = _CONTROL_AFTER.sub(" ", raw.translate(_C1_REPAIR))
    raw = raw.replace("\r\n", "\n").replace("\r", "\n")
    raw = raw.replace("\n", " ").replace(_LINE, "\n").replace(_PARAGRAPH, "\n\n")
    return _tidy(raw)


# -- the general path: html.parser, event by event -----------------------------------------------------------


def _text_by_html_parser(html: str) -> str:
    collector = _TextCollector()
    collector.feed(_without_unclosed_comment(html))
    collector.close()
    raw = "".join(collector.parts)
    # Source newlines outside <pre> are ordinary whitespace in HTML.
    raw = raw.replace("\n", " ").replace(_LINE, "\n").replace(_PARAGRAPH, "\n\n")
    return _tidy(raw)


def _without_unclosed_comment(html: str) -> str:
    """The input up to a last "<!--" that is never closed: a browser hides the rest, HTMLParser emits it."""
    start = html.rfind("<!--")
    if start >= 0 and html.find("-->", start + 4) < 0:
        return html[:start]
    return html


def looks_like_html(text: str) -> bool:
    """True when text declared as plain contains common HTML tags or a CDATA section: mislabelled HTML.

    Publishers often send HTML in fields typed text/plain (Atom 0.3 escaped content, Atom type="text");
    reading it as HTML gives the text a reader sees instead of tag soup.
    """
    return "<" in text and _LOOKS_LIKE_HTML.search(text) is not None


def normalize_plain_text(text: str) -> str:
    """Whitespace rules of `html_to_text` applied to text that is already plain: its line breaks are kept."""
    text = _CONTROL.sub(" ", text.translate(_C1_REPAIR).replace("\r\n", "\n").replace("\r", "\n"))
    return _tidy(text)


def single_line(text: str) -> str:
    """`normalize_plain_text`, then every line break becomes a space: for titles, names and labels."""
    return " ".join(normalize_plain_text(text).split())


def _tidy(text: str) -> str:
    # str.split() and the regex's \s are one set of whitespace (str.isspace): " ".join(line.split()) is the
    # old `_INLINE_SPACE.sub(" ", line).strip()`, at a fifth of the cost.
    lines = [" ".join(line.split()) for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
