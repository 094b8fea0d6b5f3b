"""The lxml fast path of html_to_text reads exactly what html.parser reads: on generated HTML (hypothesis, with
the tags, references, whitespace and characters where the two parsers could differ), on table cases, and on the
HTML fields of ../shared/corpus. Wherever the gate sends an input to the fast path, both texts are equal; the
gate is also shown to take the common feed HTML (or the fast path would be dead code)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.htmltext import _fast_path_can_read, _text_by_html_parser, _text_by_lxml, html_to_text

TAGS = ["p", "div", "b", "i", "a href='x'", "span", "li", "ul", "h2", "td", "tr", "table", "blockquote", "em"]
PIECES = st.one_of(
    st.sampled_from([f"<{t}>" for t in TAGS] + [f"</{t.split()[0]}>" for t in TAGS]),
    st.sampled_from(
        ["<br>", "<br/>", "<img src=x alt='y'>", "<hr>", "</br>", "<p/>", "<center>", "</center>"]
    ),
    st.sampled_from(
        ["&amp;", "&nbsp;", "&eacute;", "&#8217;", "&#x41;", "&#128;", "&#150;", "&apos;", "&hellip;"]
    ),
    st.sampled_from(
        ["&amp", "& ", "&#0;", "&#xD800;", "&bogus;", "<", ">", "a < b", "<!-- c -->", "<![CDATA[x]]>"]
    ),
    st.sampled_from([" ", "\n", "\r\n", "\t", "\xa0", "\u2003", "\x93", "\x85", "\x0c", "\ufdd0"]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8),
    st.sampled_from(["word", "Wörter", "слово", "x", "  two  words "]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(PIECES, max_size=14).map("".join))
def test_the_fast_path_reads_what_html_parser_reads(html: str) -> None:
    if _fast_path_can_read(html):
        fast = _text_by_lxml(html)
        assert fast is None or fast == _text_by_html_parser(html)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TAGS), min_size=1, max_size=5), st.lists(PIECES, max_size=6))
def test_well_nested_html_takes_the_fast_path_and_agrees(tags: list[str], texts: list[str]) -> None:
    html = "".join(f"<{t}>{texts[i] if i < len(texts) else 'w'}" for i, t in enumerate(tags))
    html += "".join(f"</{t.split()[0]}>" for t in reversed(tags))
    if _fast_path_can_read(html):
        assert _text_by_lxml(html) == _text_by_html_parser(html)


@pytest.mark.parametrize(
    ("html", "fast"),
    [
        ("<p>One</p><p>Two <b>bold</b> &amp; <a href='x'>link</a></p>", True),
        ("line<br>break<br/>again", True),
        ("<ul><li>a</li><li>b</li></ul>", True),
        ("<table><tr><td>a</td><td>b</td></tr></table>", True),
        ("Caf&eacute; &#8217;s &nbsp;x", True),
        ("<p>unclosed", False),  # libxml2 and html.parser close it alike, but the gate only takes closed tags
        ("stray </div> end", False),
        ("<script>x</script>y", False),
        ("<!-- c -->y", False),
        ("a < b", False),
        ("&amp without semicolon", False),
        ("</br>", False),
        ("<div/>x", False),
        ("<pre>a\n b</pre>", False),
        ("<center>x</center>", False),
    ],
)
def test_the_gate(html: str, fast: bool) -> None:
    assert _fast_path_can_read(html) is fast
    assert html_to_text(html) == _text_by_html_parser(html)


_FIELD = re.compile(r"<(description|content:encoded|summary|content)[^>]*>(.*?)</\1>", re.S)


def _corpus_html(shared_dir: Path) -> list[str]:
    import html as html_module

    found: list[str] = []
    for path in sorted((shared_dir / "corpus").rglob("*")):
        if path.is_file() and path.suffix in (".xml", ".rss", ".atom", ""):
            text = path.read_text(encoding="utf-8", errors="replace")
            for match in _FIELD.finditer(text):
                value = match.group(2).strip()
                if value.startswith("<![CDATA[") and value.endswith("]]>"):
                    value = value[9:-3]
                else:
                    value = html_module.unescape(value)
                found.append(value)
    return found


def test_the_fast_path_agrees_on_the_corpus(shared_dir: Path) -> None:
    fields = _corpus_html(shared_dir)
    if not fields:
        pytest.skip("no corpus HTML fields")
    fast = [f for f in fields if _fast_path_can_read(f)]
    differing = [f[:200] for f in fast if _text_by_lxml(f) not in (None, _text_by_html_parser(f))]
    assert not differing
    assert len(fast) >= 0.3 * len(fields), (len(fast), len(fields))


NESTING = ["p", "div", "b", "a", "li", "ul", "ol", "h2", "td", "th", "tr", "table", "tbody", "dl", "dt", "dd"]


def test_every_small_nesting_the_gate_takes_agrees() -> None:
    """All nestings of up to three elements, with text or none around them: libxml2's implied end tags (a cell
    in a cell, a block in a <p>, an item outside a list) must never reach the fast path."""
    import itertools

    taken = 0
    for depth in (1, 2, 3):
        for tags in itertools.product([*NESTING, "hr", "br"], repeat=depth):
            for inner, after in (("w", "w"), ("w", " "), ("", "")):
                html = "".join(f"<{t}>{inner}" for t in tags)
                html += "".join(f"</{t}>{after}" for t in reversed(tags) if t not in ("hr", "br"))
                if _fast_path_can_read(html):
                    taken += 1
                    assert _text_by_lxml(html) == _text_by_html_parser(html), html
    assert taken > 500


def test_threads_each_get_their_own_parser() -> None:
    from concurrent.futures import ThreadPoolExecutor

    html = "<p>One <b>two</b></p><ul><li>three</li></ul>"
    with ThreadPoolExecutor(4) as pool:
        found = set(pool.map(lambda _: html_to_text(html * 50), range(200)))
    assert found == {_text_by_html_parser(html * 50)}
