"""Every deployment file in deploy/ is validated, offline, by the tool or schema made for it,
and checked against the code it runs: the commands and flags exist in the CLI, the IDGATE_*
variables are settings and load, the paths it probes answer.

- Kubernetes manifests: the Kubernetes JSON schemas (kubernetes-validate, strict, for the
  oldest and newest versions we support); the CloudNativePG `Cluster` has no schema in any
  package, so its metadata is checked against ObjectMeta and its fields by what the other
  manifests rely on (the `<cluster>-app` secret, the pod label, connection capacity).
- compose.yaml: the Compose specification's JSON schema (as vendored, with its licence, by
  check-jsonschema), after interpolation with compose.env.example.
- nginx.conf: `nginx -t` (Debian package nginx, installed by scripts/test).
- idgate.service: `systemd-analyze verify` where systemd is present; always parsed.
- Dockerfile: hadolint, then its properties (stages, pinned base, non-root user, health
  check) and every file it copies; its health check command is run against a real process.
- webhook_certs.py and webhook_receiver.py: a real gateway process delivers a real event over
  TLS to the receiver, trusting the certificates the script made.

The example settings (deploy/*.toml) are loaded in tests/test_settings.py and the example
mapping rules in tests/test_access.py.
"""

from __future__ import annotations

import configparser
import contextlib
import importlib.resources
import json
import os
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import time
import tomllib
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import click
import jsonschema
import kubernetes_validate
import pytest
import yaml
from aiohttp.test_utils import TestClient
from dockerfile_parse import DockerfileParser
from referencing import Registry, Resource

from gateway.cli import main as idgate_cli
from gateway.settings import ENV_PREFIX, Settings
from gateway.webhooks import new_secret, sign
from storage.database import create_engine
from tests.conftest import Scim, TenantAccess, user
from tests.processes import free_port, healthy, serve, stop, until
from tests.test_cli import _cli

ROOT = Path(__file__).parent.parent
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
# The oldest Kubernetes the manifests are written for, and the newest with a schema here.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
CNPG_API = "postgresql.cnpg.io/v1"
IMAGE_UID = 10001  # the Dockerfile's USER, which the manifests' runAsUser repeat
PORT = Settings.model_fields["port"].default


def idgate_command(argv: list[str]) -> click.Context:
    """Parse `idgate ARGV` exactly as the CLI would, without running it: an unknown command,
    option or missing argument raises click.UsageError."""
    parent = click.Context(idgate_cli, info_name="idgate")
    group: click.Group = idgate_cli
    rest = list(argv)
    while True:
        assert rest, f"`idgate {' '.join(argv)}` names no command"
        name = rest.pop(0)
        command = group.get_command(parent, name)
        assert command is not None, f"`idgate {' '.join(argv)}`: no command {name!r}"
        if not isinstance(command, click.Group):
            return command.make_context(name, rest, parent=parent)
        parent, group = click.Context(command, info_name=name, parent=parent), command


def idgate_settings(env: Mapping[str, str], config: Path | None = None) -> Settings:
    """The settings these variables give; every IDGATE_* name must be a setting."""
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields} | {"IDGATE_CONFIG"}
    unknown = {k for k in env if k.startswith(ENV_PREFIX)} - known
    assert not unknown, f"not settings: {sorted(unknown)}"
    return Settings.load(config, env=dict(env))


def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as compose's .env and systemd's EnvironmentFile read them."""
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
            values[key.strip()] = value.strip()
    return values


# --- Kubernetes ----------------------------------------------------------------------------


def manifests() -> dict[str, dict[str, Any]]:
    """Every resource in deploy/kubernetes, by kind (one of each)."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            assert document["kind"] not in found, f"two {document['kind']}s"
            found[document["kind"]] = document
    return found


def _object_meta_errors(metadata: Any, version: str) -> list[str]:
    """ObjectMeta checked with the Kubernetes schema of `version` (for custom resources)."""
    folder = f"kubernetes-json-schema/v{version}-local-strict"
    schema = kubernetes_validate.utils.schema_contents(f"{folder}/objectmeta-meta-v1.json", version)
    definitions = kubernetes_validate.utils.schema_contents(f"{folder}/_definitions.json", version)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    return [error.message for error in validator.iter_errors(metadata)]


