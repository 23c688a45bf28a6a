"""The build fingerprint a deploy compares to skip a build: it must change whenever Docker
would build something else, and may (needlessly) change otherwise — never the reverse."""

from __future__ import annotations

from pathlib import Path

import pytest

from composekit.buildcontext import base_images, built_from, context_fingerprint, record_build

DOCKERFILE = """\
# syntax-free: no frontend image
ARG PYTHON_IMAGE=python:3.12-slim
FROM ${PYTHON_IMAGE} AS base
WORKDIR /app
COPY requirements.txt .
FROM base
COPY --from=base /app /app
COPY app/ app/
"""


def project(
    tmp: Path, ignore: str = "backups/\n.composekit/\n**/__pycache__/\n*.log\n"
) -> dict[str, object]:
    (tmp / "Dockerfile").write_text(DOCKERFILE)
    (tmp / ".dockerignore").write_text(ignore)
    (tmp / "requirements.txt").write_text("psycopg\n")
    (tmp / "app").mkdir(exist_ok=True)
    (tmp / "app" / "app.py").write_text("print('r1')\n")
    (tmp / "backups").mkdir(exist_ok=True)
    return {"context": str(tmp), "dockerfile": "Dockerfile", "args": {"PYTHON_IMAGE": "py:3.11"}}


IDS = {"py:3.11": "sha256:aaa"}


def fp(build: dict[str, object], ids: dict[str, str] = IDS) -> str | None:
    return context_fingerprint(build, ids.get)


def test_what_docker_reads_changes_it_and_what_it_ignores_does_not(tmp_path: Path) -> None:
    build = project(tmp_path)
    first = fp(build)
    assert first is not None and fp(build) == first  # stable
    (tmp_path / "backups" / "x.dump").write_bytes(b"data")  # ignored by .dockerignore
    (tmp_path / "debug.log").write_text("x")
    (tmp_path / "app" / "__pycache__").mkdir()
    (tmp_path / "app" / "__pycache__" / "a.pyc").write_bytes(b"\0")
    assert fp(build) == first
    (tmp_path / "app" / "app.py").write_text("print('r2')\n")  # the code
    second = fp(build)
    assert second not in (None, first)
    (tmp_path / "app" / "app.py").chmod(0o755)  # its mode
    assert fp(build) != second
    assert fp(build, {"py:3.11": "sha256:bbb"}) != fp(build)  # the base image moved
    assert fp({**build, "args": {"PYTHON_IMAGE": "py:3.12"}}, {"py:3.12": "sha256:aaa"}) != fp(
        build
    )
    assert fp(build, {}) is None  # the base image is not here: build
    (tmp_path / "Dockerfile").write_text(DOCKERFILE + "RUN true\n")
    assert fp(build) not in (None, second)


def test_an_exception_in_dockerignore_excludes_nothing(tmp_path: Path) -> None:
    build = project(tmp_path, ignore="backups/\n!backups/keep.txt\n")
    first = fp(build)
    (tmp_path / "backups" / "x.dump").write_bytes(b"data")
    assert fp(build) not in (None, first)  # hashed after all: a needless build, never a missed one


@pytest.mark.parametrize(
    "extra",
    [
        "# syntax=docker/dockerfile:1\n",
        "COPY --from=nginx:latest /etc/nginx /etc/nginx\n",
        "RUN --mount=type=bind,from=busybox,target=/b true\n",
        "ADD https://example.com/x.tar.gz /x\n",
    ],
)
def test_what_it_cannot_see_means_build(tmp_path: Path, extra: str) -> None:
    build = project(tmp_path)
    dockerfile = tmp_path / "Dockerfile"
    text = dockerfile.read_text()
    dockerfile.write_text(extra + text if extra.startswith("#") else text + extra)
    assert fp(build) is None


def test_unknown_build_options_mean_build(tmp_path: Path) -> None:
    build = project(tmp_path)
    assert fp({**build, "secrets": [{"source": "token"}]}) is None
    assert fp({**build, "additional_contexts": {"x": "../x"}}) is None
    assert fp({**build, "dockerfile": "missing.Dockerfile"}) is None


def test_base_images_follow_arg_defaults_and_build_args() -> None:
    text = "ARG A=one:1\nARG B\nFROM $A AS s1\nFROM ${B:-two:2}\nFROM s1\nFROM scratch\n"
    assert base_images(text, {}) == ["one:1", "two:2"]
    assert base_images(text, {"A": "x:9", "B": "y:8"}) == ["x:9", "y:8"]
    assert base_images("FROM ${NOPE}\n", {}) is None


def test_the_record_of_the_last_build(tmp_path: Path) -> None:
    assert built_from(tmp_path, "shop-app:latest") is None
    record_build(tmp_path, "shop-app:latest", "f1", "sha256:1")
    record_build(tmp_path, "other:latest", "f2", "sha256:2")
    assert built_from(tmp_path, "shop-app:latest") == ("f1", "sha256:1")
    assert (tmp_path / ".composekit" / "builds.json").stat().st_mode & 0o777 == 0o600
