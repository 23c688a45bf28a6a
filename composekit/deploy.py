"""``composekit deploy``: preflight → lock → backup → build → migrate → verify → web, undone on failure.

Undo preference for the database (see the README): the down sections of the migrations this deploy
applied, newest first — run with the NEW image, which is the one holding those files — and only if
one has no down section (or the down run fails), a restore of the backup taken at the start (after
a safety snapshot of the failed state). The web goes back to the image ID it ran before.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from composekit.backup import (
    Backup,
    DbTarget,
    normalize_schema,
    restore_backup,
    sha256_file,
    take_backup,
)
from composekit.compose import ComposeProject
from composekit.db import advisory_lock, lock_key, who_am_i
from composekit.errors import (
    ComposekitError,
    ConfigError,
    DockerError,
    UsageError,
    VerifyError,
)
from composekit.migrations.runner import compare, drift_error
from composekit.migrations.source import Source, load_source, version_key
from composekit.workflow import RunReport, run_steps

Progress = Callable[[str], None]
OVERLAYS = {"staging": "compose.staging.yaml", "prod": "compose.prod.yaml"}


@dataclass
class DeployState:
    settings: Any
    project: ComposeProject
    target: DbTarget
    source: Source
    progress: Progress
    timeout: float
    backup_mode: str  # auto | always | never
    image_name: str = ""
    previous_image: str | None = None
    new_image: str | None = None
    ledger_before: list[str] | None = None
    ledger_after: list[str] | None = None  # read by the verify step
    backup: Backup | None = None
    lock: ExitStack = field(default_factory=ExitStack)
    maintenance: bool = False
    stopped: list[str] = field(default_factory=list)  # by --maintenance
    notes: list[str] = field(default_factory=list)

    @property
    def migrate_service(self) -> str:
        return (
            self.settings.migrator_service
            if self.settings.layout == "migrator"
            else self.settings.web_service
        )

    def applied(self) -> list[str] | None:
        return self.target.applied()

    def pending(self) -> list[str]:
        applied = {version_key(v) for v in (self.ledger_before or [])}
        return [m.version for m in self.source.migrations if m.key not in applied]


# -- steps ------------------------------------------------------------------------------------------


class StateStep:
    """What the deploy steps share: the :class:`DeployState`, and an undo that has nothing to do
    (steps that change something override it)."""

    name = ""

    def __init__(self, s: DeployState) -> None:
        self.s = s

    def undo(self) -> str:
        return ""


class Preflight(StateStep):
    name = "preflight"
    changes_nothing = True

    def describe(self) -> str:
        return "compose files, services, migrations, disk"

    def run(self) -> str:
        st = self.s.settings
        services = [st.db_service, st.web_service] + (
            [st.migrator_service] if st.layout == "migrator" else []
        )
        self.s.project.config()
        self.s.project.require_services(*services)
        if st.expected_schema and not expected_schema_path(st).is_file():
            raise ConfigError(
                f"expected_schema {expected_schema_path(st)} does not exist",
                hint="write it from a database at the right version: composekit schema --write",
            )
        if st.layout == "init-scripts" and self.s.source.migrations:
            raise ConfigError(
                f"{len(self.s.source.migrations)} migration file(s) in {st.migrations_dir}, but the "
                "init-scripts layout never runs migrations",
                hint='switch to the migrator layout (layout = "migrator" in composekit.toml and a '
                "migrator service, as `composekit init --layout migrator` writes it); "
                "`composekit migrate baseline` adopts the existing schema",
            )
        free = shutil.disk_usage(st.project_dir).free
        if free < 1024**3:
            raise ConfigError(
                f"only {free / 1024**3:.1f} GiB free for the backup", hint="free some disk space"
            )
        return f"{len(self.s.source.migrations)} migration file(s), layout {st.layout}"


class StartDatabase(StateStep):
    name = "database"
    changes_nothing = True

    def describe(self) -> str:
        return f"make sure {self.s.settings.db_service} is up and healthy"

    def run(self) -> str:
        db = self.s.settings.db_service
        if self.s.project.health(db) in ("healthy", "running"):
            return "already up"
        # never recreate a running database: another deploy (from another checkout, whose paths
        # differ) may be using it; changing the db service itself is not a deploy's job
        self.s.project.up(
            [self.s.settings.db_service],
            wait=True,
            wait_timeout=int(self.s.timeout),
            no_recreate=True,
        )
        return ""


class DeployLock(StateStep):
    """One deploy per database at a time, whichever machine it runs from: an advisory lock held by
    a psql session in the ``postgres`` database (a restore of the app database cannot end it).
    PostgreSQL releases it when the session ends — when we close it, or when this process dies."""

    name = "lock"
    changes_nothing = True

    def __init__(self, s: DeployState, wait: float, check_ledger: bool = True) -> None:
        super().__init__(s)
        self.wait = wait
        self.check_ledger = check_ledger  # a rollback touches no migration: it only reads it

    def describe(self) -> str:
        then = (
            "compare the ledger with the migration files"
            if self.check_ledger
            else "read the ledger"
        )
        return f"take the deploy lock in the database (waiting up to {self.wait:g}s); {then}"

    def run(self) -> str:
        take_deploy_lock(self.s.target, self.s.lock, self.wait, self.s.progress)
        rows = self.s.target.ledger_rows()
        self.s.ledger_before = [r.version for r in rows] if rows is not None else None
        _, problems = compare(rows or [], self.s.source) if self.check_ledger else (None, [])
        if problems:  # the migrator would refuse them: say so before anything is built or changed
            raise drift_error(problems, self.s.settings.migrations_path, self.s.target.ledger_table)
        current = self.s.ledger_before[-1] if self.s.ledger_before else "nothing applied"
        return f"ledger at {current}; pending: {', '.join(self.s.pending()) or 'none'}"


def take_deploy_lock(target: DbTarget, stack: ExitStack, wait: float, progress: Progress) -> None:
    """Hold the deploy lock until ``stack`` closes; names the holder if another deploy has it."""
    app_name = f"composekit deploy {who_am_i()}"
    session = target.session(app_name)
    stack.callback(session.close)
    key = lock_key(f"{target.database}/{target.ledger_table}", purpose="deploy")
    stack.enter_context(advisory_lock(session, key, wait, "deploy", progress, app_name))


class TakeBackup(StateStep):
    name = "backup"

    def describe(self) -> str:
        return {"always": "back up the database", "never": "skipped (--no-backup)"}.get(
            self.s.backup_mode, "back up the database when migrations are pending"
        )

    def run(self) -> str:
        if self.s.backup_mode == "never" or (self.s.backup_mode == "auto" and not self.s.pending()):
            return "skipped"
        self.s.backup = take_backup(
            self.s.target,
            self.s.settings.backups_path,
            label="pre-deploy",
            keep=self.s.settings.keep_backups,
            progress=self.s.progress,
        )
        return str(self.s.backup.path.name)

    def undo(self) -> str:
        return f"kept {self.s.backup.path}" if self.s.backup else ""


class BuildImages(StateStep):
    name = "build"

    def describe(self) -> str:
        return f"remember the running {self.s.settings.web_service} image, build the new one"

    def run(self) -> str:
        st = self.s.settings
        self.s.previous_image = self.s.project.image_of(st.web_service)
        self.s.image_name = self.s.project.image_name(st.web_service)
        services = [st.web_service]
        if st.layout == "migrator" and (
            self.s.project.image_name(st.migrator_service) != self.s.image_name
        ):
            services.append(st.migrator_service)
        # one build per image name: compose labels each build with its service, so building web
        # and a migrator sharing its image gives two IDs and the tag goes to whichever ends last
        # (the web would then be "changed" on every deploy)
        self.s.project.build(services)
        self.s.new_image = self.s.project.image_id(self.s.image_name)
        prev = short(self.s.previous_image)
        return f"{self.s.image_name} {short(self.s.new_image)} (previous {prev})"

    def undo(self) -> str:
        if point_back(self.s):
            return f"{self.s.image_name} points at {short(self.s.previous_image)} again"
        return ""


def revert_database(s: DeployState) -> str:
    """Undo the migrations applied since the deploy started: down sections (with the new image),
    or a restore of the pre-deploy backup."""
    if s.project.remove_oneoffs(s.migrate_service):
        s.progress(f"removed a {s.migrate_service} container still running from this deploy")
    now = s.applied() or []
    before = {version_key(v) for v in (s.ledger_before or [])}
    ours = [v for v in now if version_key(v) not in before]
    if not ours:
        return "no migration of this deploy was applied"
    files = {m.key: m for m in s.source.migrations}
    downs = all(
        files.get(version_key(v)) is not None and files[version_key(v)].down is not None
        for v in ours
    )
    if downs and s.new_image:
        target = max(s.ledger_before, key=version_key) if s.ledger_before else "0"
        try:
            s.project.tag_image(s.new_image, s.image_name)  # the image that holds these files
            r = s.project.run(
                s.migrate_service,
                ["composekit", "migrate", "down", "--target", target, "--dir", "/app/migrations"],
                on_line=lambda ln: s.progress(f"  down | {ln}"),
                no_deps=True,
            )
        finally:
            point_back(s)
        if r.returncode == 0:
            return f"reverted {', '.join(reversed(ours))} with their down sections"
        s.progress("down sections failed; restoring the pre-deploy backup instead")
    if s.backup is None:
        raise ComposekitError(
            f"cannot undo migrations {', '.join(ours)}: no down section and no backup (--no-backup)",
            hint="restore a backup by hand: composekit restore",
        )
    report = restore_backup(
        s.target,
        s.settings.backups_path,
        str(s.backup.path),
        snapshot=True,
        stop_services=[s.settings.web_service, *s.settings.maintenance_services],
        compare_rows=True,
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


class Migrate(StateStep):
    name = "migrate"

    def describe(self) -> str:
        if self.s.settings.layout == "migrator":
            return f"docker compose run --rm {self.s.settings.migrator_service}"
        return f"migrations run as the new {self.s.settings.web_service} starts (app-startup)"

    def run(self) -> str:
        if self.s.settings.layout != "migrator":
            return "deferred to the web start"
        if not self.s.pending():
            return "nothing pending"
        lines: list[str] = []

        def show(line: str) -> None:
            lines.append(line)
            self.s.progress(f"  migrator | {line}")

        r = self.s.project.run(
            self.s.settings.migrator_service, timeout=self.s.timeout, on_line=show, no_deps=True
        )
        if r.returncode != 0:
            tail = [ln for ln in lines if ln.strip()][-8:]
            err = next(
                (ln.removeprefix("error: ") for ln in reversed(lines) if ln.startswith("error: ")),
                "",
            )
            raise ComposekitError(
                f"the migrator exited {r.returncode}: {err or 'see its output'}", details=tail
            )
        return next(
            (ln for ln in reversed(lines) if ln.startswith(("applied", "database is up"))), "done"
        )

    def undo(self) -> str:
        return revert_database(self.s)

    def manual_undo(self) -> str:
        b = self.s.backup
        return (
            f"composekit restore {b.path.name} --yes"
            if b
            else "composekit migrate down (for this deploy's migrations)"
        )


class DeployWeb(StateStep):
    name = "web"

    def describe(self) -> str:
        return f"up -d {self.s.settings.web_service} with the new image; wait until its healthcheck passes"

    def run(self) -> str:
        st = self.s.settings
        if self.s.new_image and self.s.new_image == self.s.previous_image:
            if st.web_service in self.s.stopped:  # by --maintenance
                start_web(self.s)
                return f"{st.web_service} started again on {short(self.s.new_image)}: unchanged"
            return f"{st.web_service} already runs {short(self.s.new_image)}: unchanged"
        start_web(self.s)
        kept = ""
        if self.s.previous_image:  # so `composekit rollback` can return to it
            tag = keep_image(self.s, self.s.previous_image)
            kept = f"; previous kept as {tag}"
        return f"{st.web_service} healthy on {short(self.s.new_image)}{kept}"

    def undo(self) -> str:
        db = ""
        if self.s.settings.layout == "app-startup":
            # the new web re-runs its migrations on every restart, and the old one would refuse a
            # ledger holding versions it has no files for: stop it, revert, then start the old one
            self.s.project.stop([self.s.settings.web_service])
            db = revert_database(self.s) + "; "
        return db + previous_web_back(self.s)

    def manual_undo(self) -> str:
        return web_back_by_hand(self.s)


def web_back_by_hand(s: DeployState) -> str:
    """What a person runs to put the previous web back when the undo could not."""
    return (
        f"docker tag {s.previous_image} {s.image_name} && "
        f"docker compose up -d --no-build --no-deps --force-recreate --wait {s.settings.web_service}"
    )


def short(image_id: str | None) -> str:
    return (image_id or "none").removeprefix("sha256:")[:12]


def start_web(s: DeployState, force_recreate: bool = False) -> None:
    """``up -d --no-build --no-deps`` the web with whatever its image name points at, wait until it
    is healthy, then the HTTP health gate (when ``health_url`` is set).

    Docker runs a healthcheck first one ``interval`` after the start (2 s in our templates, often
    30 s elsewhere). A single web container with a healthcheck is instead checked by running that
    same test command in it ourselves, every 0.2 s, so the deploy goes on the moment it passes."""
    st = s.settings
    test = s.project.healthcheck(st.web_service)
    fast = test is not None and s.project.replicas(st.web_service) == 1
    s.project.up(
        [st.web_service],
        no_build=True,
        no_deps=True,  # the database is up already and must not be recreated
        force_recreate=force_recreate,
        wait=not fast,
        wait_timeout=int(s.timeout),
    )
    if fast:
        assert test is not None
        _wait_healthcheck(s, st.web_service, test)
    if st.health_url:
        _health_gate(st.health_url, s.timeout, s.progress)


def _wait_healthcheck(s: DeployState, service: str, test: list[str]) -> None:
    deadline = time.monotonic() + s.timeout
    last = ""
    while time.monotonic() < deadline:
        r = s.project.exec(service, test, check=False, timeout=30)
        if r.returncode == 0:
            return
        last = ((r.stderr or r.stdout).strip().splitlines() or [f"exit {r.returncode}"])[-1]
        state = next(iter(s.project.ps([service])), None)
        if state is None or state.state in ("exited", "dead", "restarting"):
            where = f"exited with code {state.exit_code}" if state else "is gone"
            tail = s.project.logs(service, tail=8).strip().splitlines()
            raise DockerError(
                f"{service} {where} right after it started: {(tail or ['no output'])[-1]}",
                hint=f"see `docker compose logs {service}`",
                details=tail,
            )
        time.sleep(0.2)
    raise DockerError(
        f"{service} did not pass its healthcheck within {s.timeout:g}s (last: {last})",
        hint=f"see `docker compose logs {service}`",
    )


def point_back(s: DeployState) -> bool:
    """Re-point the web's image name at the image it ran before this deploy (if any)."""
    if not (s.previous_image and s.image_name):
        return False
    s.project.tag_image(s.previous_image, s.image_name)
    return True


