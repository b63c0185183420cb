"""Property tests for the parsers of uploaded model packages: the manifest and the tar members.

A package comes from whoever can write `models/` (or a SageMaker model's
ModelDataUrl). For any bytes and any structure, the manifest reader returns a
manifest (or None) or raises `ManifestError`, and the archive check returns the
members or raises `PackageError`: nothing else, within hypothesis's deadline and
a stated memory bound.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model.manifest import MANIFEST_FILE, ManifestError, parse_manifest, read_manifest
from model.package import PackageError, PackageLimits, check_archive, prepare

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)
MIB = 1024 * 1024
# The examples are a few KiB; the bounds leave room for pydantic and tarfile, and
# none for a runaway.
MANIFEST_MEMORY = 4 * MIB
ARCHIVE_MEMORY = 4 * MIB
SMALL_LIMITS = PackageLimits(max_members=50, max_bytes=64 * 1024, max_ratio=100.0)
# Function-scoped fixtures are not reset between examples; these tests make their
# own temporary directories.
OWN_FILES = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


def only(error: type[E], call: Callable[[], T], limit: int) -> T | E:
    """What `call` returns or the `error` it raises, within `limit` bytes; any other
    exception fails the test."""
    tracemalloc.start()
    try:
        result: T | E = call()
    except error as exc:
        result = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak <= limit, f"allocated {peak} bytes, over the {limit}-byte bound"
    return result


# --- the manifest -------------------------------------------------------------------

KEYS = {
    "": ["version", "flavor", "input", "output", "batch", "processing", "image"],
    "input": ["columns", "feature_count", "drop"],
    "output": ["columns", "threshold", "classes"],
    "batch": ["max_rows", "max_bytes"],
    "processing": [
        "input_filter",
        "output_filter",
        "join_source",
        "accept",
        "metadata",
        "output_key",
    ],
    "image": ["task", "size", "labels", "output", "layout", "mean", "std", "top_k", "nms"],
}
ALL_KEYS = sorted({key for keys in KEYS.values() for key in keys})

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["xgboost", "mlflow", "pickle", "probability", "label", "detection", "$[0]"]),
)
keys = st.one_of(st.sampled_from(ALL_KEYS), st.text(max_size=12))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6),
        st.dictionaries(keys, inner, max_size=6),
    ),
    max_leaves=30,
)


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly the manifest's own keys and tables, with wrong values and stray keys."""
    document: dict[str, Any] = {}
    for key in draw(st.lists(st.sampled_from(KEYS[""]), max_size=7, unique=True)):
        if key in KEYS and draw(st.booleans()):
            table = draw(st.dictionaries(st.sampled_from(KEYS[key]) | keys, values, max_size=6))
            document[key] = table
        else:
            document[key] = draw(values)
    document |= draw(st.dictionaries(keys, values, max_size=2))
    return document


@given(documents())
def test_any_structure_is_a_manifest_or_a_manifest_error(document: dict[str, Any]) -> None:
    result = only(ManifestError, lambda: parse_manifest(document), MANIFEST_MEMORY)
    if isinstance(result, ManifestError):
        assert str(result).startswith(MANIFEST_FILE)


toml_lines = st.lists(
    st.one_of(
        st.sampled_from(
            [
                'flavor = "xgboost"',
                "[input]",
                "[output]",
                "[image]",
                "[[input]]",
                "columns = ['a', 'b']",
                "feature_count = 3",
                "threshold = 0.5",
                "a.b.c = 1",
                "x = [",
                "= 1",
            ]
        ),
        st.text(max_size=30),
    ),
    max_size=12,
)


@OWN_FILES
@given(st.one_of(st.binary(max_size=2048), toml_lines.map(lambda lines: "\n".join(lines).encode())))
def test_any_bytes_are_a_manifest_or_a_manifest_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / MANIFEST_FILE).write_bytes(data)
        only(ManifestError, lambda: read_manifest(Path(folder)), MANIFEST_MEMORY)


