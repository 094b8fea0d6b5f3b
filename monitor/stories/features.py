"""The evidence the event tier weighs, drawn from an item's analysis. Pure, no I/O.

Four kinds of feature, each a short string hashed to a stable 32-bit id (crc32: the ids are stored, so they
must not depend on Python's salted `hash`):

* ``t:<lang>:<stem>`` — a content word: the Snowball stem of a folded word of the cleaned headline or summary,
  without function words and short words. Language-specific: it links reports in one language only.
* ``a:<actor id>`` — an actor of the rule set's dictionaries that the item mentions (Путин, Putin and Wladimir
  Putin are one id). Language-independent.
* ``n:<skeleton>`` — a capitalised word that does not start a sentence (a name, a place, an organisation; in
  German also any noun), reduced to a spelling-independent skeleton: Cyrillic transliterated, spelling variants
  folded (w/v, z/s, sch/sh/ш, tsch/ch/ч, ...), vowels after the first letter dropped, cut to five letters. So
  Дмитриев, Dmitrijew and Dmitriev all give ``n:dmtrv``, and Мантурова (genitive) and Manturow ``n:mntrv``.
  Language-independent.
* ``f:<value>[:<unit>]`` — a figure, with its multiplier applied and its unit named when one follows it:
  "15 billion roubles", "15 Milliarden Rubel" and "15 млрд рублей" are all ``f:1.5e+10:rub``; "137,000
  barrels", "137.000 Barrel" and "137 тыс. баррелей" ``f:137000:bbl``; a year is ``f:2026:year``.
  Language-independent.
"""

from __future__ import annotations

import dataclasses
import re
import zlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from monitor.analysis import NO_ACTORS, ActorMentions, Analysis
from monitor.stories.cleaning import cleaned_words
from monitor.text import SNOWBALL_LANGUAGES, stem_words, stemmer_language

__all__ = [
    "ACTOR",
    "CONTENT_WORD",
    "FIGURE",
    "KIND_MASK",
    "MEASURE",
    "MEASURE_MASK",
    "NAME",
    "YEAR",
    "EventFeatures",
    "event_features",
    "feature_id",
    "label_of",
    "name_skeleton",
]


# The low three bits of a feature id say its kind, so that a centroid can tell them apart without storing it.
# Language-independent kinds are odd.
KIND_MASK = 0b111
CONTENT_WORD = 0b000  # t:
NAME = 0b001  # n:
FIGURE = 0b011  # f: other than years
ACTOR = 0b101  # a:
YEAR = 0b111  # f:...:year
# The fourth bit of a figure's id says whether it is a measure: a figure with a unit or a multiplier ("25%",
# "15 billion roubles"), with decimals ("87,7"), of four digits or more ("216,000"), or a result ("2:1"). Only
# measures veto a match (see `monitor.stories.event`): a small bare count ("27 member states", "44 dead", "319
# votes") is a detail that the next report of the event states otherwise or not at all, while a measure is the
# fact that tells one release, one price, one match of a template from the next.
MEASURE_MASK = 0b1111
MEASURE = 0b1000 | FIGURE


def feature_id(feature: str) -> int:
    """Stable 32-bit id of a feature string, its low three bits its kind (see `KIND_MASK`)."""
    return _feature_id(feature)


def _feature_id(feature: str) -> int:
    crc = zlib.crc32(feature.encode("utf-8")) & ~KIND_MASK
    kind = feature[:2]
    if kind == "t:":
        return crc | CONTENT_WORD
    if kind == "n:":
        return crc | NAME
    if kind == "a:":
        return crc | ACTOR
    if feature.endswith(":year"):
        return crc | YEAR
    return (crc & ~MEASURE_MASK) | (MEASURE if _is_measure(feature) else FIGURE)


def _is_measure(figure: str) -> bool:
    if figure.count(":") == 2:
        return True  # a unit or a result
    value = float(figure[2:])
    return value >= 1000 or not value.is_integer()


