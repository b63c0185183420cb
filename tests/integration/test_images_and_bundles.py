"""What the deployment builds: the container images and the Lambda and source bundles.

- hadolint lints every Dockerfile (from .venv-iac, infra/iac_venv.sh); the
  buildspec builds the GPU image only when asked.
- Each image's entry point runs as a plain process, as its container would.
- The Lambda bundle and the worker image install exactly what their code imports,
  the images copy every first-party module they import, and the source bundle
  holds what the images copy.
"""

from __future__ import annotations

import io
import json
import re
import shlex
import subprocess
import sys
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import boto3
import pytest
import yaml  # type: ignore[import-untyped]
from packaging.requirements import Requirement
from packaging.version import Version

from infra import package_lambda
from infra.local.processes import Service, free_port, http_ok, wait_until
from tests.integration.iac_tools import iac_tool
from tests.unit.test_template import (
    BUILDSPEC,
    GPU_AMI,
    REPO,
    WORKER_DOCKERFILE,
    load_template,
    resource,
)

pytestmark = pytest.mark.integration

REGION = "us-east-1"

MODEL_SERVER_DOCKERFILE = REPO / "model" / "server" / "Dockerfile"
# The same server for GPU endpoints (EndpointAccelerator=gpu): CUDA and onnxruntime-gpu.
MODEL_SERVER_GPU_DOCKERFILE = REPO / "model" / "server" / "Dockerfile.gpu"