def previous_web_back(s: DeployState) -> str:
    """Point the web's image name at the image it ran before and recreate it (or stop the web if
    there was none)."""
    web = s.settings.web_service
    if not s.previous_image:
        s.project.stop([web])
        return f"stopped {web} (there was no previous version)"
    point_back(s)
    if s.maintenance:  # it starts again (on that image) once the database is back
        s.project.stop([web])
        return f"{web} stopped; its image name points at {short(s.previous_image)} again"
    start_web(s, force_recreate=True)
    return f"{web} back on {short(s.previous_image)}"


KEPT_PREFIX = "ck-"


def split_image_name(name: str) -> tuple[str, str]:
    """``registry:5000/app:1.2`` → (``registry:5000/app``, ``1.2``); no tag means ``latest``."""
    repo, sep, tag = name.rpartition(":")
    if not sep or "/" in tag:
        return name, "latest"
    return repo, tag


def keep_image(s: DeployState, image_id: str) -> str:
    """Tag ``image_id`` as ``<repo>:ck-<UTC time>-<id>`` so it is not left dangling, then keep only
    the newest ``keep_images`` such tags (one per image)."""
    repo, _ = split_image_name(s.image_name)
    tag = f"{KEPT_PREFIX}{datetime.now(UTC):%Y%m%dT%H%M%S}-{short(image_id)}"
    s.project.tag_image(image_id, f"{repo}:{tag}")
    seen: set[str] = set()
    for old_tag, old_id, _ in s.project.tagged(repo, KEPT_PREFIX):
        if old_id in seen or len(seen) >= s.settings.keep_images:
            s.project.untag(f"{repo}:{old_tag}")
        else:
            seen.add(old_id)
    return tag