# --- tar members ---------------------------------------------------------------------

TYPES = [
    tarfile.REGTYPE,
    tarfile.AREGTYPE,
    tarfile.DIRTYPE,
    tarfile.SYMTYPE,
    tarfile.LNKTYPE,
    tarfile.CHRTYPE,
    tarfile.BLKTYPE,
    tarfile.FIFOTYPE,
    tarfile.CONTTYPE,
    tarfile.GNUTYPE_SPARSE,
    b"Z",
]
names = st.one_of(
    st.sampled_from(["", ".", "./", "a", "a/b", "../a", "/etc/x", "a/../../b", "a\\b", "code/"]),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=120),
)


@st.composite
def members(draw: st.DrawFn) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(draw(names))
    info.type = draw(st.sampled_from(TYPES))
    data = draw(st.binary(max_size=64)) if info.type in tarfile.REGULAR_TYPES else b""
    info.size = len(data)
    info.linkname = draw(names) if info.type in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
    info.mode = draw(st.integers(min_value=0, max_value=0o7777))
    if draw(st.booleans()):
        info.pax_headers = draw(
            st.dictionaries(
                st.sampled_from(["path", "linkpath", "size", "comment", "uid", "mtime"]),
                st.text(max_size=40),
                max_size=3,
            )
        )
    return info, data


def tar_bytes(entries: list[tuple[tarfile.TarInfo, bytes]], tar_format: int) -> bytes | None:
    """The entries as a tar stream, or None where tarfile cannot write them."""
    buffer = io.BytesIO()
    try:
        with tarfile.open(fileobj=buffer, mode="w", format=tar_format) as archive:
            for info, data in entries:
                archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    except (ValueError, UnicodeError, tarfile.TarError):
        return None
    return buffer.getvalue()


@st.composite
def archives(draw: st.DrawFn) -> tuple[str, bytes]:
    """(suffix, bytes): built from members, then perhaps truncated or damaged."""
    tar_format = draw(st.sampled_from([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]))
    raw = tar_bytes(draw(st.lists(members(), max_size=6)), tar_format) or b""
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        if not raw:
            break
        at = draw(st.integers(min_value=0, max_value=len(raw) - 1))
        raw = raw[:at] + bytes([draw(st.integers(0, 255))]) + raw[at + 1 :]
    if draw(st.booleans()):
        raw = raw[: draw(st.integers(min_value=0, max_value=len(raw)))]
    if draw(st.booleans()):
        return ".tar", raw
    compressed = gzip.compress(raw, mtime=0)
    if draw(st.booleans()) and compressed:
        at = draw(st.integers(min_value=0, max_value=len(compressed) - 1))
        compressed = compressed[:at] + bytes([draw(st.integers(0, 255))]) + compressed[at + 1 :]
    return ".tar.gz", compressed


def check(suffix: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"model{suffix}"
        path.write_bytes(data)
        result = only(PackageError, lambda: check_archive(path, SMALL_LIMITS), ARCHIVE_MEMORY)
        if isinstance(result, PackageError):
            return
        for member in result:  # only what the checks let through
            assert member.isreg() or member.isdir()
            assert not member.name.startswith("/") and ".." not in member.name.split("/")
        # and extracting what passed stays inside the target, or is refused
        extracted = only(
            PackageError, lambda: prepare(path, Path(folder) / "work", SMALL_LIMITS), ARCHIVE_MEMORY
        )
        if isinstance(extracted, Path):
            for found in extracted.rglob("*"):
                assert found.resolve().is_relative_to(extracted.resolve())
                assert not found.is_symlink()


@given(archives())
def test_any_archive_is_checked_members_or_a_package_error(archive: tuple[str, bytes]) -> None:
    check(*archive)


@given(st.sampled_from([".tar", ".tar.gz"]), st.binary(max_size=4096))
def test_any_bytes_are_checked_members_or_a_package_error(suffix: str, data: bytes) -> None:
    check(suffix, data)
