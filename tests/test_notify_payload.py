"""The alert payload and its JSON Schema, the retry schedule, rate parsing and the template sandbox. Pure."""

from __future__ import annotations

import copy
import json
import random
from datetime import timedelta
from typing import Any

import jsonschema
import pytest
from support.alerts import NOW, make_item, make_payload

from monitor.notify import PAYLOAD_VERSION, attach_item, digest_payload, payload_schema
from monitor.notify.limits import Rate, RateLimiter, parse_rate
from monitor.notify.payload import MAX_STORY_ITEMS, SUMMARY_EXCERPT_CHARS, cap_payload, excerpt, fold_item
from monitor.notify.retry import STANDARD_WEBHOOKS_SCHEDULE, RetryPolicy
from monitor.notify.templates import compile_template, render, render_subject
from monitor.redact import redact
from monitor.timeutil import to_iso
from monitor.types import Item


def validator() -> jsonschema.Draft202012Validator:
    schema = payload_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_payload_is_versioned_and_valid_against_its_schema() -> None:
    payload = make_payload()
    assert payload["version"] == PAYLOAD_VERSION == 2
    validator().validate(payload)
    assert payload["rule"] == {"id": "rare-earths", "title": "Rare earths"}
    assert payload["item"]["feed"] == {"url": "https://news.example.org/feed.xml", "title": "Example News"}
    assert payload["item"]["published"] == "2025-03-01T11:30:00.000000Z"
    assert payload["hits"][0]["term"] == "rare earth"
    assert payload["explanation"] == "matched 'rare earth' ('Rare earth') in title"
    assert payload["story"] == {
        "id": "sto_1",
        "item_count": 1,
        "sources": ["Example News"],
        "languages": ["en"],
        "items": [],
    }


def test_schema_rejects_a_payload_missing_a_field_or_with_another_version() -> None:
    payload = make_payload()
    del payload["rule"]
    assert not validator().is_valid(payload)
    payload = make_payload()
    payload["version"] = 1
    assert not validator().is_valid(payload)


def test_digest_envelope_is_valid() -> None:
    envelope = digest_payload("msg_9", [make_payload("alr_1"), make_payload("alr_2")])
    validator().validate(envelope)
    assert [a["id"] for a in envelope["alerts"]] == ["alr_1", "alr_2"]


def test_attach_item_counts_sources_and_leaves_the_original_alone() -> None:
    payload = make_payload()
    other = make_item(key="k2", feed_title="Other Wire", title="Rare earths: exports down")
    updated = attach_item(payload, other)
    assert payload["story"]["item_count"] == 1  # pure: a copy
    assert updated["story"]["item_count"] == 2
    assert updated["story"]["sources"] == ["Example News", "Other Wire"]
    assert updated["story"]["items"][0]["title"] == "Rare earths: exports down"
    validator().validate(updated)
    for n in range(MAX_STORY_ITEMS + 5):
        updated = attach_item(updated, make_item(key=f"k{n + 3}"))
    assert updated["story"]["item_count"] == MAX_STORY_ITEMS + 7
    assert len(updated["story"]["items"]) == MAX_STORY_ITEMS
    validator().validate(updated)


def test_attach_item_cuts_a_copy_and_shares_nothing_it_changes() -> None:
    """Folding shares the unchanged parts of the payload (no deep copy per item); a payload that needs a cut
    (here a summary stored before the cap) is cut on a copy, so the payload it came from is left alone."""
    payload = make_payload()
    payload["item"]["summary"] = "word " * 400
    updated = attach_item(payload, make_item(key="k2", feed_title="Other Wire"))
    assert len(payload["item"]["summary"]) == 2000  # the original, untouched
    assert len(updated["item"]["summary"]) <= SUMMARY_EXCERPT_CHARS
    assert updated["truncated"] == ["item.summary: 500 of 2000 characters"]
    again = attach_item(updated, make_item(key="k3", feed_title="Third"))
    assert again["truncated"] == updated["truncated"]  # nothing more to cut
    assert updated["story"]["item_count"] == 2 and again["story"]["item_count"] == 3
    assert [i["key"] for i in updated["story"]["items"]] == ["k2"]