class InitScripts(StateStep):
    """init-scripts layout: the scripts ran once, when the volume was empty, and never run again.
    Their checksums are recorded per database (``pg_control_system().system_identifier``) in
    ``.composekit/init-scripts.json`` on the first deploy; a later change refuses the deploy, since
    it would silently never reach this database."""

    name = "init-scripts"
    changes_nothing = True

    def __init__(self, s: DeployState) -> None:
        super().__init__(s)
        self.dir = s.settings.project_dir / "init-scripts"
        self.record = s.settings.project_dir / ".composekit" / "init-scripts.json"

    def describe(self) -> str:
        return (
            "no migrations: init-scripts/ ran when the volume was created; check they are unchanged"
        )

    def run(self) -> str:
        scripts = sorted(p for p in self.dir.glob("*") if p.is_file()) if self.dir.is_dir() else []
        now = {p.name: sha256_file(p) for p in scripts}
        db = self.s.target.psql("SELECT system_identifier FROM pg_control_system()")
        recorded = json.loads(self.record.read_text()) if self.record.is_file() else {}
        if db not in recorded:
            recorded[db] = now
            self.record.parent.mkdir(parents=True, exist_ok=True)
            self.record.write_text(json.dumps(recorded, indent=2) + "\n")
            return (
                f"recorded {len(now)} init script(s) for this database; they never run again "
                "on it (later schema changes need migrations)"
            )
        before = recorded[db]
        changed = sorted(
            [f"{n} (changed)" for n in now if n in before and now[n] != before[n]]
            + [f"{n} (new)" for n in now if n not in before]
            + [f"{n} (removed)" for n in before if n not in now]
        )
        if changed:
            raise VerifyError(
                f"init-scripts changed since this database was initialised: {', '.join(changed)}; "
                "they never run again on an existing volume, so the change would never reach it",
                hint="undo the change and make it a migration (migrator layout; `composekit migrate "
                "baseline` adopts the schema), or start from an empty volume with "
                "`docker compose down -v` (deletes every row)",
            )
        return f"{len(now)} init script(s) unchanged since this database was initialised"


