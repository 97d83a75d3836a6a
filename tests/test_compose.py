"""docker-compose.yml describes the production shape, and every command it runs exists here."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sorapi.adapters import secret_policy
from sorapi.adapters.settings import Settings
from sorapi.cli import servers
from sorapi.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_the_production_shape() -> None:
    services = _compose()["services"]
    assert {"postgres", "temporal", "temporal-ui", "minio", "api", "orchestrator", "render", "migrate"} <= set(services)
    gpu = services["render"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    for name in ("api", "orchestrator", "migrate"):
        assert services[name]["environment"]["SORAPI_DATABASE_URL"].startswith("postgresql://")


@pytest.mark.parametrize(
    ("service", "process"),
    [("api", "api"), ("orchestrator", "worker orchestrator"), ("render", "worker render"), ("codec", "codec-server")],
)
def test_each_process_gets_only_what_it_needs(service: str, process: str) -> None:
    """No service is handed a setting its process must not hold, and each role has its own S3 user.

    GPU hosts get no database, no admin token, no account-secret key.
    """
    env = _compose()["services"][service]["environment"]
    withheld = {secret_policy.variable(field) for field in secret_policy.WITHHELD[process]}
    assert not withheld & set(env), sorted(withheld & set(env))
    if service != "codec":
        assert env["SORAPI_S3_ACCESS_KEY"] == f"sorapi-{service}"
        assert env["SORAPI_PAYLOAD_KEY"] == "${SORAPI_PAYLOAD_KEY:?set SORAPI_PAYLOAD_KEY}"


def test_each_s3_role_may_do_only_its_job() -> None:
    """Each S3 role's policy allows only its job.

    The render role puts (and reads input images); orchestrator reads, lists and deletes; the API reads (presigned
    links) and puts input images.
    """
    import json

    actions = {
        role: sorted(
            action
            for statement in json.loads((ROOT / "deploy" / "minio" / f"policy-{role}.json").read_text())["Statement"]
            for action in statement["Action"]
        )
        for role in ("api", "orchestrator", "render")
    }
    assert actions == {
        "api": ["s3:GetObject", "s3:ListBucket", "s3:PutObject"],
        "orchestrator": ["s3:DeleteObject", "s3:GetObject", "s3:ListBucket"],
        "render": ["s3:GetObject", "s3:PutObject"],
    }
    inputs_only = {  # image-to-video: the API stores a task's input images, the render host reads them, nothing more
        ("api", "s3:PutObject"): ["arn:aws:s3:::sorapi/tasks/*/inputs/*"],
        ("render", "s3:GetObject"): ["arn:aws:s3:::sorapi/tasks/*/inputs/*"],
    }
    for (role, action), resources in inputs_only.items():
        policy = json.loads((ROOT / "deploy" / "minio" / f"policy-{role}.json").read_text())
        assert [s["Resource"] for s in policy["Statement"] if action in s["Action"]] == [resources]
    setup = (ROOT / "deploy" / "minio" / "minio-setup.sh").read_text()
    for role in actions:
        assert f"mc admin user add local sorapi-{role}" in setup


def test_every_sorapi_command_in_compose_exists() -> None:
    parser = build_parser()
    commands = [
        svc["command"]
        for svc in _compose()["services"].values()
        if isinstance(svc.get("command"), list) and svc["command"][0] == "sorapi"
    ]
    assert len(commands) >= 4
    for command in commands:
        args = parser.parse_args(command[1:])
        assert callable(args.func), command


def test_compose_env_names_are_real_settings() -> None:
    from sorapi.adapters.settings import ENV_PREFIX, Settings

    known = {ENV_PREFIX + name.upper() for name in Settings.__struct_fields__}
    for svc in _compose()["services"].values():
        env = svc.get("environment") or {}
        for name in env:
            if name.startswith(ENV_PREFIX):
                assert name in known, f"{name} is not a SorAPI setting"


def test_dockerfile_copies_every_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("sorapi", "api", "workflows", "activities", "workers"):
        assert f"COPY {package} ./{package}" in dockerfile


SECRET_NAME = re.compile(r"PASSWORD|PWD|SECRET|TOKEN")
REFERENCE = re.compile(r"\$\{(\w+)([^}]*)\}")


def test_compose_ships_no_default_secrets() -> None:
    """Every secret comes from the operator: `${VAR:?...}` makes compose refuse to start without it."""
    text = (ROOT / "docker-compose.yml").read_text()
    assert "change-me" not in text
    for name, rest in REFERENCE.findall(text):
        if SECRET_NAME.search(name):
            assert rest.startswith(":?"), f"${{{name}{rest}}} must be required (:?), not defaulted"
    for service, svc in _compose()["services"].items():
        for name, value in (svc.get("environment") or {}).items():
            if SECRET_NAME.search(name):
                assert value == "" or REFERENCE.fullmatch(str(value)), f"{service}: {name} is a literal secret"


def _published(port: object) -> tuple[str, str]:
    """(host address, host port) of a compose `ports` entry; an empty address means every interface."""
    if isinstance(port, dict):
        return str(port.get("host_ip", "")), str(port.get("published", ""))
    parts = str(port).split(":")
    return (parts[0], parts[1]) if len(parts) == 3 else ("", parts[0])


def test_only_the_api_is_published_beyond_this_host() -> None:
    """Temporal and MinIO have no auth of their own (or not ours): at most loopback on the host."""
    services = _compose()["services"]
    assert [_published(p) for p in services["api"]["ports"]] == [("", "8000")]
    assert "ports" not in services["temporal"], "Temporal gRPC stays on the internal network"
    codec = services["codec"]
    assert codec["network_mode"] == "host" and codec["command"][codec["command"].index("--host") + 1] == "127.0.0.1", (
        "the codec server listens on the host's loopback only, out of reach of every container"
    )
    for name, svc in services.items():
        if name != "api":
            for port in svc.get("ports", []):
                assert _published(port)[0] == "127.0.0.1", f"{name} publishes {port} on every interface"


STRONG = {
    "SORAPI_ADMIN_TOKEN": "adm_" + "7f3a9c" * 6,
    "SORAPI_SECRET_KEY": "b41e0d" * 6,
    "SORAPI_S3_SECRET_KEY": "c92f5e" * 4,
    "SORAPI_PAYLOAD_KEY": "e5a1d7" * 6,
}


def _sorapi(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SORAPI_")}
    return subprocess.run(
        [sys.executable, "-m", "sorapi", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )


@pytest.mark.parametrize(
    ("command", "variable", "value"),
    [
        (["api"], "SORAPI_ADMIN_TOKEN", "change-me-admin-token-0123456789abcdef"),
        (["api"], "SORAPI_SECRET_KEY", ""),
        (["worker", "orchestrator"], "SORAPI_SECRET_KEY", "short-9f2c41"),
        (["worker", "render"], "SORAPI_S3_SECRET_KEY", "sorapi-dev-secret"),
    ],
    ids=[
        "api-placeholder-admin-token",
        "api-unset-secret-key",
        "orchestrator-short-secret-key",
        "render-built-in-s3-secret",
    ],
)
def test_processes_refuse_to_start_on_a_guessable_secret(command: list[str], variable: str, value: str) -> None:
    done = _sorapi(*command, env={**secret_policy.scoped_env(STRONG, " ".join(command)), variable: value})
    assert done.returncode == secret_policy.EXIT_CONFIG, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0] and "refusing to start" in lines[0], done.stderr
    assert not value or value not in lines[0], "the message never quotes the secret"


def test_strong_secrets_pass_and_only_the_dev_stack_may_skip_them() -> None:
    strong = Settings(
        admin_token=STRONG["SORAPI_ADMIN_TOKEN"],
        secret_key=STRONG["SORAPI_SECRET_KEY"],
        s3_secret_key=STRONG["SORAPI_S3_SECRET_KEY"],
        payload_key=STRONG["SORAPI_PAYLOAD_KEY"],
    )
    for process in ("api", "worker orchestrator"):
        assert secret_policy.refusal(strong, process) is None, process
    render_host = Settings(s3_secret_key=strong.s3_secret_key, payload_key=strong.payload_key)
    assert secret_policy.refusal(render_host, "worker render") is None, "render hosts need no admin token or secret key"
    assert secret_policy.refusal(strong, "worker render") is not None, "and refuse to hold them"
    assert secret_policy.refusal(Settings(), "api") is not None
    assert secret_policy.refusal(Settings(dev_stack=True), "api") is None


def test_temporal_shares_renders_fairly_between_accounts() -> None:
    """The compose Temporal server runs with task-queue fairness, like `sorapi dev`'s."""
    temporal = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["temporal"]
    mounted = {volume.split(":")[0] for volume in temporal["volumes"]}
    assert "./deploy/temporal-dynamic-config.yaml" in mounted
    config = yaml.safe_load((ROOT / "deploy" / "temporal-dynamic-config.yaml").read_text())
    assert config["matching.enableFairness"] == [{"value": True}]
    assert temporal["environment"]["DYNAMIC_CONFIG_FILE_PATH"].endswith("sorapi.yaml")


