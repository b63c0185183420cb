"""Transform requests from AWS's own example notebooks (aws/amazon-sagemaker-examples),
run on the local stack, their `.out` objects checked against what each notebook
says or prints they contain.

Each test names its notebook, copies its request shape and its data's shape, and
stands in for the trained model with one trained here (the same framework and
container where byom serves it; a small script where the notebook's framework,
AutoGluon, is not installed).
"""

from __future__ import annotations

import io
import json
import re
import textwrap

import joblib
import numpy as np
import pandas as pd
import pytest
import xgboost
from sklearn import tree
from sklearn.datasets import load_breast_cancer, load_iris

from infra.local.stack import LocalStack
from infra.local.stack_config import StackConfig
from tests.integration.sagemaker_jobs import (
    SKLEARN_IMAGE,
    XGBOOST_IMAGE,
    get,
    keys_under,
    put,
    tar_gz,
    wait_for_job,
)

pytestmark = pytest.mark.integration

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


@pytest.fixture(scope="module")
def stack(model_dir, tmp_path_factory):
    # Two of the notebooks' models are scripts: code runs only with the opt-in.
    config = StackConfig(
        model_dir=model_dir,
        log_dir=tmp_path_factory.mktemp("stack-logs"),
        settings={"BYOM_ALLOW_MODEL_CODE": "true"},
    )
    with LocalStack(config) as stack:
        yield stack


@pytest.fixture(scope="module")
def s3(stack):
    return stack.client("s3")


@pytest.fixture(scope="module")
def sagemaker(stack):
    return stack.client("sagemaker")


def completed(stack, sagemaker, name: str) -> dict:
    described = wait_for_job(sagemaker, name)
    status, reason = described["TransformJobStatus"], described.get("FailureReason")
    assert status == "Completed", f"{name}: {status}: {reason}\n{stack.logs()}"
    return described


# --- scikit_learn_iris/scikit_learn_estimator_example_with_batch_transform_outputs.ipynb

# The notebook's scikit_learn_iris.py, as its SKLearn estimator packs it (code/).
IRIS_SCRIPT = '''
import os
import joblib


def model_fn(model_dir):
    """Deserialized and return fitted model"""
    clf = joblib.load(os.path.join(model_dir, "model.joblib"))
    return clf
'''