class Together:
    """Two independent steps at once (the image build and the backup: one keeps Docker busy, the
    other the database). Fails if either fails, after both have ended; its undo undoes both."""

    def __init__(self, *steps: Any) -> None:
        self.steps = steps
        self.name = "+".join(st.name for st in steps)
        self.changes_nothing = all(getattr(st, "changes_nothing", False) for st in steps)

    def describe(self) -> str:
        return "; ".join(f"{st.name}: {st.describe()}" for st in self.steps)

    def run(self) -> str:
        from concurrent.futures import ThreadPoolExecutor, wait

        with ThreadPoolExecutor(len(self.steps)) as pool:
            futures = [pool.submit(st.run) for st in self.steps]
            try:
                wait(futures)
            except KeyboardInterrupt:
                wait(futures)  # let both end (they are bounded) before anything is undone
                raise
        for f in futures:
            f.result()  # the first failure, in step order
        return "; ".join(
            f"{st.name}: {f.result()}" for st, f in zip(self.steps, futures, strict=True)
        )

    def undo(self) -> str:
        done = [st.undo() for st in reversed(self.steps)]
        return "; ".join(d for d in done if d)


class Maintenance(StateStep):
    """``--maintenance``: stop the web (or ``[deploy] maintenance``) from before the backup until
    the new version is up, for migrations the old web cannot live with; a restore loses nothing."""

    name = "maintenance"

    def __init__(self, s: DeployState) -> None:
        super().__init__(s)
        self.services = list(s.settings.maintenance_services) or [s.settings.web_service]

    def describe(self) -> str:
        return f"stop {', '.join(self.services)} until the new version is up"

    def run(self) -> str:
        running = sorted({x.service for x in self.s.project.ps(self.services, all=False)})
        if running:
            self.s.project.stop(running)
        self.s.stopped = running
        return f"stopped {', '.join(running)}" if running else "nothing was running"

    def undo(self) -> str:
        if not self.s.stopped:
            return ""
        point_back(self.s)  # so they start on the image they ran before
        start_services(self.s, self.s.stopped)
        return f"started {', '.join(self.s.stopped)} again"


