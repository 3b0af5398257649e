"""Tests, deploy: docker-compose.yml, Dockerfile and Mosquitto files hang together (pins, health, auth)."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from gateway.credentials import ACL_ALL_USERS, STAGE_ACL, acl_text, device_acl_block

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
MOSQUITTO = ROOT / "deploy" / "mosquitto"
APP_IMAGE = "coldchain:0.1.0"
# Services that run until stopped, and what each runs (entrypoint `coldchain`).
APP_COMMANDS = {
    "gateway": ["run", "gateway"],
    "rules": ["run", "rules"],
    "ledger": ["run", "ledger"],
    "api": ["run", "api"],
}


@cache
def compose_command() -> tuple[str, ...] | None:
    """`docker compose` (v2 plugin) if it works here, else `docker-compose` (v1), else None."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ("docker", "compose")
    if shutil.which("docker-compose"):
        return ("docker-compose",)
    return None


@cache
def compose_model() -> dict[str, Any]:
    """The compose model: as `docker compose config` resolves it where a compose client exists, else the
    file itself (PyYAML resolves the `<<` merge keys the same way)."""
    cmd = compose_command()
    if cmd is None:
        model = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    else:
        proc = subprocess.run(
            [*cmd, "-f", str(COMPOSE), "config"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        model = yaml.safe_load(proc.stdout)
    assert isinstance(model, dict)
    return model


def services() -> dict[str, dict[str, Any]]:
    svc = compose_model()["services"]
    assert isinstance(svc, dict)
    return svc


def _as_list(command: Any) -> list[str]:
    return command.split() if isinstance(command, str) else list(command)


def test_compose_config_is_valid() -> None:
    cmd = compose_command()
    if cmd is not None:
        proc = subprocess.run(
            [*cmd, "-f", str(COMPOSE), "config", "--quiet"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
    assert set(services()) == {"db", "mqtt", "grafana", "prometheus", "migrate", "simulator", *APP_COMMANDS}


def test_every_image_is_pinned_or_built() -> None:
    for name, svc in services().items():
        image = svc.get("image")
        assert image or svc.get("build"), name
        if "build" in svc:
            assert image == APP_IMAGE, name
            continue
        repo, _, tag = image.rpartition(":")
        assert repo, f"{name}: {image} has no tag"
        assert "/" not in tag, f"{name}: {image} has no tag"
        assert re.search(r"\d+\.\d+\.\d+", tag), f"{name}: {image} is not pinned to a version"
    svc = services()
    assert svc["db"]["image"].startswith("timescale/timescaledb:")
    assert svc["mqtt"]["image"].startswith("eclipse-mosquitto:2.")
    assert svc["grafana"]["image"].startswith("grafana/grafana:11.")


def test_healthchecks_and_start_order() -> None:
    svc = services()
    for name in ("db", "mqtt", "api", "grafana", "prometheus"):
        assert svc[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert "pg_isready" in str(svc["db"]["healthcheck"]["test"])
    assert "/health" in str(svc["api"]["healthcheck"]["test"])
    assert svc["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert _as_list(svc["migrate"]["command"]) == ["db", "migrate"]
    assert svc["migrate"]["restart"] == "no"

    # Prometheus waits for nothing: a stage not up yet is a failed scrape it records.
    independent = ("db", "mqtt", "prometheus")
    long_running = [n for n, s in svc.items() if s.get("restart", "no") != "no" and n not in independent]
    assert set(long_running) == {"grafana", *APP_COMMANDS}
    for name in [*long_running, "simulator"]:
        deps = svc[name]["depends_on"]
        conditions = {dep: spec["condition"] for dep, spec in deps.items()}
        assert "service_healthy" in conditions.values(), f"{name} waits for no healthy dependency"
        assert conditions.get("migrate") == "service_completed_successfully", name
    for name in ("gateway", "simulator"):
        assert svc[name]["depends_on"]["mqtt"]["condition"] == "service_healthy"


def test_app_services_share_the_image_and_settings() -> None:
    svc = services()
    for name, command in [*APP_COMMANDS.items(), ("simulator", ["sim", "run"])]:
        assert svc[name]["image"] == APP_IMAGE
        assert _as_list(svc[name]["command"]) == command
        env = svc[name]["environment"]
        url = urlsplit(env["COLDCHAIN_DATABASE_URL"])
        assert (url.scheme, url.hostname, url.port, url.path) == ("postgresql", "db", 5432, "/coldchain")
    # Inside its container the API must listen beyond loopback; the port is published on 127.0.0.1 only.
    assert svc["api"]["environment"]["COLDCHAIN_API_HOST"] == "0.0.0.0"  # noqa: S104
    assert any("8000" in str(p) for p in svc["api"]["ports"])


def _passwd() -> dict[str, str]:
    lines = (MOSQUITTO / "passwd").read_text(encoding="utf-8").splitlines()
    return dict(line.split(":", 1) for line in lines if line.strip())


def _mosquitto_password_ok(entry: str, password: str) -> bool:
    """Mosquitto 2 `$7$` entries: PBKDF2-HMAC-SHA512, `$7$<iterations>$<salt b64>$<hash b64>`."""
    _, kind, iterations, salt, digest = entry.split("$")
    assert kind == "7", "password must be hashed with mosquitto_passwd (sha512-pbkdf2)"
    derived = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt), int(iterations))
    return base64.b64encode(derived).decode() == digest


def test_broker_credentials_match_the_password_file() -> None:
    svc = services()
    passwd = _passwd()
    assert set(passwd) >= {*STAGE_ACL, "healthcheck"}
    # Each of the system's own clients is the compose service of the same name, with its own login.
    for name in STAGE_ACL:
        url = urlsplit(svc[name]["environment"]["COLDCHAIN_BROKER_URL"])
        assert (url.scheme, url.hostname, url.port) == ("mqtt", "mqtt", 1883)
        assert url.username == name
        assert url.password is not None
        assert _mosquitto_password_ok(passwd[name], url.password), name
    test = [str(t) for t in svc["mqtt"]["healthcheck"]["test"]]
    assert "mosquitto_sub" in test
    user, password = test[test.index("-u") + 1], test[test.index("-P") + 1]
    assert _mosquitto_password_ok(passwd[user], password)
    readme = (ROOT / "deploy" / "README.md").read_text(encoding="utf-8")
    for user in passwd:
        assert user in readme, f"dev password of {user} not documented"


def test_mosquitto_config_and_acl() -> None:
    conf = (MOSQUITTO / "mosquitto.conf").read_text(encoding="utf-8")
    active = {
        line.strip() for line in conf.splitlines() if line.strip() and not line.lstrip().startswith("#")
    }
    assert {
        "allow_anonymous false",
        "password_file /mosquitto/config/passwd",
        "acl_file /mosquitto/config/acl",
        "listener 1883",
        "persistence true",
    } <= active
    for tls_line in ("listener 8883", "cafile /mosquitto/config/certs/", "certfile ", "keyfile "):
        assert tls_line in conf
    acl = (MOSQUITTO / "acl").read_text(encoding="utf-8").splitlines()
    assert "pattern write cc/v1/dev/%u/#" in acl
    gateway = acl[acl.index("user gateway") + 1 :]
    gateway = gateway[
        : next((i for i, line in enumerate(gateway) if not line.startswith("topic")), len(gateway))
    ]
    assert gateway == ["topic read cc/v1/dev/#", "topic write cc/v1/alerts/#"]
    assert any(line.startswith("pattern read cc/v1/dev/%u/") for line in acl)
    mqtt = services()["mqtt"]
    assert _mounted_at(mqtt, "/mosquitto/config/mosquitto.conf") == "deploy/mosquitto/mosquitto.conf"
    assert _mounted_at(mqtt, "/mosquitto/config/passwd") == "deploy/mosquitto/passwd"
    assert _mounted_at(mqtt, "/mosquitto/config/acl") == "deploy/mosquitto/acl"


def _acl_blocks(lines: list[str]) -> dict[str, list[str]]:
    """user -> its `topic` lines, from an ACL file's lines."""
    blocks: dict[str, list[str]] = {}
    user: str | None = None
    for line in lines:
        if line.startswith("user "):
            user = line.removeprefix("user ").strip()
            blocks[user] = []
        elif line.startswith("topic ") and user is not None:
            blocks[user].append(line.strip())
        elif not line.strip() or line.startswith("pattern "):
            user = None
    return blocks


def test_the_compose_acl_grants_the_stages_what_the_embedded_one_does() -> None:
    """deploy/mosquitto/acl spells out gateway.credentials.STAGE_ACL, the embedded broker's one truth."""
    deployed = (MOSQUITTO / "acl").read_text(encoding="utf-8").splitlines()
    blocks = _acl_blocks(deployed)
    for user, rights in STAGE_ACL.items():
        assert blocks.get(user) == list(rights), user
    assert ACL_ALL_USERS.strip() in deployed
    embedded = acl_text(["dev-1"]).splitlines()
    assert _acl_blocks(embedded) == {
        **{u: list(r) for u, r in STAGE_ACL.items()},
        **_acl_blocks(device_acl_block("dev-1").splitlines()),
    }


def _mounts(svc: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each volume, in the short `src:dst[:mode]` form or compose v2's long form."""
    out = []
    for v in svc.get("volumes", []):
        if isinstance(v, dict):
            out.append((str(v.get("source", "")), str(v["target"])))
        else:
            source, target = str(v).split(":")[:2]
            out.append((source, target))
    return out


def _bind_sources(svc: dict[str, Any]) -> list[str]:
    return [source for source, _ in _mounts(svc) if source.startswith((".", "/"))]


def _mounted_at(svc: dict[str, Any], target: str) -> str:
    """The host path mounted at target, relative to the repo."""
    (source,) = [s for s, t in _mounts(svc) if t == target]
    return (ROOT / source).resolve().relative_to(ROOT).as_posix()


def test_bind_mounted_files_exist() -> None:
    for name, svc in services().items():
        for source in _bind_sources(svc):
            assert (ROOT / source).resolve().exists(), f"{name}: {source} missing"


def test_grafana_gets_provisioning_dashboards_and_datasource_env() -> None:
    grafana = services()["grafana"]
    assert _mounted_at(grafana, "/etc/grafana/provisioning") == "dashboards/grafana/provisioning"
    assert _mounted_at(grafana, "/var/lib/grafana/dashboards") == "dashboards/grafana/dashboards"
    ds_yaml = (ROOT / "dashboards" / "grafana" / "provisioning" / "datasources" / "coldchain.yaml").read_text(
        encoding="utf-8"
    )
    settings = "\n".join(line for line in ds_yaml.splitlines() if not line.lstrip().startswith("#"))
    needed = set(re.findall(r"\$\{(\w+)\}", settings))
    assert needed, "datasource credentials should come from the environment"
    assert needed <= set(grafana["environment"]), needed - set(grafana["environment"])
    assert grafana["environment"]["COLDCHAIN_GRAFANA_DB_HOST"] == "db:5432"


def test_dockerfile_and_dockerignore() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11\.\d+-slim-bookworm$", dockerfile, re.M)
    assert re.search(r"pip install [^\n]*\buv==\d+\.\d+\.\d+", dockerfile)
    assert "uv sync --frozen --no-dev" in dockerfile
    assert 'ENTRYPOINT ["coldchain"]' in dockerfile
    packages = ("registry", "coldchain", "gateway", "rules", "traceability", "firmware_sim", "dashboards")
    for package in packages:
        assert f"COPY {package} " in dockerfile, package
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert {".git", ".venv", "tests"} <= set(ignored)


def test_ledger_signing_key_outlives_the_container() -> None:
    """The ledger stage signs with $COLDCHAIN_HOME/keys/ledger-ed25519.pem: that folder is a named volume,
    and the image creates it owned by the app user (a new volume copies the mount point's owner)."""
    from traceability.ledger.checkpoint import KEY_FILE

    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    home = re.search(r"^ENV COLDCHAIN_HOME=(\S+)$", dockerfile, re.M)
    assert home is not None
    keys = f"{home.group(1)}/{KEY_FILE.parent.as_posix()}"
    assert re.search(rf"install -d -m 0700 -o coldchain -g coldchain {re.escape(keys)}$", dockerfile, re.M)
    (source,) = [s for s, t in _mounts(services()["ledger"]) if t == keys]
    assert not source.startswith((".", "/"))  # a named volume, not a bind mount
    assert source in compose_model()["volumes"]


def test_prometheus_scrapes_every_stage_on_its_settings_port() -> None:
    """deploy/prometheus/prometheus.yml names each stage's service at the port its settings default to, and
    each stage listens beyond loopback inside its container; Grafana reaches Prometheus at prometheus:9090."""
    from coldchain.settings import Settings

    svc = services()
    assert "/-/healthy" in str(svc["prometheus"]["healthcheck"]["test"])
    config = "deploy/prometheus/prometheus.yml"
    assert _mounted_at(svc["prometheus"], "/etc/prometheus/prometheus.yml") == config
    scrape = yaml.safe_load((ROOT / config).read_text(encoding="utf-8"))["scrape_configs"]
    targets = {
        job["job_name"]: (job.get("metrics_path", "/metrics"), *job["static_configs"][0]["targets"])
        for job in scrape
    }
    defaults = Settings.model_fields
    assert targets == {
        stage: ("/metrics", f"{stage}:{defaults[f'{setting}_port'].default}")
        for stage, setting in (
            ("gateway", "gateway_metrics"),
            ("rules", "rules_metrics"),
            ("ledger", "ledger_metrics"),
            ("api", "api"),
        )
    }
    for stage in ("gateway", "rules", "ledger"):
        assert svc[stage]["environment"][f"COLDCHAIN_{stage.upper()}_METRICS_HOST"] == "0.0.0.0"  # noqa: S104
    assert any(str(p).endswith(":9090") for p in svc["prometheus"]["ports"])
