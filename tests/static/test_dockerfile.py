"""Static checks of docker/Dockerfile: what a reviewer would check by eye, made repeatable (no Docker engine here)."""

from __future__ import annotations

import re
import shlex

import pytest

from conftest import (
    CONFIG_PATH_IN_IMAGE,
    REPO,
    SECRET_NAME,
    health_path,
    listen_port,
    load_config,
)

BUILD_RELEASE = "scripts/build-release.sh"


def stage_names(stages):
    return {s.name for s in stages if s.name}


def runtime_stages(stages):
    """Stages that run the sidecar (they have an ENTRYPOINT)."""
    return [s for s in stages if s.all("ENTRYPOINT")]


def builder(stages):
    matches = [s for s in stages if s.name == "builder"]
    assert len(matches) == 1, "exactly one stage named `builder`"
    return matches[0]


def arg_defaults(stage) -> dict[str, str]:
    out = {}
    for ins in stage.all("ARG"):
        name, _, default = ins.args.partition("=")
        out[name.strip()] = default.strip().strip('"')
    return out


def test_every_base_image_is_pinned_by_tag(dockerfile):
    _, stages = dockerfile
    assert stages, "no FROM"
    earlier: set[str] = set()
    for s in stages:
        if s.base in earlier:  # FROM an earlier stage
            continue
        assert "$" not in s.base, f"line {s.line}: base image from a build arg cannot be checked: {s.base}"
        image = s.base.split("@", 1)[0]
        last = image.rsplit("/", 1)[-1]
        assert ":" in last, f"line {s.line}: {s.base} has no tag"
        tag = last.split(":", 1)[1]
        assert tag and tag.lower() != "latest", f"line {s.line}: {s.base} uses `latest`"
        if "@" in s.base:
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", s.base.split("@", 1)[1]), f"line {s.line}: bad digest"
        if s.name:
            earlier.add(s.name)


def test_builder_is_rust_1_95_with_cmake_and_the_locked_release_build(dockerfile):
    _, stages = dockerfile
    b = builder(stages)
    assert b.base.split("@")[0] == "rust:1.95-bookworm"
    runs = " ".join(i.args for i in b.all("RUN"))
    assert re.search(r"apt-get install[^&;]*\bcmake\b", runs), "cmake must be installed in the builder"
    assert BUILD_RELEASE in runs, "the builder builds with scripts/build-release.sh, as CI and the benchmarks do"
    assert "--version" in runs, "the builder checks that the binary starts"


def test_the_release_build_is_the_locked_build_with_the_committed_profile():
    script = (REPO / BUILD_RELEASE).read_text()
    assert (REPO / BUILD_RELEASE).stat().st_mode & 0o111, "script must be executable"
    assert re.search(r"args=\(--release --locked -p oidc-sidecar\b", script), "a locked release build of the sidecar"
    assert 'cargo build "${args[@]}"' in script
    assert "pgo/oidc-sidecar.profdata" in script and "-Cprofile-use=" in script
    profile = REPO / "pgo" / "oidc-sidecar.profdata"
    # An indexed LLVM profile: what rustc's -Cprofile-use reads (magic 0xff "lprofi" 0x81).
    assert profile.read_bytes()[:8] == b"\xfflprofi\x81", "pgo/oidc-sidecar.profdata is an indexed LLVM profile"


def test_the_release_build_says_when_the_profile_is_stale():
    script = (REPO / BUILD_RELEASE).read_text()
    # rustc's own warning for a profiled function whose control flow changed (checked against rustc 1.95).
    assert "function control flow change detected (hash mismatch)" in script
    assert "bench/pgo-train.sh" in script, "the stale-profile message names the fix"
    assert re.search(r'PGO_STRICT:-0}" = 1 \] && exit [1-9]', script), "PGO_STRICT=1 fails a build on a stale profile"


def test_the_profile_reaches_the_build_context():
    ignored = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for pattern in ignored:
        assert not re.search(r"(^|/)(\*\*/)?(pgo|\*\.profdata)(/|$)", pattern), f".dockerignore drops the profile: {pattern}"


def test_build_outside_docker_runs_the_same_build(dockerfile):
    script = (REPO / "docker" / "build-outside-docker.sh").read_text()
    assert BUILD_RELEASE in script
    assert "--version" in script
    assert "cmake" in script
    assert (REPO / "docker" / "build-outside-docker.sh").stat().st_mode & 0o111, "script must be executable"


def test_runtime_stages_run_as_non_root(dockerfile):
    _, stages = dockerfile
    finals = runtime_stages(stages)
    assert stages[-1] in finals, "the default (last) stage runs the sidecar"
    assert len(finals) >= 2, "a sidecar-only stage and an SPA stage"
    for s in finals:
        users = s.all("USER")
        assert users, f"stage {s.name}: no USER (would run as root)"
        user = users[-1].args.split(":")[0].strip()
        assert user not in ("root", "0", ""), f"stage {s.name}: USER {user}"
        if s.base.startswith("gcr.io/distroless/"):
            assert s.base.split("@")[0].endswith(":nonroot"), "distroless: use the :nonroot variant"