def test_the_compose_temporal_server_has_the_dynamic_config_of_sorapi_dev() -> None:
    """Every `--dynamic-config-value` `sorapi dev` gives its Temporal server is in the compose server's file too."""
    flags = servers.TEMPORAL_DEV_FLAGS
    dev = dict(flags[n + 1].split("=", 1) for n in range(len(flags) - 1) if flags[n] == "--dynamic-config-value")
    config = yaml.safe_load((ROOT / "deploy" / "temporal-dynamic-config.yaml").read_text())
    assert dev.keys() >= {"matching.enableFairness", "history.transferProcessorMaxPollRPS"}
    assert {key: [{"value": yaml.safe_load(value)}] for key, value in dev.items()} == config


def test_stopping_a_render_host_leaves_time_to_drain() -> None:
    """Compose waits longer than the drain grace before it kills a render worker."""
    render = _compose()["services"]["render"]
    minutes = int(render["stop_grace_period"].removesuffix("m"))
    assert minutes * 60 > float(render["environment"]["SORAPI_RENDER_DRAIN_GRACE_S"])


def test_render_hosts_and_the_codec_server_refuse_secrets_they_must_not_hold() -> None:
    strong = {
        "SORAPI_S3_SECRET_KEY": secrets.token_hex(20),
        "SORAPI_PAYLOAD_KEY": secrets.token_hex(20),
    }
    for command, variable in (
        (["worker", "render"], "SORAPI_ADMIN_TOKEN"),
        (["worker", "render"], "SORAPI_SECRET_KEY"),
        (["worker", "render"], "SORAPI_DATABASE_URL"),
        (["codec-server"], "SORAPI_DATABASE_URL"),
    ):
        done = _sorapi(*command, env={**strong, variable: "postgresql://u:" + secrets.token_hex(20) + "@db/x"})
        assert done.returncode == secret_policy.EXIT_CONFIG, (command, variable, done.stderr)
        assert variable in done.stderr and "must not hold it" in done.stderr
    exposed = _sorapi("codec-server", "--host", "0.0.0.0", env=strong)
    assert exposed.returncode == secret_policy.EXIT_CONFIG and "SORAPI_CODEC_TOKEN" in exposed.stderr
    missing = _sorapi("worker", "render", env={"SORAPI_S3_SECRET_KEY": strong["SORAPI_S3_SECRET_KEY"]})
    assert missing.returncode == secret_policy.EXIT_CONFIG and "SORAPI_PAYLOAD_KEY" in missing.stderr


