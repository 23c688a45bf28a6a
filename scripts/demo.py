"""The main job, end to end, with composekit's own commands (see scripts/demo.sh).

1. `composekit init` a project in the migrator layout (images: the offline stand-ins)
2. build and start db + web (`docker compose up -d --build --wait`)
3. apply migrations with the one-off migrator (`docker compose run --rm migrator`)
4. fetch the web page (users, with the new column)
5. `composekit backup`, then a new migration, migrate again, page again
6. `composekit backup list`; take the project down (unless --keep)
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
from composekit.images import POSTGRES_IMAGE, PYTHON_IMAGE

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


def page(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
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
            f"POSTGRES_IMAGE={POSTGRES_IMAGE}\nPYTHON_IMAGE={PYTHON_IMAGE}\nWEB_PORT={port}\n"
        )
    project = ComposeProject(project_dir=app, project_name=name, env_file=".env")
    try:
        step("build and start db + web (docker compose up -d --build --wait)")
        project.up(build=True, wait=True, wait_timeout=180)
        step("apply migrations: docker compose run --rm migrator")
        r = project.run("migrator", on_line=lambda ln: print(f"  migrator | {ln}", flush=True))
        print(f"  exit code {r.returncode}")
        step(f"the web page on http://127.0.0.1:{port}/")
        print(page(port))
        step("verified backup")
        ck("backup", "--label", "demo", cwd=app)
        step("a new migration: composekit migrate new add_users_city")
        ck("migrate", "new", "add_users_city", cwd=app)
        new = sorted((app / "migrations").glob("0002_*.sql"))[0]
        new.write_text(
            "-- migrate:up\nALTER TABLE users ADD COLUMN city text;\nUPDATE users SET city = 'London' WHERE id = 1;\n"
            "\n-- migrate:down\nALTER TABLE users DROP COLUMN city;\n"
        )
        project.build(["migrator"])  # the migrations are baked into the image
        r = project.run("migrator", on_line=lambda ln: print(f"  migrator | {ln}", flush=True))
        print(f"  exit code {r.returncode}")
        step("migration status (from inside the migrator image)")
        project.run(
            "migrator",
            ["composekit", "migrate", "status", "--dir", "/app/migrations"],
            on_line=lambda ln: print(f"  {ln}", flush=True),
        )
        shown = page(port)
        print(shown)
        assert "<td>London</td>" in shown, "the new column should be on the page"
        ck("backup", "list", cwd=app)
    finally:
        if args.keep:
            print(f"\nleft running: cd {app} && docker compose ps")
        else:
            step("taking the project down (docker compose down -v)")
            project.down(volumes=True)
            subprocess.run(
                ["docker", "image", "rm", "-f", f"{name}-app:latest"], capture_output=True
            )
    print("\n== demo finished: scaffolded, built offline, migrated twice, backed up, served")
    return 0


if __name__ == "__main__":
    sys.exit(main())
