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
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = ["html_to_text", "looks_like_html", "normalize_plain_text", "single_line"]

# Elements whose content is never reader-visible article text.
_HIDDEN = frozenset({"script", "style", "template", "noscript", "svg", "iframe", "object", "head"})

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
_INLINE_SPACE = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")


class _TextCollector(HTMLParser):
    """Collects reader-visible text and break markers from a stream of HTML events."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden_stack: list[str] = []
        self._pre_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden_stack.append(tag)
            return
        if self._hidden_stack:
            return
        self._break_for(tag)
        if tag == "pre":
            self._pre_depth += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # <br/>, <p/>, <script/>: a self-closed element has no content, so it never opens a hidden scope.
        if not self._hidden_stack:
            self._break_for(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._hidden_stack:
            if tag in self._hidden_stack:
                # Close the innermost matching hidden element and anything left open inside it.
                while self._hidden_stack and self._hidden_stack.pop() != tag:
                    pass
            return
        if tag == "pre" and self._pre_depth:
            self._pre_depth -= 1
        if tag in _BLOCKS:
            self.parts.append(_PARAGRAPH)
        elif tag in _CELLS:
            self.parts.append(" ")

    def unknown_decl(self, data: str) -> None:
        # A CDATA section inside HTML is a feed that wrapped its HTML twice; its inside is the article.
        if data.startswith("CDATA[") and not self._hidden_stack:
            inner = _TextCollector()
            inner.feed(data[len("CDATA[") :])
            inner.close()
            self.parts.extend(inner.parts)

    def handle_data(self, data: str) -> None:
        if self._hidden_stack:
            return
        data = _CONTROL.sub(" ", data.translate(_C1_REPAIR).replace("\r\n", "\n").replace("\r", "\n"))
        if self._pre_depth:
            data = data.replace("\n", _LINE)
        self.parts.append(data)

    def _break_for(self, tag: str) -> None:
        if tag == "br":
            self.parts.append(_LINE)
        elif tag in _BLOCKS:
            self.parts.append(_PARAGRAPH)
        elif tag in _CELLS:
            self.parts.append(" ")


def html_to_text(html: str) -> str:
    """Plain text of an HTML fragment or document (see the module docstring for the exact rules)."""
    if "<" not in html and "&" not in html:
        # No markup: all whitespace, newlines included, is one space in HTML.
        return " ".join(_CONTROL.sub(" ", html.translate(_C1_REPAIR)).split())
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    raw = "".join(collector.parts)
    # Source newlines outside <pre> are ordinary whitespace in HTML.
    raw = raw.replace("\n", " ").replace(_LINE, "\n").replace(_PARAGRAPH, "\n\n")
    return _tidy(raw)


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
    lines = [_INLINE_SPACE.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
