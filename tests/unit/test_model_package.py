"""Model packages: hostile archives refused before extraction, manifests checked."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from model.flavors.base import BadRequest
from model.manifest import (
    ManifestError,
    ManifestModel,
    OutputSchema,
    parse_manifest,
    read_manifest,
    shape_output,
)
from model.package import PackageError, PackageLimits, main, pack, prepare

MIB = 1024 * 1024


def file_member(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, b""


def archive(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def refused(tmp_path: Path, members, limits: PackageLimits | None = None) -> str:
    path = archive(tmp_path / "model.tar.gz", members)
    workdir = tmp_path / "work"
    with pytest.raises(PackageError) as caught:
        prepare(path, workdir, limits)
    # Nothing was extracted: the check comes before any write.
    assert not workdir.exists() or not any(workdir.iterdir())
    return str(caught.value)


def test_a_good_archive_is_extracted(tmp_path):
    path = archive(
        tmp_path / "model.tar.gz",
        [
            special("./", tarfile.DIRTYPE),
            file_member("./xgboost-model.json", b"{}"),
            file_member("byom.toml", b'flavor = "xgboost"\n'),
            special("code", tarfile.DIRTYPE),
            file_member("code/inference.py", b"def model_fn(d): ...\n"),
        ],
    )
    model_dir = prepare(path, tmp_path / "work")
    assert model_dir.parent == tmp_path / "work"
    assert (model_dir / "xgboost-model.json").read_bytes() == b"{}"
    assert (model_dir / "code" / "inference.py").is_file()
    assert read_manifest(model_dir).flavor == "xgboost"
    # a directory is used where it is
    assert prepare(model_dir, tmp_path / "other") == model_dir


def test_setuid_bits_and_owners_are_not_kept(tmp_path):
    info, data = file_member("xgboost-model.json", b"{}")
    info.mode = 0o4777
    info.uid = 12345
    model_dir = prepare(archive(tmp_path / "m.tgz", [(info, data)]), tmp_path / "work")
    assert (model_dir / "xgboost-model.json").stat().st_mode & 0o7777 == 0o644


@pytest.mark.parametrize(
    ("members", "named", "why"),
    [
        ([file_member("../evil")], "../evil", "'..'"),
        ([file_member("code/../../evil")], "code/../../evil", "'..'"),
        ([file_member("/etc/evil")], "/etc/evil", "absolute path"),
        ([special("link", tarfile.SYMTYPE, "/etc/passwd")], "link", "symbolic link"),
        ([special("inside", tarfile.SYMTYPE, "xgboost-model.json")], "inside", "symbolic link"),
        (
            [file_member("xgboost-model.json"), special("hard", tarfile.LNKTYPE, "../../x")],
            "hard",
            "hard link",
        ),
        ([special("dev", tarfile.CHRTYPE)], "dev", "device"),
        ([special("disk", tarfile.BLKTYPE)], "disk", "device"),
        ([special("pipe", tarfile.FIFOTYPE)], "pipe", "fifo"),
        ([file_member("a"), file_member("a")], "a", "twice"),
        ([file_member("a"), file_member("a/b")], "a/b", "which is a file"),
        ([file_member("back\\slash")], "back\\slash", "backslash"),
    ],
)
def test_hostile_members_are_refused_by_name(tmp_path, members, named, why):
    message = refused(tmp_path, [file_member("ok.json", b"{}"), *members])
    assert f"member {named!r}" in message
    assert why in message


def test_too_many_members(tmp_path):
    members = [file_member(f"f{i}") for i in range(12)]
    message = refused(tmp_path, members, PackageLimits(max_members=10))
    assert "member 'f10'" in message and "more than 10 members" in message


def test_total_size_limit(tmp_path):
    members = [file_member("a", b"1" * 600), file_member("b", b"2" * 600)]
    message = refused(tmp_path, members, PackageLimits(max_bytes=1000))
    assert "member 'b'" in message and "more than 1000 bytes" in message


def test_a_bomb_stops_at_its_header(tmp_path):
    # 64 MiB of zeros compresses to about 64 KiB: a ratio near 1000.
    bomb = b"\0" * (64 * MIB)
    message = refused(
        tmp_path, [file_member("xgboost-model.json", b"{}"), file_member("big", bomb)]
    )
    assert "member 'big'" in message and "decompression bomb" in message


def test_not_an_archive(tmp_path):
    path = tmp_path / "model.tar.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(PackageError, match="not a readable gzip-compressed tar archive"):
        prepare(path, tmp_path / "work")
    empty = archive(tmp_path / "empty.tar.gz", [])
    with pytest.raises(PackageError, match="empty"):
        prepare(empty, tmp_path / "work")


# --- manifests -------------------------------------------------------------------------


def write_manifest(tmp_path: Path, text: str) -> Path:
    (tmp_path / "byom.toml").write_text(text)
    return tmp_path


def test_no_manifest_is_none(tmp_path):
    assert read_manifest(tmp_path) is None


def test_a_full_manifest(tmp_path):
    manifest = read_manifest(
        write_manifest(
            tmp_path,
            """
