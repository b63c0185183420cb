"""Model packages: a directory, or a `model.tar.gz` laid out as SageMaker's ModelDataUrl.

    model.tar.gz
    ├── xgboost-model.json      the artifact files, at the root
    ├── byom.toml               optional manifest (see model/manifest.py)
    └── code/                   optional: inference.py, requirements.txt
        ├── inference.py
        └── requirements.txt

`prepare(path, workdir)` gives the directory to load from: a directory as it is,
an archive extracted into a fresh directory under `workdir`. Archives are
untrusted, so every member is checked before anything is written: only regular
files and directories (no links of either kind, no devices or fifos), names
relative and without `..`, a member count, a total inflated size and a
compression ratio (bombs stop at the header of the member that crosses a limit,
before its data is inflated). Extraction then runs with tarfile's `data` filter as
a second line of defence. A refused archive raises `PackageError` naming the
member and the reason.

`load_package` is what the model server calls: prepare, read the manifest, load
the model with the manifest's flavor (or the one its files suggest) and hold it to
the manifest's input and output schema.
"""

from __future__ import annotations

import atexit
import gzip
import shutil
import sys
import tarfile
import tempfile
import zlib
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from model.flavors import Model, ModelLoadError, load_model
from model.flavors import flavors as registry
from model.flavors.detector import vision_model
from model.flavors.pickled import PickleFlavor
from model.inference_script import load_script
from model.manifest import MANIFEST_FILE, ManifestModel, read_manifest
from model.tar_stream import MAX_READ, BoundedStream

GIB = 1024**3
MIB = 1024**2
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
# Small archives compress arbitrarily well (a few KiB of zeros); the ratio limit
# applies once this much has been declared, as for gzip uploads.
RATIO_FLOOR = 16 * MIB
# Inflated bytes one member may add beyond its data: its header block, the padding
# of its data, and its long-name, long-link and PAX records (each capped).
HEADER_ALLOWANCE = 4 * MAX_READ
# Errors reading a damaged archive: tarfile's own, gzip's, and zlib's, which gzip
# lets through for a corrupt deflate stream.
UNREADABLE = (OSError, EOFError, zlib.error, tarfile.TarError)


class PackageError(ModelLoadError):
    """A model package refused before anything of it was extracted; the reason names
    the member."""


@dataclass(frozen=True)
class PackageLimits:
    max_members: int = 10_000
    max_bytes: int = 20 * GIB  # the members' sizes added up
    max_ratio: float = 100.0  # inflated / compressed, past RATIO_FLOOR


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


@contextmanager
def open_archive(path: Path, limits: PackageLimits) -> Iterator[tarfile.TarFile]:
    """The archive at `path`, read through a `BoundedStream`: its inflated bytes are
    counted, and no header record may ask for more than `MAX_HEADER_BYTES`."""
    compressed = path.stat().st_size
    with path.open("rb") as raw, ExitStack() as closing:
        inflated = raw if _is_plain_tar(path) else closing.enter_context(gzip.GzipFile(fileobj=raw))
        stream = BoundedStream(
            inflated,
            compressed=compressed,
            max_bytes=limits.max_bytes + (limits.max_members + 1) * HEADER_ALLOWANCE,
            max_ratio=limits.max_ratio,
            ratio_floor=RATIO_FLOOR,
            on_limit=lambda reason: PackageError(path, reason),
        )
        with tarfile.open(fileobj=stream, mode="r:") as archive:
            yield archive


def prepare(path: Path, workdir: Path, limits: PackageLimits | None = None) -> Path:
    """The directory to load the model in `path` from.

    A directory (or anything that is not an archive: `load_model` says what is
    wrong with it) is returned as it is; a `.tar.gz`, `.tgz` or `.tar` is checked
    member by member and extracted into a new directory under `workdir`.
    """
    path = Path(path)
    if not (is_archive(path) and path.is_file()):
        return path
    limits = limits or PackageLimits()
    members = check_archive(path, limits)
    workdir.mkdir(parents=True, exist_ok=True)
    target = Path(tempfile.mkdtemp(prefix="model-", dir=workdir))
    try:
        with open_archive(path, limits) as archive:
            if hasattr(tarfile, "data_filter"):
                archive.extractall(target, members=members, filter="data")
            else:  # pragma: no cover - Python before 3.11.4
                archive.extractall(target, members=members)
    except PackageError:
        shutil.rmtree(target, ignore_errors=True)
        raise
    except UNREADABLE as exc:
        shutil.rmtree(target, ignore_errors=True)
        raise PackageError(path, f"cannot extract the archive: {exc}") from exc
    return target


def _is_plain_tar(path: Path) -> bool:
    return path.name.lower().endswith(".tar")


