"""html_to_text and the field helpers of the parse stage, as tables of input → output."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.htmltext import html_to_text, looks_like_html, normalize_plain_text, single_line
from monitor.parse._fields import absolute_http_url, categories, datetime_from_text, language_tag

HTML_CASES = [
    ("plain words", "plain words"),
    ("<p>One</p><p>Two</p>", "One\n\nTwo"),
    ("line<br>break<br/>again", "line\nbreak\nagain"),
    ("<ul><li>a</li><li>b</li></ul>", "a\n\nb"),
    ("<h2>Head</h2>text", "Head\n\ntext"),
    ("<b>bold</b> and <i>italic</i>", "bold and italic"),
    ("<script>var a = '<p>x</p>';</script>kept", "kept"),
    ("<style>p { color: red }</style>kept", "kept"),
    ("<noscript>enable js</noscript><template><p>t</p></template>kept", "kept"),
    ("a&nbsp;b &amp; c &#8217; &#x41; &eacute;", "a b & c \u2019 A é"),
    ("a &amp;lt;b&amp;gt; c", "a &lt;b&gt; c"),  # one level of escaping is decoded, not two
    ("x < y and y > z & more", "x < y and y > z & more"),
    ("  lots \t of \n\n  space  ", "lots of space"),
    ("<pre>line 1\n  line 2</pre>", "line 1\nline 2"),
    ("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b\n\nc"),
    ("<p>unclosed <b>bold <i>and italic", "unclosed bold and italic"),
    ("stray </div> end </p> tags", "stray\n\nend\n\ntags"),
    ("<![CDATA[<p>wrapped</p> twice]]>", "wrapped\n\ntwice"),
    ("<img src=x alt='not text'>caption", "caption"),
    ("ctrl\x00chars\x07here", "ctrl chars here"),
    ("\x93quoted\x94 \x96 dash\x81", "\u201cquoted\u201d \u2013 dash"),  # windows-1252 read as latin-1
    ("<b>\x93bold\x94</b>", "\u201cbold\u201d"),
    ("<p>a</p>\n\n\n<p>b</p>", "a\n\nb"),
    ("<svg><title>icon</title></svg>Text", "Text"),
    ("<script>never closed <p>all gone", ""),
]


@pytest.mark.parametrize(("html", "text"), HTML_CASES)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from([*"<>/&;#!-[]ab p=\"' \n\x00", "<p>", "<script>", "&amp;", "é"])).map("".join)
)
def test_html_to_text_never_raises_and_is_tidy(html: str) -> None:
    text = html_to_text(html)
    assert text == text.strip()
    assert "\n\n\n" not in text
    assert "  " not in text
    assert "\x00" not in text


def test_html_to_text_is_linear_on_large_input() -> None:
    # 2 MB of nested markup must not take quadratic time; a quadratic parser would take minutes here.
    html = "<div><p>word <b>bold</b> &amp; more</p></div>" * 50_000
    assert html_to_text(html).count("word bold & more") == 50_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<p>para</p>", True),
        ("<a href='x'>link</a>", True),
        ("<![CDATA[x]]>", True),
        ("Die Rückkehr von <i> und <b>", True),
        ("a < b and c > d", False),
        ("<description> is an element", False),
        ("plain text", False),
    ],
)
def test_looks_like_html(text: str, expected: bool) -> None:
    assert looks_like_html(text) is expected


def test_plain_text_keeps_its_line_breaks_and_single_line_joins_them() -> None:
    assert normalize_plain_text("a  b\r\n\r\n\r\nc\u00a0d ") == "a b\n\nc d"
    assert normalize_plain_text("it\x92s") == "it\u2019s"
    assert single_line(" Title\n  over\tlines ") == "Title over lines"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-01T08:00:00+01:00", datetime(2024, 3, 1, 7, 0, tzinfo=UTC)),
        ("2024-03-01T08:00:00Z", datetime(2024, 3, 1, 8, 0, tzinfo=UTC)),
        ("2024-03-01T08:00:00", datetime(2024, 3, 1, 8, 0, tzinfo=UTC)),  # no zone: taken as UTC
        ("Fri, 31 May 2019 12:17:58 -0700", datetime(2019, 5, 31, 19, 17, 58, tzinfo=UTC)),
        ("gestern", None),
        ("", None),
        (None, None),
        (1700000000, None),
        ("Mon, 99 Foo 2020 99:99:99 +0000", None),
    ],
)
def test_datetime_from_text(value: object, expected: datetime | None) -> None:
    assert datetime_from_text(value) == expected


@pytest.mark.parametrize(
    ("link", "bases", "expected"),
    [
        ("https://a.example/x", (), "https://a.example/x"),
        ("/x", ("https://a.example/feed/rss",), "https://a.example/x"),
        ("x", (None, "ftp://no.example/", "https://b.example/dir/"), "https://b.example/dir/x"),
        ("/x", (), None),
        ("javascript:alert(1)", ("https://a.example/",), None),
        ("mailto:a@b.example", (), None),
        ("http://[bad", (), None),
        ("  ", ("https://a.example/",), None),
        (None, (), None),
    ],
)
def test_absolute_http_url(link: object, bases: tuple[str | None, ...], expected: str | None) -> None:
    assert absolute_http_url(link, *bases) == expected


def test_language_tag_and_categories() -> None:
    assert language_tag(" de_DE ") == "de-de"
    assert language_tag("") is None
    assert language_tag(None) is None
    assert categories([" Politik ", "politik", None, "", "USA", "Außen  politik"]) == (
        "Politik",
        "USA",
        "Außen politik",
    )
