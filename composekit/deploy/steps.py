"""The deploy's steps: preflight → database → lock → build + backup → migrate → verify → web.

Each step reads the :class:`DeployContext`, writes its own fields of the :class:`DeployState`,
and knows how to undo itself (see :mod:`composekit.deploy.runner`).
"""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

from composekit import proc
from composekit.backup import take_backup
from composekit.buildcontext import built_from, context_fingerprint, record_build
from composekit.config import BackupMode
from composekit.dbtarget import DbTarget, PsqlSession
from composekit.deploy.history import RunKind
from composekit.deploy.lock import take_deploy_lock
from composekit.deploy.recover import recover_leftover
from composekit.deploy.revert import (
    container_migrations_dir,
    fingerprint,
    revert_database,
    run_with_new_image,
)
from composekit.deploy.rollout import retire, roll_out, switch_back
from composekit.deploy.runner import Skipped, Step
from composekit.deploy.state import DeployState
from composekit.deploy.web import (
    keep_image,
    point_back,
    previous_web_back,
    short,
    start_services,
    start_web,
    web_back_by_hand,
)
from composekit.doctor import MIN_FREE_BYTES  # the floor `composekit doctor` checks
from composekit.errors import ComposekitError, ConfigError, DockerError, UsageError, VerifyError
from composekit.journal import Journal
from composekit.lint import config_of, lint_migrations
from composekit.migrations import LedgerRow, compare, drift_error, version_key
from composekit.proxy import ADMIN_PORT
from composekit.signals import shielded
from composekit.vendor import check_vendored


class StateStep(Step):
    """A step of one deploy: it reads and writes that deploy's :class:`DeployState`."""

    def __init__(self, s: DeployState) -> None:
        self.s = s


class Preflight(StateStep):
    name = "preflight"
    changes_nothing = True

    def describe(self) -> str:
        return "compose files, services, migrations, disk"

    def run(self) -> str:
        st = self.s.settings
        services = [st.db_service, st.web_service]
        if st.layout.has_migrator:
            services.append(st.migrator_service)
        self.s.project.config()  # read once, here, before steps run side by side
        self.s.project.prefetch_config_hash(st.web_service)  # for the web step, meanwhile
        self.s.project.require_services(*services)
        if self.s.proxy is not None:
            check_side_by_side(self.s)
        check_vendored(st.project_dir)  # the image's composekit is this one
        if st.expected_schema and not st.expected_schema_path.is_file():
            raise ConfigError(
                f"expected_schema {st.expected_schema_path} does not exist",
                hint="write it from a database at the right version: composekit schema --write",
            )
        migrations = self.s.ctx.source.migrations
        if not st.layout.runs_migrations and migrations:
            raise ConfigError(
                f"{len(migrations)} migration file(s) in {st.migrations_dir}, but the "
                "init-scripts layout never runs migrations",
                hint='switch to the migrator layout (layout = "migrator" in composekit.toml and a '
                "migrator service, as `composekit init --layout migrator` writes it); "
                "`composekit migrate baseline` adopts the existing schema",
            )
        if self.s.ctx.opaque and self.s.ctx.backup_mode is BackupMode.NEVER:
            raise UsageError(
                f"--no-backup with the project's own migrator ({st.migrator_service}): composekit "
                "cannot see what it changes, so its undo is a restore of the pre-deploy backup",
                hint='drop --no-backup, or if it runs `composekit migrate up`, say so: [deploy] migrator = "composekit"',
            )
        free = shutil.disk_usage(st.project_dir).free
        if free < MIN_FREE_BYTES:
            raise ConfigError(
                f"only {free / 1024**3:.1f} GiB free for the backup (at least "
                f"{MIN_FREE_BYTES / 1024**3:g} GiB needed)",
                hint="free some disk space",
            )
        opaque = (
            f"; {st.migrate_service} runs Alembic"
            if self.s.ctx.alembic
            else f"; {st.migrator_service} is the project's own command (opaque)"
            if self.s.ctx.opaque
            else ""
        )
        return f"{len(migrations)} migration file(s), layout {st.layout}{opaque}"


