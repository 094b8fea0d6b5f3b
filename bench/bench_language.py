"""Language detection on short texts: accuracy on titles alone and on title + summary, and cost per item, for the
function-word guess monitor used before issue 15, lingua-language-detector and py3langid, each on every language
it knows and restricted to the rule languages (de, en, ru), plus monitor.text.detect_language as it is now.

Run: .venv/bin/python bench/bench_language.py   (a minute or two; prints Markdown tables)

Two labelled sets:

- corpus: the real feeds in ../shared/corpus/feeds. An item's label is the language its entry or feed declares
  (primary subtag), or, for a feed that declares none, the language of the outlet when it is unambiguous
  (OUTLET_LANGUAGE below: Le Monde is French, heise German ...). Left out: feeds whose declaration is not
  reliable (MULTILINGUAL: user diaries in many languages) and feeds with no declaration and no single outlet
  language. At most 40 items per feed, so the 730 podcast episodes of one feed do not outweigh the rest. Labels
  are per feed, so an English headline in a German feed counts as an error of every detector alike.
- own: the hand-written de/en/ru items of the project (../shared/eval dev set, tests/data/rules holdout and
  blind sets), each with the language it was written in: short agency headlines, the case of issue 15.

Cost: mean microseconds per text over the corpus titles, after a warm-up pass (models loaded).
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor import text as monitor_text
from monitor.feedlanguage import FeedLanguages
from monitor.normalize import primary_language
from monitor.parse import parse_feed
from monitor.text import tokenize

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "feeds"
EVAL = ROOT.parent / "shared" / "eval"
RULE_SETS = ROOT / "tests" / "data" / "rules"
RULE_LANGUAGES = ("de", "en", "ru")
PER_FEED = 40

# Feeds that declare no language, by an outlet whose language is not in doubt.
OUTLET_LANGUAGE = {
    "Ranchero-Software__NetNewsWire__biorxiv-plant-biology.rdf": "en",
    "Ranchero-Software__NetNewsWire__daringfireball-jsonfeed1.json": "en",
    "Ranchero-Software__NetNewsWire__inessential-jsonfeed.json": "en",
    "Ranchero-Software__NetNewsWire__livemint-news.xml": "en",
    "Ranchero-Software__NetNewsWire__pixelenvy-jsonfeed-http-version.json": "en",
    "Ranchero-Software__NetNewsWire__rosemaryorchard-jsonfeed-large.json": "en",
    "danmactough__node-feedparser__oren-ru-windows1251.xml": "ru",
    "feeddeck__feeddeck__freiepresse-chemnitz.atom": "de",
    "feed-rs__feed-rs__golem-rss10-iso8859.xml": "de",
    "rbren__rss-parser__heise-developer.atom": "de",
    "rbren__rss-parser__science-magazine-rdf.rss": "en",
    "rbren__rss-parser__uol-noticias-noprolog-latin1.rss": "pt",
    "spacecowboy__Feeder__geekpark-chinese.xml": "zh",
    "spacecowboy__Feeder__lemonde-une.xml": "fr",
    "spacecowboy__Feeder__research-rsc-large.atom": "en",
    "spacecowboy__Feeder__rutube-tnt-russian-mediarss.xml": "ru",
    "spacecowboy__Feeder__suspilne-ukrainian-default-ns.xml": "uk",
}
MULTILINGUAL = {"spacecowboy__Feeder__osm-diaries-geo.xml"}


# The detector before issue 15, kept here as the baseline: script first (as now), then for Latin script the
# language with the most common function words, None when none occurs.
_FUNCTION_WORDS: dict[str, frozenset[str]] = {
    lang: frozenset(words.split())
    for lang, words in {
        "en": "the and of to in is that for on with as was by at from are has have it its this will be",
        "de": "der die das und ist nicht mit von den dem des ein eine einer auf fuer sich im zu auch bei wird",
        "fr": "le la les et des du un une est dans pour que qui sur pas avec au aux ce",
        "es": "el la los las y de del que en un una por con para es se al lo como",
        "it": "il lo la gli le e di del della che un una per con non sono nel alla",
        "nl": "de het een en van is dat op te in met voor niet zijn aan ook",
        "pt": "o a os as e de do da que em um uma para com nao por se dos das",
        "pl": "i w na z sie nie do to jest ze o jak po za od",
    }.items()
}


def function_word_language(text: str) -> str | None:
    """monitor.text.detect_language as it was before issue 15 (a copy, so the baseline stays runnable)."""
    letters, others_re = monitor_text._SCRIPT_LETTERS, monitor_text._OTHER_LETTERS
    sample = text[:4000]
    if sample.isascii():
        counts = {"latin": len(letters["latin"].findall(sample))}
    else:
        counts = {script: len(pattern.findall(sample)) for script, pattern in letters.items()}
        others = [found.start() for found in others_re.finditer(sample) if found.group().isalpha()]
        counts["other"] = len(others)
    counts = {script: count for script, count in counts.items() if count}
    if len(counts) > 1:
        first = {
            script: others[0] if script == "other" else letters[script].search(sample).start()  # type: ignore[union-attr]
            for script in counts
        }
        counts = dict(sorted(counts.items(), key=lambda entry: first[entry[0]]))
    if not counts:
        return None
    script = max(counts, key=lambda name: counts[name])
    if script == "cyrillic":
        return "uk" if any(c in text for c in "іїєґІЇЄҐ") else "ru"
    if script in ("han", "kana"):
        return "ja" if counts.get("kana", 0) else "zh"
    simple = {"greek": "el", "arabic": "ar", "hebrew": "he", "hangul": "ko"}
    if script != "latin":
        return simple.get(script)
    words = tokenize(sample).norms
    scores = {lang: sum(1 for word in words if word in vocab) for lang, vocab in _FUNCTION_WORDS.items()}
    best = max(scores, key=lambda lang: scores[lang])
    return best if scores[best] > 0 else None


def corpus_items() -> list[tuple[str, str, str, str]]:
    """(feed, label, title, summary) for the labelled corpus items."""
    found: list[tuple[str, str, str, str]] = []
    for path in sorted(CORPUS.iterdir()):
        if path.name == "SOURCES.md" or path.name in MULTILINGUAL:
            continue
        try:
            feed = parse_feed(path.read_bytes(), source=path.name)
        except Exception:  # the corpus holds broken feeds on purpose
            continue
        for entry in feed.entries[:PER_FEED]:
            label = (
                primary_language(entry.language)
                or primary_language(feed.language)
                or OUTLET_LANGUAGE.get(path.name)
            )
            if label and entry.title.strip():
                found.append((path.name, label, entry.title, entry.summary[:600]))
    return found


def own_items() -> list[tuple[str, str, str, str]]:
    found: list[tuple[str, str, str, str]] = []
    for path in sorted(EVAL.glob("dev-*.xml")):
        root = ElementTree.parse(path).getroot()
        label = primary_language(root.findtext("channel/language")) or path.stem.split("-")[1]
        for item in root.iter("item"):
            found.append((path.name, label, item.findtext("title") or "", item.findtext("description") or ""))
    for path in sorted(RULE_SETS.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            continue
        for section in ("items", "probes"):
            for entry in data.get(section) or []:
                if isinstance(entry, dict) and entry.get("lang") in RULE_LANGUAGES and entry.get("title"):
                    found.append((path.name, entry["lang"], entry["title"], entry.get("summary") or ""))
    return found


def detectors() -> dict[str, Callable[[str], str | None]]:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    def langid_of(languages: tuple[str, ...] | None) -> Callable[[str], str | None]:
        identifier = LanguageIdentifier.from_model_file(MODEL_FILE)
        if languages:
            identifier.set_languages(list(languages))

        def detect(text: str) -> str | None:
            language: str = identifier.classify(text)[0]
            return language

        return detect

    try:
        from lingua import IsoCode639_1, Language, LanguageDetectorBuilder
    except ImportError:  # pip install -e '.[bench]'
        print("lingua-language-detector is not installed: its rows are left out")
        return {
            "function words (before)": function_word_language,
            "py3langid, all 97": langid_of(None),
            "py3langid, de/en/ru": langid_of(RULE_LANGUAGES),
            "monitor.text.detect_language (now)": monitor_text.detect_language,
        }

    def lingua_of(builder: LanguageDetectorBuilder) -> Callable[[str], str | None]:
        detector = builder.build()

        def detect(text: str) -> str | None:
            found = detector.detect_language_of(text)
            return found.iso_code_639_1.name.lower() if found is not None else None

        return detect

    restricted = [
        Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper())) for code in RULE_LANGUAGES
    ]
    return {
        "function words (before)": function_word_language,
        "lingua, all 75": lingua_of(
            LanguageDetectorBuilder.from_all_languages().with_preloaded_language_models()
        ),
        "lingua, de/en/ru": lingua_of(LanguageDetectorBuilder.from_languages(*restricted)),
        "py3langid, all 97": langid_of(None),
        "py3langid, de/en/ru": langid_of(RULE_LANGUAGES),
        "monitor.text.detect_language (now)": monitor_text.detect_language,
    }


def with_feed_memory(items: list[tuple[str, str, str, str]], field: str) -> dict[str, tuple[int, int]]:
    """Accuracy of monitor's detection steadied per feed (monitor.feedlanguage), items in document order."""
    memory = FeedLanguages()
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for index, (feed, label, title, summary) in enumerate(items):
        if feed.endswith(".yaml") or feed.startswith("dev-"):
            # The project's own files mix languages; each stands for one feed per language it holds.
            feed = f"{feed}#{label}"
        text = title if field == "title" else f"{title}\n{summary}"
        tally[label][0] += memory.language_of(feed, str(index), text) == label
        tally[label][1] += 1
    return {label: (c, t) for label, (c, t) in tally.items()}


