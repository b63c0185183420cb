"""The registry's names and versions, and the model server's cache of target models."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from model.data import generate
from model.package import pack
from model.server.multi_model import ModelCache, TargetMissing, TargetUnloadable
from model.train import train
from shared import model_registry
from shared.schemas import ChunkPlan


def test_versions_sort_in_natural_order():
    assert model_registry.latest(["2", "10", "9"]) == "10"
    assert model_registry.latest(["1.9", "1.10", "1.2"]) == "1.10"
    assert model_registry.latest(["v2", "v10"]) == "v10"


def test_references_are_checked():
    assert model_registry.parse_ref(" fraud ") == ("fraud", None)
    assert model_registry.parse_ref("fraud:3") == ("fraud", "3")
    for bad in ("", "a/b", "../x", "fraud:", ":3", "fr aud"):
        with pytest.raises(ValueError):
            model_registry.parse_ref(bad)


def test_old_plans_stay_valid_and_name_no_target():
    plan = ChunkPlan.model_validate(
        {"job_id": "j", "bucket": "b", "key": "k", "etag": "e", "size": 10, "header": False,
         "chunks": [{"index": 0, "start": 0, "end": 10}]}
    )  # fmt: skip
    assert plan.model_name is None and plan.target_model is None
    chosen = plan.model_copy(update={"model_name": "fraud", "model_version": "3"})
    assert chosen.target_model == "fraud/3/model.tar.gz"


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pkg")
    train(generate(500, seed=1, fraud_rate=0.1), rounds=3).save_model(
        str(folder / "xgboost-model.json")
    )
    out = tmp_path_factory.mktemp("archive") / "model.tar.gz"
    pack(folder, out)
    return out


def test_the_cache_loads_on_first_use_and_unloads_the_least_recently_used(archive, tmp_path):
    fetched: list[str] = []

    def fetch(url: str, out: Path) -> None:
        fetched.append(url)
        if "missing" in url:
            raise TargetMissing(url)
        if "broken" in url:
            out.write_bytes(b"not a tar")
            return
        shutil.copy(archive, out)

    cache = ModelCache("s3://b/models", tmp_path / "cache", 2, fetch=fetch)
    a = cache.get("a/1/model.tar.gz")
    assert cache.get("a/1/model.tar.gz") is a and len(fetched) == 1
    scores = a.predict(np.zeros((2, 30), dtype=np.float32))
    assert len(scores) == 2
    cache.get("b/1/model.tar.gz")
    cache.get("a/1/model.tar.gz")  # a is now the most recently used
    cache.get("c/1/model.tar.gz")
    assert cache.loaded() == ["a/1/model.tar.gz", "c/1/model.tar.gz"]
    assert len(list((tmp_path / "cache").iterdir())) == 2  # b's files are gone
    assert fetched[0] == "s3://b/models/a/1/model.tar.gz"
    with pytest.raises(
        TargetMissing, match=re.escape("no object at s3://b/models/missing/1/model.tar.gz")
    ):
        cache.get("missing/1/model.tar.gz")
    with pytest.raises(TargetUnloadable, match="cannot be loaded"):
        cache.get("broken/1/model.tar.gz")
    with pytest.raises(TargetMissing, match="not a valid"):
        cache.get("../etc/model.tar.gz")
    assert len(list((tmp_path / "cache").iterdir())) == 2