def test_scikit_learn_iris_one_json_list_per_file(stack, s3, sagemaker, tmp_path):
    """scikit_learn_estimator_example_with_batch_transform_outputs.ipynb: 10 files of
    100 iris rows, `transformer.transform(batch_input_s3, content_type="text/csv")`
    (no split: one request per file; no Accept: the container answers JSON). The
    notebook prints each `iris_sample_X_i.csv.out` as one list,
    `[0.0, 2.0, 0.0, 2.0, ...]`, and diffs it equal to the file's labels."""
    bucket = stack.config.bucket
    features, labels = load_iris(return_X_y=True)
    iris = np.insert(features, 0, labels, axis=1)  # the notebook's data/iris.csv: label first
    classifier = tree.DecisionTreeClassifier(max_leaf_nodes=30, random_state=0)
    classifier.fit(iris[:, 1:], iris[:, 0])
    joblib.dump(classifier, tmp_path / "model.joblib")
    package = tar_gz(
        {
            "model.joblib": (tmp_path / "model.joblib").read_bytes(),
            "code/scikit_learn_iris.py": IRIS_SCRIPT.encode(),
        }
    )
    model_url = put(s3, bucket, "notebooks/iris/model.tar.gz", package)
    sagemaker.create_model(
        ModelName="sagemaker-scikit-learn-iris",
        PrimaryContainer={
            "Image": SKLEARN_IMAGE,
            "ModelDataUrl": model_url,
            "Environment": {
                "SAGEMAKER_PROGRAM": "scikit_learn_iris.py",
                "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
                "SAGEMAKER_REGION": stack.config.region,
            },
        },
        ExecutionRoleArn=ROLE,
    )

    rng = np.random.default_rng(0)
    expected_labels = {}
    for i in range(10):  # `shuf -n 100`, then `cut -d',' -f2-` (X) and `-f1` (Y)
        sample = iris[rng.choice(len(iris), 100, replace=False)]
        x = pd.DataFrame(sample[:, 1:]).to_csv(header=False, index=False).encode()
        put(s3, bucket, f"notebooks/iris/batch_input/iris_sample_X_{i}.csv", x)
        expected_labels[i] = sample[:, 0].tolist()

    # The request the SDK sends for the notebook's two calls.
    sagemaker.create_transform_job(
        TransformJobName="sagemaker-scikit-learn-iris-batch",
        ModelName="sagemaker-scikit-learn-iris",
        TransformInput={
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": f"s3://{bucket}/notebooks/iris/batch_input",
                }
            },
            "ContentType": "text/csv",
        },
        TransformOutput={"S3OutputPath": f"s3://{bucket}/sagemaker-scikit-learn-iris-batch"},
        TransformResources={"InstanceCount": 1, "InstanceType": "ml.m5.xlarge"},
    )
    completed(stack, sagemaker, "sagemaker-scikit-learn-iris-batch")

    out = "sagemaker-scikit-learn-iris-batch/"
    assert sorted(keys_under(s3, bucket, out)) == sorted(
        f"{out}iris_sample_X_{i}.csv.out" for i in range(10)
    )
    for i, labels_of_file in expected_labels.items():
        answer = get(s3, bucket, f"{out}iris_sample_X_{i}.csv.out").decode()
        assert answer == json.dumps(labels_of_file)  # "[0.0, 2.0, 0.0, ...]", one line
        # the notebook's check: sed 's/[["]//g' | sed 's/, \|]/\n/g' equals the Y file
        assert answer.replace("[", "").replace("]", "\n").replace(", ", "\n").split() == [
            str(label) for label in labels_of_file
        ]


# --- Batch Transform - breast cancer prediction with lowel level SDK.ipynb


@pytest.fixture(scope="module")
def breast_cancer(stack, s3, sagemaker, tmp_path_factory):
    """The notebook's XGBoost model (binary:logistic, its hyperparameters) on the same
    data (WDBC: id, diagnosis, 30 features), its batch files, and its model."""
    bucket = stack.config.bucket
    data = load_breast_cancer(as_frame=True).frame
    features = data.drop(columns="target")
    rng = np.random.default_rng(1)
    ids = rng.choice(np.arange(840_000, 940_000), len(data), replace=False)
    rand_split = rng.random(len(data))
    train, batch = rand_split < 0.9, rand_split >= 0.9
    booster = xgboost.train(
        {
            "objective": "binary:logistic",
            "max_depth": 5,
            "eta": 0.2,
            "gamma": 4,
            "min_child_weight": 6,
            "subsample": 0.8,
            "seed": 0,
        },
        xgboost.DMatrix(features[train], label=1 - data["target"][train]),  # 1: malignant
        num_boost_round=100,
    )
    path = tmp_path_factory.mktemp("breast-cancer") / "xgboost-model"
    booster.save_model(str(path.with_suffix(".json")))
    model_url = put(
        s3,
        bucket,
        "notebooks/breast-cancer/model.tar.gz",
        tar_gz({"xgboost-model": path.with_suffix(".json").read_bytes()}),
    )
    sagemaker.create_model(
        ModelName="xgb-breast-cancer",
        PrimaryContainer={"Image": XGBOOST_IMAGE, "ModelDataUrl": model_url},
        ExecutionRoleArn=ROLE,
    )
    data_batch = pd.concat([pd.Series(ids, name="id"), features], axis=1)[batch]
    with_id = data_batch.to_csv(index=False, header=False).encode()
    no_id = data_batch.drop(columns="id").to_csv(index=False, header=False).encode()
    put(s3, bucket, "notebooks/breast-cancer/batch/batch_data.csv", with_id)
    put(s3, bucket, "notebooks/breast-cancer/batch/batch_data_noID.csv", no_id)
    probabilities = booster.inplace_predict(data_batch.drop(columns="id").to_numpy())
    return {"with_id": with_id, "probabilities": np.asarray(probabilities)}