def start_services(s: DeployState, services: list[str]) -> None:
    """``up -d --no-build --no-deps --wait`` services --maintenance stopped."""
    s.project.up(services, no_build=True, no_deps=True, wait=True, wait_timeout=int(s.timeout))


class Resume(StateStep):
    name = "resume"

    def describe(self) -> str:
        return "start the other services --maintenance stopped"

    def run(self) -> str:
        others = [x for x in self.s.stopped if x != self.s.settings.web_service]
        if not others:
            return "nothing else to start"
        start_services(self.s, others)
        return f"started {', '.join(others)}"


class Verify(StateStep):
    name = "verify"

    def describe(self) -> str:
        schema = (
            f"; schema equals {self.s.settings.expected_schema}"
            if self.s.settings.expected_schema
            else ""
        )
        return f"no pending migrations, no drift; verify/*.sql checks{schema}"

    def run(self) -> str:
        self.s.ledger_after = self.s.applied()
        applied = {version_key(v) for v in (self.s.ledger_after or [])}
        missing = [m.version for m in self.s.source.migrations if m.key not in applied]
        if missing:
            raise VerifyError(
                f"migrations still pending after the deploy: {', '.join(missing)}",
                hint="see the migrate step's output",
            )
        checks = sorted((self.s.settings.project_dir / "verify").glob("*.sql"))
        for check in checks:
            out = self.s.target.psql(check.read_text()).strip()
            if out not in ("", "t"):
                raise VerifyError(
                    f"check {check.name} failed: it returned {out.splitlines()[0][:120]!r}",
                    hint="a verify check must return no rows, or a single true",
                )
        schema = ""
        if self.s.settings.expected_schema:
            schema = "; " + compare_schema(self.s.target, expected_schema_path(self.s.settings))
        return f"{len(applied)} applied, {len(checks)} check(s) passed{schema}"


