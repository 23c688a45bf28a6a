"""Health gates over HTTP: a URL (or a probe through the proxy) answering 200 in a row."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from composekit.deadline import Deadline
from composekit.errors import DockerError
from composekit.progress import Progress

if TYPE_CHECKING:
    import urllib.request

CLIENT_ERROR_GRACE_S = 5.0  # a release may answer 404 while its routes load: not for longer


def fetch_status(url: str | urllib.request.Request, timeout: float) -> str:
    """GET ``url``: its status code, or the name of the error (refused, reset, timed out)."""
    # imported here: only a deploy that rolls a web out probes (http.client, email, ssl: 25 ms
    # of every command's start otherwise)
    import http.client
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return str(r.status)
    except urllib.error.HTTPError as exc:
        return str(exc.code)
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        return type(getattr(exc, "reason", exc)).__name__


REPORT_EVERY = 5.0  # seconds between two lines of a wait for an answer


def health_gate(url: str, deadline: Deadline, progress: Progress, in_a_row: int = 3) -> None:
    """``url`` must answer 200 ``in_a_row`` times in a row before the deadline."""
    answers_200(
        lambda: fetch_status(url, deadline.remaining(3) + 0.1), url, deadline, in_a_row,
        progress=progress,
    )  # fmt: skip


def answers_200(
    fetch: Callable[[], str],
    url: str,
    deadline: Deadline,
    in_a_row: int = 3,
    where: str = "",
    accept: Callable[[str], bool] = lambda status: status == "200",
    want: str = "200",
    progress: Progress | None = None,
    report_every: float = REPORT_EVERY,
) -> None:
    """``fetch`` (a GET of ``url``, maybe through the proxy to one container: ``where``) must give
    an answer ``accept`` takes (200) ``in_a_row`` times in a row before the deadline. Answering
    only 4xx (but 408/429) for :data:`CLIENT_ERROR_GRACE_S` fails at once: that URL is wrong, or
    this release does not serve it — waiting out the whole --timeout would not change that."""
    streak, last, attempts = 0, "", 0
    client_errors_since: float | None = None
    t0 = said = time.monotonic()
    while not deadline.expired:
        last = fetch()
        attempts += 1
        if progress is not None and time.monotonic() - said >= report_every:
            said = time.monotonic()
            progress(f"  {url}{where}: {attempts} tries in {said - t0:.0f}s, last answer {last}")
        ok = accept(last)
        streak = streak + 1 if ok else 0
        if streak >= in_a_row:
            return
        if not ok and last.startswith("4") and last not in ("408", "429"):
            client_errors_since = client_errors_since or time.monotonic()
            if time.monotonic() - client_errors_since >= CLIENT_ERROR_GRACE_S:
                raise DockerError(
                    f"{url}{where} answered {last} for {CLIENT_ERROR_GRACE_S:g}s: the URL is "
                    "wrong, or this release does not serve it",
                    hint="check [web] health_url, and that the release serves that path",
                )
        else:
            client_errors_since = None
        time.sleep(min(0.1 if ok else 0.3, deadline.remaining()))
    raise DockerError(
        f"{url}{where} did not answer {want} {in_a_row} time(s) in a row within the --timeout of "
        f"{deadline.seconds:g}s (last: {last or 'no answer'})",
        hint="see `docker compose logs web`",
    )
