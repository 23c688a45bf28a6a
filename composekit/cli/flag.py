"""``composekit flag list|set|rollout|history``."""

from __future__ import annotations

from typing import Annotated

import typer

from composekit import commands
from composekit.cli.app import EnvOpt, JsonOpt, app, cli

flag_app = typer.Typer(
    help="Feature flags in the app's database: turn a change on for a percentage of users, "
    "deterministically per key (`composekit.flags.enabled(conn, NAME, key)` in the app).",
    no_args_is_help=True,
    epilog="Examples:\n\n  composekit flag rollout new-checkout 10      # 10 % of users\n\n"
    "  composekit flag rollout new-checkout 50 --env prod\n\n"
    "  composekit flag set new-checkout on            # everyone (off: no one)\n\n"
    "  composekit flag list --json\n\n  composekit flag history new-checkout",
)
app.add_typer(flag_app, name="flag")

NameArg = Annotated[str, typer.Argument(help="The flag, e.g. new-checkout.")]
UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar=None,
        help="PostgreSQL URL (default: DATABASE_URL / composekit.toml; none: psql in the db "
        "container).",
    ),
]


def _percent(text: str, what: str) -> float:
    from composekit import flags
    from composekit.errors import UsageError

    try:
        return flags.parse_percent(text)
    except ValueError as exc:
        why = (
            str(exc)
            if "decimals" in str(exc) or "from 0" in str(exc)
            else (f"{text!r} is not a percentage from 0 to 100")
        )
        raise UsageError(
            f"{what} {why}",
            hint="write e.g. 10, 12.5 or 100 (at most two decimals); `flag set NAME on|off`",
        ) from None


def _change(ctx: typer.Context, name: str, pct: float, url: str | None, env: str | None,
            as_json: bool) -> None:  # fmt: skip
    c = cli(ctx)
    change = commands.flag_set(c.settings(database_url=url), name, pct, env=env)
    if as_json:
        c.out.emit_json(change)
        return
    if change.unchanged:
        c.out.line(change.describe())
        return
    c.out.line(f"{change.describe()} (by {change.by}, recorded in `composekit flag history`)")


@flag_app.command("set")
def flag_set(
    ctx: typer.Context,
    name: NameArg,
    state: Annotated[str, typer.Argument(help="on (100 %) or off (0 %).")],
    url: UrlOpt = None,
    env: EnvOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Turn a flag on or off for everyone (created if new)."""
    from composekit.errors import UsageError

    if state.lower() not in ("on", "off"):
        raise UsageError(
            f"flag set takes on or off, not {state!r}",
            hint=f"for a share of users: composekit flag rollout {name} PERCENT",
        )
    _change(ctx, name, _percent(state, "state"), url, env, as_json)


@flag_app.command("rollout")
def flag_rollout(
    ctx: typer.Context,
    name: NameArg,
    percent: Annotated[str, typer.Argument(help="0 to 100: the share of keys it is on for.")],
    url: UrlOpt = None,
    env: EnvOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Turn a flag on for PERCENT % of keys; raising it keeps the keys already on."""
    _change(ctx, name, _percent(percent, "percent"), url, env, as_json)


@flag_app.command("delete")
def flag_delete(
    ctx: typer.Context, name: NameArg, url: UrlOpt = None, env: EnvOpt = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Remove a flag (the app then gets its default: off); recorded in the history."""
    c = cli(ctx)
    change = commands.flag_delete(c.settings(database_url=url), name, env=env)
    if as_json:
        c.out.emit_json(change)
        return
    c.out.line(f"{change.describe()} (by {change.by}, recorded in `composekit flag history`)")


@flag_app.command("list")
def flag_list(
    ctx: typer.Context, url: UrlOpt = None, env: EnvOpt = None, as_json: JsonOpt = False
) -> None:
    """Every flag and its percentage."""
    c = cli(ctx)
    rows = commands.flag_list(c.settings(database_url=url), env=env)
    if as_json:
        c.out.emit_json({"flags": rows})
        return
    if not rows:
        c.out.line("no flags yet: `composekit flag rollout NAME PERCENT` creates one")
        return
    c.out.table(
        [
            (f.name, f"{f.percent:g}%", f.updated_at[:19].replace("T", " "), f.updated_by)
            for f in rows
        ],  # fmt: skip
        ["flag", "on for", "changed", "by"],
    )


@flag_app.command("history")
def flag_history(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only this flag.")] = None,
    url: UrlOpt = None,
    env: EnvOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every change of the flags (or of one), oldest first: when, who, from, to."""
    c = cli(ctx)
    rows = commands.flag_history(c.settings(database_url=url), name, env=env)
    if as_json:
        c.out.emit_json({"changes": rows})
        return
    if not rows:
        c.out.line(f"no changes of {name} on record" if name else "no flag changes on record")
        return
    c.out.table(
        [
            (
                ch.at[:19].replace("T", " "),
                ch.name,
                "new" if ch.before is None else f"{ch.before:g}%",
                f"{ch.after:g}%",
                ch.by,
            )
            for ch in rows
        ],  # fmt: skip
        ["at", "flag", "from", "to", "by"],
    )
