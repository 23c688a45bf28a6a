"""A fingerprint of everything ``docker build`` reads for one compose build, so a deploy whose
image would come out the same can skip the build (a fully cached build still costs ~0.4 s).

Conservative by construction: whatever composekit cannot read with certainty gives ``None``, and
then the deploy builds as always. That covers build options other than context, dockerfile,
args, target and labels; a ``# syntax=`` frontend; a ``COPY --from`` or ``--mount`` of an image
that is not a stage; a base image not on this engine; special files; and contexts over
:data:`MAX_BYTES`. ``.dockerignore`` patterns only ever *exclude less* than Docker would: with
an exception (``!``), a character class or an escape, nothing is excluded, so the fingerprint
covers a superset of what Docker sends (a needless build, never a missed one).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from composekit.files import write_private

MAX_BYTES = 256 * 1024 * 1024
KNOWN_KEYS = {"context", "dockerfile", "args", "target", "labels"}
_VAR = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def context_fingerprint(
    build: Mapping[str, Any], image_id: Callable[[str], str | None]
) -> str | None:
    """The sha256 of the build's inputs, or None when composekit cannot be sure what they are.
    ``image_id`` gives a local image's ID (None: not on this engine)."""
    if not isinstance(build, Mapping) or set(build) - KNOWN_KEYS or not build.get("context"):
        return None
    context = Path(str(build["context"]))
    dockerfile = context / str(build.get("dockerfile") or "Dockerfile")
    if not context.is_dir() or not dockerfile.is_file():
        return None
    if Path(f"{dockerfile}.dockerignore").exists():
        return None  # a per-Dockerfile ignore file: Docker's rule for which one wins is not ours
    args = {str(k): str(v) for k, v in (build.get("args") or {}).items() if v is not None}
    bases = base_images(dockerfile.read_text(errors="replace"), args)
    if bases is None:
        return None
    h = hashlib.sha256()
    h.update(json.dumps({k: build.get(k) for k in sorted(KNOWN_KEYS)}, sort_keys=True).encode())
    for ref in bases:
        found = image_id(ref)
        if found is None:
            return None
        h.update(f"base {ref} {found}\n".encode())
    h.update(b"dockerfile\n" + dockerfile.read_bytes())
    ignore = context / ".dockerignore"
    excluded = exclusions(ignore.read_text(errors="replace")) if ignore.is_file() else []
    if not _hash_tree(h, context, excluded):
        return None
    return h.hexdigest()


def base_images(text: str, args: Mapping[str, str]) -> list[str] | None:
    """The images a Dockerfile builds from (``FROM``, with ``ARG`` defaults and build args put
    in), or None when something else is read from outside the context."""
    lines = _logical_lines(text)
    if any(ln.lower().startswith("# syntax=") for ln in lines):
        return None
    scope = dict(args)
    stages: set[str] = set()
    bases: list[str] = []
    seen_from = False
    for line in lines:
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "ARG" and not seen_from:  # before the first FROM: usable in FROM lines
            name, eq, default = rest.strip().partition("=")
            if name not in args and eq:
                scope[name] = default.strip().strip('"')
        elif word == "FROM":
            seen_from = True
            parts = [p for p in rest.split() if not p.startswith("--")]
            if not parts:
                return None
            image = _expand(parts[0], scope)
            if image is None:
                return None
            if image.lower() not in stages and image.lower() != "scratch":
                bases.append(image)
            if len(parts) >= 3 and parts[1].upper() == "AS":
                stages.add(parts[2].lower())
        elif word in ("COPY", "ADD", "RUN"):
            sources = re.findall(r"--from=(\S+)", rest) if word != "RUN" else []
            sources += re.findall(r"--mount=\S*?\bfrom=([^,\s]+)", rest)
            if any(src.lower() not in stages and not src.isdigit() for src in sources):
                return None  # read from an image, not the context
            if word == "ADD" and re.search(r"(?:^|\s)(?:https?://|git@|git://)", rest):
                return None  # a remote source
    return bases


def _logical_lines(text: str) -> list[str]:
    out, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if current and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        out.append((current + line).strip())
        current = ""
    if current:
        out.append(current.strip())
    return out


def _expand(value: str, scope: Mapping[str, str]) -> str | None:
    unknown = False

    def sub(m: re.Match[str]) -> str:
        nonlocal unknown
        name = m.group("braced") or m.group("bare")
        if name in scope and scope[name] != "":
            return scope[name]
        if m.group("default") is not None:
            return m.group("default")
        unknown = True
        return ""

    out = _VAR.sub(sub, value)
    return None if unknown or not out else out


def exclusions(text: str) -> list[re.Pattern[str]]:
    """``.dockerignore`` as patterns that exclude at most what Docker excludes: none at all if an
    exception (``!``) could bring a file back; a pattern with a class or an escape is dropped."""
    patterns = [ln.strip() for ln in text.splitlines()]
    patterns = [p for p in patterns if p and not p.startswith("#")]
    if any(p.startswith("!") for p in patterns):
        return []
    out = []
    for p in patterns:
        if any(c in p for c in "[]\\"):
            continue
        p = os.path.normpath(p.lstrip("/")).replace(os.sep, "/")
        if p in (".", ".."):
            continue
        out.append(re.compile(_translate(p)))
    return out


def _translate(pattern: str) -> str:
    """A dockerignore pattern as a regex over a slash-separated relative path."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return out


def _excluded(rel: str, patterns: list[re.Pattern[str]]) -> bool:
    return any(p.fullmatch(rel) for p in patterns)


def _hash_tree(h: Any, context: Path, excluded: list[re.Pattern[str]]) -> bool:
    total = 0
    for root, dirs, files in os.walk(context):
        base = os.path.relpath(root, context).replace(os.sep, "/")
        prefix = "" if base == "." else base + "/"
        dirs[:] = sorted(d for d in dirs if not _excluded(prefix + d, excluded))
        for d in dirs:
            if os.path.islink(os.path.join(root, d)):
                h.update(f"link {prefix}{d} {os.readlink(os.path.join(root, d))}\n".encode())
        for name in sorted(files):
            rel = prefix + name
            if _excluded(rel, excluded):
                continue
            path = os.path.join(root, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                h.update(f"link {rel} {os.readlink(path)}\n".encode())
                continue
            if not stat.S_ISREG(st.st_mode):
                return False
            total += st.st_size
            if total > MAX_BYTES:
                return False
            h.update(f"file {rel} {stat.S_IMODE(st.st_mode):o} {st.st_size}\n".encode())
            with open(path, "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
    return True


STORE = Path(".composekit") / "builds.json"


def built_from(project_dir: Path, image_name: str) -> tuple[str, str] | None:
    """(fingerprint, image ID) of the last build of ``image_name`` a deploy recorded."""
    try:
        entry = json.loads((project_dir / STORE).read_text()).get(image_name) or {}
    except (OSError, ValueError):
        return None
    fp, image = entry.get("fingerprint"), entry.get("image")
    return (str(fp), str(image)) if fp and image else None


def record_build(project_dir: Path, image_name: str, fp: str, image_id: str) -> None:

    path = project_dir / STORE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    data[image_name] = {"fingerprint": fp, "image": image_id}
    write_private(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
