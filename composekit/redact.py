"""Keep passwords out of everything a person or a log can see."""

from __future__ import annotations

import re

# scheme://user:password@host  ->  scheme://user:***@host
_URL_PASSWORD = re.compile(r"(?P<pre>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]+)(?P<at>@)")
# key=value forms in libpq conninfo strings, env dumps and psycopg error messages
_KV_PASSWORD = re.compile(
    r"(?P<key>\b(?:password|PGPASSWORD|POSTGRES_PASSWORD)\s*[=:]\s*)(?P<q>['\"]?)(?P<pw>[^\s'\"]+)(?P=q)",
    re.IGNORECASE,
)
_SECRETS: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a literal secret so that :func:`redact` masks it wherever it shows up."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def redact(text: str) -> str:
    """Return ``text`` with every password replaced by ``***``.

    >>> redact("postgresql://app:s3cret@db:5432/app")
    'postgresql://app:***@db:5432/app'
    """
    if not text:
        return text
    text = _URL_PASSWORD.sub(r"\g<pre>***\g<at>", text)
    text = _KV_PASSWORD.sub(r"\g<key>\g<q>***\g<q>", text)
    for secret in _SECRETS:
        text = text.replace(secret, "***")
    return text