@dataclass(frozen=True, slots=True)
class EventFeatures:
    """An item's event evidence: ids of its content words (language-specific) and of its language-independent
    features (actors, names, figures), plus the readable form of each id for `stories show`."""

    language: str
    terms: frozenset[int]
    shared: frozenset[int]
    labels: dict[int, str]  # of the language-independent features (content words: `label_of`)
    results: list[int]  # the ids of the figures that are results ("2:1")
    units: list[int] = dataclasses.field(default_factory=list)  # the ids of the figures with a unit ("25%")

    @property
    def all(self) -> frozenset[int]:
        return self.terms | self.shared


# Function words and reporting verbs of the three languages of the labelled sets, folded (ä → ae, ё → е). The
# IDF learned from the stream gives such words a low weight once the window holds enough items; the list keeps
# them out from the first item on, when every word is equally rare. Other languages rely on the IDF alone.
def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STOP = _words(
    """
    the and for that with from this was were are has have had its into over after about than but not will would
    could should been being also said says say told new more most some such their there they them then what when
    which who whom while where your our out off per via all any two three four five one other only own same very
    just can may might must shall does did done doing his her him she hers its itself how why yet still even
    monday tuesday wednesday thursday friday saturday sunday week year years month today yesterday
    der die das und ist nicht mit von den dem des ein eine einer eines einem einen auf fuer sich im zu auch bei
    wird werden wurde wurden sind sein seine seiner seinen ihre ihren ihr hat haben hatte nach aus als vor um an
    am oder aber noch nur wie so dass bis zum zur ueber unter durch gegen ohne mehr sei seien soll sollen kann
    koennen muss man es er sie wir ab wenn beim vom diese dieser diesen dieses jahr jahren teilte mit sagte
    montag dienstag mittwoch donnerstag freitag samstag sonntag
    и в во не что он на я с со как а то все она так его но да ты к у же вы за бы по только ее мне было вот от
    меня еще нет о из ему теперь когда даже ну вдруг ли если уже или ни быть был него до вас нибудь опять уж вам
    ведь там потом себя ничего ей может они тут где есть надо ней для мы тебя их чем была сам чтоб без будто
    чего раз тоже себе под будет ж тогда кто этот того потому этого какой совсем ним здесь этом один почти мой
    тем чтобы нее сейчас были куда зачем всех никогда можно при наконец два об другой хоть после над больше тот
    через эти нас про всего них какая много разве три эту моя впрочем хорошо свою этой перед иногда лучше чуть
    том нельзя такой им более всегда конечно всю между также заявил заявила сообщил сообщила сообщили году года
    понедельник вторник среду среда четверг пятницу пятница субботу воскресенье
    """
)

# -- names: a spelling-independent skeleton ------------------------------------------------------------------

_CYRILLIC = str.maketrans(
    {
        "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ж": "zh", "з": "z", "и": "i", "й": "i",
        "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t", "у": "u",
        "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "", "ы": "y", "ь": "", "э": "e",
        "ю": "yu", "я": "ya", "і": "i", "ї": "i", "є": "e", "ґ": "g",
    }
)  # fmt: skip
# Russian case endings with a consonant (vowel endings vanish with the vowels anyway): instrumental and
# genitive/dative of adjectival surnames. Мантуровым, Зеленского → Мантуров, Зеленск.
_CYRILLIC_ENDING = re.compile(r"(?:ого|его|ому|ему|ыми|ими|ым|им|ом|ем)$")
# Spelling variants of one sound across German, English and transliterations, longest first. Digraphs first go
# to placeholders (8: the sound of ц, 9: of ч) so that the plain letters can be folded after them: c → k (Macron,
# Макрон; Lecornu, Лекорню), y → j (Japan, Япония), kh → h (Khamenei; Hamas, ХАМАС).
_DIGRAPHS = (
    ("shch", "s"), ("tsch", "9"), ("sch", "s"), ("tch", "9"), ("zh", "s"), ("sh", "s"), ("ch", "9"),
    ("kh", "h"), ("ts", "8"), ("tz", "8"), ("ck", "k"), ("ph", "f"),
)  # fmt: skip
_LETTERS = str.maketrans({"c": "k", "x": "ks", "w": "v", "z": "s", "q": "k", "y": "j"})
_VOWELS = str.maketrans("", "", "aeioujh")
_SKELETON_LENGTH = 5