def _attach_as_before(payload: dict[str, Any], item: Item) -> dict[str, Any]:
    """attach_item as it was before fold_item: the story grown on a copy, then cap_payload of the whole."""
    story = copy.deepcopy(payload["story"])
    story["item_count"] = int(story.get("item_count", 1)) + 1
    story["sources"] = list(story.get("sources") or [])
    if item.feed_title and item.feed_title not in story["sources"]:
        story["sources"].append(item.feed_title)
    story["languages"] = list(story.get("languages") or [])
    if item.language and item.language not in story["languages"]:
        story["languages"].append(item.language)
    story["items"] = list(story.get("items") or [])
    if len(story["items"]) < MAX_STORY_ITEMS:
        story["items"].append(
            {
                "key": item.key,
                "title": item.title,
                "link": item.link,
                "feed": {"url": redact(item.feed_url), "title": item.feed_title},
                "published": to_iso(item.published),
                "language": item.language,
            }
        )
    return cap_payload({**payload, "story": story})


def test_fold_item_sizes_each_fold_exactly_and_cuts_as_before() -> None:
    """fold_item carries the payload's JSON size from fold to fold instead of encoding the whole each time:
    the size must be exact (non-ASCII, escapes, no source, repeated sources, a full item list), and the cuts
    once the story outgrows MAX_PAYLOAD_BYTES (through its uncapped sources) must be those of before."""
    payload = make_payload(feed_title=None, language=None)
    before = copy.deepcopy(payload)
    size: int | None = None
    cut_at = None
    for n in range(140):
        title = None if n % 7 == 3 else f'Лента "{n % 90}" \\ ' + "Новости\tдня " * 200
        item = make_item(key=f"k{n}", feed_title=title, language=("ru", "de", None)[n % 3], title=f"T{n}\n")
        payload, size = fold_item(payload, item, size)
        before = _attach_as_before(before, item)
        assert payload == before, n
        if size is not None:
            truncated = payload.get("truncated") or []
            expected = len(
                json.dumps({**payload, "truncated": truncated}, ensure_ascii=False).encode("utf-8")
            )
            assert size == expected, n
        elif cut_at is None:
            cut_at = n
    assert cut_at is not None  # the cut path was taken
    # Each later fold re-cut the story's items: they are named once, as 3 of the most the list would hold.
    assert [c for c in before["truncated"] if c.startswith("story.items")] == [
        f"story.items: 3 of {MAX_STORY_ITEMS}"
    ]


def test_a_field_cut_again_on_a_later_fold_is_named_once_with_its_original_length() -> None:
    """A stored payload that was cut, cut again (a tighter share, or items folded in after the cut), names
    the field once: with the length it had before the first cut, plus what was added since."""
    payload = make_payload()
    payload["item"]["summary"] = "word " * 400  # 2,000 characters
    cut = cap_payload(payload)
    assert cut["truncated"] == ["item.summary: 500 of 2000 characters"]
    tighter = cap_payload(cut, 1200)
    summaries = [c for c in tighter["truncated"] if c.startswith("item.summary")]
    assert summaries == ["item.summary: 100 of 2000 characters"]
    story = {**tighter["story"], "items": [{"key": f"k{n}", "title": "t" * 60} for n in range(8)]}
    listed = cap_payload({**tighter, "story": story}, 1200)
    story = {**listed["story"], "items": [*listed["story"]["items"], {"key": "k9", "title": "t" * 60}]}
    again = cap_payload({**listed, "story": story}, 1200)
    assert [c for c in again["truncated"] if c.startswith("story.items")] == ["story.items: 3 of 9"]
    assert len(again["truncated"]) == len(set(again["truncated"]))


def test_attach_item_needs_a_story() -> None:
    payload = make_payload()
    payload["story"] = None
    with pytest.raises(ValueError, match="alr_1"):
        attach_item(payload, make_item())