def expected_schema_path(settings: Any) -> Path:
    return settings.path(Path(settings.expected_schema or "schema.sql"))


def compare_schema(target: DbTarget, path: Path) -> str:
    """Raise :class:`VerifyError` with the differing lines unless the database's schema is the one
    in ``path`` (both normalized)."""
    import difflib

    expected = normalize_schema(path.read_text())
    actual = target.schema()
    if actual == expected:
        return f"schema equals {path.name}"
    changed = [
        ln
        for ln in difflib.unified_diff(
            expected.splitlines(), actual.splitlines(), "expected", "database", lineterm="", n=0
        )
        if ln[:1] in "+-" and not ln.startswith(("+++", "---"))
    ]
    raise VerifyError(
        f"the database schema differs from {path.name} in {len(changed)} line(s): "
        f"{changed[0][:160] if changed else 'ordering'}",
        hint="if the migrations are right, refresh the file from the migrated database: "
        "composekit schema --write",
        details=changed[1:12],
    )


def _health_gate(url: str, timeout: float, progress: Progress, in_a_row: int = 3) -> None:
    deadline = time.monotonic() + timeout
    streak, last = 0, ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=3) as r:
                ok = r.status == 200
                last = str(r.status)
        except Exception as exc:
            ok, last = False, type(exc).__name__
        streak = streak + 1 if ok else 0
        if streak >= in_a_row:
            return
        time.sleep(0.5)
    raise DockerError(
        f"{url} did not answer 200 {in_a_row} times in a row within {timeout:g}s (last: {last})",
        hint="see `docker compose logs web`",
    )


# -- the command ---------------------------------------------------------------------------------------


