"""``composekit lint``: migration files checked for what hurts a live database and the release
still serving, before they run (see :mod:`composekit.lint.rules` and
:mod:`composekit.lint.engine`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from composekit.errors import UsageError
from composekit.lint.engine import Finding, LintConfig, lint_migration, lint_section, phase_of
from composekit.lint.rules import RULES, Rule, Severity
from composekit.migrations import CONTRACT_DIR, Migration, Section, load_source


@dataclass
class LintReport:
    findings: list[Finding] = field(default_factory=list)
    files: int = 0
    seconds: float = 0.0

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.counts and f.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.counts and f.severity is Severity.WARNING]

    @property
    def allowed(self) -> list[Finding]:
        return [f for f in self.findings if not f.counts]

    def summary(self) -> str:
        allowed = f", {len(self.allowed)} allowed" if self.allowed else ""
        return (
            f"{len(self.errors)} error(s), {len(self.warnings)} warning(s){allowed} in "
            f"{self.files} migration file(s) ({self.seconds:.2f}s)"
        )


def config_of(disable: Sequence[str], strict: bool) -> LintConfig:
    unknown = [r for r in disable if r not in RULES]
    if unknown:
        raise UsageError(
            f"[lint] disable names no rule: {', '.join(unknown)}",
            hint="see `composekit lint --rules` for the rule ids",
        )
    return LintConfig(frozenset(disable), strict)


def lint_migrations(migrations: Sequence[Migration], config: LintConfig) -> LintReport:
    t0 = time.perf_counter()
    report = LintReport(files=len(migrations))
    for m in migrations:
        report.findings += lint_migration(m, config)
    report.seconds = time.perf_counter() - t0
    return report


def lint_paths(paths: Sequence[Path], fmt: str, config: LintConfig) -> LintReport:
    """Lint the migrations in these folders and files. A file that is not a migration of its
    folder's format is linted whole, as one up section."""
    t0 = time.perf_counter()
    report = LintReport()
    for path in paths:
        if path.is_dir():
            migrations = load_source(path, fmt).migrations  # with its post/ folder
        elif path.is_file():
            folder = path.parent.parent if path.parent.name == CONTRACT_DIR else path.parent
            migrations = [m for m in load_source(folder, fmt).migrations if m.path == path]
            if not migrations:
                report.findings += lint_section(Section(path, path.read_text(), 1), config=config)
                report.files += 1
                continue
        else:
            raise UsageError(f"{path} does not exist", hint="name migration files or folders")
        report.files += len(migrations)
        for m in migrations:
            report.findings += lint_migration(m, config)
    report.seconds = time.perf_counter() - t0
    return report


__all__ = [
    "RULES",
    "Finding",
    "LintConfig",
    "LintReport",
    "Rule",
    "Severity",
    "config_of",
    "lint_migrations",
    "lint_paths",
    "phase_of",
]