def test_summary_excerpt_is_bounded_and_cut_at_a_word() -> None:
    text = "word " * 400
    cut = excerpt(text)
    assert len(cut) <= SUMMARY_EXCERPT_CHARS
    assert cut.endswith("word…")
    assert make_payload(summary=text)["item"]["summary"] == cut


def test_retry_schedule_follows_standard_webhooks_with_jitter_only_upwards() -> None:
    policy = RetryPolicy()
    rng = random.Random(1)
    created = NOW
    now = NOW
    delays = []
    for attempt in range(1, 20):
        retry_at = policy.next_attempt(
            now=now, created_at=created, attempt=attempt, retry_after=None, rng=rng
        )
        if retry_at is None:
            break
        delays.append(retry_at - now)
        now = retry_at
    assert len(delays) == len(STANDARD_WEBHOOKS_SCHEDULE)
    for delay, step in zip(delays, STANDARD_WEBHOOKS_SCHEDULE, strict=True):
        assert step <= delay < step * 1.2


def test_retry_step_follows_age_not_attempts_counted_by_crashes() -> None:
    policy = RetryPolicy(jitter=0)
    # Ten claims in the first minute (a worker killed again and again) do not make the delivery dead.
    retry_at = policy.next_attempt(
        now=NOW + timedelta(seconds=60), created_at=NOW, attempt=10, retry_after=None, rng=random.Random()
    )
    assert retry_at == NOW + timedelta(seconds=60) + timedelta(minutes=5)


def test_retry_after_is_a_floor_with_a_cap_and_max_age_gives_up() -> None:
    policy = RetryPolicy(jitter=0, retry_after_cap=timedelta(hours=1))
    rng = random.Random()
    assert policy.next_attempt(
        now=NOW, created_at=NOW, attempt=1, retry_after=120, rng=rng
    ) == NOW + timedelta(seconds=120)
    assert policy.next_attempt(
        now=NOW, created_at=NOW, attempt=1, retry_after=10**9, rng=rng
    ) == NOW + timedelta(hours=1)
    assert policy.next_attempt(now=NOW, created_at=NOW, attempt=1, retry_after=1, rng=rng) == NOW + timedelta(
        seconds=5
    )
    late = NOW + policy.max_age
    assert policy.next_attempt(now=late, created_at=NOW, attempt=3, retry_after=None, rng=rng) is None
    past_schedule = NOW + sum(STANDARD_WEBHOOKS_SCHEDULE, timedelta()) + timedelta(seconds=1)
    assert (
        policy.next_attempt(now=past_schedule, created_at=NOW, attempt=9, retry_after=None, rng=rng) is None
    )


@pytest.mark.parametrize(
    ("text", "count", "seconds"),
    [("30/min", 30, 60), ("10/s", 10, 1), ("100/1h", 100, 3600), ("5/30s", 5, 30), ("2/hour", 2, 3600)],
)
def test_parse_rate(text: str, count: int, seconds: float) -> None:
    assert parse_rate(text) == Rate(count, timedelta(seconds=seconds))


@pytest.mark.parametrize("text", ["30", "0/min", "x/min", "3/fortnight", ""])
def test_parse_rate_rejects_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


def test_rate_limiter_allows_a_burst_then_spaces_reservations() -> None:
    clock = [0.0]
    limiter = RateLimiter(Rate(2, timedelta(seconds=10)), clock=lambda: clock[0])
    assert limiter.reserve(0) == 0
    assert limiter.reserve(0) == 0
    assert limiter.reserve(1) is None  # the next token comes in 5 s
    assert limiter.wait_time() == pytest.approx(5.0)
    assert limiter.reserve(6) == pytest.approx(5.0)
    assert limiter.reserve(6) is None  # that token is promised; the one after comes in 10 s
    clock[0] = 10.0
    assert limiter.reserve(0) == 0


