"""The SQLite schema, as an ordered list of migrations.

Each migration runs once, in its own transaction, and records its number in `schema_migrations`. A database
created by a newer monitor (a higher number than we know) is refused rather than guessed at. Never edit a
migration that has shipped: add the next one.

Timestamps are UTC ISO-8601 text (monitor.timeutil.to_iso), which sorts correctly as text.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: feeds as the schedule of record; items and the identity keys that outlive them; matches; stories;
    #    alerts and the outbox.
    """
    CREATE TABLE feeds (
        url              TEXT PRIMARY KEY,
        title            TEXT,
        active           INTEGER NOT NULL DEFAULT 1,
        interval_seconds REAL NOT NULL,
        etag             TEXT,
        last_modified    TEXT,
        next_fetch_at    TEXT NOT NULL,
        last_fetched_at  TEXT,
        last_success_at  TEXT,
        error_count      INTEGER NOT NULL DEFAULT 0,
        last_error       TEXT,
        lease_until      TEXT
    );
    CREATE INDEX feeds_due ON feeds (active, next_fetch_at);

    -- Identity keys are kept far longer than items, so an old item that reappears after pruning is
    -- recognised and not alerted again.
    CREATE TABLE seen_keys (
        key          TEXT PRIMARY KEY,
        feed_url     TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        first_seen   TEXT NOT NULL,
        last_seen    TEXT NOT NULL
    );
    CREATE INDEX seen_keys_feed_hash ON seen_keys (feed_url, content_hash);
    CREATE INDEX seen_keys_last_seen ON seen_keys (last_seen);

    CREATE TABLE items (
        key          TEXT PRIMARY KEY,
        feed_url     TEXT NOT NULL,
        feed_title   TEXT NOT NULL,
        guid         TEXT,
        link         TEXT,
        url          TEXT,
        title        TEXT NOT NULL,
        summary      TEXT NOT NULL,
        content      TEXT NOT NULL,
        categories   TEXT NOT NULL,          -- JSON array
        language     TEXT,
        published    TEXT,
        fetched_at   TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        story_id     TEXT NOT NULL,
        signature    BLOB                    -- story clustering signature, for rebuilding the index on start
    );
    CREATE INDEX items_story ON items (story_id);
    CREATE INDEX items_fetched ON items (fetched_at);
    CREATE INDEX items_feed ON items (feed_url, fetched_at);

    CREATE TABLE matches (
        item_key   TEXT NOT NULL,
        rule_id    TEXT NOT NULL,
        hits       TEXT NOT NULL,            -- JSON array of {term, field, start, end, text}
        score      REAL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (item_key, rule_id)
    );
    CREATE INDEX matches_rule ON matches (rule_id, created_at);

    CREATE TABLE stories (
        id              TEXT PRIMARY KEY,
        title           TEXT NOT NULL,
        first_item_key  TEXT NOT NULL,
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL,
        item_count      INTEGER NOT NULL DEFAULT 1
    );
    CREATE INDEX stories_updated ON stories (updated_at);

    CREATE TABLE alerts (
        id            TEXT PRIMARY KEY,
        rule_id       TEXT NOT NULL,
        story_id      TEXT NOT NULL,
        item_key      TEXT NOT NULL,         -- the item that raised the alert
        created_at    TEXT NOT NULL,
        updated_at    TEXT NOT NULL,
        item_count    INTEGER NOT NULL DEFAULT 1,
        payload       TEXT NOT NULL          -- JSON alert payload (monitor.notify.payload), kept current
    );
    CREATE INDEX alerts_rule_story ON alerts (rule_id, story_id, created_at);
    CREATE INDEX alerts_created ON alerts (created_at);

    CREATE TABLE alert_items (
        alert_id   TEXT NOT NULL,
        item_key   TEXT NOT NULL,
        added_at   TEXT NOT NULL,
        PRIMARY KEY (alert_id, item_key)
    );

    -- The outbox. A row is written in the same transaction as the alert it carries and is marked sent only
    -- after the receiver accepted it.
    CREATE TABLE deliveries (
        id              TEXT PRIMARY KEY,    -- idempotency key: webhook-id, Message-ID
        channel         TEXT NOT NULL,
        status          TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'dead')),
        digest          INTEGER NOT NULL DEFAULT 0,
        created_at      TEXT NOT NULL,
        next_attempt_at TEXT NOT NULL,
        lease_until     TEXT,
        attempts        INTEGER NOT NULL DEFAULT 0,
        last_attempt_at TEXT,
        last_error      TEXT,
        sent_at         TEXT
    );
    CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);

    CREATE TABLE delivery_alerts (
        delivery_id TEXT NOT NULL,
        alert_id    TEXT NOT NULL,
        PRIMARY KEY (delivery_id, alert_id)
    );
    CREATE INDEX delivery_alerts_alert ON delivery_alerts (alert_id);

    CREATE TABLE disabled_channels (
        channel     TEXT PRIMARY KEY,
        reason      TEXT NOT NULL,
        disabled_at TEXT NOT NULL
    );
    """,
    # 2: feed health: when the current failure streak began, when the feed last brought a new item, which
    #    conditions have been notified (so a recovery is told once), parking; notices (not alerts) in the outbox.
    """
    ALTER TABLE feeds ADD COLUMN failing_since TEXT;
    ALTER TABLE feeds ADD COLUMN last_new_item_at TEXT;
    ALTER TABLE feeds ADD COLUMN health_notified TEXT NOT NULL DEFAULT '';   -- comma list: failing,silent
    ALTER TABLE feeds ADD COLUMN churn_notified_at TEXT;
    ALTER TABLE feeds ADD COLUMN parked_at TEXT;
    ALTER TABLE feeds ADD COLUMN parked_reason TEXT;
    -- A delivery carries alerts (delivery_alerts) or one notice: a JSON payload of its own (feed health).
    ALTER TABLE deliveries ADD COLUMN notice TEXT;
    CREATE INDEX deliveries_notice_created ON deliveries (created_at) WHERE notice IS NOT NULL;
    """,
    # 3: story membership (issue 8): how each item joined its story (tier, score, the item it matched, the
    #    evidence) for `monitor stories show`, and the event tier's features, versioned like the signatures, so
    #    the index is rebuilt on start without recomputing them (and with the actor ids the rule set found).
    """
    CREATE TABLE story_members (
        item_key         TEXT PRIMARY KEY,
        story_id         TEXT NOT NULL,
        language         TEXT,
        tier             TEXT NOT NULL,      -- new | exact | near-duplicate | event | event (cross-language)
        reason           TEXT NOT NULL,      -- new | hash | url | similar | event | cross-language
        score            REAL NOT NULL,
        matched_item_key TEXT,
        evidence         TEXT NOT NULL,      -- JSON array of strings ("content 0.41", "n:dmtrv", "f:8e+09:usd")
        event_features   BLOB                -- monitor.stories.index EV blob, or NULL
    );
    CREATE INDEX story_members_story ON story_members (story_id);
    """,
    # 4: several daemons (issue 11). Both backends get the same tables, so a database reads the same wherever
    #    it lives; on SQLite one process writes (the process lock), so the claims and nodes below always hold
    #    one node, and story assignment needs no lock (items keep their rowid as the commit sequence).
    #    - fencing tokens and the claiming node on feeds and deliveries (the leases were there already);
    #    - the generation of an alert (0 first, n the n-th realert) and a unique (rule, story, generation):
    #      one alert per (rule, story) holds in the schema, not only in the code that decides it. Existing
    #      alerts are numbered in the order they were raised;
    #    - the nodes that run on this database, with their heartbeats;
    #    - cluster jobs: what runs once per cluster and period (housekeeping), and who ran it last.
    """
    ALTER TABLE feeds ADD COLUMN claim_token INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE feeds ADD COLUMN claimed_by TEXT;
    ALTER TABLE deliveries ADD COLUMN claim_token INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
    ALTER TABLE alerts ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
    UPDATE alerts SET generation = (
        SELECT COUNT(*) FROM alerts AS older
        WHERE older.rule_id = alerts.rule_id AND older.story_id = alerts.story_id
          AND (older.created_at < alerts.created_at OR (older.created_at = alerts.created_at AND older.rowid < alerts.rowid))
    );
    CREATE UNIQUE INDEX alerts_generation ON alerts (rule_id, story_id, generation);
    CREATE TABLE nodes (
        id           TEXT PRIMARY KEY,
        host         TEXT NOT NULL,
        pid          INTEGER NOT NULL,
        version      TEXT NOT NULL,
        started_at   TEXT NOT NULL,
        heartbeat_at TEXT NOT NULL,
        stopped_at   TEXT
    );
    CREATE TABLE cluster_jobs (
        name    TEXT PRIMARY KEY,
        holder  TEXT NOT NULL,
        ran_at  TEXT NOT NULL,
        until   TEXT NOT NULL
    );
    """,
    # 5: permanent moves and cache hints (issue 13): where a 301/308 of the feed's URL points (polled there from
    #    then on; the configured URL stays the feed's identity) and the document's own schedule hints (JSON:
    #    ttl, skipHours, skipDays), kept so that a 304 in between still honours them.
    """
    ALTER TABLE feeds ADD COLUMN moved_to TEXT;
    ALTER TABLE feeds ADD COLUMN hints TEXT;
    """,
    # 6: notifications grouped by story (issue 8): a delivery says what it is (alert: one (rule, story) alert,
    #    as before; story: the first notification of a story on a channel, carrying every rule that fired;
    #    update: a later rule on a story already notified, sent into the same thread; escalation; digest;
    #    notice), which story it is about and which delivery it replies to. A thread per (story, channel)
    #    remembers the first notification, so updates and escalations reply to it even after it was pruned.
    #    Escalations are told once per (rule, story).
    """
    ALTER TABLE deliveries ADD COLUMN kind TEXT NOT NULL DEFAULT 'alert';
    ALTER TABLE deliveries ADD COLUMN story_id TEXT;
    ALTER TABLE deliveries ADD COLUMN in_reply_to TEXT;
    UPDATE deliveries SET kind = 'digest' WHERE digest = 1;
    UPDATE deliveries SET kind = 'notice' WHERE notice IS NOT NULL;
    CREATE INDEX deliveries_story_open ON deliveries (story_id, channel, status, attempts)
        WHERE story_id IS NOT NULL;
    CREATE TABLE notification_threads (
        story_id          TEXT NOT NULL,
        channel           TEXT NOT NULL,
        first_delivery_id TEXT NOT NULL,     -- the story's first notification on this channel
        created_at        TEXT NOT NULL,
        PRIMARY KEY (story_id, channel)
    );
    CREATE TABLE escalations (
        rule_id    TEXT NOT NULL,
        story_id   TEXT NOT NULL,
        severity   TEXT NOT NULL,
        outlets    INTEGER NOT NULL,         -- distinct outlets within the rule's window when it was raised
        payload    TEXT NOT NULL,            -- JSON escalation payload (monitor.notify.payload)
        created_at TEXT NOT NULL,
        PRIMARY KEY (rule_id, story_id)
    );
    """,
    # 7: silences (issue 14): an operator mutes alerts of a rule, a story and/or a feed (every set matcher must
    #    hold) from created_at until ends_at; expiring one early sets ends_at to that moment (as Alertmanager
    #    does). An alert decided while a silence held is recorded with its id and queued on no channel.
    """
    CREATE TABLE silences (
        id         TEXT PRIMARY KEY,
        rule_id    TEXT,
        story_id   TEXT,
        feed_url   TEXT,
        reason     TEXT NOT NULL,
        created_at TEXT NOT NULL,
        ends_at    TEXT NOT NULL
    );
    CREATE INDEX silences_ends ON silences (ends_at);
    ALTER TABLE alerts ADD COLUMN silence_id TEXT;
    """,
    # 8: WebSub (issue 13 item 6): per feed, the hub and topic its document or Link headers named, and the
    #    subscription to it (callback path, HMAC secret, verification and lease). One row per feed: a feed has
    #    one topic, and the first hub named is the one subscribed to.
    """
    CREATE TABLE websub_subscriptions (
        feed_url      TEXT PRIMARY KEY,
        hub           TEXT NOT NULL,
        topic         TEXT NOT NULL,
        callback_id   TEXT NOT NULL UNIQUE,
        secret        TEXT NOT NULL,
        state         TEXT NOT NULL,      -- discovered | pending | active | denied
        discovered_at TEXT NOT NULL,
        requested_at  TEXT,
        verified_at   TEXT,
        expires_at    TEXT,
        lease_seconds INTEGER,
        last_error    TEXT
    );
    """,
)
