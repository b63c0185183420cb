"""The handlers a SageMaker framework container supplies to a script that leaves them out.

An inference script defines `model_fn` and any of `input_fn`, `predict_fn` and
`output_fn` (model/inference_script.py); the container it runs in fills in the
rest. Which defaults it gets depends on the container image the model names
(its ECR repository, as model/server/containers.py picks serving defaults):

- `sagemaker-scikit-learn` (aws/sagemaker-scikit-learn-container, `serving.py`):
  `input_fn` decodes with the toolkit's decoder and casts CSV and JSON to
  float32; `predict_fn` is `model.predict(data)`; `output_fn` the toolkit's
  encoder in the Accept. A script with only `model_fn` predicts (SageMaker's own
  Iris example notebook relies on it).
- `sagemaker-xgboost` script mode (aws/sagemaker-xgboost-container,
  `handler_service.py`): `input_fn` reads `text/csv` and libsvm
  (`text/libsvm`, `text/x-libsvm`) into an `xgboost.DMatrix` and refuses other
  types (415); `predict_fn` is `model.predict(data, validate_features=False)`;
  `output_fn` the toolkit's encoder.
- any other image, or none: the generic inference toolkit's defaults
  (sagemaker-inference-toolkit's `default_inference_handler.py`): `input_fn` and
  `output_fn` as above without the cast, and no `predict_fn`: a script must
  define one (or `transform_fn`), as the toolkit raises for it.

Documented differences: the XGBoost container reads CSV by sniffing its delimiter
and recordio-protobuf too; here CSV is comma-separated and recordio-protobuf is
refused. libsvm rows go through byom's bounded reader (model/libsvm.py), which
gives the same missing values as the container's sparse matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from model.codecs import (
    CSV,
    JSON,
    LIBSVM_TYPES,
    NPY,
    TYPES,
    NotAcceptable,
    UnsupportedFormat,
    accepted,
    decode,
    encode,
)
from model.libsvm import parse_libsvm

SCIKIT_LEARN_REPOSITORY = "sagemaker-scikit-learn"
XGBOOST_REPOSITORY = "sagemaker-xgboost"

InputFn = Callable[[Any, str], Any]
PredictFn = Callable[[Any, Any], Any]
OutputFn = Callable[[Any, str], Any]


def repository_of(image: str) -> str:
    """`<registry>/<repository>[:tag | @digest]` -> the repository's last path part."""
    without_digest = image.split("@", 1)[0]
    path = without_digest.rsplit("/", 1)[-1]
    return path.split(":", 1)[0].lower()


# --- the generic toolkit ---------------------------------------------------------------


def default_input_fn(body: str | bytes, content_type: str) -> np.ndarray:
    return decode(body, content_type)


def default_output_fn(prediction: Any, accept: str) -> tuple[bytes, str]:
    """The first type of `accept` the default encoder writes, as the toolkit picks it."""
    for wanted in accepted(accept):
        if wanted in TYPES:
            return encode(prediction, wanted), wanted
    raise NotAcceptable(
        f"cannot answer with {accept!r} without an output_fn; accept {CSV}, {JSON} or {NPY}, "
        "or define output_fn in the inference script"
    )


# --- scikit-learn ---------------------------------------------------------------------


def sklearn_input_fn(body: str | bytes, content_type: str) -> np.ndarray:
    """The scikit-learn container's: CSV and JSON become float32 arrays."""
    array = decode(body, content_type)
    return array.astype(np.float32) if content_type in (CSV, JSON) else array


def sklearn_predict_fn(data: Any, model: Any) -> Any:
    return model.predict(data)


# --- XGBoost --------------------------------------------------------------------------


def xgboost_input_fn(body: str | bytes, content_type: str) -> Any:
    """The XGBoost container's: CSV or libsvm into a DMatrix; other types refused."""
    import xgboost  # only XGBoost scripts need it

    if content_type == CSV:
        return xgboost.DMatrix(_csv_rows(body))
    if content_type in LIBSVM_TYPES:
        raw = body.encode() if isinstance(body, str) else body
        return xgboost.DMatrix(parse_libsvm(raw, None))
    raise UnsupportedFormat(
        f"cannot read {content_type!r} without an input_fn: the XGBoost container reads "
        f"{CSV} and {', '.join(LIBSVM_TYPES)}; or define input_fn in the inference script"
    )


def _csv_rows(body: str | bytes) -> np.ndarray:
    """A CSV body as rows: one row (or one column) stays 2-D, as a DMatrix needs."""
    array = decode(body, CSV)
    if array.ndim == 2:
        return array
    text = body if isinstance(body, str) else body.decode("utf-8", "replace")
    first = next((line for line in text.splitlines() if line.strip()), "")
    return array.reshape(-1, first.count(",") + 1)


def xgboost_predict_fn(data: Any, model: Any) -> Any:
    return model.predict(data, validate_features=False)


@dataclass(frozen=True)
class FrameworkHandlers:
    """The defaults one container image supplies."""

    name: str
    input_fn: InputFn
    predict_fn: PredictFn | None  # None: the script must define predict_fn
    output_fn: OutputFn


TOOLKIT = FrameworkHandlers(
    "the SageMaker inference toolkit", default_input_fn, None, default_output_fn
)
SCIKIT_LEARN = FrameworkHandlers(
    "the scikit-learn container", sklearn_input_fn, sklearn_predict_fn, default_output_fn
)
XGBOOST = FrameworkHandlers(
    "the XGBoost container", xgboost_input_fn, xgboost_predict_fn, default_output_fn
)


def handlers_for(image: str | None) -> FrameworkHandlers:
    """The defaults of the container `image` names; the toolkit's for none or another."""
    repository = repository_of(image) if image else ""
    if repository == SCIKIT_LEARN_REPOSITORY:
        return SCIKIT_LEARN
    if repository == XGBOOST_REPOSITORY:
        return XGBOOST
    return TOOLKIT
