"""Keep passwords out of everything a person or a log can see.

:func:`redact` masks the shapes a password takes in text (URLs, ``password=`` pairs); it has no
state, so errors can use it the moment they are made. A :class:`Redactor` also masks literal
secrets it was given (the password of the configured database URL, wherever it shows up); the
command's context carries one and every printed line goes through it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# scheme://user:password@host  ->  scheme://user:***@host. The password runs to the LAST "@" of
# the word: a raw "@", "/", "#" or "?" in it (not percent-encoded) must not cut it short and leak
# the rest; masking too much is the safe way to be wrong.
_URL_PASSWORD = re.compile(r"(?P<pre>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<pw>\S+)(?P<at>@)")
# key=value forms in libpq conninfo strings, env dumps and psycopg error messages; a quoted value
# may hold spaces (PGPASSWORD='abc def')
_KV_PASSWORD = re.compile(
    r"(?P<key>\b(?:password|PGPASSWORD|POSTGRES_PASSWORD)\s*[=:]\s*)"
    r"(?:(?P<q>['\"])(?P<qpw>.*?)(?P=q)|(?P<pw>[^\s'\"]+))",
    re.IGNORECASE,
)
MIN_SECRET = 4  # shorter literals would mask ordinary words


def _mask_kv(m: re.Match[str]) -> str:
    q = m.group("q") or ""
    return f"{m.group('key')}{q}***{q}"


def redact(text: str) -> str:
    """Return ``text`` with every password-shaped value replaced by ``***``.

    >>> redact("postgresql://app:s3cret@db:5432/app")
    'postgresql://app:***@db:5432/app'
    """
    if not text:
        return text
    text = _URL_PASSWORD.sub(r"\g<pre>***\g<at>", text)
    return _KV_PASSWORD.sub(_mask_kv, text)


def url_password(url: str) -> str | None:
    """The password of a ``scheme://user:password@host/…`` URL as written (up to its last "@"),
    whatever it contains; ``None`` without one.

    >>> url_password("postgresql://u:Sec@ret#X@db/app")
    'Sec@ret#X'
    """
    m = _URL_PASSWORD.search(url)
    return m.group("pw") if m else None


def secrets_of_url(url: str | None) -> list[str]:
    """What to mask for a database URL: its password as written, and percent-decoded (the way a
    driver may echo it back)."""
    from urllib.parse import unquote

    pw = url_password(url or "")
    if not pw:
        kv = re.search(r"\bpassword\s*=\s*(?:'([^']*)'|(\S+))", url or "")
        pw = (kv.group(1) or kv.group(2)) if kv else None
    return [pw, unquote(pw)] if pw else []


class Redactor:
    """:func:`redact` plus literal secrets. Immutable: :meth:`with_secrets` returns a new one.

    >>> Redactor(["Zq9-very-random"])("login Zq9-very-random failed")
    'login *** failed'
    """

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self.secrets = frozenset(s for s in secrets if s and len(s) >= MIN_SECRET)

    def with_secrets(self, *secrets: str | None) -> Redactor:
        return Redactor([*self.secrets, *secrets])

    def __call__(self, text: str) -> str:
        text = redact(text)
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text