@dataclass
class DeployReport:
    id: str
    kind: str  # deploy | rollback
    env: str | None
    started: str
    finished: str
    ok: bool
    steps: list[dict[str, Any]]
    error: str
    ledger_before: list[str] | None
    ledger_after: list[str] | None
    backup: str | None
    web_before: str | None
    web_after: str | None

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def plan_steps(s: DeployState, lock_wait: float) -> list[Any]:
    steps: list[Any] = [Preflight(s), StartDatabase(s), DeployLock(s, lock_wait)]
    if s.settings.layout == "init-scripts":
        steps.append(InitScripts(s))
    if s.maintenance:  # nothing may write between the web stopping and the backup
        steps += [BuildImages(s), Maintenance(s), TakeBackup(s)]
    else:
        steps.append(Together(BuildImages(s), TakeBackup(s)))
    if s.settings.layout == "migrator":
        steps += [Migrate(s), Verify(s), DeployWeb(s)]
    elif s.settings.layout == "app-startup":
        steps += [Migrate(s), DeployWeb(s), Verify(s)]  # the web migrates as it starts
    else:
        steps += [Verify(s), DeployWeb(s)]  # init-scripts: nothing to migrate
    return steps + ([Resume(s)] if s.maintenance else [])


def new_state(
    settings: Any,
    *,
    env: str | None,
    timeout: float,
    progress: Progress,
    backup_mode: str = "auto",
) -> DeployState:
    """What every step of a deploy (or rollback) shares; checks the layout and ``--env``."""
    if settings.layout not in ("migrator", "app-startup", "init-scripts"):
        raise UsageError(
            f"unknown layout {settings.layout!r} in composekit.toml",
            hint="use migrator, app-startup or init-scripts",
        )
    overlay = OVERLAYS.get(env) if env else None
    if env and overlay is None:
        raise UsageError(f"unknown environment {env!r}", hint="use --env staging or --env prod")
    project = ComposeProject.from_settings(settings, overlay=overlay)
    return DeployState(
        settings,
        project,
        DbTarget.from_settings(settings, project),
        load_source(settings.migrations_path, settings.migrations_format),
        progress,
        timeout,
        backup_mode,
    )


def deploy(
    settings: Any,
    *,
    env: str | None = None,
    timeout: float = 180,
    backup_mode: str = "auto",
    lock_wait: float = 0,
    maintenance: bool = False,
    dry_run: bool = False,
    progress: Progress = lambda m: None,
) -> DeployReport | list[str]:
    """Run (or with ``dry_run`` describe) the deploy; records it in ``.composekit/history.jsonl``."""
    s = new_state(settings, env=env, timeout=timeout, progress=progress, backup_mode=backup_mode)
    s.maintenance = maintenance
    return execute(s, plan_steps(s, lock_wait), kind="deploy", env=env, dry_run=dry_run)


def execute(
    s: DeployState, steps: list[Any], *, kind: str, env: str | None, dry_run: bool
) -> DeployReport | list[str]:
    """Run ``steps`` (undone on failure), always release the lock, and record the run in the history."""
    if dry_run:
        return [f"{i}. {st.name}: {st.describe()}" for i, st in enumerate(steps, 1)]
    started = datetime.now(UTC).isoformat()
    run = RunReport()
    error: ComposekitError | None = None
    try:
        run_steps(steps, s.progress, run, what=kind)
    except ComposekitError as exc:
        error = exc
    finally:
        s.lock.close()
    after = s.ledger_after
    if error is not None or after is None:
        try:
            after = s.applied()
        except ComposekitError:
            after = None
    report = DeployReport(
        id=uuid.uuid4().hex[:12],
        kind=kind,
        env=env,
        started=started,
        finished=datetime.now(UTC).isoformat(),
        ok=error is None,
        steps=[r.to_dict() for r in run.steps],
        error=run.error,
        ledger_before=s.ledger_before,
        ledger_after=after,
        backup=str(s.backup.path) if s.backup else None,
        web_before=s.previous_image,
        web_after=s.new_image if error is None and s.new_image else s.previous_image,
    )
    record_history(s.settings.project_dir, report)
    if error is not None:
        raise error
    return report


def history_path(project_dir: Path) -> Path:
    return project_dir / ".composekit" / "history.jsonl"


def record_history(project_dir: Path, report: DeployReport) -> None:
    p = history_path(project_dir)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "a") as f:
        f.write(json.dumps(report.to_dict()) + "\n")


def read_history(project_dir: Path) -> list[dict[str, Any]]:
    p = history_path(project_dir)
    if not p.is_file():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