def name_skeleton(norm: str) -> str | None:
    """The skeleton of a folded name (see module doc), or None when too little is left to tell names apart."""
    if not norm or norm.isdigit():
        return None
    if "\u0400" <= norm[0] <= "\u04ff":
        if len(norm) >= 6:
            norm = _CYRILLIC_ENDING.sub("", norm)
        norm = norm.translate(_CYRILLIC)
    if not norm.isascii():
        return None
    for old, new in _DIGRAPHS:
        if old in norm:
            norm = norm.replace(old, new)
    norm = norm.translate(_LETTERS)
    rest = norm[1:].translate(_VOWELS)
    skeleton = norm[0]
    for char in rest:
        if char != skeleton[-1]:
            skeleton += char
    return skeleton[:_SKELETON_LENGTH] if len(skeleton) >= 3 else None


# -- organisations: one key for an abbreviation and its full names -------------------------------------------

# Institutions that the news names by an abbreviation in one report and by their full name in the next, in
# each of the three languages ("ЦБ" and "Банк России", "EZB", "Europäische Zentralbank" and "ECB"): no skeleton
# links those. Each alias is a sequence of folded words; a word of four letters or more also matches with up to
# three letters of inflection after it ("Банком России", "Europäischen Zentralbank"), a shorter one only as
# itself and written in capitals (so "un" and "fed" are no institution). The key is a name feature, `n:=<key>`.
_ORGANISATIONS = {
    "ecb": (
        "ecb", "ezb", "ецб", "european central bank", "europaeische zentralbank", "европейский центральный банк",
        "европейского центрального банка",
    ),
    "fed": (
        "fed", "federal reserve", "фрс", "федеральная резервная система", "us-notenbank", "us notenbank",
    ),
    "bank-of-russia": (
        "цб", "центробанк", "банк россии", "центральный банк россии", "bank of russia", "russian central bank",
        "russische zentralbank", "russischen zentralbank",
    ),
    "bank-of-england": ("boe", "bank of england", "банк англии"),
    "bank-of-japan": ("boj", "bank of japan", "банк японии"),
    "imf": ("imf", "iwf", "мвф", "international monetary fund", "internationale waehrungsfonds",
            "международный валютный фонд"),
    "un": ("un", "uno", "оон", "united nations", "vereinten nationen", "организация объединенных наций"),
    "nato": ("nato", "нато", "north atlantic treaty organization", "nordatlantikpakt"),
    "eu-commission": ("european commission", "eu-kommission", "eu kommission", "europaeische kommission",
                      "еврокомиссия", "европейская комиссия"),
    "wto": ("wto", "вто", "world trade organization", "welthandelsorganisation", "всемирная торговая организация"),
    "iaea": ("iaea", "iaeo", "магатэ", "international atomic energy agency", "internationale atomenergiebehoerde",
             "международное агентство по атомной энергии"),
    "destatis": ("destatis", "statistische bundesamt", "statistisches bundesamt", "federal statistics office"),
    "rosstat": ("росстат", "rosstat"),
}  # fmt: skip
_INFLECTION = 3


def _alias_table() -> dict[str, list[tuple[tuple[str, ...], str]]]:
    """The aliases by the first four letters of their first word, for one lookup per word."""
    table: dict[str, list[tuple[tuple[str, ...], str]]] = {}
    for key, aliases in _ORGANISATIONS.items():
        for alias in aliases:
            parts = tuple(alias.replace("-", " ").split())
            table.setdefault(parts[0][:4], []).append((parts, key))
    return table


