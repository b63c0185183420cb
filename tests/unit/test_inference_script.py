"""SageMaker inference scripts: the toolkit's default decoders and encoders, and the
rules a script is loaded by."""

from __future__ import annotations

import io
import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model.flavors.base import BadRequest, ModelLoadError
from model.inference_script import (
    NotAcceptable,
    UnsupportedFormat,
    decode,
    default_output_fn,
    encode,
    install_requirements,
    load_script,
    requirement_lines,
)
from model.package import load_package, main


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


# --- decoders -------------------------------------------------------------------------


def test_csv_decodes_to_a_float_array():
    rows = decode("1,2.5,3\n4,5,6\n", "text/csv")
    np.testing.assert_array_equal(rows, [[1, 2.5, 3], [4, 5, 6]])
    assert rows.dtype == np.float64


def test_csv_of_one_line_is_one_dimensional_as_genfromtxt_gives_it():
    assert decode(b"1,2,3", "text/csv").shape == (3,)


def test_json_decodes_to_an_array():
    np.testing.assert_array_equal(decode("[[1, 2], [3, 4]]", "application/json"), [[1, 2], [3, 4]])
    with pytest.raises(BadRequest, match="not application/json"):
        decode("{nope", "application/json")


def test_npy_decodes_to_the_same_array_and_never_unpickles():
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    got = decode(npy(array), "application/x-npy")
    np.testing.assert_array_equal(got, array)
    assert got.dtype == np.float32
    with pytest.raises(BadRequest, match="not application/x-npy"):
        decode(npy(np.array([{"a": 1}], dtype=object)), "application/x-npy")


def test_an_unknown_content_type_is_415():
    with pytest.raises(UnsupportedFormat, match="input_fn") as caught:
        decode(b"x", "application/x-byom-pipe")
    assert caught.value.status == 415


# --- encoders -------------------------------------------------------------------------


def test_encoders_write_each_type():
    prediction = np.array([0.25, 0.5])
    assert json.loads(encode(prediction, "application/json")) == [0.25, 0.5]
    assert json.loads(encode({"p": prediction}, "application/json")) == {"p": [0.25, 0.5]}
    assert encode(prediction, "text/csv") == b"0.25\n0.5\n"
    assert encode(np.array([[1, 2], [3, 4]]), "text/csv") == b"1,2\n3,4\n"
    np.testing.assert_array_equal(
        np.load(io.BytesIO(encode(prediction, "application/x-npy"))), prediction
    )


def test_the_default_output_fn_takes_the_first_type_it_can_write():
    body, kind = default_output_fn([1, 2], "image/png, text/csv;q=0.9, application/json")
    assert (body, kind) == (b"1\n2\n", "text/csv")
    with pytest.raises(NotAcceptable, match="output_fn") as caught:
        default_output_fn([1], "image/png")
    assert caught.value.status == 406


# --- requirements ---------------------------------------------------------------------


