"""Put the database back as it was before this deploy.

Preference (DESIGN.md): the down sections of the migrations this deploy applied, newest first —
run with the NEW image, the one holding those files — and only if one has no down section (or
the down run fails), a restore of the backup taken at the start, after a safety snapshot of the
failed state, reporting per table the row counts that differ.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

from composekit.deploy.state import DeployState
from composekit.deploy.web import point_back
from composekit.errors import ComposekitError
from composekit.migrations import version_key
from composekit.restore import restore_backup


def applied_since(s: DeployState, now: list[str]) -> list[str]:
    """The versions in ``now`` the ledger did not hold when the deploy took its lock (numbers
    compare as numbers; Alembic's revision ids as they are)."""
    before = {_key(v) for v in (s.ledger_before or [])}
    return [v for v in now if _key(v) not in before]


def _key(version: str) -> tuple[int, ...] | str:
    try:
        return version_key(version)
    except ValueError:
        return version


def container_migrations_dir(s: DeployState) -> str:
    """The migrations directory as the migrator container sees it."""
    return s.settings.migrations_dir_in_image


def revert_database(s: DeployState) -> str:
    """Undo what the migrations of this deploy did (down sections or ``alembic downgrade``, else
    restore), then check the database is back: same schema, same ledger — else restore the
    backup, else fail (exit 8)."""
    service = s.settings.migrate_service
    if s.project.remove_oneoffs(service):
        s.progress(f"removed a {service} container still running from this deploy")
    revert: Callable[[DeployState, list[str]], str]  # "": it could not, or it failed
    if s.ctx.alembic:
        now = s.ledger() or []
        ours = now if now != (s.ledger_before or []) else []
        what, how, revert = "alembic revision", "alembic downgrade", _alembic_downgrade
    elif s.ctx.opaque:  # what it changed cannot be known: the backup from before it ran
        done = restore_pre_deploy(s, ["whatever the migrator changed"])
        return done + "; " + check_undone(s)
    else:
        ours = applied_since(s, s.ctx.target.applied() or [])
        what, how, revert = "migration", "the down sections", _down_sections
    if not ours:
        return f"no {what} of this deploy was applied; " + check_undone(s)
    done = revert(s, ours)
    if done:
        difference = undone_difference(s)
        if difference and s.backup is not None:
            s.progress(f"after {how} {difference}; restoring the pre-deploy backup")
            done = ""
    if not done:
        done = restore_pre_deploy(s, ours)
    return done + "; " + check_undone(s)


def _alembic_downgrade(s: DeployState, ours: list[str]) -> str:
    """``alembic downgrade`` to the revision the deploy found, with the new image (it holds the
    new revisions' downgrade code); "" when it failed, or with several heads (not attempted)."""
    before = s.ledger_before or []
    if len(before) > 1:
        return ""
    to = before[0] if before else "base"
    done = f"alembic downgrade {to} (from {', '.join(ours)})"
    s.progress(done)
    if run_with_new_image(s, ["alembic", "downgrade", to], "downgrade"):
        return done
    s.progress("alembic downgrade failed; restoring the pre-deploy backup instead")
    return ""


def undone_difference(s: DeployState) -> str:
    """How the database differs from before the migrations ran ("": it does not)."""
    if s.fingerprint is None:
        return ""
    before = s.fingerprint.splitlines()
    now = fingerprint(s).splitlines()
    if now == before:
        return ""
    changed = [
        ln
        for ln in difflib.unified_diff(before, now, "before", "now", lineterm="", n=0)
        if ln[:1] in "+-" and not ln.startswith(("+++", "---"))
    ]
    return f"the schema or ledger differs in {len(changed)} line(s): {changed[0][:160] if changed else '?'}"


def check_undone(s: DeployState) -> str:
    """ "Undone" is a claim we verify: the schema and ledger as they were before the migrations."""
    difference = undone_difference(s)
    if difference:
        raise ComposekitError(
            f"the undo did not bring the database back: {difference}",
            hint="compare with the pre-deploy backup and restore it by hand if needed "
            "(composekit restore NAME --yes)",
        )
    return "schema and ledger as before" if s.fingerprint is not None else "not compared"


def fingerprint(s: DeployState) -> str:
    """The normalized schema and the ledger's versions (rows may change meanwhile: the old web
    keeps writing, and a down section keeps what it wrote)."""
    ledger = s.ledger()
    return (
        s.ctx.target.schema() + f"-- ledger: {','.join(ledger) if ledger is not None else 'none'}\n"
    )


def _down_sections(s: DeployState, ours: list[str]) -> str:
    """``composekit migrate down`` to the version the deploy found, with the new image (it holds
    these files); "" when one has no down section (not attempted) or the run failed."""
    files = {m.key: m for m in s.ctx.source.migrations}
    downs = all((m := files.get(version_key(v))) is not None and m.down is not None for v in ours)
    if not (downs and s.web.new):
        return ""
    target = max(s.ledger_before, key=version_key) if s.ledger_before else "0"
    argv = ["composekit", "migrate", "down", "--target", target]
    argv += ["--dir", container_migrations_dir(s)]
    if run_with_new_image(s, argv, "down"):
        return f"reverted {', '.join(reversed(ours))} with their down sections"
    s.progress("down sections failed; restoring the pre-deploy backup instead")
    return ""


def run_with_new_image(s: DeployState, argv: list[str], label: str) -> bool:
    """``argv`` in the migrate service, run from this deploy's new image (it holds the files that
    know how to undo the new migrations), its output streamed; whether it exited 0."""
    try:
        if s.web.new:
            s.project.tag_image(s.web.new, s.web.name)
        r = s.project.run(
            s.settings.migrate_service,
            argv,
            timeout=s.deadline.remaining(),
            on_line=lambda ln: s.progress(f"  {label} | {ln}"),
            no_deps=True,
        )
    finally:
        point_back(s)
    return r.returncode == 0


def restore_pre_deploy(s: DeployState, ours: list[str]) -> str:
    if s.backup is None:
        raise ComposekitError(
            f"cannot undo migrations {', '.join(ours)}: no down section and no backup (--no-backup)",
            hint="restore a backup by hand: composekit restore",
        )
    report = restore_backup(
        s.ctx.target,
        s.settings.backups_path,
        str(s.backup.path),
        snapshot=True,
        stop_services=s.settings.database_users,
        compare_rows=True,  # no deadline: a restore under way is worse to stop than to finish
        progress=s.progress,
    )
    snap = report.snapshot.path if report.snapshot else "none"
    if report.row_changes:
        s.progress(
            "rows that differ from the backup (failed state → restored), to reconcile from the "
            f"snapshot {snap}:"
        )
        for change in report.row_changes:
            s.progress(f"  {change}")
    differ = (
        f"rows differ in {', '.join(str(c) for c in report.row_changes)}"
        if report.row_changes
        else "no table's row count differs"
    )
    return f"restored {s.backup.path.name}; {differ}; the failed state is in the snapshot {snap}"
