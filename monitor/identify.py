"""Item identity: canonical URLs, content hashes and identity keys. Pure: no I/O, no clock, no randomness.

Three questions, three functions:

* `canonical_url(url)` — the identity form of a link, so that one article reached through a tracking link, an
  AMP page or a differently spelled URL folds to one string. It is an *identity*, not a URL to fetch: the
  scheme is folded to https and a leading ``www.`` is dropped. Show users the original link.
* `content_hash(title, summary)` — equal for copies of one text that differ only in case, Unicode form,
  whitespace or punctuation. Versioned ("v1:"): a future normalization gets a new prefix instead of silently
  changing what old hashes mean.
* `item_key(feed_url, guid, link, title, summary)` — the item's identity inside its feed: its guid, else its
  canonical link, else its content hash. Scoped to the feed (one guid in two feeds is two items) and stable
  across restarts and library upgrades (sha256 of stable text, never Python's salted hash()).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import unicodedata
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

__all__ = [
    "TRACKING_PARAMETERS",
    "canonical_url",
    "content_hash",
    "identity_key",
    "item_key",
    "normalize_text",
]

# Query parameters that only say how a reader arrived, never which document they get. Compared
# case-insensitively. `ref` is in the list because news sites use it only for attribution; on code hosts
# (below) it names a git ref and is kept.
TRACKING_PARAMETERS: frozenset[str] = frozenset(
    {
        "fbclid",
        "gclid",
        "gclsrc",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "mc_cid",
        "mc_eid",
        "igshid",
        "yclid",
        "twclid",
        "ttclid",
        "li_fat_id",
        "_ga",
        "_gl",
        "_hsenc",
        "_hsmi",
        "__hstc",
        "__hssc",
        "__hsfp",
        "hsctatracking",
        "mkt_tok",
        "oly_anon_id",
        "oly_enc_id",
        "vero_id",
        "vero_conv",
        "wt.mc_id",
        "wt_mc_id",
        "wt_zmc",
        "ocid",
        "ncid",
        "smid",
        "cmpid",
        "sr_share",
        "ref",
        "ref_src",
        "ref_url",
        "referrer",
        "__twitter_impression",
        "xtor",
    }
)
# Families of tracking parameters: Google/UTM, AT Internet (German public media), Matomo/Piwik, HubSpot ads.
_TRACKING_PREFIXES = ("utm_", "at_", "pk_", "mtm_", "hsa_", "itm_")
_REF_IS_CONTENT_HOSTS = frozenset({"github.com", "gitlab.com", "bitbucket.org", "codeberg.org"})
# Parameters that ask for the AMP rendition of the same article.
_AMP_PARAMETERS = {"amp": {"", "1", "true", "yes"}, "output": {"amp"}, "outputtype": {"amp"}}
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters RFC 3986 allows unescaped inside a path segment / query component.
_SEGMENT_SAFE = "!$&'()*+,;=:@-._~"


def canonical_url(url: str | None) -> str | None:
    """The identity form of `url`; None for None or blank.

    http(s) URLs: scheme folded to https (unless a non-default port is given), host lower-cased, IDNA-encoded,
    without ``www.``/``amp.`` and without a trailing dot; default ports dropped; dot segments, duplicate
    slashes and a trailing slash removed; percent-escapes normalized (non-ASCII encoded, unreserved decoded);
    tracking parameters (`TRACKING_PARAMETERS`, ``utm_*`` ...) and AMP switches dropped and the rest sorted;
    ``/amp`` path segments and ``.amp.html`` folded; Google AMP-cache URLs unwrapped; the fragment dropped
    unless it is a ``#!`` route. Anything else (urn:, tag:, relative or unparsable text) comes back stripped,
    unchanged: it still works as an identity, and guessing would merge different things.
    """
    if url is None:
        return None
    text = url.strip()
    if not text:
        return None
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return text
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return text
    host = _canonical_host(parts.hostname)
    path = parts.path
    unwrapped = _unwrap_amp_cache(host, path)
    if unwrapped is not None:
        return canonical_url(unwrapped + (f"?{parts.query}" if parts.query else ""))
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{host}:{port}"
    else:
        scheme = "https"
        netloc = host
    if parts.username is not None:
        netloc = f"{parts.username}{':' + parts.password if parts.password is not None else ''}@{netloc}"
    fragment = parts.fragment if parts.fragment.startswith("!") else ""
    return urlunsplit((scheme, netloc, _canonical_path(path), _canonical_query(parts.query, host), fragment))


def _canonical_host(hostname: str) -> str:
    host = hostname.lower().rstrip(".")
    # A host IDNA cannot encode (e.g. an overlong label) keeps its lower-cased text: still a stable identity.
    with contextlib.suppress(UnicodeError):
        host = host.encode("idna").decode("ascii")
    for prefix in ("www.", "amp."):
        if host.startswith(prefix) and host.count(".") >= 2:
            host = host[len(prefix) :]
    return host


def _unwrap_amp_cache(host: str, path: str) -> str | None:
    """https://www-example-com.cdn.ampproject.org/c/s/www.example.com/a → https://www.example.com/a."""
    if not host.endswith(".cdn.ampproject.org"):
        return None
    match = re.match(r"^/[cvi]/(s/)?([^/]+\..+)$", path)
    if match is None:
        return None
    return ("https://" if match.group(1) else "http://") + match.group(2)