def check_archive(path: Path, limits: PackageLimits) -> list[tarfile.TarInfo]:
    """Every member of the archive at `path`, checked; `PackageError` at the first bad one.

    Members are read one header at a time, so a limit stops the read at the header
    that crosses it, before the member's data is inflated; header records
    themselves are capped and the inflated stream counted (`open_archive`).
    """
    compressed = max(path.stat().st_size, 1)
    members: list[tarfile.TarInfo] = []
    files: set[PurePosixPath] = set()
    dirs: set[PurePosixPath] = set()
    total = 0
    try:
        with open_archive(path, limits) as archive:
            while (member := archive.next()) is not None:
                if len(members) >= limits.max_members:
                    raise PackageError(
                        path,
                        f"member {member.name!r}: more than {limits.max_members} members "
                        "(BYOM_PACKAGE_MAX_MEMBERS)",
                    )
                name = _check_member(path, member, files, dirs)
                total += member.size
                if total > limits.max_bytes:
                    raise PackageError(
                        path,
                        f"member {member.name!r}: the members add up to more than "
                        f"{limits.max_bytes} bytes (BYOM_PACKAGE_MAX_BYTES)",
                    )
                if total > RATIO_FLOOR and total / compressed > limits.max_ratio:
                    raise PackageError(
                        path,
                        f"member {member.name!r}: inflates the archive past "
                        f"{limits.max_ratio:g} times its compressed size of {compressed} bytes "
                        "(a decompression bomb? BYOM_PACKAGE_MAX_RATIO)",
                    )
                if name is not None:
                    # Extracted with plain modes and no owner, whatever the archive says.
                    member.mode = 0o755 if member.isdir() else 0o644
                    member.uid = member.gid = 0
                    member.uname = member.gname = ""
                    members.append(member)
    except PackageError:
        raise
    except UNREADABLE as exc:
        kind = "tar" if _is_plain_tar(path) else "gzip-compressed tar"
        raise PackageError(path, f"not a readable {kind} archive: {exc}") from exc
    if not members:
        raise PackageError(path, "the archive is empty")
    return members


def _check_member(
    archive: Path,
    member: tarfile.TarInfo,
    files: set[PurePosixPath],
    dirs: set[PurePosixPath],
) -> PurePosixPath | None:
    """The member's normalised name (None for the root itself), or `PackageError`."""

    def refuse(reason: str) -> PackageError:
        return PackageError(archive, f"member {member.name!r}: {reason}")

    if member.issym() or member.islnk():
        kind = "symbolic" if member.issym() else "hard"
        raise refuse(f"is a {kind} link to {member.linkname!r}; packages may not hold links")
    if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
        raise refuse("is a device or fifo; packages hold only files and directories")
    if member.issparse():
        raise refuse("is a sparse file; packages hold only plain files")
    if not (member.isreg() or member.isdir()):
        raise refuse(f"has tar type {member.type!r}; packages hold only files and directories")
    raw = member.name
    if "\x00" in raw or "\\" in raw:
        raise refuse("has a NUL or a backslash in its name")
    if raw.startswith("/"):
        raise refuse("has an absolute path; names must be relative to the package root")
    parts = [part for part in PurePosixPath(raw).parts if part != "."]
    if ".." in parts:
        raise refuse("has '..' in its path; names must stay inside the package")
    if not parts:
        if member.isdir():
            return None  # "./", the root
        raise refuse("has an empty name")
    name = PurePosixPath(*parts)
    for parent in name.parents:
        if parent in files:
            raise refuse(f"lies under {parent.as_posix()!r}, which is a file")
    if name in files or (member.isreg() and name in dirs):
        raise refuse("appears twice in the archive")
    (dirs if member.isdir() else files).add(name)
    return name


# --- loading -------------------------------------------------------------------------


def load_package(
    path: Path,
    *,
    workdir: Path | None = None,
    allow_pickle: bool = False,
    threads: int = 1,
    limits: PackageLimits | None = None,
    allow_code: bool = False,
    program: str | None = None,
    environment: Mapping[str, str] | None = None,
    image: str | None = None,
) -> Model:
    """The model of the package at `path`, held to its manifest when it has one.

    An archive is extracted under `workdir` (default: a temporary directory,
    removed when the process exits). A package with `code/inference.py` (or the
    script `program` names) is served by that script, only with `allow_code`
    (model/inference_script.py); `environment` is what that script sees, and the
    container `image` it names picks the framework's default handlers.
    """
    path = Path(path)
    if is_archive(path) and path.is_file() and workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="byom-package-"))
        atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    model_dir = prepare(path, workdir or Path(tempfile.gettempdir()), limits)
    manifest = read_manifest(model_dir) if model_dir.is_dir() else None
    if model_dir.is_dir():
        script = load_script(
            model_dir,
            allow_code=allow_code,
            program=program,
            environment=environment,
            image=image,
        )
        if script is not None:
            return script
    if manifest is None:
        return load_model(model_dir, allow_pickle=allow_pickle, threads=threads)
    if manifest.flavor is None:
        model = load_model(model_dir, allow_pickle=allow_pickle, threads=threads)
    else:
        model = _load_flavor(model_dir, manifest.flavor, allow_pickle=allow_pickle, threads=threads)
    if manifest.image is not None:  # pixels in, detections or classes out
        return vision_model(model, manifest.image, model_dir / MANIFEST_FILE)
    return ManifestModel(model, manifest, model_dir / MANIFEST_FILE)


