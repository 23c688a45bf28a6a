"""Pure parts of deploy/rollback: image names, row-count reports, steps run together."""

from __future__ import annotations

import threading

import pytest

from composekit.deploy.runner import Step, run_steps
from composekit.deploy.steps import Together
from composekit.deploy.web import split_image_name
from composekit.errors import ComposekitError, DeployFailed
from composekit.restore import RowChange, row_changes


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("shop-app", ("shop-app", "latest")),
        ("shop-app:1.2", ("shop-app", "1.2")),
        ("registry:5000/team/app", ("registry:5000/team/app", "latest")),
        ("registry:5000/team/app:v3", ("registry:5000/team/app", "v3")),
    ],
)
def test_split_image_name(name: str, expected: tuple[str, str]) -> None:
    assert split_image_name(name) == expected


def test_row_changes_lists_only_tables_that_differ() -> None:
    replaced = {"public.users": 4, "public.audit": 0, "public.same": 7}
    restored = {"public.users": 3, "public.same": 7, "public.gone_later": 2}
    changes = row_changes(replaced, restored)
    assert changes == [
        RowChange("public.audit", 0, None),
        RowChange("public.gone_later", None, 2),
        RowChange("public.users", 4, 3),
    ]
    assert [str(c) for c in changes] == [
        "public.audit 0 → absent",
        "public.gone_later absent → 2",
        "public.users 4 → 3",
    ]


class Meeting(Step):
    """A step that only finishes if its partner runs at the same time."""

    def __init__(self, name: str, barrier: threading.Barrier, fail: bool = False) -> None:
        self.name = name
        self.barrier = barrier
        self.fail = fail
        self.undone = False

    def describe(self) -> str:
        return self.name

    def run(self) -> str:
        self.barrier.wait(timeout=5)  # BrokenBarrierError if the two ran one after the other
        if self.fail:
            raise ComposekitError(f"{self.name} broke")
        return f"{self.name} done"

    def undo(self) -> str:
        self.undone = True
        return f"{self.name} undone"


def test_together_runs_both_at_once_and_reports_both() -> None:
    barrier = threading.Barrier(2)
    step = Together(Meeting("build", barrier), Meeting("backup", barrier))
    assert step.name == "build+backup"
    assert step.run() == "build: build done; backup: backup done"


def test_together_fails_after_both_ended_and_undoes_both() -> None:
    barrier = threading.Barrier(2)
    build, backup = Meeting("build", barrier), Meeting("backup", barrier, fail=True)
    with pytest.raises(DeployFailed) as exc:
        run_steps([Together(build, backup)], lambda m: None, what="rollback")
    assert exc.value.message.startswith("rollback failed at build+backup: backup broke")
    assert build.undone and backup.undone


def test_normalize_schema_drops_what_differs_between_two_dumps_of_one_schema() -> None:
    from composekit.dbtarget import normalize_schema

    dump = (
        "--\n-- PostgreSQL database dump\n--\n\\restrict Xy12abc\n"
        "-- Dumped from database version 15.18\nSET statement_timeout = 0;\n"
        "SELECT pg_catalog.set_config('search_path', '', false);\n\n"
        "CREATE TABLE public.users (\n    id integer NOT NULL   \n);\n\n\\unrestrict Xy12abc\n"
    )
    assert normalize_schema(dump) == "CREATE TABLE public.users (\n    id integer NOT NULL\n);\n"


def test_a_health_wait_says_how_it_is_going_then_names_the_last_answer() -> None:
    from composekit.deadline import Deadline
    from composekit.deploy.health import answers_200

    said: list[str] = []
    answers = iter(["000", "503", "503", "503", "503", "503", "503", "503", "503", "503"] * 5)
    with pytest.raises(ComposekitError) as e:
        answers_200(
            lambda: next(answers), "/healthz", Deadline(1.2), 3, " (on web-2)",
            progress=said.append, report_every=0.3,
        )  # fmt: skip
    assert said and all(ln.startswith("  /healthz (on web-2): ") for ln in said), said
    assert "tries in" in said[-1] and said[-1].endswith("last answer 503")
    assert "(last: 503)" in e.value.message
