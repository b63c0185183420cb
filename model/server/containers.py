"""Serving defaults by container image: what a request leaves unsaid, and how
answers look, as the SageMaker container a model names would do it.

A SageMaker user's job depends on the serving defaults of the `Image` its model
names. A registry target's container settings (model/server/container_settings.py)
name that image; its ECR repository name picks a row of this table (the
registry, account, region and tag do not matter):

- `sagemaker-xgboost`: no Accept means `text/csv`; no Content-Type means libsvm;
  `text/libsvm` (`text/x-libsvm`, `libsvm`) is read too; XGBoost's answers.
- `sagemaker-scikit-learn`: no Accept means `application/json`; no Content-Type
  means `application/json`; the toolkit's encoder writes the answers.
- any other image, or none: byom's defaults: no Accept answers in the request's
  type; no Content-Type is refused (415); byom's answers.

- *XGBoost's answers* (its algorithm-mode `serve.py`): with `SAGEMAKER_BATCH` set
  (every transform job sets it) one `str(prediction)` per line, whatever the
  Accept; otherwise JSON is `{"predictions": [{"score": p}, ...]}` and CSV one
  prediction per line (`str` of each value, a row's values joined by commas).
- *the toolkit's encoder* (sagemaker-containers, which the scikit-learn container
  serves with): JSON is the bare list of predictions, CSV numpy's `savetxt`
  with `%s` (model/codecs.py `encode`).
- *byom's*: `{"predictions": [...]}`, CSV of shortest round-trip numbers
  (model/codecs.py `write_answer`).
- `SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT` in the model's environment replaces the
  default Accept, as both containers read it; an Accept of `*/*` counts as none
  where the container has a default.

An inference script (code/inference.py, or `SAGEMAKER_PROGRAM`) is served as
the framework containers serve one (script mode, sagemaker-containers' worker on
both images): no Accept is `application/json` (or
`SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT`); a missing Content-Type is
`application/json` on both images, and on any other image reaches the script's
`input_fn` as `""` (byom's rule, as before).

Documented differences: byom answers `application/x-npy` on every image and
never `application/jsonlines` or recordio-protobuf, and reads neither parquet nor
recordio-protobuf; the XGBoost container answers an empty body with 204, byom
refuses it (400); a script's missing handlers are each image's defaults
(model/framework_handlers.py); a *flavor* (no script) on the scikit-learn image
gives byom's sklearn flavor's answer, the positive class's probability
(model/flavors/sklearn_flavor.py), where the container's script would call
`model.predict`; image (vision) models keep byom's behaviour.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from model.codecs import (
    CSV,
    DECODERS,
    JSON,
    LIBSVM_DECODERS,
    TYPES,
    Decoder,
    NotAcceptable,
    accepted,
    answer_type,
    encode,
    write_answer,
)
from model.framework_handlers import SCIKIT_LEARN_REPOSITORY, XGBOOST_REPOSITORY
from model.framework_handlers import repository_of as repository_of
from model.inference_script import DEFAULT_ACCEPT_VARIABLE

BATCH_VARIABLE = "SAGEMAKER_BATCH"

# (predictions, the answer's media type, the model's environment) -> body
Writer = Callable[[np.ndarray, str, Mapping[str, str]], bytes]


def byom_answer(predictions: np.ndarray, answer: str, environment: Mapping[str, str]) -> bytes:
    return write_answer(predictions, answer)


def toolkit_answer(predictions: np.ndarray, answer: str, environment: Mapping[str, str]) -> bytes:
    return encode(predictions, answer)


def xgboost_answer(predictions: np.ndarray, answer: str, environment: Mapping[str, str]) -> bytes:
    """As sagemaker-xgboost-container's algorithm-mode `invocations` writes it."""
    values = predictions.tolist()
    if environment.get(BATCH_VARIABLE):  # the container tests the variable's truth
        return ("\n".join(map(str, values)) + "\n").encode()
    if answer == JSON:
        return json.dumps({"predictions": [{"score": value} for value in values]}).encode()
    if answer == CSV:
        lines = (
            ",".join(map(str, value)) if isinstance(value, list) else str(value) for value in values
        )
        return ("\n".join(lines) + "\n").encode()
    return write_answer(predictions, answer)


@dataclass(frozen=True)
class ContainerDefaults:
    """One row of the table: what a request to a model on this image leaves unsaid."""

    name: str
    repository: str | None  # the ECR repository that selects it; None: the default row
    accept: str | None  # no Accept (or */*): this; None: the request's own type
    content_type: str | None  # no Content-Type: read as this; None: refused (415)
    script_content_type: str  # no Content-Type, for an inference script
    decoders: Mapping[str, Decoder] = field(default_factory=lambda: dict(DECODERS))
    writer: Writer = byom_answer

    def answer_type(self, accept: str | None, content_type: str, env: Mapping[str, str]) -> str:
        """The type to answer a flavor's request in."""
        default = env.get(DEFAULT_ACCEPT_VARIABLE) or self.accept
        if default is None:
            return answer_type(accept, content_type)
        if not accept or accept.strip() == "*/*":
            accept = default
        for wanted in accepted(accept):
            if wanted in TYPES:
                return wanted
        raise NotAcceptable(f"cannot answer with {accept!r}; accept {', '.join(TYPES)}")


BYOM = ContainerDefaults("byom", None, None, None, "")
XGBOOST = ContainerDefaults(
    "sagemaker-xgboost",
    XGBOOST_REPOSITORY,
    accept=CSV,
    content_type="text/libsvm",
    script_content_type=JSON,
    decoders={**DECODERS, **LIBSVM_DECODERS},
    writer=xgboost_answer,
)
SCIKIT_LEARN = ContainerDefaults(
    "sagemaker-scikit-learn",
    SCIKIT_LEARN_REPOSITORY,
    accept=JSON,
    content_type=JSON,
    script_content_type=JSON,
    writer=toolkit_answer,
)
TABLE = (XGBOOST, SCIKIT_LEARN)


def defaults_for(image: str | None) -> ContainerDefaults:
    """The row for `image`; byom's own for no image or one not in the table."""
    if not image:
        return BYOM
    repository = repository_of(image)
    for row in TABLE:
        if repository == row.repository:
            return row
    return BYOM