def check_side_by_side(s: DeployState) -> None:
    """Behind the proxy, two web containers run side by side during a rollout: neither may claim
    a fixed container name or host port."""
    web, proxy = s.settings.web_service, s.settings.proxy_service
    services = s.project.config().get("services", {})
    targets = [
        int(p.get("target", 0)) for p in services[proxy].get("ports") or [] if isinstance(p, dict)
    ]
    if ADMIN_PORT not in targets:
        raise ConfigError(
            f"{proxy} does not publish HAProxy's runtime API (port {ADMIN_PORT}), which the rollout "
            "switches the web through",
            hint=f'add "127.0.0.1::{ADMIN_PORT}" to the ports: of {proxy} (loopback only)',
        )
    svc = services.get(web, {})
    if svc.get("container_name"):
        raise ConfigError(
            f"{web} sets container_name {svc['container_name']!r}: a rollout runs the new {web} "
            "beside the old, and two containers cannot share a name",
            hint=f"remove container_name from {web} (the proxy finds its containers by service)",
        )
    published = [p for p in svc.get("ports") or [] if isinstance(p, dict) and p.get("published")]
    if published:
        p = published[0]
        raise ConfigError(
            f"{web} publishes host port {p['published']}: a rollout runs the new {web} beside the "
            f"old, and the second cannot bind it",
            hint=f"remove ports: from {web} (the {s.settings.proxy_service} service publishes the "
            "site); use expose: for the container port",
        )


class StartDatabase(StateStep):
    name = "database"
    changes_nothing = True

    def describe(self) -> str:
        return f"make sure {self.s.settings.db_service} is up and healthy"

    def run(self) -> str | Skipped:
        db = self.s.settings.db_service
        if self.s.project.health(db) in ("healthy", "running"):
            return Skipped("already up")
        # never recreate a running database: another deploy (from another checkout, whose paths
        # differ) may be using it; changing the db service itself is not a deploy's job
        try:
            self.s.project.up(
                [db], wait=True, wait_timeout=self.s.deadline.whole_seconds(), no_recreate=True
            )
        except DockerError as exc:
            tail = [ln for ln in self.s.project.logs(db, tail=8).splitlines() if ln.strip()]
            raise DockerError(
                f"the {db} service did not start: {exc.message}"
                + (f"; its log ends: {tail[-1].strip()[:200]}" if tail else ""),
                hint=f"see `docker compose logs {db}` (its image, its environment, its volume)",
                details=tail,
            ) from exc
        return f"started {db}"


class DeployLock(StateStep):
    """Take the deploy lock (:mod:`composekit.deploy.lock`), then read the ledger."""

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
        target = self.s.ctx.target
        # the ledger is read over a psql session in the app's database, started beside the
        # lock's (a docker exec each) and only read once the lock is held
        reader = None if self.s.ctx.alembic else target.session(f"composekit deploy {self.name}", target.database)  # fmt: skip
        try:
            take_deploy_lock(target, self.s.lock, self.wait, self.s.progress)
            recover_leftover(self.s)  # a run killed earlier: finish its undo before anything else
            self.s.journal = Journal.start(
                self.s.settings.project_dir, self.s.kind, env=self.s.ctx.env, step=self.name
            )
            if self.s.ctx.alembic:
                self.s.ledger_before = target.alembic_revisions()
            else:
                assert reader is not None
                rows = ledger_over(target, reader)
        finally:
            if reader is not None:
                reader.close()
        if not self.s.ctx.alembic:
            self.s.ledger_before = [r.version for r in rows] if rows is not None else None
            if self.check_ledger and not self.s.ctx.opaque:  # refused by the migrator: now
                _, problems = compare(rows or [], self.s.ctx.source)
                if problems:
                    raise drift_error(
                        problems, self.s.settings.migrations_path, target.ledger_table
                    )
        linted = lint_pending(self.s) if self.check_ledger else ""
        current = self.s.ledger_before[-1] if self.s.ledger_before else "nothing applied"
        later = self.s.after_rollout()
        after = f" ({', '.join(later)} after the web rollout: contract)" if later else ""
        return (
            f"ledger at {current}; pending: {', '.join(self.s.pending()) or 'none'}{after}{linted}"
        )


