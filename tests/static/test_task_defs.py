"""Static checks of ecs-task-defs/*.json against the register-task-definition input shape and the example configs."""

from __future__ import annotations

import re

import pytest

from conftest import (
    REPO,
    SECRET_NAME,
    TASK_DEF_CONFIG,
    env_refs,
    health_path,
    listen_port,
    load_config,
    shutdown_budget,
)

# Top-level members of `aws ecs register-task-definition --cli-input-json` (anything else is rejected by the CLI).
TASK_KEYS = {
    "family", "taskRoleArn", "executionRoleArn", "networkMode", "containerDefinitions", "volumes",
    "placementConstraints", "requiresCompatibilities", "cpu", "memory", "tags", "pidMode", "ipcMode",
    "proxyConfiguration", "inferenceAccelerators", "ephemeralStorage", "runtimePlatform", "enableFaultInjection",
}
CONTAINER_KEYS = {
    "name", "image", "repositoryCredentials", "cpu", "memory", "memoryReservation", "links", "portMappings",
    "essential", "restartPolicy", "entryPoint", "command", "environment", "environmentFiles", "mountPoints",
    "volumesFrom", "linuxParameters", "secrets", "dependsOn", "startTimeout", "stopTimeout", "versionConsistency",
    "hostname", "user", "workingDirectory", "disableNetworking", "privileged", "readonlyRootFilesystem",
    "dnsServers", "dnsSearchDomains", "extraHosts", "dockerSecurityOptions", "interactive", "pseudoTerminal",
    "dockerLabels", "ulimits", "logConfiguration", "healthCheck", "systemControls", "resourceRequirements",
    "firelensConfiguration", "credentialSpecs",
}
REQUIRED_TASK = {"family", "containerDefinitions"}  # the API's required members
REQUIRED_OURS = {"networkMode", "requiresCompatibilities", "cpu", "memory", "executionRoleArn", "taskRoleArn"}

# Fargate task sizes: cpu units -> allowed memory (MiB).
FARGATE = {
    256: {512, 1024, 2048},
    512: set(range(1024, 4096 + 1, 1024)),
    1024: set(range(2048, 8192 + 1, 1024)),
    2048: set(range(4096, 16384 + 1, 1024)),
    4096: set(range(8192, 30720 + 1, 1024)),
    8192: set(range(16384, 61440 + 1, 4096)),
    16384: set(range(32768, 122880 + 1, 8192)),
}

ALL = sorted(TASK_DEF_CONFIG)


def sidecar_of(td: dict) -> dict:
    """The container the ALB targets: the one with port mappings."""
    exposed = [c for c in td["containerDefinitions"] if c.get("portMappings")]
    assert len(exposed) == 1, "exactly one container (the sidecar) has portMappings"
    return exposed[0]


def test_every_task_def_is_checked(task_defs):
    assert sorted(task_defs) == ALL, "a task definition without a config mapping in TASK_DEF_CONFIG"


@pytest.mark.parametrize("name", ALL)
def test_shape_and_required_fields(task_defs, name):
    td = task_defs[name]
    assert set(td) <= TASK_KEYS, f"unknown members: {set(td) - TASK_KEYS}"
    assert REQUIRED_TASK | REQUIRED_OURS <= set(td), f"missing: {(REQUIRED_TASK | REQUIRED_OURS) - set(td)}"
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,255}", td["family"])
    assert td["networkMode"] == "awsvpc"
    assert td["requiresCompatibilities"] == ["FARGATE"]
    for role in ("executionRoleArn", "taskRoleArn"):
        assert re.fullmatch(r"arn:aws:iam::\d{12}:role/[\w+=,.@/-]+", td[role]), role
    names = [c["name"] for c in td["containerDefinitions"]]
    assert len(names) == len(set(names)), "container names are unique"
    for c in td["containerDefinitions"]:
        assert set(c) <= CONTAINER_KEYS, f"{c.get('name')}: unknown members {set(c) - CONTAINER_KEYS}"
        assert c.get("name") and c.get("image"), "name and image are required"
        assert isinstance(c.get("essential"), bool)
        image = c["image"].split("@")[0]
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        assert tag and tag != "latest", f"{c['name']}: image {c['image']} must have a version tag"