def accuracy(
    detect: Callable[[str], str | None], items: list[tuple[str, str, str, str]], field: str
) -> dict[str, tuple[int, int]]:
    """label -> (correct, total)."""
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for _, label, title, summary in items:
        text = title if field == "title" else f"{title}\n{summary}"
        tally[label][0] += detect(text) == label
        tally[label][1] += 1
    return {label: (c, t) for label, (c, t) in tally.items()}


def cost_us(detect: Callable[[str], str | None], texts: list[str]) -> float:
    for text in texts:
        detect(text)
    start = time.perf_counter()
    for text in texts:
        detect(text)
    return (time.perf_counter() - start) / len(texts) * 1e6


def percent(pair: tuple[int, int] | None) -> str:
    return f"{100 * pair[0] / pair[1]:.1f}" if pair and pair[1] else "–"


def summed(per_label: dict[str, tuple[int, int]], labels: set[str]) -> tuple[int, int]:
    pairs = [per_label[label] for label in labels if label in per_label]
    return sum(c for c, _ in pairs), sum(t for _, t in pairs)


def main() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    corpus, own = corpus_items(), own_items()
    counts = Counter(label for _, label, _, _ in corpus)
    print(
        f"corpus: {len(corpus)} items from {len({f for f, *_ in corpus})} feeds, {dict(counts.most_common())}"
    )
    print(f"own: {len(own)} items, {dict(Counter(label for _, label, _, _ in own).most_common())}\n")
    others = set(counts) - set(RULE_LANGUAGES)
    rule = set(RULE_LANGUAGES)
    print(
        "| Detector | corpus de | en | ru | de+en+ru | other langs | own de | en | ru | own all | µs/title |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    titles = [title for _, _, title, _ in corpus]
    for name, detect in detectors().items():
        for field in ("title", "title+summary"):
            c, o = accuracy(detect, corpus, field), accuracy(detect, own, field)
            cost = f"{cost_us(detect, titles):.1f}" if field == "title" else ""
            print(
                f"| {name}, {field} | {percent(c.get('de'))} | {percent(c.get('en'))} | {percent(c.get('ru'))} "
                f"| {percent(summed(c, rule))} | {percent(summed(c, others))} | {percent(o.get('de'))} "
                f"| {percent(o.get('en'))} | {percent(o.get('ru'))} | {percent(summed(o, rule))} | {cost} |"
            )
    for field in ("title", "title+summary"):
        c, o = with_feed_memory(corpus, field), with_feed_memory(own, field)
        print(
            f"| monitor, with the per-feed memory, {field} | {percent(c.get('de'))} | {percent(c.get('en'))} "
            f"| {percent(c.get('ru'))} | {percent(summed(c, rule))} | {percent(summed(c, others))} "
            f"| {percent(o.get('de'))} | {percent(o.get('en'))} | {percent(o.get('ru'))} "
            f"| {percent(summed(o, rule))} | |"
        )
    print("\nShort German headline: ", end="")
    sample = "Verhandlungen in Genf gescheitert"
    print(", ".join(f"{name}: {detect(sample)}" for name, detect in detectors().items()))


if __name__ == "__main__":
    main()
