"""The container a registry target would run in on SageMaker, inside its package.

A package registered for a transform job (services/transform/registration.py)
holds, at its root, the reserved member `.byom-container.json` (`MEMBER`): the
SageMaker API's CreateModel `Image` and the environment the model sees (the
model's `Environment`, the transform job's on top, then the batch variables)::

    {"image": "123.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:1.7-1",
     "environment": {"SAGEMAKER_PROGRAM": "serve.py", "SAGEMAKER_BATCH": "true"}}

It travels inside the package because on AWS a multi-model endpoint fetches only
the `model.tar.gz` a request's TargetModel names, and the container has no
network access: a file beside the package would never reach it. The server reads
it from the extracted package folder when it loads a target, the same way
locally (`ModelCache` fetching the target) and on AWS (SageMaker's `POST
/models`). The name starts with a dot so that no flavor takes it for a model
file (XGBoost's "the only *.json" rule skips hidden files).

Both keys are optional; no other key is allowed. The file is untrusted input and
is held to SageMaker's own limits on the environments it merges: a model's
`Environment` (at most 100 variables, values at most 1024 characters), the
transform job's on top (at most 16, values at most 10240) and the four batch
variables (`SAGEMAKER_BATCH`, `SAGEMAKER_BATCH_STRATEGY`,
`SAGEMAKER_MAX_PAYLOAD_IN_MB`, `SAGEMAKER_MAX_CONCURRENT_TRANSFORMS`): so at most
`MAX_ENTRIES` variables, names matching `NAME` (1 to 1024 characters, SageMaker's
pattern for both), values at most `MAX_VALUE` characters; `image` at most
`MAX_IMAGE` characters (CreateModel's limit) without control characters; the
whole file at most `MAX_BYTES`. A file that breaks any of these is refused with
`ContainerSettingsError` naming the rule, and the target does not load; a
package without it is served with byom's defaults.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from model.errors import ByomModelError

MEMBER = ".byom-container.json"
FILE_NAME = MEMBER  # how errors name it
MAX_ENTRIES = 100 + 16 + 4
MAX_VALUE = 10240
MAX_NAME = 1024
MAX_IMAGE = 255
# Every name and value at its longest, JSON-escaped at worst 12 bytes a character
# (a surrogate pair as two \uXXXX): about 16 MiB, read once per target load.
MAX_BYTES = MAX_ENTRIES * (MAX_NAME + MAX_VALUE) * 12 + 4096
NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]{0,1023}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ContainerSettingsError(ByomModelError):
    """A container.json that breaks the schema; says which rule."""


@dataclass(frozen=True)
class ContainerSettings:
    """The image a target names and the environment its code sees."""

    image: str | None = None
    environment: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


NONE = ContainerSettings()


def _environment(value: Any) -> Mapping[str, str]:
    if not isinstance(value, dict):
        raise ContainerSettingsError("environment must be an object of names to strings")
    if len(value) > MAX_ENTRIES:
        raise ContainerSettingsError(
            f"environment has {len(value)} variables; at most {MAX_ENTRIES}"
        )
    for name, text in value.items():
        if not NAME.fullmatch(name):
            shown = name if len(name) <= 40 else name[:37] + "..."
            raise ContainerSettingsError(
                f"environment: {shown!r} is not a variable name ({NAME.pattern})"
            )
        if not isinstance(text, str):
            raise ContainerSettingsError(f"environment: {name} must be a string")
        if len(text) > MAX_VALUE:
            raise ContainerSettingsError(
                f"environment: {name} is {len(text)} characters; at most {MAX_VALUE}"
            )
    return MappingProxyType(dict(value))


def parse_settings(data: bytes) -> ContainerSettings:
    """The settings in a container.json's bytes; `ContainerSettingsError` says why not."""
    if len(data) > MAX_BYTES:
        raise ContainerSettingsError(f"{FILE_NAME} is over {MAX_BYTES} bytes")
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ContainerSettingsError(f"{FILE_NAME} is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ContainerSettingsError(f"{FILE_NAME} must be an object")
    unknown = sorted(set(document) - {"image", "environment"})
    if unknown:
        raise ContainerSettingsError(
            f"{FILE_NAME}: unknown key {unknown[0]!r}; expected image and environment"
        )
    image = document.get("image")
    if image is not None and (
        not isinstance(image, str) or not image or len(image) > MAX_IMAGE or _CONTROL.search(image)
    ):
        raise ContainerSettingsError(
            f"image must be a non-empty string of at most {MAX_IMAGE} characters"
        )
    environment = _environment(document.get("environment", {}))
    return ContainerSettings(image, environment)


def read_settings(model_dir: Path) -> ContainerSettings:
    """The settings in the package folder `model_dir` (its `MEMBER`); byom's defaults
    (`NONE`) when it has none. `ContainerSettingsError` for one that breaks the schema,
    or is not a plain file."""
    path = Path(model_dir) / MEMBER
    if not path.exists() and not path.is_symlink():
        return NONE
    if path.is_symlink() or not path.is_file():
        raise ContainerSettingsError(f"{MEMBER} must be a plain file")
    with path.open("rb") as file:  # never more than the limit, whatever its size
        data = file.read(MAX_BYTES + 1)
    return parse_settings(data)