@pytest.mark.parametrize("name", ALL)
def test_fargate_cpu_memory_pair(task_defs, name):
    td = task_defs[name]
    assert isinstance(td["cpu"], str) and isinstance(td["memory"], str), "the API takes strings"
    cpu, mem = int(td["cpu"]), int(td["memory"])
    assert cpu in FARGATE and mem in FARGATE[cpu], f"{cpu} CPU units with {mem} MiB is not a Fargate size"
    containers = td["containerDefinitions"]
    assert sum(c.get("cpu", 0) for c in containers) <= cpu
    assert sum(c.get("memory", c.get("memoryReservation", 0)) for c in containers) <= mem


@pytest.mark.parametrize("name", ALL)
def test_sidecar_port_and_health_agree_with_config(task_defs, name):
    cfg = load_config(TASK_DEF_CONFIG[name])
    port, path = listen_port(cfg), health_path(cfg)
    side = sidecar_of(task_defs[name])
    assert side["essential"] is True
    assert side["portMappings"] == [
        {"name": "http", "containerPort": port, "hostPort": port, "protocol": "tcp", "appProtocol": "http"}
    ]
    hc = side["healthCheck"]
    assert hc["command"] == [
        "CMD", "/usr/local/bin/oidc-sidecar", "health", "--url", f"http://127.0.0.1:{port}{path}"
    ]
    assert 5 <= hc["interval"] <= 300 and 2 <= hc["timeout"] <= 120 and hc["timeout"] < hc["interval"]
    assert 1 <= hc["retries"] <= 10 and 0 <= hc.get("startPeriod", 0) <= 300
    # The sidecar's config path is the one baked into the image.
    env = {e["name"]: e["value"] for e in side.get("environment", [])}
    assert env.get("OIDC_SIDECAR_CONFIG", "/etc/oidc-sidecar/config.toml") == "/etc/oidc-sidecar/config.toml"


@pytest.mark.parametrize("name", ALL)
def test_non_root_on_port_80_needs_the_sysctl(task_defs, name):
    side = sidecar_of(task_defs[name])
    assert side.get("user", "").split(":")[0] not in ("", "0", "root"), "run as the image's non-root user"
    port = side["portMappings"][0]["containerPort"]
    if port < 1024:
        controls = {s["namespace"]: s["value"] for s in side.get("systemControls", [])}
        assert controls.get("net.ipv4.ip_unprivileged_port_start") == "0"
    # Network sysctls apply to the whole awsvpc task: set them on one container only.
    others = [c for c in task_defs[name]["containerDefinitions"] if c is not side]
    assert not any(c.get("systemControls") for c in others)


@pytest.mark.parametrize("name", ALL)
def test_no_secret_in_environment(task_defs, name):
    for c in task_defs[name]["containerDefinitions"]:
        for e in c.get("environment", []):
            assert not SECRET_NAME.search(e["name"]), f"{c['name']}: {e['name']} belongs in `secrets`"
            assert not re.search(r"rediss?://[^/@]*:[^/@]+@", e["value"]), f"{c['name']}: credentials in a URL"
        for s in c.get("secrets", []):
            assert re.fullmatch(
                r"arn:aws:(secretsmanager:[a-z0-9-]+:\d{12}:secret:[\w/+=.@-]+(:[\w-]*:[\w-]*:[\w-]*)?"
                r"|ssm:[a-z0-9-]+:\d{12}:parameter/[\w/.-]+)",
                s["valueFrom"],
            ), f"{c['name']}: {s['name']} valueFrom is not a Secrets Manager or SSM ARN"