def test_expose_matches_the_example_configs(dockerfile, example_configs):
    _, stages = dockerfile
    ports = {listen_port(cfg) for cfg in example_configs.values()}
    assert ports == {80}, f"example configs listen on {ports}"
    for s in runtime_stages(stages):
        exposed = {int(p.split("/")[0]) for ins in s.all("EXPOSE") for p in ins.args.split()}
        assert exposed == ports, f"stage {s.name}: EXPOSE {exposed} but the configs listen on {ports}"


def test_healthcheck_uses_the_binary_and_the_health_path(dockerfile, example_configs):
    _, stages = dockerfile
    paths = {health_path(cfg) for cfg in example_configs.values()}
    ports = {listen_port(cfg) for cfg in example_configs.values()}
    assert len(paths) == 1 and len(ports) == 1
    expected = ["/usr/local/bin/oidc-sidecar", "health", "--url", f"http://127.0.0.1:{ports.pop()}{paths.pop()}"]
    for s in runtime_stages(stages):
        checks = s.all("HEALTHCHECK")
        assert len(checks) == 1, f"stage {s.name}: one HEALTHCHECK"
        args = checks[0].args
        assert "CMD" in args
        exec_form = args.split("CMD", 1)[1].strip()
        assert exec_form.startswith("["), "exec form: no shell in distroless"
        import json

        assert json.loads(exec_form) == expected


def test_config_lives_at_etc_oidc_sidecar(dockerfile):
    _, stages = dockerfile
    b = builder(stages)
    runs = " ".join(i.args for i in b.all("RUN"))
    assert f"/out{CONFIG_PATH_IN_IMAGE}" in runs, "the builder lays the config out for COPY --from=builder /out/ /"
    default_cfg = arg_defaults(b).get("SIDECAR_CONFIG")
    assert default_cfg and (REPO / default_cfg).is_file(), f"SIDECAR_CONFIG default {default_cfg} must exist"
    for s in runtime_stages(stages):
        envs = " ".join(i.args for i in s.all("ENV"))
        assert f"OIDC_SIDECAR_CONFIG={CONFIG_PATH_IN_IMAGE}" in envs, f"stage {s.name}"
        copies = [i.args for i in s.all("COPY")]
        assert any("--from=builder" in c and "/out/" in c for c in copies), f"stage {s.name} copies the build output"
        entry = s.all("ENTRYPOINT")[-1].args
        assert entry.startswith("[") and "oidc-sidecar" in entry


def test_spa_stage_bakes_a_build_into_srv_spa(dockerfile):
    _, stages = dockerfile
    spa = [s for s in stages if s.name == "spa"]
    assert len(spa) == 1
    dist = arg_defaults(spa[0]).get("SPA_DIST")
    assert dist, "ARG SPA_DIST with a default"
    assert (REPO / dist / "index.html").is_file(), f"default SPA_DIST {dist} has no index.html"
    assert any(re.search(r"\$\{?SPA_DIST\}?\s+/srv/spa$", c.args) for c in spa[0].all("COPY"))
    ui = load_config("config/ecs-ui.toml")
    assert {h.get("static_root") for h in ui["hosts"]} == {"/srv/spa"}


def test_no_secrets_in_env_or_args(dockerfile):
    instructions, _ = dockerfile
    for ins in instructions:
        if ins.keyword not in ("ENV", "ARG"):
            continue
        # ENV a=b c=d / ENV a b / ARG a[=b]
        pairs = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)(?:=(\"[^\"]*\"|\S*))?", ins.args)
        for name, _ in pairs:
            assert not SECRET_NAME.search(name), f"line {ins.line}: {ins.keyword} {name} looks like a secret"
    for ins in instructions:
        if ins.keyword in ("COPY", "ADD"):
            for word in shlex.split(ins.args):
                assert not re.search(r"\.(pem|key|p12|pfx)$|(^|/)\.env", word), f"line {ins.line}: copies {word}"
        if ins.keyword == "RUN":
            assert "--mount=type=secret" not in ins.args or "id=" in ins.args


def test_dockerignore_keeps_junk_and_keys_out():
    lines = {
        l.strip()
        for l in (REPO / ".dockerignore").read_text().splitlines()
        if l.strip() and not l.startswith("#")
    }
    for needed in ("**/target", ".git", "**/*.pem", "**/*.key", "**/.env"):
        assert needed in lines, f".dockerignore lacks {needed}"


@pytest.mark.parametrize("name", ["builder", "spa", "runtime", "runtime-debian"])
def test_stages_exist(dockerfile, name):
    _, stages = dockerfile
    assert name in stage_names(stages)


def test_debian_variant_sets_the_capability_in_its_own_layer(dockerfile):
    _, stages = dockerfile
    deb = [s for s in stages if s.name == "runtime-debian"][0]
    runs = " ".join(i.args for i in deb.all("RUN"))
    # The capability must be set in the stage that runs it: COPY --from drops security.capability.
    assert "setcap cap_net_bind_service=+ep /usr/local/bin/oidc-sidecar" in runs
    assert "useradd" in runs
