"""Web safety pieces of the portal: sanitising message HTML, CSRF tokens
(checked against the current secret and any previous one still accepted),
the shared secret file of a cluster, security headers, file names.

HTML from mail is cleaned with nh3 (no script, styles, event handlers,
forms, frames; only https/mailto links — a ``data:`` link could carry a whole
page; only cid:/data: images, so remote images that would tell a tracker
"the patient opened it" never load) and is also served under a CSP without
any script source. File names lose control and bidirectional-formatting
characters (an RTL override makes ``invoice[U+202E]fdp.exe`` look like a PDF) and
are sent with an ASCII ``filename`` and an RFC 6266 ``filename*``. Answers
name no server software (``Server: phigate``).
"""
from __future__ import annotations

import hashlib
import hmac
import os
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import nh3

from gateway.config.load import ConfigError

ALLOWED_TAGS = {"a", "abbr", "b", "blockquote", "br", "caption", "code", "div", "em", "h1",
                "h2", "h3", "h4", "hr", "i", "img", "li", "ol", "p", "pre", "s", "small",
                "span", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead",
                "tr", "u", "ul"}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "width", "height"},
                      "td": {"colspan", "rowspan"}, "th": {"colspan", "rowspan"}}

CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    if tag == "img" and attribute == "src" and not value.startswith(("cid:", "data:image/")):
        return None
    if tag == "a" and attribute == "href" and value.strip().lower().startswith("data:"):
        return None
    return value


def sanitize_html(html: str) -> str:
    return nh3.clean(html, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES,
                     url_schemes={"https", "mailto", "cid", "data"},
                     link_rel="noopener noreferrer nofollow", strip_comments=True,
                     attribute_filter=_attribute_filter)


def csrf_token(secret: bytes, binding: str) -> str:
    """Synchroniser token bound to the session (or pre-login) cookie."""
    return hmac.new(secret, b"csrf:" + binding.encode(), hashlib.sha256).hexdigest()


def csrf_ok(keys: Sequence[bytes], binding: str | None, token: str | None) -> bool:
    """Was ``token`` made by one of ``keys`` (the current secret, then any
    previous one still accepted while a rotation's grace period lasts)?"""
    if not binding or not token:
        return False
    return any(hmac.compare_digest(csrf_token(key, binding), token) for key in keys)


MIN_SECRET = 32


def read_secret_file(path: Path, yaml_path: str) -> bytes:
    """A shared secret from a file the operator made (``openssl rand -base64
    48 > FILE; chmod 600 FILE``): it must exist, be readable by its
    owner only and hold at least 32 bytes (surrounding white space
    aside); errors name ``yaml_path``."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode & 0o777
        data = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError([(f"{yaml_path}: cannot read {path} ({exc.strerror}); make it with "
                           f"`openssl rand -base64 48 > {path}; chmod 600 {path}` and copy "
                           "the same file to every node")]) from None
    if mode & 0o077:
        raise ConfigError([(f"{yaml_path}: {path} is readable by others (mode {mode:04o}); "
                           f"run chmod 600 {path}")])
    if len(data) < MIN_SECRET:
        raise ConfigError([(f"{yaml_path}: {path} holds {len(data)} bytes, fewer than "
                           f"{MIN_SECRET}; make it with `openssl rand -base64 48 > {path}`")])
    return data


# Unicode categories never shown in a file name: controls, format characters
# (bidi overrides and isolates, zero-width), private use, surrogates, line and
# paragraph separators.
_HIDDEN = {"Cc", "Cf", "Co", "Cs", "Zl", "Zp"}


def safe_filename(name: str, default: str = "file") -> str:
    name = unicodedata.normalize("NFC", name or "")
    kept = "".join(c for c in name if unicodedata.category(c) not in _HIDDEN)
    kept = kept.replace("/", "_").replace("\\", "_").strip().strip(".")
    return kept[:200] or default


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII fallback and the UTF-8 name (RFC 6266)."""
    name = safe_filename(name)
    fallback = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    fallback = "".join(c for c in fallback if c not in '"\\') or "file"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def security_headers(secure: bool) -> dict[str, str]:
    headers = {"Server": "phigate", "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
               "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
               "Cache-Control": "no-store", "Permissions-Policy": "camera=(), microphone=()"}
    if secure:
        headers["Strict-Transport-Security"] = "max-age=31536000"
    return headers