def ledger_over(target: DbTarget, reader: PsqlSession) -> list[LedgerRow] | None:
    """The ledger, read over ``reader`` — or by a psql of its own if that session is gone (an
    undo of the deploy this one waited for may have replaced the database under it) or printed
    no answer (an error of the read, whose message reaches the session's stderr late: the psql
    of its own stops on it and says it)."""
    try:
        return target.ledger_rows(via=reader)
    except (DockerError, json.JSONDecodeError):
        return target.ledger_rows()


class TakeBackup(StateStep):
    name = "backup"

    def describe(self) -> str:
        return {
            BackupMode.ALWAYS: "back up the database",
            BackupMode.NEVER: "skipped (--no-backup)",
        }.get(self.s.ctx.backup_mode, "back up the database when migrations are pending")

    def run(self) -> str | Skipped:
        mode = self.s.ctx.backup_mode
        if mode is BackupMode.NEVER:
            return Skipped("--no-backup")
        if mode is BackupMode.AUTO and not self.s.pending() and not self.s.ctx.opaque:
            return Skipped("nothing pending")
        self.s.backup = take_backup(
            self.s.ctx.target,
            self.s.settings.backups_path,
            label="pre-deploy",
            keep=self.s.settings.keep_backups,
            timeout=self.s.deadline.remaining(),
            progress=self.s.progress,
        )
        # what an undo must give back, read here: beside the build, off the critical path
        self.s.fingerprint = fingerprint(self.s)
        return str(self.s.backup.path.name)

    def undo(self) -> str:
        return f"kept {self.s.backup.path}" if self.s.backup else ""


class BuildImages(StateStep):
    name = "build"

    def describe(self) -> str:
        return f"remember the running {self.s.settings.web_service} image, build the new one"

    def run(self) -> str:
        st, web, project = self.s.settings, self.s.web, self.s.project
        web.name = project.image_name(st.web_service)
        services = [st.web_service]
        if st.layout.has_migrator and project.image_name(st.migrator_service) != web.name:
            services.append(st.migrator_service)
        build = project.config().get("services", {}).get(st.web_service, {}).get("build")
        skippable = bool(build) and len(services) == 1  # a build it can fingerprint
        # the engine's reads at once (each a docker CLI call): the running web's image, what its
        # tag points at now (only where the build may be skipped), and — in this thread — the
        # base images of the fingerprint
        running = proc.Later(lambda: project.image_of(st.web_service))
        tagged = proc.Later(lambda: project.local_image_id(web.name)) if skippable else None
        fp = context_fingerprint(build, project.local_image_id) if skippable else None
        web.previous = running.result()
        self.s.checkpoint()  # the tag it is about to move, and where it pointed
        before = built_from(st.project_dir, web.name) if fp else None
        if before and web.previous and before == (fp, web.previous):
            if tagged is not None and tagged.result() == web.previous:
                web.new = web.previous
                return (
                    f"{web.name} {short(web.new)}: build skipped, its context, Dockerfile, "
                    "args and base images are those of the running image"
                )
        # one build per image name: compose labels each build with its service, so building web
        # and a migrator sharing its image gives two IDs and the tag goes to whichever ends last
        # (the web would then be "changed" on every deploy)
        project.build(services, timeout=self.s.deadline.remaining(), progress=self.s.progress)
        web.new = project.image_id(web.name)
        if fp:
            record_build(st.project_dir, web.name, fp, web.new)
        return f"{web.name} {short(web.new)} (previous {short(web.previous)})"

    def undo(self) -> str:
        web = self.s.web
        done = []
        if point_back(self.s):
            done.append(f"{web.name} points at {short(web.previous)} again")
        # the image this run built, now untagged: removed, not left dangling (kept if in use)
        if web.new and web.new != web.previous and self.s.project.untag(web.new):
            done.append(f"removed the image it built ({short(web.new)})")
        return "; ".join(done)


