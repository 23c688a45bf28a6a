"""The one place composekit starts subprocesses.

Rules kept here so nobody has to remember them elsewhere: argv lists only (never a shell),
an explicit timeout on every call, secrets passed through the environment (never argv), the
logged command line redacted, binary output written straight to a file descriptor so it
never goes through text decoding, and every child in a session of its own: a signal sent to
composekit's process group (Ctrl-C, a CI runner cancelling) reaches composekit alone, which then
stops its children in order (see :mod:`composekit.signals`) instead of losing, say, the psql
session that holds the deploy lock in the middle of an undo.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Generic, TypeVar

from composekit.errors import ComposekitError
from composekit.redact import redact
from composekit.signals import shielded

log = logging.getLogger("composekit.proc")
T = TypeVar("T")


@dataclass(frozen=True)
class Completed:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class CommandFailed(ComposekitError):
    """A subprocess exited non-zero; callers usually re-raise it as a more specific error."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        tail = stderr.strip().splitlines()[-1] if stderr.strip() else "no error output"
        super().__init__(f"{display(argv)} exited {returncode}: {tail}")


class CommandTimeout(ComposekitError):
    def __init__(self, argv: Sequence[str], timeout: float) -> None:
        self.argv = list(argv)
        super().__init__(f"{display(argv)} did not finish within {timeout:g}s")


class CommandNotFound(ComposekitError):
    def __init__(self, program: str) -> None:
        self.program = program
        super().__init__(f"{program} is not installed or not on PATH")


def display(argv: Sequence[str]) -> str:
    """The command line as a person would type it, with secrets masked."""
    return redact(shlex.join(str(a) for a in argv))


def _env(extra: Mapping[str, str] | None) -> dict[str, str] | None:
    if not extra:
        return None
    env = dict(os.environ)
    env.update(extra)
    return env


