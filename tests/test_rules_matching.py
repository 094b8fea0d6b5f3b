"""What terms, logic, scoping and actors match, on a small rule file with one rule per feature."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.rules import RuleSet, load_rules
from monitor.rules.explain import format_explanation
from monitor.types import Item

DATA = Path(__file__).parent / "data" / "rules"


@pytest.fixture(scope="module")
def ruleset() -> RuleSet:
    return load_rules(DATA / "engine.yaml")


def make_item(title: str = "", summary: str = "", **changes: object) -> Item:
    item = Item(
        key="k",
        feed_url="https://news.example/feed",
        feed_title="Example",
        guid="g",
        link="https://news.example/1",
        url=None,
        title=title,
        summary=summary,
        content="",
        categories=(),
        language=None,
        published=None,
        content_hash="",
    )
    return replace(item, **changes)  # type: ignore[arg-type]


def fired(ruleset: RuleSet, rule_id: str, title: str, summary: str = "", **changes: object) -> bool:
    matches = ruleset.match(make_item(title, summary, **changes))
    return any(m.rule_id == rule_id for m in matches)


@pytest.mark.parametrize(
    ("rule_id", "text", "language", "expected"),
    [
        ("word", "Negotiations resume", "en", True),  # Snowball stem
        ("word", "Renegotiation resumes", "en", False),  # whole tokens only
        ("phrase", "Rare-earth magnets", "en", True),  # hyphen = space
        ("phrase", "rare earths in Texas", "en", True),  # inflected last word
        ("phrase", "rare footage of Earth", "en", False),  # not consecutive
        ("phrase", "Rare earthworm found", "en", False),  # whole tokens only
        ("exact", "Handel mit Seltenen Erden", "de", False),  # exact phrase: no inflection
        ("exact", "SELTENE ERDEN im Fokus", "de", True),  # but case-insensitive
        ("prefix", "Seltenerdmetalle aus China", "de", True),
        ("prefix", "Seltene Erdbeobachtung", "de", False),
        ("acronym", "REE supply", "en", True),
        ("acronym", "REEs supply", "en", True),
        ("acronym", "Ree supply", "en", False),
        ("vocab", "Neodym-Preis steigt", "de", True),  # via a nested vocabulary
        ("vocab", "Seltenerd-Magnete", "de", True),
        ("all-none", "Russland und USA verhandeln", "de", True),
        ("all-none", "Russland verhandelt", "de", False),
        ("all-none", "Russland und USA: neue Sanktionen", "de", False),
        ("count", "Gas, Gas und nochmals Gas", "de", True),
        ("count", "Gas und Gas", "de", False),
        ("boolean", "Kiew meldet Angriffe", "de", True),
        ("boolean", "Ballett aus Kiew", "de", False),
        ("near", "Waffenruhe für die Ukraine", "de", True),  # 2 words between
        ("near", "Waffenruhe und ein Ende für die Ukraine", "de", False),  # 5 words between
        ("sentence", "Gespräche über die Zukunft der Ukraine", "de", True),
        ("sentence", "Gespräche in Paris. Die Ukraine wartet.", "de", False),
        ("regex", "Magnete aus NdFeB", "de", True),
        ("actor-trump", "Trumps Sondergesandter", "de", True),  # name ending -s
        ("actor-trump", "Трампа встретили", "ru", True),  # Russian case ending
        ("actor-trump", "Bayern trumpft auf", "de", False),
        ("actor-trump", "Die Trumpfkarte", "de", False),
        ("actor-trump", "Donald Trump Jr. launches a fund", "en", False),  # exclusion overlaps
        ("actor-trump", "She played her Trump card", "en", False),
        ("actor-trump", "The US president spoke", "en", True),  # role phrase
        ("actor-dmitriev", "Хоккеист Дмитриев забил", "ru", False),  # alias without context
        ("actor-dmitriev", "Глава РФПИ Дмитриев заявил", "ru", True),  # alias with context
        ("actor-dmitriev", "Визит Дмитриева в США", "ru", False),
        ("actor-dmitriev", "Визит Кирилла Дмитриева в США", "ru", True),  # each word of a name inflects
        ("actor-putin", "Путин заявил", "ru", True),
        ("actor-putin", "Лососевая путина началась", "ru", False),  # case-sensitive
        ("actor-putin", "Путина в этом году богатая, рыбаки довольны", "ru", False),  # exclude_context
    ],
)
def test_feature_table(ruleset: RuleSet, rule_id: str, text: str, language: str, expected: bool) -> None:
    assert fired(ruleset, rule_id, text, language=language) is expected


def test_hits_point_into_the_original_field_text(ruleset: RuleSet) -> None:
    item = make_item("Über Seltenerd-Magnete", "China und Seltenerdmetalle.", language="de")
    match = next(m for m in ruleset.match(item) if m.rule_id == "prefix")
    assert [(h.field, h.start, h.end, h.text) for h in match.hits] == [
        ("title", 5, 14, "Seltenerd"),
        ("summary", 10, 26, "Seltenerdmetalle"),
    ]
    for hit in match.hits:
        assert getattr(item, hit.field)[hit.start : hit.end] == hit.text


def test_field_scoping(ruleset: RuleSet) -> None:
    assert fired(ruleset, "title-only", "Putin spricht")
    assert not fired(ruleset, "title-only", "Rede", "Putin spricht")
    # link is not searched by default, only where a rule asks for it
    assert fired(ruleset, "link-scope", "nothing here")
    assert not fired(ruleset, "link-scope", "nothing here", link="https://other.test/1")


def test_weights_and_threshold(ruleset: RuleSet) -> None:
    match = next(
        m for m in ruleset.match(make_item("Neodym und Magnet", language="de")) if m.rule_id == "weighted"
    )
    assert match.score == 3
    assert not fired(ruleset, "weighted", "Neodym und Magnet im Windrad", language="de")  # 2 + 1 - 3
    assert not fired(ruleset, "weighted", "Neodym", language="de")


def test_feed_tag_and_language_scoping(ruleset: RuleSet) -> None:
    assert fired(ruleset, "scoped", "Putin spricht", language="de", feed_tags=("politics",))
    assert not fired(ruleset, "scoped", "Putin spricht", language="en", feed_tags=("politics",))
    assert not fired(ruleset, "scoped", "Putin spricht", language="de", feed_tags=("sport",))
    assert not fired(
        ruleset,
        "scoped",
        "Putin spricht",
        language="de",
        feed_tags=("politics",),
        feed_url="https://other.test/feed",
    )
    rule = ruleset.get("scoped")
    assert rule.notify == ("mail",)
    assert rule.realert == timedelta(days=1)
    assert rule.group_wait == timedelta(minutes=10)
    assert ruleset.get("word").notify is None


def test_disabled_rules_are_left_out(ruleset: RuleSet) -> None:
    assert "disabled" not in ruleset.ids
    with pytest.raises(KeyError, match="disabled"):
        ruleset.get("disabled")


def test_language_is_detected_when_not_declared(ruleset: RuleSet) -> None:
    # No declared language: detected as English, so "negotiations" is stemmed with the English stemmer.
    assert fired(ruleset, "word", "The negotiations of the day", language=None)


def test_match_text_and_explanation(ruleset: RuleSet) -> None:
    match = ruleset.match_text("phrase", "Rare-earth magnets\nMore rare earths.", language="en")
    assert match is not None
    text = format_explanation(match)
    assert text.splitlines()[0] == "phrase (phrase) fired on 2 hits"
    assert 'title[0:10] "Rare-earth"  ← rare earth' in text
    assert 'summary[5:16] "rare earths"  ← rare earth' in text
    assert ruleset.match_text("phrase", "nothing") is None


def test_match_is_thread_safe(ruleset: RuleSet) -> None:
    items = [make_item("Putin und Seltenerdmetalle", "Waffenruhe für die Ukraine", language="de")] * 50
    expected = [m.rule_id for m in ruleset.match(items[0])]
    results: list[list[str]] = []

    def work() -> None:
        for item in items:
            results.append([m.rule_id for m in ruleset.match(item)])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 200
    assert all(result == expected for result in results)


@pytest.mark.parametrize(
    ("title", "summary", "expected"),
    [
        # capital at a sentence start says nothing: fishing context anywhere in the item decides
        ("Путина на Камчатке обещает быть богатой", "Рыбаки ждут лосося.", False),
        ("Итоги сезона", "Путина выдалась богатой. Рыбаки довольны.", False),
        # mid-sentence capital is informative: only a fishing word in the same sentence drops it
        ("Визит Путина на Камчатку", "Рыбаки ждут лосося.", True),
        # no exclude_context hit at all: the sentence-initial mention stands
        ("Путина поддержали в Думе", "Закон принят.", True),
        # a case-insensitive name (Putin) is not affected by its position
        ("Putin visits Kamchatka", "Рыбаки ждут лосося.", True),
    ],
)
def test_case_sensitive_mention_at_sentence_start_needs_a_context_free_item(
    ruleset: RuleSet, title: str, summary: str, expected: bool
) -> None:
    assert fired(ruleset, "actor-putin", title, summary, language="ru") is expected