def breast_cancer_request(bucket: str, name: str, batch_file: str) -> dict:
    """The notebook's `request`, job name, input and output set per run."""
    return {
        "TransformJobName": name,
        "ModelName": "xgb-breast-cancer",
        "TransformOutput": {
            "S3OutputPath": f"s3://{bucket}/notebooks/breast-cancer/output/{name}",
            "Accept": "text/csv",
            "AssembleWith": "Line",
        },
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": f"s3://{bucket}/notebooks/breast-cancer/batch/{batch_file}",
                }
            },
            "ContentType": "text/csv",
            "SplitType": "Line",
            "CompressionType": "None",
        },
        "TransformResources": {"InstanceType": "ml.m4.xlarge", "InstanceCount": 1},
    }


def breast_cancer_out(s3, bucket: str, name: str, batch_file: str) -> list[str]:
    body = get(s3, bucket, f"notebooks/breast-cancer/output/{name}/{batch_file}.out")
    assert body.endswith(b"\n")
    return body.decode().split("\n")[:-1]


def test_breast_cancer_without_data_processing(stack, s3, sagemaker, breast_cancer):
    """Step 1: "It should show the list probabilities of tumors being malignant": one
    probability a line, for batch_data_noID.csv."""
    bucket = stack.config.bucket
    request = breast_cancer_request(bucket, "Batch-Transform-1", "batch_data_noID.csv")
    sagemaker.create_transform_job(**request)
    completed(stack, sagemaker, "Batch-Transform-1")
    lines = breast_cancer_out(s3, bucket, "Batch-Transform-1", "batch_data_noID.csv")
    np.testing.assert_allclose(
        np.array(lines, dtype=float), breast_cancer["probabilities"], rtol=0, atol=1e-6
    )


def test_breast_cancer_join_input_without_the_id_column(stack, s3, sagemaker, breast_cancer):
    """Step 2: InputFilter "$[1:]" (drop the id), JoinSource "Input": "the list of tumors
    identified by their original feature columns and their corresponding probabilities"."""
    bucket = stack.config.bucket
    request = breast_cancer_request(bucket, "Batch-Transform-2", "batch_data.csv")
    request["DataProcessing"] = {"InputFilter": "$[1:]", "JoinSource": "Input"}
    sagemaker.create_transform_job(**request)
    completed(stack, sagemaker, "Batch-Transform-2")
    lines = breast_cancer_out(s3, bucket, "Batch-Transform-2", "batch_data.csv")
    originals = breast_cancer["with_id"].decode().split("\n")[:-1]
    assert [line.rsplit(",", 1)[0] for line in lines] == originals  # id, 30 features as sent
    joined = pd.read_csv(io.StringIO("\n".join(lines)), header=None)
    assert joined.shape == (len(originals), 32)
    np.testing.assert_allclose(joined[31], breast_cancer["probabilities"], rtol=0, atol=1e-6)


def test_breast_cancer_output_filter_keeps_id_and_probability(stack, s3, sagemaker, breast_cancer):
    """Step 3: OutputFilter "$[0, -1]" (as the notebook writes it, with a space): "2
    columns: the ID and their corresponding probabilities of being malignant"."""
    bucket = stack.config.bucket
    request = breast_cancer_request(bucket, "Batch-Transform-3", "batch_data.csv")
    request["DataProcessing"] = {
        "InputFilter": "$[1:]",
        "JoinSource": "Input",
        "OutputFilter": "$[0, -1]",
    }
    sagemaker.create_transform_job(**request)
    completed(stack, sagemaker, "Batch-Transform-3")
    lines = breast_cancer_out(s3, bucket, "Batch-Transform-3", "batch_data.csv")
    originals = breast_cancer["with_id"].decode().split("\n")[:-1]
    assert [line.split(",")[0] for line in lines] == [row.split(",")[0] for row in originals]
    assert {line.count(",") for line in lines} == {1}
    probabilities = np.array([line.split(",")[1] for line in lines], dtype=float)
    np.testing.assert_allclose(probabilities, breast_cancer["probabilities"], rtol=0, atol=1e-6)