_ALIASES = _alias_table()


# Russian plural endings of the nouns in `_ORGANISATIONS`: "банков России" are Russia's banks, not its central
# bank ("Банка России", "Банком России" are).
_PLURAL = frozenset(("и", "ы", "ов", "ам", "ами", "ах"))


def _alias_word(pattern: str, norm: str) -> bool:
    if len(pattern) < 4:
        return norm == pattern
    ending = norm[len(pattern) :]
    return norm.startswith(pattern) and len(ending) <= _INFLECTION and ending not in _PLURAL


def _organisations(norms: Sequence[str], surfaces: Sequence[str]) -> Iterable[tuple[str, int, int]]:
    """The institutions named in a field's words (see `_ORGANISATIONS`): each key with the range of the words
    that name it."""
    for at, norm in enumerate(norms):
        for parts, key in _ALIASES.get(norm[:4], ()):
            if len(parts) == 1 and len(parts[0]) < 4 and not surfaces[at][:1].isupper():
                continue  # "un", "fed": an abbreviation starts with a capital ("UN", "ЦБ", "the Fed")
            end = at + len(parts)
            if end <= len(norms) and all(
                _alias_word(p, n) for p, n in zip(parts, norms[at:end], strict=True)
            ):
                yield key, at, end
                break


# -- figures with units --------------------------------------------------------------------------------------

# A number: digits with thousands groups ("12 260", "1.300", "137,000") or a decimal part ("3,75", "6.9").
_NUMBER = re.compile(
    r"(?<![\w.,])([$€£])?\s?(\d{1,3}(?:[ \u00a0\u202f.,]\d{3})+|\d+)(?:[.,](\d{1,2}))?(?![\d])"
)
_MULTIPLIERS = (
    (("trillion", "trn", "трлн", "триллион"), 1e12),
    (("billion", "bn", "milliard", "mrd", "млрд", "миллиард"), 1e9),
    (("million", "mln", "mio", "млн", "миллион"), 1e6),
    (("thousand", "тыс", "тысяч"), 1e3),
)
_UNITS = (
    (("percent", "prozent", "процент", "%", "проц"), "pct"),
    (("dollar", "доллар", "usd", "us", "$"), "usd"),
    (("euro", "евро", "€", "eur"), "eur"),
    (("rouble", "ruble", "rubel", "рубл", "руб"), "rub"),
    (("franc", "franken", "франк"), "chf"),
    (("tonne", "tons", "tonnen", "тонн"), "t"),
    (("barrel", "баррел"), "bbl"),
    (("kilomet", "km", "километр", "км"), "km"),
    (("kilogram", "kilo", "kg", "килограмм", "кг"), "kg"),
    (("point", "punkt", "zähler", "пункт"), "pt"),
    (("hectare", "hektar", "гектар"), "ha"),
    (("minute", "минут"), "min"),
    (("hour", "stunde", "час"), "h"),
    (("day", "tag", "дн", "дня", "сут"), "day"),
)
# The words after a figure, also after a hyphen: "a 28-point plan", "der 28-Punkte-Plan", "a 25-percent stake"
# name the unit as "28 points" and "28 Punkte" do.
_AFTER = re.compile(r"(?:\s*|-)(%|[^\W\d_]+\.?(?:\s+[^\W\d_]+)?)")
# A unit or multiplier word with at most this many letters of inflection after it ("рублей", "Milliarden",
# "punkte"), so that "Eurofighter" is not a euro amount.
_MAX_ENDING = 3


def _names(after: str, words: tuple[str, ...]) -> bool:
    first = after.split(None, 1)[0].rstrip(".") if after else ""
    return any(first.startswith(word) and len(first) - len(word) <= _MAX_ENDING for word in words) or any(
        after.startswith(word) for word in words if not word.isalpha()
    )