def _finish(
    args: list[str],
    timeout: float,
    input: str | bytes | None,
    *,
    stdin: IO[bytes] | int | None,
    stdout: IO[bytes] | int,
    text: bool,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> tuple[int, str | bytes | None, str | bytes]:
    """Start ``args`` in a session of its own and wait for it: (exit code, stdout, stderr).

    Interrupted (a signal), it is waited for, not killed: killing the ``docker compose exec``
    client would not stop its work inside the container, only hide when that work ends — and
    cleaning up after it (dropping the database it is creating, say) must come after it."""
    try:
        p = subprocess.Popen(
            args,
            stdin=stdin,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=text,
            errors="replace" if text else None,
            env=_env(env),
            cwd=cwd,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise CommandNotFound(args[0]) from exc
    deadline = time.monotonic() + timeout
    with p:
        try:
            out, err = p.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            p.kill()
            p.communicate()
            raise CommandTimeout(args, timeout) from exc
        except KeyboardInterrupt:
            with shielded(reraise=False):
                try:
                    p.communicate(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.communicate()
            raise
    return p.returncode, out, err


def run(
    argv: Sequence[str | Path],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    check: bool = True,
    cwd: str | Path | None = None,
) -> Completed:
    """Run ``argv`` and capture its text output. Raises on timeout, and on failure if ``check``."""
    args = [str(a) for a in argv]
    log.debug("run: %s", display(args))
    stdin = subprocess.PIPE if input is not None else subprocess.DEVNULL
    rc, out, err = _finish(
        args, timeout, input, stdin=stdin, stdout=subprocess.PIPE, text=True, env=env, cwd=cwd
    )
    result = Completed(args, rc, str(out or ""), str(err))
    if check and not result.ok:
        raise CommandFailed(args, rc, result.stderr)
    return result


def _run_binary(
    args: list[str],
    timeout: float,
    env: Mapping[str, str] | None,
    stdin: IO[bytes] | int,
    stdout: IO[bytes] | int,
) -> Completed:
    rc, raw_out, raw_err = _finish(
        args, timeout, None, stdin=stdin, stdout=stdout, text=False, env=env
    )
    out = raw_out.decode("utf-8", "replace") if isinstance(raw_out, bytes) else ""
    stderr = raw_err.decode("utf-8", "replace") if isinstance(raw_err, bytes) else str(raw_err)
    if rc != 0:
        raise CommandFailed(args, rc, stderr)
    return Completed(args, rc, out, stderr)


def run_tee(
    argv: Sequence[str | Path],
    out: IO[bytes],
    check_argv: Sequence[str | Path],
    *,
    timeout: float,
) -> tuple[str, Completed]:
    """Run ``argv``, writing its stdout byte-for-byte into ``out`` and, as it arrives, into the
    stdin of ``check_argv`` (e.g. ``pg_dump -Fc`` into ``pg_restore --list``): the check runs
    during the dump instead of after it. Returns the sha256 of the bytes and the check's result
    (``check_argv`` may stop reading early: it is then fed no more). Raises :class:`CommandFailed`
    if ``argv`` fails; the caller judges the check."""
    import hashlib

    args, checker = [str(a) for a in argv], [str(a) for a in check_argv]
    log.debug("run_tee: %s | %s", display(args), display(checker))
    try:
        src = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        chk = subprocess.Popen(
            checker,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise CommandNotFound(exc.filename or args[0]) from exc
    drained: dict[str, bytes] = {}

    def drain(name: str, stream: IO[bytes]) -> None:
        drained[name] = stream.read()

    assert src.stdout and src.stderr and chk.stdin and chk.stdout and chk.stderr
    pumps = [
        threading.Thread(target=drain, args=(n, st), daemon=True)
        for n, st in (("src_err", src.stderr), ("chk_out", chk.stdout), ("chk_err", chk.stderr))
    ]
    for t in pumps:
        t.start()
    digest = hashlib.sha256()
    feeding = True
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        for p in (src, chk):
            p.kill()

    watchdog = threading.Timer(timeout, expire)
    watchdog.start()
    try:
        while chunk := src.stdout.read(1 << 20):
            out.write(chunk)
            digest.update(chunk)
            if feeding:
                try:
                    chk.stdin.write(chunk)
                except BrokenPipeError:
                    feeding = False
        try:
            chk.stdin.close()
        except BrokenPipeError:
            pass
        src_rc = src.wait(timeout=timeout)
        chk_rc = chk.wait(timeout=timeout)
    except BaseException:
        for p in (src, chk):
            p.kill()
            p.wait()
        raise
    finally:
        watchdog.cancel()
    for t in pumps:
        t.join(timeout=10)
    if expired.is_set():
        raise CommandTimeout(args, timeout)
    if src_rc != 0:
        raise CommandFailed(args, src_rc, drained.get("src_err", b"").decode("utf-8", "replace"))
    result = Completed(
        checker,
        chk_rc,
        drained.get("chk_out", b"").decode("utf-8", "replace"),
        drained.get("chk_err", b"").decode("utf-8", "replace"),
    )
    return digest.hexdigest(), result


def run_from_file(
    argv: Sequence[str | Path],
    inp: IO[bytes],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
) -> Completed:
    """Run ``argv`` with stdin read byte-for-byte from ``inp`` (e.g. ``pg_restore``)."""
    args = [str(a) for a in argv]
    log.debug("run_from_file: %s", display(args))
    return _run_binary(args, timeout, env, inp, subprocess.PIPE)


def stream(
    argv: Sequence[str | Path],
    *,
    timeout: float,
    on_line: Callable[[str], None],
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> Completed:
    """Run ``argv``, handing each output line (stdout and stderr merged) to ``on_line``.

    Returns the whole output as ``stdout``; never raises on a non-zero exit (the caller decides).
    """
    import threading

    args = [str(a) for a in argv]
    log.debug("stream: %s", display(args))
    try:
        p = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_env(env),
            cwd=cwd,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise CommandNotFound(args[0]) from exc
    lines: list[str] = []

    def pump() -> None:
        assert p.stdout is not None
        for raw in p.stdout:
            line = redact(raw.decode("utf-8", "replace").rstrip("\n"))
            lines.append(line)
            on_line(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        rc = p.wait(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        _kill_group(p)  # its children too (a hook's `sleep`), not only the program we started
        p.wait()
        raise CommandTimeout(args, timeout) from exc
    except BaseException:
        # Ctrl-C: don't leave the child behind
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
        raise
    reader.join(timeout=5)
    return Completed(args, rc, "\n".join(lines), "")


def _kill_group(p: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group ``p`` leads (it was started in a session of its own)."""
    import signal

    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        p.kill()


def spawn_detached(argv: Sequence[str | Path], *, log_path: Path) -> int:
    """Start a long-lived background program (e.g. ``dockerd``) that outlives composekit."""
    args = [str(a) for a in argv]
    log.debug("spawn: %s", display(args))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        try:
            p = subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise CommandNotFound(args[0]) from exc
    return p.pid


class Session:
    """A long-lived line-oriented child (e.g. ``psql`` holding a lock): write a line, read lines.

    Its stdin is a pipe only this process holds, so the child sees end-of-file and exits when
    :meth:`close` is called — or when this process dies, however it dies.
    """

    def __init__(self, argv: Sequence[str | Path], *, env: Mapping[str, str] | None = None) -> None:
        import queue
        import threading

        self.argv = [str(a) for a in argv]
        log.debug("session: %s", display(self.argv))
        try:
            self._p = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=_env(env),
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise CommandNotFound(self.argv[0]) from exc
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._err: list[str] = []

        def pump(stream: IO[bytes], sink: Callable[[str | None], None]) -> None:
            for raw in stream:
                sink(redact(raw.decode("utf-8", "replace").rstrip("\n")))
            sink(None)

        assert self._p.stdout is not None and self._p.stderr is not None
        for stream, sink in ((self._p.stdout, self._lines.put), (self._p.stderr, self._on_err)):
            threading.Thread(target=pump, args=(stream, sink), daemon=True).start()

    @property
    def errors(self) -> list[str]:
        """Lines the child wrote to stderr so far."""
        return self._err

    def _on_err(self, line: str | None) -> None:
        if line is not None:
            self._err.append(line)

    def send(self, line: str) -> None:
        assert self._p.stdin is not None
        try:
            self._p.stdin.write(line.encode() + b"\n")
            self._p.stdin.flush()
        except (BrokenPipeError, ValueError):  # the child ended; or it was found ended before
            self._failed()

    def read_line(self, *, timeout: float = 30) -> str:
        """The next line of output; raises :class:`CommandFailed` if the child ended or went quiet."""
        import queue

        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            line = None
        if line is None:
            self._failed()
        assert line is not None
        return line

    def _failed(self) -> None:
        self.close(timeout=2)
        raise CommandFailed(self.argv, self._p.returncode or 1, "\n".join(self._err))

    def close(self, timeout: float = 10) -> None:
        if self._p.stdin is not None and not self._p.stdin.closed:
            try:
                self._p.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self._p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._p.kill()
            self._p.wait()


class Later(Generic[T]):
    """``fn()`` running in a thread from now on; :meth:`result` waits for it and returns what it
    returned, or raises what it raised (a read started early, asked for later)."""

    def __init__(self, fn: Callable[[], T]) -> None:
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], T]) -> None:
        try:
            self._value = fn()
        except BaseException as exc:  # handed to the caller of result()
            self._error = exc

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def failed(self) -> bool:
        """Waits for it; True when it raised."""
        self._thread.join()
        return self._error is not None
