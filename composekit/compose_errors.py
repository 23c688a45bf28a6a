"""What a failed ``docker`` / ``docker compose`` call means, as one error with its fix."""

from __future__ import annotations

import re

from composekit.errors import ConfigError, DockerError


def translate(action: str, stderr: str, returncode: int | None = None) -> DockerError | ConfigError:
    """One clear error for a failed docker/compose call, from its stderr."""
    text = stderr.strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    last = lines[-1] if lines else f"exit code {returncode}"
    low = text.lower()
    if "cannot connect to the docker daemon" in low or "is the docker daemon running" in low:
        return DockerError(
            f"{action}: the Docker engine is not running",
            hint="start it (`dockerd &` or `systemctl start docker`), or run `composekit doctor --fix`",
        )
    if (
        "docker: 'compose' is not a docker command" in low
        or "unknown command" in low
        and "compose" in low
    ):
        return DockerError(
            f"{action}: the Docker Compose v2 plugin is missing",
            hint="install docker-compose-plugin, or run `composekit doctor --fix`",
        )
    if "is not running" in low and "service" in low:
        svc = re.search(r"service \"?([\w.-]+)\"? is not running", text)
        name = svc.group(1) if svc else "?"
        return DockerError(
            f"{action}: the {name} service is not running",
            hint=f"start it: docker compose up -d --wait {name}",
        )
    if "no such service" in low:
        svc = re.search(r"no such service:?\s*\"?([\w.-]+)", text, re.IGNORECASE)
        name = svc.group(1) if svc else "?"
        return ConfigError(
            f"{action}: the compose file has no service {name!r}",
            hint="check the service names in composekit.toml against `docker compose config --services`",
        )
    if (
        "yaml:" in low
        or "validating" in low
        or "invalid compose project" in low
        or "additional property" in low
        or "no configuration file provided" in low
        or "is invalid" in low
        or "invalid hostport" in low
        or "invalid containerport" in low
        or "invalid interpolation" in low
    ):
        return ConfigError(
            f"{action}: the compose file is invalid: {last}",
            hint="fix the compose file; `docker compose config` shows the same error",
        )
    if "port is already allocated" in low or "address already in use" in low:
        return DockerError(
            f"{action}: a published port is already in use: {last}",
            hint="stop what uses that port or change the service's `ports:` mapping",
        )
    if "is already in use by container" in low and "conflict" in low:
        return DockerError(
            f"{action}: a container name is already taken: {last}",
            hint="remove the old container or drop `container_name:` from the compose file",
        )
    return DockerError(
        f"{action} failed: {last}", hint="see the Docker output above; `--debug` shows the command"
    )