def _canonical_path(path: str) -> str:
    segments: list[str] = []
    for raw in path.split("/"):
        segment = quote(unquote(raw), safe=_SEGMENT_SAFE)
        if segment in ("", "."):
            continue  # empty (duplicate or trailing slash) and current-directory segments name nothing
        if segment == "..":
            if segments:
                segments.pop()
            continue
        if segment.lower() == "amp":
            continue  # /amp/ and trailing /amp: the AMP rendition of the article the rest of the path names
        segments.append(segment)
    if segments:
        last = segments[-1]
        lowered = last.lower()
        if lowered.endswith(".amp.html") or lowered.endswith(".amp.htm"):
            segments[-1] = last[: lowered.rindex(".amp.")] + last[lowered.rindex(".amp.") + 4 :]
        elif lowered.endswith(".amp") and len(last) > 4:
            segments[-1] = last[:-4]
    return "/" + "/".join(segments)


def _canonical_query(query: str, host: str) -> str:
    if not query:
        return ""
    kept: list[tuple[str, str]] = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        lowered = name.lower()
        if lowered.startswith(_TRACKING_PREFIXES):
            continue
        if lowered in TRACKING_PARAMETERS and not (lowered == "ref" and host in _REF_IS_CONTENT_HOSTS):
            continue
        if value.lower() in _AMP_PARAMETERS.get(lowered, ()):
            continue
        kept.append((name, value))
    kept.sort()
    return urlencode(
        kept, quote_via=quote, safe=_SEGMENT_SAFE.replace("&", "").replace("=", "").replace("+", "")
    )


_PUNCTUATION_OR_SPACE = re.compile(r"[\W_]+")


def normalize_text(text: str) -> str:
    """NFKC, case-folded, invisible format characters (soft hyphen, zero-width space) removed, and every run of
    punctuation, symbols and whitespace folded to one space. The words and their order stay."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    folded = "".join(ch for ch in folded if unicodedata.category(ch) != "Cf")
    return _PUNCTUATION_OR_SPACE.sub(" ", folded).strip()


def content_hash(title: str, summary: str) -> str:
    """``v1:`` + sha256 hex of the normalized title and summary (see `normalize_text`), kept apart by a
    separator so that moving words between the two fields changes the hash."""
    normalized = f"{normalize_text(title)}\x1f{normalize_text(summary)}"
    return "v1:" + hashlib.sha256(normalized.encode("utf-8")).hexdigest()


def item_key(feed_url: str, guid: str | None, link: str | None, title: str, summary: str) -> str:
    """The item's identity key: ``g``/``u``/``h`` (guid, canonical link, content hash) + ``:`` + 32 hex digits.

    A guid that is an http(s) URL is canonicalized first, so that feeds whose permalink guids carry rotating
    tracking parameters do not mint a new item on every fetch. The feed URL is reduced to a stable spelling
    (scheme/host case, default port, fragment) but its query is kept: it may select a different feed.
    """
    return identity_key(feed_url, guid, link) or _scoped_key(feed_url, "h", content_hash(title, summary))


def identity_key(feed_url: str, guid: str | None, link: str | None) -> str | None:
    """`item_key` of an entry with a guid or a link, which needs neither its title nor its text; else None.

    The pipeline keys entries with this before converting their text, so that an entry already seen costs
    no conversion, hashing or matching."""
    guid_text = (guid or "").strip()
    if guid_text:
        return _scoped_key(feed_url, "g", _canonical_guid(guid_text))
    if (canonical_link := canonical_url(link)) is not None:
        return _scoped_key(feed_url, "u", canonical_link)
    return None


def _scoped_key(feed_url: str, kind: str, identity: str) -> str:
    scoped = f"{_feed_scope(feed_url)}\0{kind}\0{identity}"
    return f"{kind}:{hashlib.sha256(scoped.encode('utf-8')).hexdigest()[:32]}"


def _canonical_guid(guid: str) -> str:
    if re.match(r"(?i)^https?://", guid):
        return canonical_url(guid) or guid
    return guid


def _feed_scope(feed_url: str) -> str:
    text = feed_url.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return text
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return text
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