def test_prometheus_scrapes_the_api_and_every_worker() -> None:
    """Prometheus scrapes the API with the metrics token (a compose secret), and each worker's own and SDK ports.

    No service publishes the workers' ports: they take no token.
    """
    compose = _compose()
    services = compose["services"]
    prometheus = services["prometheus"]
    mounts = dict(volume.split(":")[:2] for volume in prometheus["volumes"])
    assert mounts["./deploy/prometheus/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = {(sd["names"][0], sd["port"]) for job in jobs.values() for sd in job["dns_sd_configs"]}
    defaults = Settings()
    assert targets == {
        ("api", 8000),
        ("orchestrator", defaults.orchestrator_metrics_port),
        ("orchestrator", defaults.orchestrator_sdk_metrics_port),
        ("render", defaults.render_metrics_port),
        ("render", defaults.render_sdk_metrics_port),
    }
    assert jobs["sorapi-api"]["authorization"] == {"type": "Bearer", "credentials_file": "/run/secrets/metrics_token"}
    assert prometheus["secrets"] == ["metrics_token"]
    assert compose["secrets"]["metrics_token"] == {"environment": "SORAPI_METRICS_TOKEN"}
    assert services["api"]["environment"]["SORAPI_METRICS_TOKEN"] == "${SORAPI_METRICS_TOKEN:?set SORAPI_METRICS_TOKEN}"
    for worker in ("orchestrator", "render"):
        assert services[worker]["environment"]["SORAPI_METRICS_HOST"] == "0.0.0.0"
        assert "ports" not in services[worker]


def test_grafana_is_provisioned_with_the_dashboard() -> None:
    import json

    grafana = _compose()["services"]["grafana"]
    mounts = dict(volume.split(":")[:2] for volume in grafana["volumes"])
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "sorapi.yml").read_text())["providers"]
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "sorapi.json").read_text())
    assert len(dashboard["panels"]) >= 10
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert panel["targets"] and all(target["expr"] for target in panel["targets"]), panel["title"]