# --- autogluon-tabular-containers/AutoGluon_Tabular_SageMaker_Containers.ipynb

# The notebook's scripts/tabular_serve-batch.py with AutoGluon's TabularPredictor
# replaced by a stand-in of the same surface (the columns it was trained on, predict,
# predict_proba): the transform_fn is the notebook's (one long line wrapped).
AUTOGLUON_SCRIPT = textwrap.dedent('''
    import json
    import os
    from io import StringIO

    import pandas as pd


    class TabularPredictor:
        """Stands in for autogluon.tabular.TabularPredictor: > 40 years old is >50K."""

        def __init__(self, columns):
            self.columns = columns

        @classmethod
        def load(cls, model_dir):
            with open(os.path.join(model_dir, "columns.json")) as f:
                return cls(json.load(f))

        def predict(self, data):
            return (data["age"] > 40).map({True: " >50K", False: " <=50K"}).rename("class")

        def predict_proba(self, data):
            rich = (data["age"] > 40).astype(float)
            return pd.DataFrame({" <=50K": 1 - rich, " >50K": rich})


    def model_fn(model_dir):
        """loads model from previously saved artifact"""
        model = TabularPredictor.load(model_dir)
        globals()["column_names"] = model.columns

        return model


    def transform_fn(
        model, request_body, input_content_type, output_content_type="application/json"
    ):
        if input_content_type == "text/csv":
            buf = StringIO(request_body)
            data = pd.read_csv(buf, header=None)
            num_cols = len(data.columns)
            if num_cols != len(column_names):
                raise Exception(
                    f"Invalid data format. Input data has {num_cols} "
                    f"while the model expects {len(column_names)}"
                )

            else:
                data.columns = column_names

        else:
            raise Exception(f"{input_content_type} content type not supported")

        pred = model.predict(data)
        pred_proba = model.predict_proba(data)
        prediction = pd.concat([pred, pred_proba], axis=1)

        return prediction.to_json(), output_content_type
''')

AUTOGLUON_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/autogluon-inference:0.6-cpu-py38"
ADULT_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status",
    "occupation", "relationship", "race", "sex", "capital-gain", "capital-loss",
    "hours-per-week", "native-country",
]  # fmt: skip