def test_dockerfiles_pass_hadolint() -> None:
    hadolint = iac_tool("hadolint")
    dockerfiles = [WORKER_DOCKERFILE, MODEL_SERVER_DOCKERFILE, MODEL_SERVER_GPU_DOCKERFILE]
    # Info-level notes are style; warnings and errors fail.
    result = subprocess.run(
        [str(hadolint), "--failure-threshold", "warning", *map(str, dockerfiles)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


REGISTRY = "111122223333.dkr.ecr.us-east-1.amazonaws.com"


@pytest.mark.parametrize("accelerator", ["cpu", "gpu"])
def test_buildspec_builds_the_gpu_image_only_when_asked(tmp_path: Path, accelerator: str) -> None:
    """The build's script as CodeBuild runs it, with aws and docker that only log."""
    calls = tmp_path / "calls.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # describe-images finds nothing, so every image is built.
    for tool, answer in (("aws", '[ "$2" = describe-images ] && exit 254'), ("docker", "")):
        script = bin_dir / tool
        script.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{calls}"\n{answer}\nexit 0\n')
        script.chmod(0o755)
    commands = yaml.safe_load(BUILDSPEC.read_text())["phases"]["build"]["commands"]
    tag = "0123456789abcdef0123"
    result = subprocess.run(
        ["bash", "-c", "\n".join(commands)],
        env={
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "AWS_REGION": REGION,
            "WORKER_REPOSITORY_URI": f"{REGISTRY}/byom-t/worker",
            "MODEL_SERVER_REPOSITORY_URI": f"{REGISTRY}/byom-t/model-server",
            "IMAGE_TAG": tag,
            "ENDPOINT_ACCELERATOR": accelerator,
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    logged = calls.read_text().splitlines()
    built = [
        (words[words.index("--file") + 1], words[words.index("--tag") + 1])
        for words in (line.split() for line in logged if line.startswith("docker build"))
    ]
    model_server = f"{REGISTRY}/byom-t/model-server"
    expected = [
        ("services/inference_worker/Dockerfile", f"{REGISTRY}/byom-t/worker:{tag}"),
        ("model/server/Dockerfile", f"{model_server}:{tag}"),
    ]
    if accelerator == "gpu":
        expected.append(("model/server/Dockerfile.gpu", f"{model_server}:{tag}-gpu"))
    assert built == expected
    assert [line.split()[-1] for line in logged if line.startswith("docker push")] == [
        image for _, image in expected
    ]
    # The endpoint's image is the one pushed for its accelerator.
    _, gpu_image, cpu_image = resource("Model")["Properties"]["PrimaryContainer"]["Image"]["Fn::If"]
    served = (gpu_image if accelerator == "gpu" else cpu_image)["Fn::Sub"]
    served = served.replace("${ModelServerRepository.RepositoryUri}", model_server)
    assert served.replace("${ImageTag}", tag) == expected[-1][1]


@dataclass
class Dockerfile:
    entrypoint: list[str]
    cmd: list[str]
    env: dict[str, str]
    pip_packages: list[str]


def parse_dockerfile(path: Path) -> Dockerfile:
    """The final stage's entry point, command and environment, and the pip install list."""
    text = re.sub(r"\\\n", " ", path.read_text())
    entrypoint: list[str] = []
    cmd: list[str] = []
    env: dict[str, str] = {}
    packages: list[str] = []
    for line in text.splitlines():
        instruction, _, rest = line.strip().partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            entrypoint, cmd, env = [], [], {}
        elif instruction == "ENTRYPOINT":
            entrypoint = json.loads(rest)
        elif instruction == "CMD":
            cmd = json.loads(rest)
        elif instruction == "ENV":
            env.update(dict(item.split("=", 1) for item in shlex.split(rest)))
        elif instruction == "RUN" and "pip install" in rest:
            words = shlex.split(rest.split("pip install", 1)[1].split("&&")[0])
            skip_next = False
            for word in words:
                if skip_next:
                    skip_next = False
                elif word in ("--constraint", "-c", "-r", "--requirement"):
                    skip_next = True
                elif not word.startswith("-"):
                    packages.append(word)
    return Dockerfile(entrypoint, cmd, env, packages)


def container_command(dockerfile: Dockerfile, args: list[str] | None = None) -> list[str]:
    """What `docker run image [args]` runs, with this venv's python for the image's."""
    command = dockerfile.entrypoint + (dockerfile.cmd if args is None else args)
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


def container_env(dockerfile: Dockerfile, **extra: str) -> dict[str, str]:
    image_env = {k: v for k, v in dockerfile.env.items() if k != "PATH"}
    return {"PATH": "/usr/bin:/bin", "HOME": "/tmp", **image_env, **extra}


def test_worker_entry_point_runs_as_a_process(moto_endpoint: str) -> None:
    dockerfile = parse_dockerfile(WORKER_DOCKERFILE)
    assert dockerfile.entrypoint == ["python", "-m", "services.inference_worker.main"]
    table = f"byom-entry-{uuid.uuid4().hex[:8]}"
    boto3.client(
        "dynamodb",
        endpoint_url=moto_endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    ).create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    aws = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
        "BYOM_REGION": REGION,
        "BYOM_JOBS_TABLE": table,
    }
    # A child of a job that no longer exists: it must start, look, and exit cleanly.
    child = {"BYOM_JOB_ID": "no-such-job", "BYOM_PLAN_KEY": "staging/x/plan.json"}
    # The image's WORKDIR holds shared/ and services/ as the repository root does.
    finished = subprocess.run(
        container_command(dockerfile),
        env=container_env(dockerfile, **aws, **child, AWS_BATCH_JOB_ARRAY_INDEX="0"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 0, finished.stderr
    assert "nothing to do" in finished.stderr
    # Without the scheduler's variables it fails, as Batch should see it fail.
    broken = subprocess.run(
        container_command(dockerfile),
        env=container_env(dockerfile, **aws),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert broken.returncode == 1
    assert "byom_job_id" in broken.stderr


@pytest.fixture
def model_server(model_dir: Path, tmp_path: Path) -> Iterator[tuple[str, Dockerfile]]:
    if not MODEL_SERVER_DOCKERFILE.exists():
        pytest.skip("model/server/Dockerfile does not exist yet")
    dockerfile = parse_dockerfile(MODEL_SERVER_DOCKERFILE)
    port = free_port()
    # SageMaker's contract: `docker run <image> serve`, port from
    # SAGEMAKER_BIND_TO_PORT, the model unpacked in SM_MODEL_DIR. Loopback here.
    service = Service(
        name="model-server",
        command=container_command(dockerfile, ["serve"]),
        env=container_env(
            dockerfile,
            SAGEMAKER_BIND_TO_PORT=str(port),
            SM_MODEL_DIR=str(model_dir),
            BYOM_MODEL_SERVER_HOST="127.0.0.1",
            PYTHONPATH=str(REPO),
        ),
        log_path=tmp_path / "model-server.log",
        cwd=REPO,
    )
    service.start()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: service.check_alive() and http_ok(f"{url}/ping"),
            timeout=60,
            what="model server",
        )
        yield url, dockerfile
    finally:
        service.stop()


def test_model_server_entry_point_follows_the_sagemaker_contract(
    model_server: tuple[str, Dockerfile],
) -> None:
    url, dockerfile = model_server
    assert dockerfile.cmd == ["serve"] or dockerfile.entrypoint[-1] == "serve"
    row = ",".join(["0.5"] * 30) + "\n"
    request = urllib.request.Request(
        f"{url}/invocations",
        data=(row * 3).encode(),
        headers={"Content-Type": "text/csv"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        predictions = response.read().decode().split()
    assert len(predictions) == 3
    assert all(0.0 <= float(value) <= 1.0 for value in predictions)


def _instructions(path: Path) -> list[tuple[str, str]]:
    """A Dockerfile's instructions in order, continuations joined and comments left out."""
    found = []
    for line in re.sub(r"\\\n", " ", path.read_text()).splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            instruction, _, rest = line.strip().partition(" ")
            found.append((instruction.upper(), " ".join(rest.split())))
    return found


# The CUDA version of SageMaker's GPU hosting AMIs (ProductionVariant.InferenceAmiVersion).
AMI_CUDA = {
    "al2-ami-sagemaker-inference-gpu-2": (12, 2),
    "al2-ami-sagemaker-inference-gpu-2-1": (12, 2),
    "al2-ami-sagemaker-inference-gpu-3-1": (12, 4),
    "al2023-ami-sagemaker-inference-gpu-4-1": (13, 0),
}


def test_gpu_model_server_image_is_the_cpu_one_with_cuda_and_onnxruntime_gpu() -> None:
    cpu = parse_dockerfile(MODEL_SERVER_DOCKERFILE)
    gpu = parse_dockerfile(MODEL_SERVER_GPU_DOCKERFILE)
    cpu_pins = dict(word.split("==") for word in cpu.pip_packages if "==" in word)
    gpu_pins = dict(word.split("==") for word in gpu.pip_packages if "==" in word)
    # Exactly the CPU image's pins, onnxruntime-gpu in place of onnxruntime.
    assert "onnxruntime" in cpu_pins and "onnxruntime" not in gpu_pins
    assert "onnxruntime-gpu" not in cpu_pins and "onnxruntime-gpu" in gpu_pins
    assert {k: v for k, v in gpu_pins.items() if k != "onnxruntime-gpu"} == {
        k: v for k, v in cpu_pins.items() if k != "onnxruntime"
    }
    assert [w for w in gpu.pip_packages if "==" not in w] == [
        w for w in cpu.pip_packages if "==" not in w
    ]
    # PyPI's onnxruntime-gpu is built for CUDA 12 up to 1.26 (CUDA 13 from 1.27),
    # and the server is tested against the CPU image's onnxruntime, not older.
    gpu_ort = Version(gpu_pins["onnxruntime-gpu"])
    assert gpu_ort < Version("1.27") and gpu_ort <= Version(cpu_pins["onnxruntime"])
    # The same entry point, user, health check, port, files and model requirements.
    assert (gpu.entrypoint, gpu.cmd) == (cpu.entrypoint, cpu.cmd)
    assert {k: v for k, v in gpu.env.items() if k != "PATH"} == cpu.env
    assert gpu.env["PATH"].startswith("/opt/venv/bin:")
    shared = {"LABEL", "WORKDIR", "COPY", "USER", "EXPOSE", "HEALTHCHECK", "ENTRYPOINT", "CMD"}

    def parallel(path: Path) -> list[tuple[str, str]]:
        return [
            (instruction, rest)
            for instruction, rest in _instructions(path)
            if instruction in shared or "BYOM_PREINSTALLED_LIB" in rest
        ]

    assert parallel(MODEL_SERVER_GPU_DOCKERFILE) == parallel(MODEL_SERVER_DOCKERFILE)
    # A CUDA 12 runtime with cuDNN, no newer than the driver of the AMI the
    # template gives GPU endpoints, and the serving code's Python.
    (base,) = [rest for instruction, rest in _instructions(MODEL_SERVER_GPU_DOCKERFILE)
               if instruction == "FROM"]  # fmt: skip
    found = re.fullmatch(r"\S*nvidia/cuda:(\d+)\.(\d+)\.\d+-cudnn-runtime-ubuntu[\d.]+", base)
    assert found, base
    cuda = (int(found.group(1)), int(found.group(2)))
    assert cuda[0] == 12
    (variant,) = resource("EndpointConfig")["Properties"]["ProductionVariants"]
    ami = variant["InferenceAmiVersion"]["Fn::If"][1]
    assert ami == GPU_AMI and cuda <= AMI_CUDA[ami]
    assert "python3.11 -m venv /opt/venv" in MODEL_SERVER_GPU_DOCKERFILE.read_text()


# ------------------------------------------------------------------ what gets installed


def _requirement_closure(roots: list[str]) -> set[str]:
    """Distributions the roots pull in, as installed in this venv."""
    seen: set[str] = set()
    pending = [_normalize(root) for root in roots]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        for spec in metadata.requires(name) or []:
            requirement = Requirement(spec)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(_normalize(requirement.name))
    return seen


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


IMPORTED_DISTRIBUTIONS = """
import importlib, json, sys
from importlib import metadata
before = set(sys.modules)
for module in sys.argv[1:]:
    importlib.import_module(module)
owners = metadata.packages_distributions()
names = {top for name in set(sys.modules) - before if (top := name.split(".")[0]) in owners}
print(json.dumps(sorted({d for top in names for d in owners[top]})))
"""


def _imported_distributions(modules: list[str], cwd: Path) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", IMPORTED_DISTRIBUTIONS, *modules],
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PYTHONPATH": str(cwd)},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    # byom itself is installed in the venv (editable, for the byom command); its
    # modules are what is being packaged, not a dependency.
    return {_normalize(name) for name in json.loads(result.stdout)} - {"byom"}


def test_lambda_bundle_installs_what_the_handlers_import(tmp_path: Path) -> None:
    bundle = tmp_path / "lambda.zip"
    package_lambda.build_lambda(bundle, with_dependencies=False)
    root = tmp_path / "bundle"
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(root)
    handlers = sorted(
        {
            item["Properties"]["Handler"].rsplit(".", 1)[0]
            for item in load_template()["Resources"].values()
            if item["Type"] == "AWS::Lambda::Function"
            and "ZipFile" not in item["Properties"]["Code"]
        }
    )
    # Imported from the bundle alone (plus this venv's site-packages for libraries).
    imported = _imported_distributions(handlers, root)
    installed = _requirement_closure(list(package_lambda.LAMBDA_REQUIREMENTS))
    assert imported - installed == set()
    assert not {"pandas", "numpy", "xgboost", "xgboost-cpu"} & installed


def test_worker_image_installs_what_the_worker_imports() -> None:
    packages = parse_dockerfile(WORKER_DOCKERFILE).pip_packages
    assert "pyarrow" in packages
    imported = _imported_distributions(["services.inference_worker.main"], REPO)
    # pyarrow imports cloudpickle only when it is installed (else pickle).
    optional = {"cloudpickle"}
    assert imported - _requirement_closure(packages) - optional == set()
    lock = {
        _normalize(line.split("==")[0])
        for line in (REPO / "requirements.lock").read_text().splitlines()
        if "==" in line
    }
    assert {_normalize(p) for p in packages} <= lock


def test_source_bundle_has_what_the_images_copy(tmp_path: Path) -> None:
    out = tmp_path / "source.zip"
    package_lambda.build_source(out)
    with zipfile.ZipFile(out) as archive:
        names = set(archive.namelist())
    assert "infra/buildspec.yml" in names
    assert "requirements.lock" in names
    for dockerfile in (WORKER_DOCKERFILE, MODEL_SERVER_DOCKERFILE, MODEL_SERVER_GPU_DOCKERFILE):
        assert dockerfile.relative_to(REPO).as_posix() in names
        for line in re.sub(r"\\\n", " ", dockerfile.read_text()).splitlines():
            if line.startswith("COPY ") and "--from" not in line:
                for source in shlex.split(line)[1:-1]:
                    prefix = source.rstrip("/")
                    assert any(n == prefix or n.startswith(prefix + "/") for n in names), source
    assert not any(name.startswith("model/artifacts/") for name in names)
    buffer = io.BytesIO(out.read_bytes())
    assert zipfile.is_zipfile(buffer)


def test_the_deployed_packages_requirements_reach_the_image_build(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("scipy==1.17.1\n")
    out = tmp_path / "source.zip"
    package_lambda.build_source(out, model_requirements=requirements)
    with zipfile.ZipFile(out) as archive:
        baked = archive.read(package_lambda.MODEL_REQUIREMENTS_ENTRY).decode()
    assert baked == "scipy==1.17.1\n"
    # The model server's images copy model/server/ and install the file from there.
    for path in (MODEL_SERVER_DOCKERFILE, MODEL_SERVER_GPU_DOCKERFILE):
        dockerfile = path.read_text()
        assert package_lambda.MODEL_REQUIREMENTS_ENTRY in dockerfile, path
        assert "BYOM_PREINSTALLED_LIB" in dockerfile, path


IMPORTED_FIRST_PARTY = """
import json, sys
from pathlib import Path
import model.server.app, model.server.__main__
root = Path.cwd().resolve()
files = []
for module in list(sys.modules.values()):
    path = getattr(module, "__file__", None)
    if path and Path(path).resolve().is_relative_to(root):
        relative = Path(path).resolve().relative_to(root)
        if relative.parts[0] in ("model", "services", "shared"):
            files.append(str(relative))
print(json.dumps(sorted(files)))
"""


@pytest.mark.parametrize(
    "dockerfile", [MODEL_SERVER_DOCKERFILE, MODEL_SERVER_GPU_DOCKERFILE, WORKER_DOCKERFILE]
)
def test_images_copy_every_first_party_module_they_import(dockerfile: Path) -> None:
    """A module the server (or worker) imports but the image does not copy would
    only fail when SageMaker (or Batch) starts the container."""
    copied = [
        source
        for line in dockerfile.read_text().splitlines()
        if line.startswith("COPY ") and "--from=" not in line
        for source in line.split()[1:-1]
    ]
    entry = "model.server.app, model.server.__main__"
    if dockerfile == WORKER_DOCKERFILE:
        entry = "services.inference_worker.main"
    script = IMPORTED_FIRST_PARTY.replace("model.server.app, model.server.__main__", entry)
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PYTHONPATH": str(REPO)},
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for path in json.loads(result.stdout):
        assert any(
            path == source or path.startswith(source.rstrip("/") + "/") for source in copied
        ), f"{dockerfile.relative_to(REPO)} does not copy {path}"