def _load_flavor(model_dir: Path, name: str, *, allow_pickle: bool, threads: int) -> Model:
    pickle = PickleFlavor()
    # Built with the operator's opt-in: an MLmodel may name a pickled sklearn model.
    flavors = {flavor.name: flavor for flavor in (*registry(allow_pickle=allow_pickle), pickle)}
    flavor = flavors.get(name)
    where = model_dir / MANIFEST_FILE
    if flavor is None:
        raise ModelLoadError(
            where, f"flavor: {name!r} is not a flavor; one of {', '.join(sorted(flavors))}"
        )
    if flavor is pickle and not allow_pickle:
        raise ModelLoadError(
            where,
            "flavor: 'pickle' runs code from the model file when it loads; "
            "set BYOM_ALLOW_PICKLE=true if you trust where it came from",
        )
    artifact = flavor.artifact(model_dir)
    if artifact is None:
        raise ModelLoadError(model_dir, f"the manifest names flavor {name!r}, but no file of it")
    return flavor.load(artifact, threads=threads)


# --- packing and checking, for infra/deploy.sh -----------------------------------------


def pack(model_dir: Path, out: Path) -> None:
    """`model_dir` as a reproducible model.tar.gz: files at the root, sorted, no times,
    plain modes; links are refused, caches left out."""
    model_dir = Path(model_dir)
    entries = sorted(
        path
        for path in model_dir.rglob("*")
        if "__pycache__" not in path.relative_to(model_dir).parts
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    with (
        out.open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for path in entries:
            name = path.relative_to(model_dir).as_posix()
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                raise PackageError(path, f"{name} is a link or a special file; pack plain files")
            info = tarfile.TarInfo(name)
            info.mtime = 0
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
                continue
            info.size, info.mode = path.stat().st_size, 0o644
            with path.open("rb") as handle:
                archive.addfile(info, handle)


def copy_requirements(path: Path, out: Path) -> bool:
    """The package's `code/requirements.txt` copied to `out`, when it lists anything;
    whether it did. An archive is extracted with the same checks as for serving."""
    from model.inference_script import CODE_DIR, REQUIREMENTS, requirement_lines

    with tempfile.TemporaryDirectory(prefix="byom-requirements-") as workdir:
        requirements = prepare(Path(path), Path(workdir)) / CODE_DIR / REQUIREMENTS
        if not requirement_lines(requirements):
            out.unlink(missing_ok=True)
            return False
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(requirements.read_bytes())
        return True


def main(argv: list[str] | None = None) -> int:
    """`python -m model.package check PATH` loads a package as the server would and says
    what it serves; `python -m model.package pack DIR OUT` writes DIR as a model.tar.gz."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m model.package", description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="load a package as the model server would")
    check.add_argument("path", type=Path)
    check.add_argument("--allow-pickle", action="store_true")
    check.add_argument(
        "--allow-model-code",
        action="store_true",
        help="run code/inference.py (and install code/requirements.txt), as "
        "BYOM_ALLOW_MODEL_CODE=true does",
    )
    packer = commands.add_parser("pack", help="write a directory as a model.tar.gz")
    packer.add_argument("model_dir", type=Path)
    packer.add_argument("out", type=Path)
    wants = commands.add_parser(
        "requirements",
        help="copy a package's code/requirements.txt to OUT (nothing when it asks for none), "
        "for the image build",
    )
    wants.add_argument("path", type=Path)
    wants.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "pack":
            pack(args.model_dir, args.out)
            return 0
        if args.command == "requirements":
            copy_requirements(args.path, args.out)
            return 0
        with tempfile.TemporaryDirectory(prefix="byom-check-") as workdir:
            model = load_package(
                args.path,
                workdir=Path(workdir),
                allow_pickle=args.allow_pickle,
                allow_code=args.allow_model_code,
            )
            print(model.description)
    except ModelLoadError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