def adult_rows(count: int, seed: int) -> pd.DataFrame:
    """Rows shaped as the notebook's data/test.csv: 14 features, then `class`."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(17, 90, count),
            "workclass": rng.choice([" Private", " State-gov", " Self-emp-not-inc"], count),
            "fnlwgt": rng.integers(10_000, 1_000_000, count),
            "education": rng.choice([" Bachelors", " HS-grad", " Masters"], count),
            "education-num": rng.integers(1, 16, count),
            "marital-status": rng.choice([" Never-married", " Divorced"], count),
            "occupation": rng.choice([" Adm-clerical", " Sales", " Tech-support"], count),
            "relationship": rng.choice([" Husband", " Not-in-family"], count),
            "race": rng.choice([" White", " Black"], count),
            "sex": rng.choice([" Male", " Female"], count),
            "capital-gain": rng.integers(0, 5000, count),
            "capital-loss": rng.integers(0, 500, count),
            "hours-per-week": rng.integers(10, 80, count),
            "native-country": rng.choice([" United-States", " Mexico"], count),
        }
    )
    frame["class"] = rng.choice([" <=50K", " >50K"], count)
    return frame


def test_autogluon_input_filter_slice_end_is_exclusive(stack, s3, sagemaker):
    """AutoGluon_Tabular_SageMaker_Containers.ipynb: `input_filter="$[:14]"  # filter-out
    target variable` on 15-column rows. Its script raises unless a row has exactly the
    14 training columns, so the notebook (CI-tested on SageMaker) shows `$[:14]` takes
    columns 0..13: the slice end is exclusive. `output_filter="$['class']"` keeps the
    predicted classes, which it reads with `pd.read_json(..., orient="index")`."""
    bucket = stack.config.bucket
    package = tar_gz(
        {
            "columns.json": json.dumps(ADULT_COLUMNS).encode(),
            "code/tabular_serve-batch.py": AUTOGLUON_SCRIPT.encode(),
        }
    )
    model_url = put(s3, bucket, "notebooks/autogluon/model.tar.gz", package)
    sagemaker.create_model(
        ModelName="sagemaker-autogluon-batch-transform-trained-model",
        PrimaryContainer={
            "Image": AUTOGLUON_IMAGE,
            "ModelDataUrl": model_url,
            "Environment": {
                "SAGEMAKER_PROGRAM": "tabular_serve-batch.py",
                "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
            },
        },
        ExecutionRoleArn=ROLE,
    )
    test = adult_rows(100, seed=2)
    put(
        s3,
        bucket,
        "notebooks/autogluon/test_no_header.csv",
        test.to_csv(header=False, index=False).encode(),
    )

    # model.transformer(strategy="MultiRecord", max_payload=6, max_concurrent_transforms=1,
    # accept="application/json", assemble_with="Line") and transformer.transform(...).
    sagemaker.create_transform_job(
        TransformJobName="sagemaker-autogluon-batch-transform",
        ModelName="sagemaker-autogluon-batch-transform-trained-model",
        MaxConcurrentTransforms=1,
        MaxPayloadInMB=6,
        BatchStrategy="MultiRecord",
        TransformInput={
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": f"s3://{bucket}/notebooks/autogluon/test_no_header.csv",
                }
            },
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={
            "S3OutputPath": f"s3://{bucket}/notebooks/autogluon/output/",
            "Accept": "application/json",
            "AssembleWith": "Line",
        },
        TransformResources={"InstanceCount": 1, "InstanceType": "ml.m5.2xlarge"},
        DataProcessing={"InputFilter": "$[:14]", "OutputFilter": "$['class']"},
    )
    completed(stack, sagemaker, "sagemaker-autogluon-batch-transform")

    body = get(s3, bucket, "notebooks/autogluon/output/test_no_header.csv.out").decode()
    # 100 rows fit one 6 MB request: one answer, one line.
    assert body.endswith("\n") and body.count("\n") == 1
    expected = {str(i): " >50K" if age > 40 else " <=50K" for i, age in enumerate(test["age"])}
    assert json.loads(body) == expected
    # the notebook's read: one row per prediction, in order
    preds = pd.read_json(io.StringIO(body), orient="index").sort_index()
    assert len(preds) == 100
    assert list(preds[0]) == [expected[str(i)] for i in range(100)]


# --- sm-clarify_model_bias_monitor_batch_transform_json.ipynb

# Stands in for the notebook's Linear Learner model (a built-in algorithm byom does
# not run): the same answer shape, {"predictions": [{"predicted_label", "score"}]}.
LINEAR_LEARNER_SCRIPT = textwrap.dedent("""
    import json
    import math
    import os


    def model_fn(model_dir):
        with open(os.path.join(model_dir, "weights.json")) as f:
            return json.load(f)


    def input_fn(body, content_type):
        return json.loads(body)["instances"]


    def predict_fn(instances, model):
        predictions = []
        for instance in instances:
            z = model["bias"] + sum(w * x for w, x in zip(model["weights"], instance["features"]))
            score = 1 / (1 + math.exp(-z))
            predictions.append({"predicted_label": int(score > 0.5), "score": score})
        return {"predictions": predictions}


    def output_fn(prediction, accept):
        return json.dumps(prediction), accept
