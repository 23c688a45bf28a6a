"""The main job, end to end, with composekit's own commands (see scripts/demo.sh).

1. `composekit init` a project in the migrator layout (images: the offline stand-ins)
2. `composekit deploy`: backup, build, migrate (one-off migrator), verify, health-gated web
3. `composekit migrate new`, then deploy again: the new column is on the page
4. a release whose second migration has a syntax error: lint refuses the deploy before anything
   changes (exit 6); with a migration that fails on the server instead: deploy exits 7,
   everything undone, the old web serving
5. `composekit rollback`: the web back one release and forward again, database untouched
6. expand → backfill → contract: a nullable column before the rollout, a batched backfill that
   makes it NOT NULL after it (`migrations/post/`); a feature flag on for half the visitors
7. `composekit history`, `composekit backup list`; take the project down (unless --keep)
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from pathlib import Path

from composekit.compose import ComposeProject
from composekit.images import HAPROXY_IMAGE, POSTGRES_IMAGE, PYTHON_IMAGE

EXE = Path(sys.executable).parent / "composekit"


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def ck(*args: str, cwd: Path) -> None:
    print(f"$ composekit {' '.join(args)}", flush=True)
    subprocess.run([str(EXE), *args], cwd=cwd, check=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def page(port: int, path: str = "/") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return str(r.read().decode())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", action="store_true", help="leave the project running")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="composekit-demo-"))
    name = "shop" + uuid.uuid4().hex[:6]
    app = work / name
    port = free_port()
    step(f"scaffold the migrator layout in {app}")
    ck("init", str(app), "--layout", "migrator", "--ci", "github", cwd=work)
    with open(app / ".env", "a") as env:  # no registry here: the offline stand-ins
        env.write(
            f"POSTGRES_IMAGE={POSTGRES_IMAGE}\nPYTHON_IMAGE={PYTHON_IMAGE}\n"
            f"PROXY_IMAGE={HAPROXY_IMAGE}\nWEB_PORT={port}\n"
        )
    project = ComposeProject(project_dir=app, project_name=name, env_file=".env")
    try:
        step("first deploy: composekit deploy (backup, build, migrate, verify, health-gated web)")
        ck("deploy", cwd=app)
        print(page(port))
        step("a new migration: composekit migrate new add_users_city, then deploy again")
        ck("migrate", "new", "add_users_city", cwd=app)
        new = sorted((app / "migrations").glob("0002_*.sql"))[0]
        new.write_text(
            "-- migrate:up\nALTER TABLE users ADD COLUMN city text;\nUPDATE users SET city = 'London' WHERE id = 1;\n"
            "\n-- migrate:down\nALTER TABLE users DROP COLUMN city;\n"
        )
        ck("deploy", cwd=app)
        shown = page(port)
        print(shown)
        assert "<td>London</td>" in shown, "the new column should be on the page"
        step("a broken release: 0003 adds a table, 0004 has a syntax error — lint refuses it")
        (app / "migrations" / "0003_orders.sql").write_text(
            "-- migrate:up\nCREATE TABLE orders (id bigint);\n-- migrate:down\nDROP TABLE orders;\n"
        )
        broken = app / "migrations" / "0004_broken.sql"
        broken.write_text(
            "-- migrate:up\nALTER TABLE users ADD COLUMN oops int NOT NUL;\n-- migrate:down\nSELECT 1;\n"
        )
        print("$ composekit deploy", flush=True)
        refused = subprocess.run([str(EXE), "deploy"], cwd=app)
        print(f"  exit code {refused.returncode} (6 = refused before anything changed)")
        assert refused.returncode == 6
        step("0004 fails on the server instead (a duplicate key): deploy must undo it all")
        broken.write_text(
            "-- migrate:up\nINSERT INTO users (email, name) VALUES ('ada@example.com', 'Ada again');\n"
            "-- migrate:down\nSELECT 1;\n"
        )
        print("$ composekit deploy", flush=True)
        failed = subprocess.run([str(EXE), "deploy"], cwd=app)
        print(f"  exit code {failed.returncode} (7 = deploy failed and was fully undone)")
        assert failed.returncode == 7
        after = page(port)
        assert "<td>London</td>" in after, "the previous release must still be serving"
        print("  the previous release still serves the page, and the database is back at 0002")
        step("the web alone back one release, database untouched: composekit rollback")
        ck("rollback", "--list", cwd=app)
        ck("rollback", cwd=app)
        step("and forward again (the image rollback replaced was kept too)")
        ck("rollback", cwd=app)
        assert "<td>London</td>" in page(port)
        step("expand, then backfill after the rollout: users.handle, NOT NULL the safe way")
        broken.unlink()
        (app / "migrations" / "0004_handle.sql").write_text(
            "-- migrate:up\nALTER TABLE users ADD COLUMN IF NOT EXISTS handle text;\n"
            "-- migrate:down\nALTER TABLE users DROP COLUMN IF EXISTS handle;\n"
        )
        (app / "migrations" / "post").mkdir()
        (app / "migrations" / "post" / "0005_fill_handle.sql").write_text(
            "-- migrate:up\n-- composekit:backfill batch=1000 pause=10ms not-null=handle\n"
            "UPDATE users SET handle = split_part(email, '@', 1) WHERE handle IS NULL;\n"
            "-- migrate:down\nALTER TABLE users ALTER COLUMN handle DROP NOT NULL;\n"
        )
        ck("deploy", cwd=app)
        assert "<td>ada</td>" in page(port), "the backfilled column should be on the page"
        step("a feature flag: beta-banner on for half the visitors, the same ones every time")
        ck("flag", "rollout", "beta-banner", "50", cwd=app)
        for visitor in ("ada", "grace"):
            shown = "on" if "beta-banner: on" in page(port, f"/?user={visitor}") else "off"
            print(f"  /?user={visitor}: beta-banner {shown}")
        step("history and backups")
        ck("history", cwd=app)
        ck("backup", "list", cwd=app)
    finally:
        if args.keep:
            print(f"\nleft running: cd {app} && docker compose ps")
        else:
            step("taking the project down (docker compose down -v)")
            project.down(volumes=True)
            project.remove_images(f"{name}-app")  # :latest and the images kept for rollback
    print(
        "\n== demo finished: scaffolded, deployed, a broken deploy refused and another undone, "
        "rolled back and forward, a column expanded and backfilled, a flag rolled out"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