def test_feed_text_is_data_in_templates_and_html_is_sanitized() -> None:
    payload = make_payload(
        summary="{{ 7*7 }} {% raw %} <script>alert(1)</script><b>bold</b> a < b",
        title="<img src=x onerror=alert(1)>",
        link="javascript:alert(1)",
    )
    text = render("alert.txt", [payload], digest=False)
    assert "{{ 7*7 }}" in text and "49" not in text
    html = render("alert.html", [payload], digest=False)
    assert "{{ 7*7 }}" in html and "49" not in html
    assert "<script" not in html and "<b>bold</b>" in html and "a &lt; b" in html
    assert "<img" not in html and "&lt;img src=x" in html
    assert "javascript:" not in html


def test_subject_template_is_single_line_and_sandboxed() -> None:
    template = compile_template("{{ alert.item.title }} / {{ alert.rule.title }}", what="subject")
    payload = make_payload(title="Line one\r\nBcc: x@y\u2028three")
    assert render_subject(template, [payload], digest=False) == "Line one Bcc: x@y three / Rare earths"
    with pytest.raises(ValueError, match="subject"):
        compile_template("{{ alert.__class__.__mro__ }}", what="subject")
    with pytest.raises(ValueError, match="subject"):
        compile_template("{{ alert.no_such_field }}", what="subject")


def test_a_story_notification_merges_its_alerts_and_names_its_cuts() -> None:
    """Issue 8: one notification per story, built from the alerts of its delivery."""
    from monitor.notify import notification_payload
    from monitor.notify.payload import MAX_NOTIFICATION_ALERTS

    first = make_payload("alr_1")
    other = attach_item(
        make_payload("alr_2", rule_id="actor-putin", key="k2", feed_title="Other Wire", language="ru"),
        make_item(key="k3", feed_title="Third", language="de", title="Seltene Erden"),
    )
    body = notification_payload("msg_1", [first, other], kind="story")
    validator().validate(body)
    assert (body["type"], body["id"], body["thread"], body["in_reply_to"]) == (
        "notification",
        "msg_1",
        "msg_1",
        None,
    )
    assert [rule["id"] for rule in body["rules"]] == ["rare-earths", "actor-putin"]
    assert body["item"] == first["item"] and "story" not in body["alerts"][0]
    assert body["story"]["sources"] == ["Example News", "Other Wire", "Third"]
    assert body["story"]["languages"] == ["en", "ru", "de"] and body["story"]["item_count"] == 3
    assert [item["key"] for item in body["story"]["items"]] == ["k2", "k3"]  # after the lead item
    assert "truncated" not in body
    update = notification_payload("msg_2", [other], kind="update", in_reply_to="msg_1")
    validator().validate(update)
    assert (update["type"], update["thread"], update["in_reply_to"]) == ("update", "msg_1", "msg_1")
    many = notification_payload("msg_3", [make_payload(f"alr_{n}") for n in range(60)], kind="story")
    assert len(many["alerts"]) == MAX_NOTIFICATION_ALERTS
    assert many["truncated"] == [f"alerts: {MAX_NOTIFICATION_ALERTS} of 60"]
    alert = notification_payload("msg_4", [first], kind="alert")  # group_by: [rule, story]
    validator().validate(alert)
    assert alert["type"] == "alert" and alert["thread"] == "msg_4" and alert["rule"]["id"] == "rare-earths"


def test_presets_name_every_rule_of_a_story_and_head_an_update() -> None:
    from monitor.notify.presets import preset_body

    alerts = [make_payload("alr_1"), make_payload("alr_2", rule_id="actor-putin")]
    alerts[1]["rule"]["title"] = "Vladimir Putin"
    for preset in ("slack", "mattermost", "discord", "teams", "ntfy"):
        text = str(preset_body(preset, alerts, digest=False, delivery_id="msg_1", kind="story"))  # type: ignore[arg-type]
        assert "Rare earths, Vladimir Putin" in text, preset
        update = str(preset_body(preset, alerts[1:], digest=False, delivery_id="msg_2", kind="update"))  # type: ignore[arg-type]
        assert "Update: " in update and "Vladimir Putin" in update, preset