flavor = "xgboost"
[input]
columns = ["id", "a", "b", "label"]
drop = ["id", "label"]
feature_count = 2
[output]
columns = ["probability", "label"]
threshold = 0.7
classes = ["no", "yes"]
[batch]
max_rows = 100
max_bytes = 1048576
""",
        )
    )
    assert manifest is not None
    assert manifest.flavor == "xgboost"
    assert (manifest.input.width, manifest.input.model_features) == (4, 2)
    assert manifest.input.kept == [1, 2]
    assert manifest.output.threshold == 0.7
    assert manifest.batch.max_rows == 100


@pytest.mark.parametrize(
    ("document", "named"),
    [
        ({"flavour": "xgboost"}, "flavour: unknown key; allowed here: version, flavor"),
        ({"input": {"colums": ["a"]}}, "input.colums: unknown key; allowed here: columns"),
        ({"input": {"feature_count": 0}}, "input.feature_count"),
        ({"input": {"drop": ["id"]}}, "input.drop: needs input.columns"),
        ({"input": {"columns": ["a"], "drop": ["b"]}}, "input.drop: not among input.columns"),
        ({"input": {"columns": ["a", "a"]}}, "input.columns: names appear more than once"),
        ({"input": {"columns": ["a", "b"], "feature_count": 3}}, "input.feature_count: 3"),
        ({"output": {"columns": ["score"]}}, "output.columns.0: Input should be 'probability'"),
        ({"output": {"threshold": 1.5}}, "output.threshold"),
        ({"output": {"classes": ["a,b", "c"]}}, "output.classes.0"),
        ({"batch": {"max_bytes": 100 * MIB}}, "batch.max_bytes"),
        ({"batch": 3}, "batch: must be a table"),
        ({"version": 2}, "version"),
        ({"flavor": "../x"}, "flavor"),
    ],
)
def test_invalid_manifests_name_the_key(document, named):
    with pytest.raises(ManifestError) as caught:
        parse_manifest(document)
    assert named in str(caught.value)


def test_broken_toml_is_refused(tmp_path):
    with pytest.raises(ManifestError, match="not valid TOML"):
        read_manifest(write_manifest(tmp_path, "flavor = \n"))


def test_a_linked_manifest_is_refused(tmp_path):
    target = tmp_path / "elsewhere.toml"
    target.write_text('flavor = "xgboost"\n')
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "byom.toml").symlink_to(target)
    with pytest.raises(ManifestError, match="plain file"):
        read_manifest(model_dir)


class Doubler:
    """A stand-in flavor model: the sum of each row, as a probability."""

    def __init__(self, features: int | None) -> None:
        self._features = features
        self.seen: list[np.ndarray] = []

    @property
    def feature_count(self) -> int | None:
        return self._features

    @property
    def description(self) -> str:
        return "stand-in"

    def predict(self, features: np.ndarray) -> np.ndarray:
        self.seen.append(features)
        return features.sum(axis=1).astype(np.float32)


def test_manifest_model_drops_columns_and_enforces_width_and_rows():
    manifest = parse_manifest(
        {"input": {"columns": ["id", "a", "b"], "drop": ["id"]}, "batch": {"max_rows": 2}}
    )
    inner = Doubler(2)
    model = ManifestModel(inner, manifest, Path("byom.toml"))
    assert model.feature_count == 3
    assert "3 input columns, dropping id" in model.description
    rows = np.array([[9, 0.25, 0.5], [9, 0.0, 0.125]], dtype=np.float32)
    np.testing.assert_array_equal(model.predict(rows), [0.75, 0.125])
    np.testing.assert_array_equal(inner.seen[0], rows[:, 1:])
    with pytest.raises(BadRequest, match="expected 3 features per row, got 2"):
        model.predict(rows[:, 1:])
    with pytest.raises(BadRequest, match=r"3 rows in one request.*batch\.max_rows") as caught:
        model.predict(np.zeros((3, 3), dtype=np.float32))
    assert caught.value.status == 413


def test_manifest_feature_count_must_match_the_model():
    manifest = parse_manifest({"input": {"feature_count": 5}})
    with pytest.raises(ManifestError, match="gives the model 5 features, but the model takes 2"):
        ManifestModel(Doubler(2), manifest, Path("byom.toml"))
    # a model that does not say takes the manifest's width
    assert ManifestModel(Doubler(None), manifest, Path("byom.toml")).feature_count == 5


def test_outputs_probability_and_label():
    scores = np.array([0.2, 0.8], dtype=np.float32)
    assert shape_output(scores, OutputSchema()) is scores
    labels = shape_output(scores, OutputSchema(columns=["label"], threshold=0.5))
    np.testing.assert_array_equal(labels, [0, 1])
    both = shape_output(scores, OutputSchema(columns=["probability", "label"], threshold=0.9))
    np.testing.assert_array_equal(both, np.array([[0.2, 0], [0.8, 0]], dtype=np.float32))
    named = shape_output(
        scores, OutputSchema(columns=["probability", "label"], classes=["legit", "fraud"])
    )
    assert named.tolist() == [[0.2, "legit"], [0.8, "fraud"]]


def test_multi_class_outputs():
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]], dtype=np.float32)
    named = shape_output(scores, OutputSchema(columns=["label"], classes=["a", "b", "c"]))
    assert named.tolist() == ["b", "a"]
    with pytest.raises(ValueError, match="names 2 classes, but the model predicts 3"):
        shape_output(scores, OutputSchema(columns=["label"], classes=["a", "b"]))
    with pytest.raises(ValueError, match="threshold is for binary models"):
        shape_output(scores, OutputSchema(columns=["label"], threshold=0.5))


def test_pack_is_reproducible_and_prepares_back(tmp_path):
    source = tmp_path / "src"
    (source / "code").mkdir(parents=True)
    (source / "xgboost-model.json").write_bytes(b"{}")
    (source / "code" / "inference.py").write_text("pass\n")
    (source / "code" / "__pycache__").mkdir()
    (source / "code" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    first, second = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    pack(source, first)
    pack(source, second)
    assert first.read_bytes() == second.read_bytes()
    model_dir = prepare(first, tmp_path / "work")
    assert sorted(p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*")) == [
        "code",
        "code/inference.py",
        "xgboost-model.json",
    ]
    (source / "link").symlink_to("/etc/passwd")
    with pytest.raises(PackageError, match="link"):
        pack(source, tmp_path / "c.tar.gz")


def test_check_command_says_why_a_package_is_refused(tmp_path, capsys):
    path = archive(tmp_path / "model.tar.gz", [file_member("../evil")])
    assert main(["check", str(path)]) == 1
    assert "member '../evil'" in capsys.readouterr().err


def test_the_image_build_gets_a_packages_requirements(tmp_path):
    package = tmp_path / "pkg"
    (package / "code").mkdir(parents=True)
    (package / "code" / "inference.py").write_text("def model_fn(model_dir):\n    return 1\n")
    (package / "code" / "requirements.txt").write_text("# pinned\nscipy==1.17.1\n")
    archive = tmp_path / "model.tar.gz"
    pack(package, archive)
    out = tmp_path / "build" / "model-requirements.txt"
    assert main(["requirements", str(archive), str(out)]) == 0
    assert out.read_text() == "# pinned\nscipy==1.17.1\n"

    (package / "code" / "requirements.txt").write_text("# nothing\n")
    pack(package, archive)
    assert main(["requirements", str(archive), str(out)]) == 0
    assert not out.exists()