def test_blank_and_comment_lines_ask_for_nothing(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_text("# nothing yet\n\n   \n")
    assert requirement_lines(path) == []
    path.write_text("# pinned\nscipy==1.13.0  # for the filters\n")
    assert requirement_lines(path) == ["scipy==1.13.0"]
    assert requirement_lines(tmp_path / "missing.txt") == []


def test_requirements_go_into_the_models_own_folder(tmp_path):
    (tmp_path / "requirements.txt").write_text("scipy==1.13.0\n")
    calls: list[list[str]] = []

    def run(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        return subprocess.CompletedProcess(command, 0, "", "")

    assert install_requirements(tmp_path, run) == tmp_path / ".byom-lib"
    [command] = calls
    assert command[1:4] == ["-m", "pip", "install"]
    assert command[command.index("--target") + 1] == str(tmp_path / ".byom-lib")
    assert command[command.index("-r") + 1] == str(tmp_path / "requirements.txt")


def test_a_failed_install_is_a_load_error(tmp_path):
    (tmp_path / "requirements.txt").write_text("no-such-thing\n")

    def run(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution\n")

    with pytest.raises(ModelLoadError, match="No matching distribution"):
        install_requirements(tmp_path, run)


def test_nothing_to_install_runs_no_pip(tmp_path):
    (tmp_path / "requirements.txt").write_text("# empty\n")
    assert install_requirements(tmp_path, run=None) is None  # type: ignore[arg-type]


def test_requirements_the_image_was_built_with_run_no_pip(tmp_path, monkeypatch):
    code = tmp_path / "code"
    code.mkdir()
    (code / "requirements.txt").write_text("scipy==1.13.0  # fits\n")
    baked = tmp_path / "image-lib"
    baked.mkdir()
    (baked / "requirements.txt").write_text("# from the deployed package\nscipy==1.13.0\n")
    monkeypatch.setenv("BYOM_PREINSTALLED_LIB", str(baked))
    assert install_requirements(code, run=None) == baked  # type: ignore[arg-type]


def test_other_requirements_than_the_images_still_go_through_pip(tmp_path, monkeypatch):
    code = tmp_path / "code"
    code.mkdir()
    (code / "requirements.txt").write_text("scipy==1.14.0\n")
    baked = tmp_path / "image-lib"
    baked.mkdir()
    (baked / "requirements.txt").write_text("scipy==1.13.0\n")
    monkeypatch.setenv("BYOM_PREINSTALLED_LIB", str(baked))

    def run(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 1, "", "ERROR: network is unreachable\n")

    with pytest.raises(ModelLoadError, match="redeploy with this package"):
        install_requirements(code, run)


# --- loading --------------------------------------------------------------------------


def package(tmp_path: Path, script: str, **files: str) -> Path:
    code = tmp_path / "code"
    code.mkdir(parents=True, exist_ok=True)
    (code / "inference.py").write_text(textwrap.dedent(script))
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


DOUBLER = """
    import numpy as np

    def model_fn(model_dir):
        return 2.0

    def predict_fn(data, model):
        return np.asarray(data) * model
"""


def test_a_package_without_a_script_is_left_to_the_flavors(tmp_path):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "requirements.txt").write_text("")
    assert load_script(tmp_path) is None


def test_a_script_is_refused_without_the_opt_in(tmp_path):
    with pytest.raises(ModelLoadError, match="BYOM_ALLOW_MODEL_CODE=true"):
        load_script(package(tmp_path, DOUBLER))


def test_requirements_are_refused_without_the_opt_in_before_pip_runs(tmp_path):
    root = package(tmp_path, DOUBLER, **{"code/requirements.txt": "scipy\n"})

    def run(*_: Any, **__: Any) -> subprocess.CompletedProcess[str]:
        raise AssertionError("pip ran without the opt-in")

    with pytest.raises(ModelLoadError, match="BYOM_ALLOW_MODEL_CODE"):
        load_script(root, run=run)


def test_requirements_without_a_script_are_refused(tmp_path):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "requirements.txt").write_text("scipy\n")
    with pytest.raises(ModelLoadError, match=r"no code/inference\.py"):
        load_script(tmp_path, allow_code=True)


def test_default_decoder_and_encoder_around_predict_fn(tmp_path):
    model = load_script(package(tmp_path, DOUBLER), allow_code=True)
    assert model is not None
    assert model.handle(b"1,2\n3,4\n", "text/csv", "text/csv") == (
        b"2.0,4.0\n6.0,8.0\n",
        "text/csv",
    )
    # No Accept (or */*): the toolkit's default, JSON.
    body, kind = model.handle(b"[1, 2]", "application/json", None)
    assert (json.loads(body), kind) == ([2.0, 4.0], "application/json")
    np.testing.assert_array_equal(
        model.predict(np.ones((2, 3), dtype=np.float32)), np.full((2, 3), 2.0)
    )
    with pytest.raises(UnsupportedFormat):
        model.handle(b"1|2", "application/x-byom-pipe", "*/*")


def test_the_context_goes_to_functions_that_take_one_more_argument(tmp_path):
    script = """
        def model_fn(model_dir, context):
            return context.system_properties["model_dir"]

        def transform_fn(model, body, content_type, accept, context):
            return f"{model}|{body}|{context.request_content_type}|{accept}", "text/plain"
    """
    root = package(tmp_path, script)
    model = load_script(root, allow_code=True)
    assert model is not None
    assert model.handle(b"hi", "text/csv", "text/plain") == (
        f"{root}|hi|text/csv|text/plain".encode(),
        "text/plain",
    )


def test_sagemaker_program_names_another_module_that_imports_its_neighbours(tmp_path):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "helpers_for_serve.py").write_text("FACTOR = 3\n")
    (tmp_path / "code" / "serve.py").write_text(
        "from helpers_for_serve import FACTOR\n"
        "def model_fn(model_dir):\n    return FACTOR\n"
        "def transform_fn(model, body, content_type, accept):\n    return str(model)\n"
    )
    model = load_script(tmp_path, allow_code=True, program="serve")
    assert model is not None
    assert model.handle(b"", "text/csv", "text/plain") == (b"3", "text/plain")
    with pytest.raises(ModelLoadError, match="does not have"):
        load_script(tmp_path, allow_code=True, program="missing.py")
    with pytest.raises(ModelLoadError, match="name a module in code/"):
        load_script(tmp_path, allow_code=True, program="../serve.py")


@pytest.mark.parametrize(
    ("script", "message"),
    [
        (
            DOUBLER + "\n    def input_fn(b, c):\n        return b\n"
            "\n    def transform_fn(m, b, c, a):\n        return b\n",
            "transform_fn and input_fn",
        ),
        ("def predict_fn(data, model):\n    return data\n", "no model_fn"),
        ("def model_fn(model_dir):\n    return 1\n", "neither predict_fn nor transform_fn"),
        (
            "def model_fn():\n    return 1\ndef transform_fn(m, b, c, a):\n    return b\n",
            "model_fn takes 0 arguments",
        ),
        (
            "def model_fn(d):\n    raise OSError('weights missing')\n"
            "def transform_fn(m, b, c, a):\n    return b\n",
            "model_fn failed: OSError: weights",
        ),
        ("import not_a_module_anywhere\n", "importing it failed: ModuleNotFoundError"),
    ],
)
def test_scripts_that_break_the_contract_are_refused(tmp_path, script, message):
    with pytest.raises(ModelLoadError, match=message):
        load_script(package(tmp_path, script), allow_code=True)


def test_a_manifest_beside_a_script_is_refused(tmp_path):
    root = package(tmp_path, DOUBLER, **{"byom.toml": "flavor = 'xgboost'\n"})
    with pytest.raises(ModelLoadError, match=r"byom\.toml or the script"):
        load_package(root, allow_code=True)


def test_load_package_serves_the_script(tmp_path):
    model = load_package(package(tmp_path, DOUBLER), allow_code=True)
    assert "code/inference.py (predict_fn)" in model.description


def test_package_check_runs_the_script_only_when_told(tmp_path, capsys):
    root = package(tmp_path, DOUBLER)
    assert main(["check", str(root)]) == 1
    assert "BYOM_ALLOW_MODEL_CODE" in capsys.readouterr().err
    assert main(["check", str(root), "--allow-model-code"]) == 0
    assert "SageMaker inference script" in capsys.readouterr().out