@pytest.mark.parametrize("name", ALL)
def test_every_config_variable_is_provided(task_defs, name):
    cfg = load_config(TASK_DEF_CONFIG[name])
    side = sidecar_of(task_defs[name])
    env = {e["name"] for e in side.get("environment", [])}
    secrets = {s["name"] for s in side.get("secrets", [])}
    assert not env & secrets, "a variable is both plain and secret"
    for var in env_refs(cfg):
        assert var in env | secrets, f"{TASK_DEF_CONFIG[name]} uses ${{{var}}}, the task does not set it"
        if SECRET_NAME.search(var):
            assert var in secrets, f"${{{var}}} must come from `secrets`"
    for needed in ("ENTRA_CLIENT_SECRET", "SESSION_KEY"):
        assert needed in secrets


@pytest.mark.parametrize("name", ALL)
def test_stop_timeout_covers_graceful_shutdown(task_defs, name):
    cfg = load_config(TASK_DEF_CONFIG[name])
    side = sidecar_of(task_defs[name])
    budget = shutdown_budget(cfg)
    assert budget < side["stopTimeout"] <= 120, f"stopTimeout {side['stopTimeout']} vs grace+shutdown {budget}"
    for c in task_defs[name]["containerDefinitions"]:
        # The app must outlive the sidecar's drain (ECS stops dependents first, then dependencies).
        assert c.get("stopTimeout", 30) >= side["stopTimeout"] or c is side


@pytest.mark.parametrize("name", ALL)
def test_awslogs(task_defs, name):
    for c in task_defs[name]["containerDefinitions"]:
        lc = c["logConfiguration"]
        assert lc["logDriver"] == "awslogs"
        for opt in ("awslogs-group", "awslogs-region", "awslogs-stream-prefix"):
            assert lc["options"].get(opt), f"{c['name']}: {opt}"


def test_api_task_waits_for_a_healthy_app_on_loopback(task_defs):
    td = task_defs["api-service.json"]
    cfg = load_config(TASK_DEF_CONFIG["api-service.json"])
    side = sidecar_of(td)
    containers = {c["name"]: c for c in td["containerDefinitions"]}
    deps = side.get("dependsOn", [])
    assert deps and all(d["condition"] == "HEALTHY" for d in deps)
    for d in deps:
        app = containers[d["containerName"]]
        assert app.get("healthCheck", {}).get("command", [None])[0] in ("CMD", "CMD-SHELL")
        assert not app.get("portMappings"), "the app is never exposed: only the sidecar has a port"
    upstreams = {h["upstream"] for h in cfg["hosts"] if "upstream" in h}
    assert upstreams == {"http://127.0.0.1:8000"}
    app = containers[deps[0]["containerName"]]
    cmd = " ".join(app.get("command", []))
    assert "--host 127.0.0.1" in cmd and "--port 8000" in cmd, "the app listens on loopback only"
    assert "127.0.0.1:8000/" in " ".join(app["healthCheck"]["command"])


def test_ui_task_serves_the_spa(task_defs):
    td = task_defs["ui-service.json"]
    cfg = load_config(TASK_DEF_CONFIG["ui-service.json"])
    assert len(td["containerDefinitions"]) == 1
    assert all(h.get("static_root") == "/srv/spa" for h in cfg["hosts"])
    assert sidecar_of(td)["image"].endswith("-ui"), "the image built with --target spa"


@pytest.mark.parametrize("rel", sorted(set(TASK_DEF_CONFIG.values())))
def test_example_configs_keep_secrets_out(rel):
    cfg = load_config(rel)

    def walk(value, key=""):
        if isinstance(value, dict):
            for k, v in value.items():
                yield from walk(v, k)
        elif isinstance(value, list):
            for v in value:
                yield from walk(v, key)
        else:
            yield key, value

    for key, value in walk(cfg):
        if re.search(r"secret|keys?$|password|redis_url|private_key", key) and isinstance(value, str):
            assert re.fullmatch(r"\$\{[A-Z_][A-Z0-9_]*\}", value) or key.endswith("_file"), (
                f"{rel}: {key} must be a ${{VAR}} reference, not a literal"
            )
    assert (REPO / rel).read_text().count("${") >= 3
