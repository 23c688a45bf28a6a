"""Deploy speed: `composekit deploy` vs the seed's four-line shell sequence, same project, same run.

Baseline (what teams copy today, each round with one new pending migration):
    docker compose exec -T db pg_dump -U app app > backup.sql
    docker compose run --rm --build migrator   (the seed omits --build and so migrates one release late)
    docker compose exec -T db psql -U app -d app -c '\\d users'
    docker compose up -d --build web
composekit deploy does more in the same round: verified backup + manifest, lock, ledger checks,
verify step, a rollout behind the proxy (new web beside the old, healthy, switch, drain). Also timed:
a deploy with nothing to do. During every timed run, six visitors request the site through the
proxy, a request every 25 ms in all (tests/apps.py's Traffic); each answer that is not a 200
counts as a failed request.

Run: .venv/bin/python bench/deploy.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from _util import report, scaffolded_app  # noqa: E402

from composekit.doctor import doctor  # noqa: E402
from tests.apps import Traffic  # noqa: E402

EXE = Path(sys.executable).parent / "composekit"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if not doctor(ROOT, fix=True).ok:
        sys.exit("docker test bed not ready: run scripts/bootstrap.sh")
    work, name, app, project, port = scaffolded_app("deploy")
    dc = project.compose_argv()
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": app}
    n = 1

    def add_migration() -> None:
        nonlocal n
        n += 1
        (app / "migrations" / f"{n:04d}_bench.sql").write_text(
            f"-- migrate:up\nCREATE TABLE bench_{n} (id int);\n-- migrate:down\nDROP TABLE bench_{n};\n"
        )

    def shell() -> None:
        with open(app / "backup.sql", "wb") as out:
            subprocess.run(
                dc + ["exec", "-T", "db", "pg_dump", "-U", "app", "app"],
                stdout=out,
                check=True,
                cwd=app,
            )
        # --build: as the seed writes it, the migrator runs the *previous* image, so the new
        # migration would only be applied by the next release
        subprocess.run(dc + ["run", "--rm", "--build", "migrator"], check=True, **quiet)  # type: ignore[arg-type]
        subprocess.run(
            dc + ["exec", "-T", "db", "psql", "-U", "app", "-d", "app", "-c", "\\d users"],
            check=True,
            **quiet,
        )  # type: ignore[arg-type]
        subprocess.run(dc + ["up", "-d", "--build", "web"], check=True, **quiet)  # type: ignore[arg-type]

    def ck() -> None:
        subprocess.run([str(EXE), "deploy"], check=True, **quiet)  # type: ignore[arg-type]

    try:
        subprocess.run([str(EXE), "deploy"], check=True, **quiet)  # type: ignore[arg-type]  # first deploy
        shell_t, ck_t, noop_t = [], [], []
        failed: dict[str, list[int]] = {"shell": [], "composekit": []}
        for r in range(args.rounds):
            for bucket, fn in (
                ((shell_t, shell), (ck_t, ck)) if r % 2 == 0 else ((ck_t, ck), (shell_t, shell))
            ):
                add_migration()
                with Traffic(port) as visitors:  # the tests' visitors: every answer checked
                    t0 = time.perf_counter()
                    fn()
                    bucket.append(time.perf_counter() - t0)
                failed["composekit" if fn is ck else "shell"].append(len(visitors.failed()))
                if fn is ck:  # deploy again, nothing to do (after a composekit deploy: the shell's
                    # migrator build leaves a second image with a different service label in the
                    # build cache, which a later web build may pick, changing the web's image ID)
                    t0 = time.perf_counter()
                    ck()
                    noop_t.append(time.perf_counter() - t0)
        report(
            f"deploy of one pending migration (migrator layout), {args.rounds} rounds",
            [
                ("seed's 4-line shell sequence (baseline)", shell_t),
                ("composekit deploy", ck_t),
                ("composekit deploy, nothing to do", noop_t),
            ],
            baseline="seed's 4-line shell sequence (baseline)",
        )
        print(
            f"\ncomposekit / shell: {statistics.median(ck_t) / statistics.median(shell_t):.2f}x (goal <= 1.2x); "
            f"no-op deploy median {statistics.median(noop_t):.2f}s"
        )
        for who, counts in failed.items():
            print(f"failed requests during each {who} deploy: {counts} (total {sum(counts)})")
    finally:
        project.down(volumes=True)
        project.remove_images(f"{name}-app")  # :latest and the images kept for rollback
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