def _number(whole: str, decimals: str | None) -> float:
    digits = re.sub(r"[ \u00a0\u202f.,]", "", whole)
    value = float(digits)
    if decimals:
        value += float(decimals) / 10 ** len(decimals)
    return value


# A result: "2:1", "3:0" (a match, a vote). The single digits would be left out as figures, yet two results of
# one template are the facts that tell two matches apart.
_RESULT = re.compile(r"(?<![\d:])(\d{1,3}):(\d{1,3})(?![\d:])")


def _figure_features(text: str) -> Iterable[str]:
    for found in _RESULT.finditer(text):
        yield f"f:{found.group(1)}-{found.group(2)}:result"
    for found in _NUMBER.finditer(text):
        symbol, whole, decimals = found.group(1), found.group(2), found.group(3)
        value = _number(whole, decimals)
        after_match = _AFTER.match(text, found.end())
        after = after_match.group(1).lower() if after_match else ""
        multiplier = next((m for words, m in _MULTIPLIERS if _names(after, words)), None)
        if multiplier is not None:
            value *= multiplier
            after = after.split(None, 1)[1] if " " in after else ""
        unit = "usd" if symbol == "$" else "eur" if symbol == "€" else None
        if unit is None:
            unit = next((name for words, name in _UNITS if _names(after, words)), None)
        if (
            unit is None
            and multiplier is None
            and not decimals
            and len(whole) == 4
            and whole[:2] in ("19", "20")
        ):
            unit = "year"
        if unit is None and multiplier is None and value < 10 and not decimals:
            continue  # a single digit alone: a date, an ordinal, "two" — no evidence
        yield f"f:{value:g}:{unit}" if unit else f"f:{value:g}"


# -- content words, remembered --------------------------------------------------------------------------------

# The feature id of each folded word seen before, per (stemmer, item language): a stream's words repeat, and the
# stem, the label and its hash are then one dict lookup. Dropped wholesale past _WORD_CACHE words (a few MB),
# as PyStemmer drops its own cache.
_WORD_CACHE = 200_000
_word_ids: dict[tuple[str | None, str], dict[str, int]] = {}
# The readable label of every id made, for the evidence `stories show` prints.
_label_of: dict[int, str] = {}


def label_of(feature: int) -> str:
    """The readable form of a feature id made in this process (``#`` and hex digits when unknown)."""
    return _label_of.get(feature) or f"#{feature:08x}"


def _term_ids(words: list[str], stemmer: str | None, language: str) -> Iterable[int]:
    cache = _word_ids.get((stemmer, language))
    if cache is None:
        cache = _word_ids[(stemmer, language)] = {}
    missing = [word for word in words if word not in cache]
    if missing:
        if len(cache) > _WORD_CACHE:
            cache.clear()
        if len(_label_of) > 4 * _WORD_CACHE:
            _label_of.clear()
        stems = stem_words(missing, stemmer) if stemmer in SNOWBALL_LANGUAGES else missing
        for word, stem in zip(missing, stems, strict=True):
            label = f"t:{language}:{stem}"
            cache[word] = found = _feature_id(label)
            _label_of[found] = label
    return map(cache.__getitem__, words)


# -- German compounds ----------------------------------------------------------------------------------------