""")
LINEAR_IMAGE = "174872318107.dkr.ecr.us-west-2.amazonaws.com/linear-learner:1"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def test_clarify_json_join_with_inference_ids(stack, s3, sagemaker):
    """sm-clarify_model_bias_monitor_batch_transform_json.ipynb: a whole JSON file
    ({"instances": [{"features": [...]}, ...]}), `split_type="None"`,
    `join_source="Input"`, `assemble_with="None"`, Accept and ContentType
    application/json, `BatchDataCaptureConfig(generate_inference_id=True)`. The
    notebook prints the `.out`: one JSON object, the input's `instances` beside
    `SageMakerOutput` (the model's whole answer), `SageMakerInferenceId` and
    `SageMakerInferenceTime`."""
    bucket = stack.config.bucket
    rng = np.random.default_rng(3)
    model = {"bias": -1.0, "weights": [0.02, 0.1, 0.0, 0.05, 0.1] + [0.01] * 9}
    package = tar_gz(
        {
            "weights.json": json.dumps(model).encode(),
            "code/inference.py": LINEAR_LEARNER_SCRIPT.encode(),
        }
    )
    model_url = put(s3, bucket, "notebooks/clarify-json/model.tar.gz", package)
    sagemaker.create_model(
        ModelName="DEMO-xgb-churn-pred-model-monitor",
        PrimaryContainer={"Image": LINEAR_IMAGE, "ModelDataUrl": model_url, "Environment": {}},
        ExecutionRoleArn=ROLE,
    )
    features = np.column_stack(
        [rng.integers(17, 90, 120), rng.integers(0, 8, 120), rng.integers(10_000, 500_000, 120)]
        + [rng.integers(0, 16, 120) for _ in range(11)]
    )
    dataset = {"instances": [{"features": row} for row in features.tolist()]}
    put(s3, bucket, "notebooks/clarify-json/test-dataset.json", json.dumps(dataset).encode())

    # model.transformer(accept=..., assemble_with="None", output_path=...) and
    # transfomer.transform(data, content_type=..., split_type="None", join_source="Input",
    # batch_data_capture_config=BatchDataCaptureConfig(..., generate_inference_id=True)).
    sagemaker.create_transform_job(
        TransformJobName="linear-learner-2024-01-19-19-24-07-189",
        ModelName="DEMO-xgb-churn-pred-model-monitor",
        TransformInput={
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": f"s3://{bucket}/notebooks/clarify-json/test-dataset.json",
                }
            },
            "ContentType": "application/json",
            "SplitType": "None",
        },
        TransformOutput={
            "S3OutputPath": f"s3://{bucket}/notebooks/clarify-json/transform-output",
            "Accept": "application/json",
            "AssembleWith": "None",
        },
        TransformResources={"InstanceCount": 1, "InstanceType": "ml.m5.xlarge"},
        DataProcessing={"JoinSource": "Input"},
        DataCaptureConfig={
            "DestinationS3Uri": f"s3://{bucket}/notebooks/clarify-json/data-capture",
            "GenerateInferenceId": True,
        },
    )
    completed(stack, sagemaker, "linear-learner-2024-01-19-19-24-07-189")

    body = get(s3, bucket, "notebooks/clarify-json/transform-output/test-dataset.json.out")
    assert len(body.decode().strip().splitlines()) == 1
    assert b", " not in body and b'": ' not in body  # compact, as the notebook prints it
    joined = json.loads(body)
    assert set(joined) == {
        "instances",
        "SageMakerOutput",
        "SageMakerInferenceId",
        "SageMakerInferenceTime",
    }
    assert joined["instances"] == dataset["instances"]
    namespace: dict = {}
    exec(LINEAR_LEARNER_SCRIPT, namespace)  # the stand-in's own answer, computed here
    expected = namespace["predict_fn"](dataset["instances"], model)
    assert joined["SageMakerOutput"] == expected
    assert re.fullmatch(UUID, joined["SageMakerInferenceId"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", joined["SageMakerInferenceTime"])
