"""Normalization, tokens, sentences, stems and language detection (monitor.text)."""

from __future__ import annotations

import pytest

from monitor.text import detect_language, fold, stem_words, stemmer_language, tokenize


@pytest.mark.parametrize(
    ("written", "folded"),
    [
        ("Größe", "groesse"),
        ("GROESSE", "groesse"),
        ("Ёлка", "елка"),
        ("Café", "cafe"),
        ("Łódź", "lodz"),
        ("ﬁnance", "finance"),  # NFKC ligature
        ("Selten\u00aderden", "seltenerden"),  # soft hyphen
        ("Дмитрий", "дмитрий"),  # й keeps its breve
        ("Maerz", "maerz"),
        ("März", "maerz"),
    ],
)
def test_fold_applies_spelling_equivalences(written: str, folded: str) -> None:
    assert fold(written) == folded


def test_tokens_split_hyphens_and_apostrophes_and_keep_original_offsets() -> None:
    text = "Putin's rare-earth ÄRGER"
    tokens = tokenize(text)
    assert tokens.norms == ("putin", "s", "rare", "earth", "aerger")
    assert [text[s:e] for s, e in zip(tokens.starts, tokens.ends, strict=True)] == [
        "Putin",
        "s",
        "rare",
        "earth",
        "ÄRGER",
    ]


def test_decomposed_umlaut_stays_one_token() -> None:
    tokens = tokenize("Ma\u0308rz")
    assert tokens.norms == ("maerz",)


def test_sentences_end_at_full_stops_but_not_at_abbreviations() -> None:
    tokens = tokenize("Donald Trump Jr. spoke. Then Putin answered! Und dann?\nNeue Zeile")
    by_word = dict(zip(tokens.norms, tokens.sentences, strict=False))
    assert by_word["jr"] == by_word["spoke"] == 0
    assert by_word["putin"] == 1
    assert by_word["und"] == 2
    assert by_word["zeile"] == 3


def test_stemmer_is_chosen_by_script() -> None:
    assert stemmer_language("путина", "de") == "ru"
    assert stemmer_language("putins", "ru") == "en"
    assert stemmer_language("putins", "de") == "de"
    assert stem_words(["verhandlungen", "verhandlung"], "de") == ["verhandl", "verhandl"]


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Путин заявил о готовности к переговорам", "ru"),
        ("Україна і Росія провели переговори", "uk"),
        ("Die Regierung hat sich auf einen Plan für die Energie geeinigt", "de"),
        ("The government said that it will announce the plan on Monday", "en"),
        ("Le gouvernement a annoncé un plan pour les entreprises", "fr"),
        ("Η κυβέρνηση ανακοίνωσε", "el"),
        ("12345 !!!", None),
    ],
)
def test_detect_language(text: str, language: str | None) -> None:
    assert detect_language(text) == language
