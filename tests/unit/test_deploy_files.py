"""The deployment files say what docs/operations.md promises: a multi-stage Dockerfile that
runs as an unprivileged user with a health check, migrations where the code finds them, and
a systemd unit that reloads with SIGHUP and stops with SIGTERM. (The image cannot be built
here, without a Docker daemon; the health check's command itself runs against a live server
in tests/e2e/test_api.py.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def healthcheck_command() -> list[str]:
    [check] = [rest for word, rest in instructions() if word == "HEALTHCHECK"]
    return list(json.loads(check[check.index("CMD") + 3 :].strip()))


def test_the_dockerfile_is_multi_stage_and_runs_unprivileged_with_a_health_check() -> None:
    steps = instructions()
    stages = [rest for word, rest in steps if word == "FROM"]
    assert len(stages) == 2 and re.search(r" AS build$", stages[0]), stages
    final = steps[max(i for i, (word, _) in enumerate(steps) if word == "FROM") :]
    assert ("COPY", "--from=build /opt/farmpool /opt/farmpool") in final
    users = [rest for word, rest in final if word == "USER"]
    assert users and users[-1] not in ("root", "0"), users
    assert any(word == "RUN" and "useradd --system" in rest for word, rest in final)
    # The migrations are copied where FARMPOOL_MIGRATIONS points.
    env = " ".join(rest for word, rest in final if word == "ENV")
    assert "FARMPOOL_MIGRATIONS=/opt/farmpool/migrations" in env
    assert ("COPY", "migrations /opt/farmpool/migrations") in final
    assert healthcheck_command()[:2] == ["python", "-c"]
    assert ("STOPSIGNAL", "SIGTERM") in final
    assert ("ENTRYPOINT", '["farmpool"]') in final
    # What the image copies exists (a renamed file would break the build).
    for word, rest in steps:
        if word == "COPY" and not rest.startswith("--from"):
            for source in rest.split()[:-1]:
                assert (REPO / source).exists(), source


def test_the_systemd_unit_reloads_with_sighup_and_stops_with_sigterm() -> None:
    unit = (REPO / "config" / "farmpool.service").read_text()
    assert "ExecStart=/opt/farmpool/bin/farmpool -c /etc/farmpool/pool.yaml serve" in unit
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit
    assert "KillSignal=SIGTERM" in unit and "User=farmpool" in unit


def test_the_install_steps_put_the_migrations_where_the_unit_looks() -> None:
    """`pip install .` leaves migrations/ out: the documented systemd install (the unit's own
    comment and docs/operations.md) copies it to the unit's FARMPOOL_MIGRATIONS, and runs
    `db upgrade` with it; the unit runs the config the install puts in place."""
    unit = (REPO / "config" / "farmpool.service").read_text()
    [where] = re.findall(r"^Environment=FARMPOOL_MIGRATIONS=(\S+)$", unit, re.M)
    [config] = re.findall(r"^ExecStart=\S+ -c (\S+) serve$", unit, re.M)
    deploy = (REPO / "docs" / "operations.md").read_text().split("\n## Deploy\n", 1)[1]
    for steps in (unit, deploy.split("\n## ", 1)[0]):
        assert f"cp -r migrations {where}" in steps
        assert f"FARMPOOL_MIGRATIONS={where}" in steps
        assert re.search(rf"install .*config/production\.yaml {re.escape(config)}", steps)
        assert re.search(rf"farmpool -c {re.escape(config)} db upgrade", steps)
    assert (REPO / "migrations" / "env.py").exists() and (
        REPO / "config" / "production.yaml"
    ).exists()