# A German compound names its event in one word where the next report uses two ("Rohstoffabkommen", "Abkommen
# über Rohstoffe"; "Generalsanierung", "Sanierung"; "Bahnprojekt", "Projekt der Bahn"). Without a lexicon, a
# compound is split where it ends in one of the frequent heads of news German below (folded), with four letters
# or more before it; the head counts as a content word as well as the whole word. A head list and not every
# split point: "Verhandlungen" must not yield "handlungen". The modifier is not counted: tried, it joined the
# SPD's member vote on the "Koalitionsvertrag" to the "Koalitionsverhandlungen" (syndication/blind2 precision
# 0.966 → 0.934), one modifier for two events of one coalition.
_HEADS = tuple(
    sorted(
        _words(
            """
        abkommen vertrag vertraege gesetz gesetze paket pakete fonds plan plaene gipfel streit krieg kriege bahn
        bahnhof werk werke preis preise markt maerkte bank banken politik minister ministerin regierung partei
        wahl wahlen steuer steuern rente renten zins zinsen index klima konjunktur export exporte import importe
        zoll zoelle verbot anlage anlagen projekt projekte programm reform krise hilfe hilfen gespraeche
        verhandlungen treffen besuch angriff angriffe anschlag brand unfall streik streiks produktion fertigung
        standort stellen kosten schulden haushalt kredit kredite anleihen aktie aktien kurs gewinn umsatz verlust
        sanierung erden metalle magnete rohstoffe energie strom gas oel panzer soldaten dienst pflicht
        flughafen hafen strecke busse zuege fahrzeuge autos wagen chef chefin sprecher verband gewerkschaft
            """
        ),
        key=lambda head: (-len(head), head),  # the longest head first: "bahnhof" before "bahn"
    )
)
_MIN_COMPOUND = 9
_MIN_MODIFIER = 4


def _compound_parts(word: str) -> tuple[str, ...]:
    """The head of a German compound (see `_HEADS`), or nothing."""
    for head in _HEADS:
        if word.endswith(head) and len(word) - len(head) >= _MIN_MODIFIER:
            return (head,)
    return ()


# -- all together --------------------------------------------------------------------------------------------

_SENTENCE_END = frozenset(".!?:;")


def _acronym(text: str, start: int, end: int) -> bool:
    """An acronym (ECB, BoE, ЦСКА, НАТО): two capitals or more, wherever it stands."""
    surface = text[start:end]
    if len(surface) < 2 or surface.islower() or surface.istitle():
        return False  # the common cases, decided in C
    return sum(1 for char in surface if char.isupper()) >= 2


def fold_acronym(norm: str) -> str:
    """An acronym's key: its skeleton when it has one (OPEC, ОПЕК → opk; ХАМАС, Hamas → hms), else its letters
    in Latin script (НАТО → nato, EZB → ezb): short acronyms have few letters and all of them count."""
    return name_skeleton(norm) or (norm.translate(_CYRILLIC) if "\u0400" <= norm[0] <= "\u04ff" else norm)


def _capitalised(text: str, start: int, position: int) -> bool:
    """A capital that is not there because a sentence (or the field) starts."""
    if position == 0 or not text[start].isupper():
        return False
    before = start - 1
    while before > 0 and text[before].isspace():
        before -= 1
    return before >= 0 and text[before] not in _SENTENCE_END


# A word that starts a sentence is a name when what follows says someone spoke: a verb of speech in the
# singular ("Ushakov said", "Ушаков заявил", "Merz sagte"), or, opening a headline, a colon ("Путин: если
# Европа …", "Merz: …"). The
# subject of such a sentence is mostly a person or an organisation; every other sentence-initial word stays
# out, since a capital there says nothing (round 5: sentence-initial common nouns become shared "names").
# Plural subjects ("Officials said", "Власти заявили") are left out by the verb forms and, in English, by an
# -s at the end of the word.
_SPEECH = _words(
    """
    said says told warned added announced confirmed denied insisted stressed wrote urged
    sagte sagt erklaerte erklaert betonte betont warnte warnt forderte fordert kuendigte kritisierte nannte
    sprach teilte bestaetigte
    заявил заявила сообщил сообщила рассказал рассказала сказал сказала объяснил объяснила отметил отметила
    подчеркнул подчеркнула пообещал пообещала предупредил предупредила назвал назвала добавил добавила признал
    признала считает заявляет
    """
)


def _subject_of(norm: str, following: str | None, between: str, language: str) -> bool:
    """Whether a sentence-initial word is the subject of a verb of speech or action (see `_SPEECH`)."""
    if between.strip():
        return between.strip() == ":" and following is not None
    if following is None:
        return False
    if language == "en" and norm.endswith("s"):
        return False
    return following in _SPEECH


