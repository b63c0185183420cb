"""publish's check: the package loads and answers one sample row before it is uploaded."""

from __future__ import annotations

import tarfile

import numpy as np
import pytest

from model.package import pack
from model.publish import PublishError, check


def _pipeline_package(tmp_path, manifest: str):
    import skops.io
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(7)
    features = rng.normal(size=(200, 4)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(int)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(features, labels)
    folder = tmp_path / "pkg"
    folder.mkdir()
    skops.io.dump(pipeline, folder / "model.skops")
    (folder / "byom.toml").write_text(manifest)
    archive = tmp_path / "model.tar.gz"
    pack(folder, archive)
    return archive


def test_a_model_answering_class_names_publishes(tmp_path):
    manifest = """
[input]
feature_count = 4
[output]
columns = ["probability", "label"]
threshold = 0.5
classes = ["legit", "fraud"]
"""
    workdir = tmp_path / "work"
    workdir.mkdir()
    card = check(_pipeline_package(tmp_path, manifest), workdir)
    assert card.classes == ("legit", "fraud")
    assert card.output_columns == ("probability", "label")


def test_a_refused_archive_is_named_once(tmp_path):
    archive = tmp_path / "hostile.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        member = tarfile.TarInfo("../x")
        tar.addfile(member)
    workdir = tmp_path / "work"
    workdir.mkdir()
    with pytest.raises(PublishError) as refused:
        check(archive, workdir)
    message = str(refused.value)
    assert "'../x'" in message
    assert message.count(str(archive)) == 1, message