class Migrate(StateStep):
    name = "migrate"

    def describe(self) -> str:
        st = self.s.settings
        if st.layout.has_migrator:
            return f"docker compose run --rm {st.migrator_service}"
        return f"migrations run as the new {st.web_service} starts (app-startup)"

    def run(self) -> str | Skipped:
        st = self.s.settings
        if (self.s.pending() or self.s.ctx.opaque) and self.s.fingerprint is None:
            self.s.fingerprint = fingerprint(self.s)  # what an undo must give back (--no-backup)
        if not st.layout.has_migrator:
            return Skipped("deferred to the web start")
        if not self.s.pending() and not self.s.ctx.opaque:
            return Skipped("nothing pending")
        lines: list[str] = []

        def show(line: str) -> None:
            lines.append(line)
            self.s.progress(f"  migrator | {line}")

        r = self.s.project.run(
            st.migrator_service,
            timeout=self.s.deadline.remaining(),
            on_line=show,
            no_deps=True,
            env={"COMPOSEKIT_PHASE": "expand"},  # contract migrations: after the rollout
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
        if self.s.ctx.alembic:
            now = ", ".join(self.s.ledger() or []) or "none"
            return f"{st.migrator_service} exited 0; alembic revision {now} (undone with alembic downgrade)"
        if self.s.ctx.opaque:
            return (
                f"{st.migrator_service} exited 0 (the project's own command: undone by a restore)"
            )
        return f"{st.migrator_service} exited 0 (the verify step reads what it applied)"

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
        web = self.s.settings.web_service
        if self.s.proxy is not None:
            return (
                f"start the new {web} beside the old, wait until healthy (Docker and through "
                f"{self.s.settings.proxy_service}), switch the proxy, drain the old"
            )
        return f"up -d {web} with the new image; wait until its healthcheck passes"

    def run(self) -> str:
        web, images = self.s.settings.web_service, self.s.web
        same_image = images.new is not None and images.new == images.previous
        scale = self.s.ctx.scale
        running = self.s.project.ps([web], all=False) if same_image else []
        # nothing new, but a web failing its healthcheck is not left as it is: replaced, gated
        sick = [st.name for st in running if st.health == "unhealthy" or st.check_failing]
        if (
            same_image
            and not sick
            and web not in self.s.stopped
            and not self.s.project.config_changed(web, running)
        ):
            if scale is None or scale == len(running):
                return f"{web} already runs {short(images.new)}: unchanged"
        if self.s.proxy is not None:
            how = roll_out(self.s, scale)
        else:
            start_web(self.s, force_recreate=bool(sick))
            how = NOT_ZERO_DOWNTIME if images.previous else "started"
        if images.previous and not same_image:  # so `composekit rollback` can return to it
            how += f"; previous kept as {keep_image(self.s, images.previous)}"
        if sick:
            how += f"; replaced {', '.join(sick)}, whose healthcheck was failing"
        return f"{web} healthy on {short(images.new)}: {how}"

    def undo(self) -> str:
        if self.s.proxy is not None:
            return web_undo(self.s)
        db = ""
        if self.s.settings.layout.web_migrates:
            # the new web re-runs its migrations on every restart, and the old one would refuse a
            # ledger holding versions it has no files for: stop it, revert, then start the old one
            self.s.project.stop([self.s.settings.web_service])
            db = revert_database(self.s) + "; "
        return db + previous_web_back(self.s)

    def manual_undo(self) -> str:
        return web_back_by_hand(self.s)


NOT_ZERO_DOWNTIME = (
    "recreated in place, which drops requests for about a second (not zero-downtime: the project "
    "has no proxy service; README, 'Zero-downtime rollout', shows how to add one)"
)


def web_undo(s: DeployState) -> str:
    """The undo of a rollout (deploy or rollback): the old web serving again, the new removed; in
    the app-startup layout the database goes back once no new web can migrate again; with no old
    web alive (a first deploy, --maintenance), the previous image is rolled out (or left off)."""
    if s.gen.old is None:  # it failed before starting anything
        return ""
    if s.gen.retired:  # the old containers are gone (a contract migration failed after them)
        done = []
        if s.settings.layout.web_migrates and s.kind is RunKind.DEPLOY:
            done.append(revert_database(s))  # the previous web refuses a ledger it does not know
        done.append(previous_web_back(s))  # its image rolled out beside the new one, then switch
        return "; ".join(d for d in done if d)
    done = [switch_back(s)]
    if s.settings.layout.web_migrates and s.kind is RunKind.DEPLOY:
        done.append(revert_database(s))
    if not s.gen.old:
        done.append(previous_web_back(s))
    else:
        point_back(s)
    return "; ".join(d for d in done if d)


class Retire(StateStep):
    """The old web containers of a rollout: stopped and removed once nothing can fail any more.
    Never fails the run: what it could not remove is reported (``docker compose ps``)."""

    name = "retire"

    def describe(self) -> str:
        return f"stop and remove the old {self.s.settings.web_service} container(s)"

    def run(self) -> str | Skipped:
        if self.s.proxy is None or not self.s.gen.old or not self.s.gen.switched:
            return Skipped("nothing to retire")
        try:
            return retire(self.s)
        except ComposekitError as exc:
            return f"could not remove the old containers ({exc.message}); remove them by hand"


class Contract(StateStep):
    """Contract migrations (``migrations/post/``, or ``-- composekit:phase contract``): applied
    once the new web serves and the old one is gone — they may drop what only the old used. Undone
    with their down sections (new image), before the web goes back."""

    name = "contract"

    def __init__(self, s: DeployState) -> None:
        super().__init__(s)
        self.before: list[str] | None = None

    def describe(self) -> str:
        return "apply the contract migrations (after the old web is gone)"

    def run(self) -> str | Skipped:
        st = self.s.settings
        if not self.s.after_rollout():  # what the lock step found pending: none is a contract
            return Skipped("no contract migration pending")
        self.before = self.s.ledger() or []
        todo = self.s.after_rollout(self.before)
        if not todo:
            return Skipped("no contract migration pending")
        lines: list[str] = []

        def show(line: str) -> None:
            lines.append(line)
            self.s.progress(f"  contract | {line}")

        argv: list[str] = []
        if not st.layout.has_migrator:  # app-startup: the web's image, composekit's engine
            argv = ["composekit", "migrate", "up", "--dir", container_migrations_dir(self.s)]
        r = self.s.project.run(
            st.migrate_service,
            argv,
            timeout=self.s.deadline.remaining(),
            on_line=show,
            no_deps=True,
            env={"COMPOSEKIT_PHASE": "contract"},
        )
        if r.returncode != 0:
            err = next((ln[7:] for ln in reversed(lines) if ln.startswith("error: ")), "")
            raise ComposekitError(
                f"a contract migration failed (exit {r.returncode}): {err or 'see its output'}",
                details=[ln for ln in lines if ln.strip()][-8:],
            )
        self.s.ledger_after = self.s.ledger()
        left = self.s.after_rollout(self.s.ledger_after or [])
        if left:
            raise ComposekitError(f"contract migrations still pending: {', '.join(left)}")
        return f"applied {', '.join(todo)} after the rollout"

    def undo(self) -> str:
        if self.before is None:
            return ""
        ours = [v for v in (self.s.ledger() or []) if v not in set(self.before)]
        if not ours:
            return ""
        target = max(self.before, key=version_key) if self.before else "0"
        argv = ["composekit", "migrate", "down", "--target", target]
        argv += ["--dir", container_migrations_dir(self.s)]
        if run_with_new_image(self.s, argv, "down"):
            return f"reverted {', '.join(reversed(ours))} with their down sections"
        return "their down sections failed: the migrate step's undo restores the backup"

    def manual_undo(self) -> str:
        return "composekit migrate down (for this deploy's contract migrations)"


def lint_pending(s: DeployState) -> str:
    """``composekit lint`` on the pending migrations: errors refuse the deploy before anything
    changed (exit 6) unless ``--allow-lint``. Returns a note for the step's summary."""
    if s.ctx.opaque:
        return ""
    todo = [m for m in s.ctx.source.migrations if m.version in set(s.pending())]
    if not todo:
        return ""
    st = s.settings
    report = lint_migrations(todo, config_of(st.lint_disable, st.lint_strict))
    if report.errors and not s.ctx.allow_lint:
        first = report.errors[0]
        unsafe = (
            "see `composekit lint`: write it the safe way, make it a contract migration "
            "(-- composekit:phase contract) if the old release must be gone first, allow it "
            "with a reason (-- composekit:allow RULE because …), or deploy with --allow-lint"
        )
        raise VerifyError(
            f"lint: {len(report.errors)} error(s) in the pending migrations; the first: "
            f"{Path(first.path).name}:{first.line} {first.rule}: {first.message}",
            # SQL PostgreSQL cannot parse fails on the server too: only fixing it helps
            hint="fix the SQL at that line (`composekit lint` shows every error)"
            if first.rule == "syntax-error"
            else unsafe,
            details=[f"{Path(f.path).name}:{f.line} {f.rule}: {f.message}" for f in report.errors],
        )
    if st.layout.web_migrates and s.after_rollout():
        env = s.project.config().get("services", {}).get(st.web_service, {}).get("environment")
        if (env or {}).get("COMPOSEKIT_PHASE") != "expand":
            raise ConfigError(
                f"contract migrations are pending, but {st.web_service} (which migrates as it "
                "starts) would apply them before the old web is gone",
                hint=f"set COMPOSEKIT_PHASE: expand in the environment of {st.web_service} "
                "(composekit init's app-startup template does)",
            )
    forced = f", {len(report.errors)} error(s) let through by --allow-lint" if report.errors else ""
    return f"; lint: {len(report.warnings)} warning(s){forced}"


class Together(Step):
    """Two independent steps at once (the image build and the backup: one keeps Docker busy, the
    other the database). Fails if either fails, after both have ended; its undo undoes both."""

    def __init__(self, *steps: Step) -> None:
        self.steps = steps
        self.name = "+".join(st.name for st in steps)
        self.changes_nothing = all(st.changes_nothing for st in steps)

    def describe(self) -> str:
        return "; ".join(f"{st.name}: {st.describe()}" for st in self.steps)

    def run(self) -> str:
        with ThreadPoolExecutor(len(self.steps)) as pool:
            futures = [pool.submit(st.run) for st in self.steps]
            try:
                wait(futures)
            except KeyboardInterrupt:
                with shielded(reraise=False):  # both end (bounded by the deadline) before the undo
                    wait(futures)
                raise
        results = [f.result() for f in futures]  # the first failure, in step order
        return "; ".join(
            f"{st.name}: {r.reason if isinstance(r, Skipped) else r}"
            for st, r in zip(self.steps, results, strict=True)
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
        self.s.stopped = running
        self.s.checkpoint()  # what to start again, should this run be killed while they are off
        page = ""
        if self.s.proxy is not None:
            self.s.proxy.ensure_running(self.s.deadline)
            self.s.proxy.set(None, maintenance=True)
            page = f"; {self.s.settings.proxy_service} answers 503 (Retry-After) meanwhile"
        if running:
            self.s.project.stop(running)
        return (f"stopped {', '.join(running)}" if running else "nothing was running") + page

    def undo(self) -> str:
        if not self.s.stopped and self.s.proxy is None:
            return ""
        if self.s.stopped:
            point_back(self.s)  # so they start on the image they ran before
            start_services(self.s, self.s.stopped)
        if self.s.proxy is not None:
            web = self.s.settings.web_service
            serving = [c.name for c in self.s.project.ps([web], all=False)]
            self.s.proxy.set(serving, maintenance=False)
        return f"started {', '.join(self.s.stopped)} again" if self.s.stopped else ""


class Resume(StateStep):
    name = "resume"

    def describe(self) -> str:
        return "start the other services --maintenance stopped"

    def run(self) -> str | Skipped:
        others = [x for x in self.s.stopped if x != self.s.settings.web_service]
        if not others:
            return Skipped("nothing else to start")
        start_services(self.s, others)
        return f"started {', '.join(others)}"