def event_features(
    analysis: Analysis,
    fields: Iterable[tuple[str, str]],
    actors: ActorMentions | Collection[str] = NO_ACTORS,
) -> EventFeatures:
    """The event features of an item from its analysis; `fields` are (field name, cleaned text) pairs (the
    headline and summary after `clean_title`/`clean_summary`), `actors` the rule set's actors it mentions (the
    words of a mention count as the actor only, see `ActorMentions`)."""
    if not isinstance(actors, ActorMentions):
        actors = ActorMentions(frozenset(actors))
    language = analysis.language or "xx"
    labels: dict[int, str] = {}
    terms: set[int] = set()
    shared: set[int] = set()

    def add(into: set[int], label: str) -> None:
        fid = _feature_id(label)
        into.add(fid)
        labels.setdefault(fid, label)
        _label_of[fid] = label

    for actor in actors.ids:
        add(shared, f"a:{actor}")
    by_stemmer: dict[str | None, list[str]] = {}
    for field, cleaned in fields:
        words, positions = cleaned_words(analysis, field, cleaned)
        spans = [(s, e) for f, s, e in actors.spans if f == field] if positions else []
        if positions and len(positions) == len(words):
            tokens, text = analysis.tokens(field), analysis.text(field)
            starts, ends = tokens.starts, tokens.ends
            surfaces = [text[starts[p] : ends[p]] for p in positions]
            # An institution's words are its key and no names of their own: "Центральный банк России", "EZB"
            # and "Europäische Zentralbank" are one institution, and the skeletons of "Центральный" or
            # "Europäische" would be shared with every report on a central bank or on Europe (round 7 fitting).
            # They stay content words (dropping them too, as an actor's, changed no fitted set).
            institution: set[int] = set()
            for key, first, last in _organisations(words, surfaces):
                add(shared, f"n:={key}")
                institution.update(range(first, last))
            kept = []
            for at, (position, word) in enumerate(zip(positions, words, strict=True)):
                start = starts[position]
                if spans and any(s < ends[position] and start < e for s, e in spans):
                    continue  # part of an actor's name or role: counted once, as the actor
                kept.append(word)
                if at in institution or not text[start].isupper():
                    continue
                if _acronym(text, start, ends[position]):
                    add(shared, f"n:{fold_acronym(word)}")
                elif len(word) >= 3 and word not in _STOP:
                    if not _capitalised(text, start, position):
                        after = position + 1
                        following = tokens.norms[after] if after < len(tokens.norms) else None
                        between = text[ends[position] : starts[after]] if following is not None else ""
                        if not _subject_of(word, following, between, language):
                            continue
                    skeleton = name_skeleton(word)
                    if skeleton is not None:
                        add(shared, f"n:{skeleton}")
            words = tuple(kept)  # the words of the field without the actors' names
        content = [w for w in words if len(w) >= 3 and w not in _STOP and not w.isdigit()]
        if language == "de":
            content += [
                part for word in content if len(word) >= _MIN_COMPOUND for part in _compound_parts(word)
            ]
        if content and cleaned.isascii():
            # One script: one stemmer for all of them (the per-word choice is for mixed scripts).
            by_stemmer.setdefault(stemmer_language(content[0], analysis.language), []).extend(content)
        else:
            for word in content:
                by_stemmer.setdefault(stemmer_language(word, analysis.language), []).append(word)
        for figure in _figure_features(cleaned):
            add(shared, figure)
    for stemmer, group in by_stemmer.items():
        terms.update(_term_ids(group, stemmer, language))
    results = [fid for fid, label in labels.items() if label.endswith(":result")]
    units = [
        fid
        for fid, label in labels.items()
        if fid & KIND_MASK == FIGURE and label.count(":") == 2 and not label.endswith(":result")
    ]
    return EventFeatures(language, frozenset(terms), frozenset(shared), labels, results, units)