@pytest.mark.parametrize("path", sorted(KUBERNETES.glob("*.yaml")), ids=lambda p: p.name)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kubernetes_manifests_match_the_kubernetes_schemas(path: Path, version: str) -> None:
    for document in yaml.safe_load_all(path.read_text()):
        if document["apiVersion"] == CNPG_API:
            assert _object_meta_errors(document["metadata"], version) == []
            assert _object_meta_errors({"name": "x", "labelz": {}}, version) != []
            continue
        kubernetes_validate.validate(document, version, strict=True)


def test_the_kubernetes_schemas_refuse_a_wrong_manifest() -> None:
    deployment = manifests()["Deployment"]
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 3}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_kubernetes_manifests_fit_together() -> None:
    found = manifests()
    deployment, job = found["Deployment"], found["Job"]
    pods = deployment["spec"]["template"]
    labels = pods["metadata"]["labels"]
    (container,) = pods["spec"]["containers"]
    (migrator,) = job["spec"]["template"]["spec"]["containers"]
    assert deployment["spec"]["selector"]["matchLabels"] == labels

    # The Service, the disruption budget and the autoscaler find the gateway pods, and only
    # them (not the migration job's).
    service = found["Service"]
    job_labels = job["spec"]["template"]["metadata"]["labels"]
    for selector in (
        service["spec"]["selector"],
        found["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
    ):
        assert _selects(selector, labels) and not _selects(selector, job_labels)
    target = found["HorizontalPodAutoscaler"]["spec"]
    assert target["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert target["minReplicas"] <= deployment["spec"]["replicas"] <= target["maxReplicas"]
    assert target["minReplicas"] >= 2  # a single replica is not highly available

    # Ingress -> Service -> the container's port, which is the port idgate serves on.
    (port,) = container["ports"]
    assert port["containerPort"] == PORT
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] == port["name"]
    (rule,) = found["Ingress"]["spec"]["rules"]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": service["metadata"]["name"], "port": {"name": service_port["name"]}}
    assert found["Ingress"]["spec"]["tls"][0]["hosts"] == [rule["host"]]

    # The commands are real, and both run the same image as the same unprivileged user.
    assert idgate_command(container["args"]).info_name == "serve"
    assert idgate_command(migrator["args"]).info_name == "migrate"
    assert container["image"] == migrator["image"]
    for pod in (pods["spec"], job["spec"]["template"]["spec"]):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == IMAGE_UID

    # Settings: the ConfigMap's and the secret's variables are settings and load, and the
    # public URL is the Ingress host's, over https.
    config = found["ConfigMap"]
    cluster = found["Cluster"]
    for spec in (container, migrator):
        assert spec["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
        (database,) = spec["env"]
        # By reference only: CloudNativePG writes the `<cluster>-app` secret with a `uri`.
        assert database == {
            "name": "IDGATE_DATABASE_URL",
            "valueFrom": {
                "secretKeyRef": {"name": f"{cluster['metadata']['name']}-app", "key": "uri"}
            },
        }
    assert "Secret" not in found
    env = {**config["data"], "IDGATE_DATABASE_URL": "postgresql://idgate:pw@idgate-db-rw/idgate"}
    settings = idgate_settings(env)
    assert settings.base_url == f"https://{rule['host']}"

    # Probes ask the paths the app answers (test_the_probed_paths_answer).
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    for probe in ("livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": port["name"]}

    # The database takes every connection the largest scale-out opens: each process's pool
    # with its overflow, and its one listening connection.
    pool = create_engine(settings.database_url or "", pool_size=settings.db_pool_size).pool
    per_process = pool.size() + pool._max_overflow + 1  # type: ignore[attr-defined]
    most = target["maxReplicas"] * settings.workers * per_process
    assert int(cluster["spec"]["postgresql"]["parameters"]["max_connections"]) >= most + 20
    assert cluster["spec"]["instances"] >= 3

    # The network policy lets the Ingress in to the port served, and the pods out to the
    # database's pods.
    policy = found["NetworkPolicy"]["spec"]
    assert _selects(policy["podSelector"]["matchLabels"], labels)
    assert _selects(policy["podSelector"]["matchLabels"], job_labels)
    assert policy["ingress"][0]["ports"] == [{"protocol": "TCP", "port": PORT}]
    to_database = [rule for rule in policy["egress"] if rule["ports"][0]["port"] == 5432]
    assert to_database[0]["to"] == [
        {"podSelector": {"matchLabels": {"cnpg.io/cluster": cluster["metadata"]["name"]}}}
    ]


async def test_the_probed_paths_answer(client: TestClient[Any, Any]) -> None:
    for path in ("/healthz", "/readyz"):
        response = await client.get(path)
        assert response.status == 200, path
        assert (await response.json())["status"] == "ok"


# --- compose -------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|:\?)(?P<arg>[^}]*))?\}")


class InterpolationError(Exception):
    pass


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}` over a loaded document."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        given = env.get(match["name"], "")
        if match["op"] == ":-":
            return given or match["arg"]
        if match["op"] == ":?" and not given:
            raise InterpolationError(match["arg"])
        return given

    return _VARIABLE.sub(replace, value)


def compose(env: Mapping[str, str]) -> dict[str, Any]:
    loaded = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    result: dict[str, Any] = interpolate(loaded, env)
    return result


def compose_env() -> dict[str, str]:
    """compose.env.example as an operator fills it in."""
    return {**env_file(DEPLOY / "compose.env.example"), "POSTGRES_PASSWORD": "0123abcd"}


def test_compose_matches_the_compose_specification() -> None:
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(vendor.joinpath("compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    document = compose(compose_env())
    assert [e.message for e in validator.iter_errors(document)] == []
    wrong = {**document, "services": {"gateway": {"image": "x", "replica": 2}}}
    assert list(validator.iter_errors(wrong)) != []


def test_compose_needs_only_what_its_example_env_file_names() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    example = env_file(DEPLOY / "compose.env.example")
    assert {m["name"] for m in _VARIABLE.finditer(text)} <= set(example)
    # Unedited, the example leaves the password empty, and compose refuses to start.
    with pytest.raises(InterpolationError, match="POSTGRES_PASSWORD"):
        compose(example)


def test_compose_runs_the_migrations_once_then_two_replicas_behind_nginx() -> None:
    env = compose_env()
    services = compose(env)["services"]
    assert idgate_command(services["migrate"]["command"]).info_name == "migrate"
    assert idgate_command(services["gateway"]["command"]).info_name == "serve"
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert services["gateway"]["depends_on"]["migrate"] == {
        "condition": "service_completed_successfully"
    }
    assert services["gateway"]["deploy"]["replicas"] == 2
    assert services["nginx"]["depends_on"] == {"gateway": {"condition": "service_healthy"}}
    for name in ("migrate", "gateway"):
        build = services[name]["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
        environment = services[name]["environment"]
        settings = idgate_settings(environment)
        assert settings.database_url == (
            f"postgresql://idgate:{env['POSTGRES_PASSWORD']}@db:5432/idgate"
        )
        assert settings.base_url == env["IDGATE_PUBLIC_URL"]
    database = services["db"]["environment"]
    assert (database["POSTGRES_USER"], database["POSTGRES_DB"]) == ("idgate", "idgate")
    # Every file mounted from deploy/ exists.
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).is_file(), volume
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in services["nginx"]["volumes"]


# --- nginx ---------------------------------------------------------------------------------


def test_nginx_accepts_its_configuration(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "nginx is missing: scripts/test installs the Debian package"
    checked = subprocess.run(
        [nginx, "-t", "-q", "-p", str(tmp_path), "-e", "stderr", "-c", str(DEPLOY / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stderr
    broken = tmp_path / "broken.conf"
    broken.write_text((DEPLOY / "nginx.conf").read_text().replace("proxy_pass", "proxy_pas"))
    refused = subprocess.run(
        [nginx, "-t", "-q", "-p", str(tmp_path), "-e", "stderr", "-c", str(broken)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert refused.returncode != 0 and "proxy_pas" in refused.stderr


def test_nginx_sends_to_the_gateway_service_and_lets_the_gateway_refuse_large_bodies() -> None:
    conf = (DEPLOY / "nginx.conf").read_text()
    (target,) = re.findall(r"set \$gateway http://([\w-]+):(\d+);", conf)
    assert target == ("gateway", str(PORT))
    assert "gateway" in compose(compose_env())["services"]
    (size,) = re.findall(r"client_max_body_size (\d+)m;", conf)
    assert int(size) * 1024 * 1024 > Settings.model_fields["max_body_bytes"].default


# --- systemd -------------------------------------------------------------------------------


def test_the_systemd_unit_runs_real_commands_as_its_own_user(tmp_path: Path) -> None:
    unit = configparser.ConfigParser(interpolation=None, strict=True)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string((DEPLOY / "idgate.service").read_text())
    service = unit["Service"]
    assert service["User"] == "idgate" and service["Group"] == "idgate"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    prefix = "/opt/idgate/bin/idgate "
    assert service["ExecStartPre"].startswith(prefix) and service["ExecStart"].startswith(prefix)
    assert idgate_command(service["ExecStartPre"].removeprefix(prefix).split()).info_name == (
        "migrate"
    )
    assert idgate_command(service["ExecStart"].removeprefix(prefix).split()).info_name == "serve"
    # IDGATE_CONFIG names the TOML file, EnvironmentFile the secrets (idgate.env.example).
    key, _, config = service["Environment"].partition("=")
    assert (key, config) == ("IDGATE_CONFIG", "/etc/idgate/idgate.toml")
    assert service["EnvironmentFile"] == "/etc/idgate/idgate.env"
    secrets = env_file(DEPLOY / "idgate.env.example")
    settings = idgate_settings(secrets, DEPLOY / "idgate.example.toml")
    assert settings.database_url == secrets["IDGATE_DATABASE_URL"]

    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return  # no systemd on this machine: the parse above is the check
    # The unit as installed, with the virtual environment of this run as /opt/idgate.
    text = (DEPLOY / "idgate.service").read_text()
    text = text.replace(prefix, str(Path(sys.executable).parent / "idgate") + " ")

    def verify(unit_text: str) -> str:
        installed = tmp_path / "idgate.service"
        installed.write_text(unit_text)
        verified = subprocess.run(
            [analyze, "verify", "--man=no", "--generators=no", str(installed)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return verified.stdout + verified.stderr

    assert verify(text) == ""
    assert "protect system" in verify(text.replace("ProtectSystem=strict", "ProtectSystem=very"))


# --- Dockerfile ----------------------------------------------------------------------------


@dataclass
class Instruction:
    name: str
    value: str


def dockerfile() -> list[Instruction]:
    parsed = DockerfileParser(str(DEPLOY / "Dockerfile"))
    return [Instruction(i["instruction"], i["value"]) for i in parsed.structure]


def _stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    stages: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.name == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def test_hadolint_passes_the_dockerfile() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    linted = subprocess.run(
        [str(hadolint), "--no-color", str(DEPLOY / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_the_image_is_multi_stage_pinned_and_unprivileged() -> None:
    instructions = dockerfile()
    (base,) = [i.value for i in instructions if i.name == "ARG" and i.value.startswith("PYTHON")]
    name, _, image = base.partition("=")
    # A full version (and a digest if one is added), never a moving tag.
    pinned = re.fullmatch(r"python:(\d+)\.(\d+)\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", image)
    assert pinned, image
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert (int(pinned[1]), int(pinned[2])) >= tuple(
        int(n) for n in requires.removeprefix(">=").split(".")
    )
    build, runtime = _stages(instructions)
    assert build[0].value == f"${{{name}}} AS build"
    assert runtime[0].value == f"${{{name}}} AS runtime"
    (user_,) = [i.value for i in runtime if i.name == "USER"]
    assert user_ == f"{IMAGE_UID}:{IMAGE_UID}"
    assert [i.value for i in runtime if i.name == "COPY"] == [
        "--from=build /opt/idgate /opt/idgate"
    ]

    # It runs `idgate serve` on the port it exposes, with settings that load.
    (entrypoint,) = [json.loads(i.value) for i in runtime if i.name == "ENTRYPOINT"]
    (command,) = [json.loads(i.value) for i in runtime if i.name == "CMD"]
    assert entrypoint == ["idgate"]
    assert idgate_command(command).info_name == "serve"
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(i.value for i in runtime if i.name == "ENV")))
    settings = idgate_settings({k: v for k, v in env.items() if k.startswith(ENV_PREFIX)})
    assert (settings.host, settings.port) == ("0.0.0.0", PORT)
    assert [i.value for i in runtime if i.name == "EXPOSE"] == [str(PORT)]
    (check,) = [i.value for i in runtime if i.name == "HEALTHCHECK"]
    assert "/healthz" in check  # run against a real process below


def healthcheck_argv() -> list[str]:
    (check,) = [i.value for i in dockerfile() if i.name == "HEALTHCHECK"]
    options, _, command = check.partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv: list[str] = json.loads(command)
    return argv


def test_every_file_the_image_copies_is_in_the_repository_and_the_build_context() -> None:
    sources = []
    for instruction in dockerfile():
        if instruction.name == "COPY" and not instruction.value.startswith("--from"):
            *paths, _destination = instruction.value.split()
            sources += paths
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
    # The build context sends only what is allowed again after `*`; each copied path is.
    ignore = [
        line
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert ignore[0] == "*"
    allowed = {line.removeprefix("!") for line in ignore if line.startswith("!")}
    assert set(sources) == allowed
    # What `pip install .` packages is what is copied.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {p.removesuffix("*") for p in packages} <= set(sources)
    assert project["project"]["readme"] in sources


# --- a real gateway: health check, webhooks over TLS ---------------------------------------


@dataclass
class Gateway:
    port: int
    certs: Path


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What webhook_certs.py makes for a receiver at `localhost`."""
    folder = tmp_path_factory.mktemp("webhook-certs")
    made = subprocess.run(
        [sys.executable, str(DEPLOY / "webhook_certs.py"), str(folder), "localhost"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    return folder


@pytest.fixture(scope="module")
async def gateway(database_url: str, certs: Path) -> AsyncIterator[Gateway]:
    """`idgate serve`, trusting the sample receiver's authority as compose.yaml sets it up."""
    with (certs / "gateway.log").open("wb") as log:
        process, port = serve(
            database_url,
            log,
            {"SSL_CERT_FILE": str(certs / "bundle.pem"), "IDGATE_WEBHOOK_DELIVERY": "true"},
        )
        try:
            async with aiohttp.ClientSession() as http:
                await healthy(http, process, port)
            yield Gateway(port, certs)
        finally:
            stop(process)


def test_the_image_health_check_command_tells_up_from_down(gateway: Gateway) -> None:
    argv = healthcheck_argv()
    assert argv[0] == "python"
    command = [sys.executable, *argv[1:]]
    up = subprocess.run(command, env={**os.environ, "IDGATE_PORT": str(gateway.port)}, timeout=30)
    assert up.returncode == 0
    down = subprocess.run(
        command,
        env={**os.environ, "IDGATE_PORT": str(free_port())},
        capture_output=True,
        timeout=30,
    )
    assert down.returncode != 0


def test_the_certificate_script_keeps_what_it_made(gateway: Gateway) -> None:
    before = (gateway.certs / "ca.pem").read_bytes()
    again = subprocess.run(
        [sys.executable, str(DEPLOY / "webhook_certs.py"), str(gateway.certs), "localhost"],
        capture_output=True,
        timeout=60,
    )
    assert again.returncode == 0
    assert (gateway.certs / "ca.pem").read_bytes() == before
    bundle = (gateway.certs / "bundle.pem").read_bytes()
    assert bundle.endswith(before) and bundle.count(b"BEGIN CERTIFICATE") > 1


@contextlib.contextmanager
def webhook_receiver(certs: Path, secret: str, output: Path, port: int) -> Iterator[None]:
    """deploy/webhook_receiver.py on `port`, checking with `secret`, printing to `output`;
    yields once it takes connections."""
    env = {
        **os.environ,
        "WEBHOOK_SECRETS": secret,
        "WEBHOOK_PORT": str(port),
        "WEBHOOK_CERT": str(certs / "localhost.pem"),
        "WEBHOOK_KEY": str(certs / "localhost.key"),
    }
    with output.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(DEPLOY / "webhook_receiver.py")], stdout=out, env=env
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, "the receiver exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the receiver did not start"
                time.sleep(0.05)
        yield
    finally:
        stop(process)


async def test_the_sample_receiver_takes_the_gateways_webhooks_and_refuses_forgeries(
    gateway: Gateway,
    database_url: str,
    scim: Scim,
    tenant: TenantAccess,
    tmp_path: Path,
) -> None:
    port = free_port()
    url = f"https://localhost:{port}/hooks"
    added = await _cli(database_url, "webhook", "add", tenant.slug, url, "--json")
    assert added.exit_code == 0, added.output
    secret = json.loads(added.output)["secret"]
    output = tmp_path / "receiver.out"
    with webhook_receiver(gateway.certs, secret, output, port):
        await _delivered_and_forgeries_refused(gateway, url, secret, output, scim, tenant)


async def _delivered_and_forgeries_refused(
    gateway: Gateway, url: str, secret: str, output: Path, scim: Scim, tenant: TenantAccess
) -> None:

    status, created, _ = await scim.post("/Users", user("hook@corp.example"))
    assert status == 201

    def received() -> list[dict[str, Any]]:
        return [json.loads(line) for line in output.read_text().splitlines()]

    async def delivered() -> bool:
        return any(
            line.get("type") == "user.created" and line["resource"]["id"] == created["id"]
            for line in received()
        )

    await until("the receiver logs the user.created event", delivered, 30, 0.1)
    (event,) = [line for line in received() if line.get("type") == "user.created"]
    assert event["tenant"] == tenant.slug

    # Requests the gateway did not sign, or signed too long ago, are refused.
    trust = ssl.create_default_context(cafile=str(gateway.certs / "ca.pem"))
    body = json.dumps(
        {
            "id": "evt_x",
            "type": "user.deleted",
            "tenant": tenant.slug,
            "sequence": 9,
            "resource": {"type": "User", "id": created["id"]},
        }
    ).encode()
    now = int(time.time())

    async def post(signed_with: str, timestamp: int) -> int:
        headers = {
            "webhook-id": "evt_x",
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(signed_with, "evt_x", timestamp, body),
            "content-type": "application/json",
        }
        async with (
            aiohttp.ClientSession() as http,
            http.post(url, data=body, headers=headers, ssl=trust) as response,
        ):
            return response.status

    assert await post(new_secret(), now) == 401
    assert await post(secret, now - 3600) == 401
    assert await post(secret, now) == 204
    assert received()[-1]["type"] == "user.deleted"


# --- the guide -----------------------------------------------------------------------------


def test_every_idgate_command_in_the_deployment_guide_is_real() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text()
    spans = re.findall(r"`([^`\n]+)`", text)
    blocks = re.findall(r"```sh\n(.*?)```", text, re.DOTALL)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    commands = [
        re.split(r"\s+#", found)[0]
        for piece in spans + lines
        for found in re.findall(r"(?:^|-- )(idgate [^`]+)", piece)
        if not found.startswith("idgate --")
    ]
    assert len(commands) >= 8, commands
    for command in commands:
        idgate_command(shlex.split(command)[1:])
    with pytest.raises(click.UsageError):
        idgate_command(["tenant", "create", "acme", "--colour", "red"])
