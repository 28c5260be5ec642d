"""``make images``: the container images of the local node, built here from Debian packages.

Four images, each rebuilt only when its inputs change (a hash of them is the image's tag, and
``<cache>/images/<kind>.json`` records the last build):

* ``base``: Debian bookworm's python3 (3.11) made with ``mmdebstrap`` from Debian packages
  (nothing can be pulled from a registry here), committed into buildah's storage. It stands in
  for the public ``python:3.11-slim`` image users build on;
* ``aiguillage``: the repository's ``Containerfile``, unchanged, built by ``buildah bud
  --isolation chroot --build-arg BASE=<base>`` (the same file users build with Docker/BuildKit);
* ``demo``: ``hack/demo/Containerfile``, the openai-SDK app ``make dev`` runs next to a sidecar;
* ``pause``: the sandbox image, a static Go program (``hack/pause``) alone in a scratch image.

Each is exported with ``buildah push ... oci-archive:FILE`` into the cache; the node imports
the archives with ``ctr images import`` (`aiguillage.devtools.node.containerd`). Buildah keeps
its storage in the cache too (``--root``), never in ``/var/lib/containers``.

`built` reads what the last build recorded without building anything (what the node and the
tests use); `ensure` builds what is missing or stale; `python -m aiguillage.devtools.images`
runs `ensure` for every kind and prints the images, ``--report`` what they are made of.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiguillage.devtools.cache import cache_root

__all__ = [
    "KINDS",
    "ImageArchive",
    "ImageBuildError",
    "built",
    "cache_dir",
    "can_build",
    "ensure",
    "inputs_digest",
    "main",
]

ROOT = Path(__file__).resolve().parents[3]
KINDS = ("base", "pause", "aiguillage", "demo")

REPOSITORIES = {
    "base": "localhost/aiguillage-base",
    "pause": "localhost/aiguillage-pause",
    "aiguillage": "localhost/aiguillage",
    "demo": "localhost/aiguillage-demo",
}
"""Fully qualified names: the kubelet looks images up by these exact names."""

DEBIAN_SUITE = "bookworm"
# What the base holds: python3 with its venv module, CA certificates for HTTPS upstreams, and
# the C++ runtime that google-re2's extension links against (data protection's patterns).
# usr-is-merged stands in for usrmerge (and the perl it drags in), which is purged after.
_BASE_PACKAGES = ("usr-is-merged", "python3", "python3-venv", "ca-certificates", "libstdc++6")
_BASE_PURGE = (
    "usrmerge", "libfile-find-rule-perl", "libnumber-compare-perl", "libtext-glob-perl",
    "perl", "libperl5.36", "perl-modules-5.36",
)  # fmt: skip
_BASE_EXCLUDES = (
    "/usr/share/man/*", "/usr/share/doc/*", "/usr/share/locale/*", "/usr/share/info/*",
    "/usr/lib/x86_64-linux-gnu/gconv/*",  # glibc iconv modules; Python has its own codecs
)  # fmt: skip

# The files each image is built from (relative to the repository), besides the base's digest.
_PRODUCT_INPUTS = (
    "Containerfile", ".dockerignore", "pyproject.toml", "constraints.txt", "README.md",
    "sidecar", "operator", "devtools",
)  # fmt: skip
_DEMO_INPUTS = (
    "hack/demo/Containerfile", "constraints.txt", "devtools/aiguillage/devtools/demo_app.py",
)  # fmt: skip
_PAUSE_INPUTS = ("hack/pause",)


class ImageBuildError(RuntimeError):
    """An image could not be built (the message says which step and why)."""


@dataclass(frozen=True)
class ImageArchive:
    """One built image: its fully qualified name and the OCI archive holding it."""

    kind: str
    name: str
    archive: Path
    digest: str
    seconds: float

    @property
    def tag(self) -> str:
        return self.name.rsplit(":", 1)[1]

    @property
    def repository(self) -> str:
        return self.name.rsplit(":", 1)[0]


def cache_dir() -> Path:
    """Where the images are cached: ``images/`` in `aiguillage.devtools.cache.cache_root`."""
    return cache_root() / "images"


def built(kind: str) -> ImageArchive | None:
    """What the last build of ``kind`` recorded, if its archive is still there (no building)."""
    try:
        data = json.loads((cache_dir() / f"{kind}.json").read_text())
        image = ImageArchive(
            kind=kind,
            name=str(data["name"]),
            archive=Path(data["archive"]),
            digest=str(data["digest"]),
            seconds=float(data.get("seconds", 0.0)),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return image if kind == "base" or image.archive.is_file() else None


def can_build() -> bool:
    """Whether the tools the builds need are installed (buildah, mmdebstrap, go)."""
    return all(shutil.which(tool) for tool in ("buildah", "mmdebstrap", "go"))


def inputs_digest(paths: Sequence[str], *extra: str, root: Path = ROOT) -> str:
    """A SHA-256 over the named files and directories (recursively) and ``extra`` strings.

    Bytecode caches are skipped; file names count, so a rename changes the digest.
    """
    digest = hashlib.sha256()
    for text in extra:
        digest.update(text.encode() + b"\0")
    for relative in paths:
        for file in _files(root / relative):
            digest.update(str(file.relative_to(root)).encode() + b"\0")
            digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()


def ensure(kind: str, *, say: bool = True) -> ImageArchive:
    """The image ``kind``, built first if it is missing or its inputs changed."""
    if kind not in KINDS:
        raise ValueError(f"unknown image kind {kind!r}; known: {', '.join(KINDS)}")
    with _build_lock(), _Buildah() as buildah:
        return _ensure(kind, buildah, say=say)


def _ensure(kind: str, buildah: _Buildah, *, say: bool) -> ImageArchive:
    base = _ensure("base", buildah, say=say) if kind in ("aiguillage", "demo") else None
    digest = _digest(kind, base)
    current = built(kind)
    if current is not None and current.digest == digest and buildah.has(current.name):
        return current
    name = f"{REPOSITORIES[kind]}:{digest[:16]}"
    if say:
        print(f"[images] building {name} ...", file=sys.stderr, flush=True)
    began = time.monotonic()
    archive = cache_dir() / f"{kind}-{digest[:16]}.tar"
    if kind == "base":
        _build_base(buildah, name)
    elif kind == "pause":
        _build_pause(buildah, name)
    else:
        assert base is not None
        containerfile = "Containerfile" if kind == "aiguillage" else "hack/demo/Containerfile"
        buildah.bud(containerfile, name, base=base.name)
    if kind != "base":  # the base stays in buildah's storage: only Containerfiles use it
        buildah.push(name, archive)
    seconds = time.monotonic() - began
    image = ImageArchive(kind=kind, name=name, archive=archive, digest=digest, seconds=seconds)
    _record(image)
    if current is not None and current.name != name:
        buildah.remove(current.name)
        with contextlib.suppress(FileNotFoundError):
            current.archive.unlink()
    if say:
        print(f"[images] built {name} in {seconds:.0f}s", file=sys.stderr, flush=True)
    return image


def _digest(kind: str, base: ImageArchive | None) -> str:
    """The digest of what ``kind`` is built from."""
    if kind == "base":
        return inputs_digest((), DEBIAN_SUITE, *_BASE_PACKAGES, *_BASE_PURGE, *_BASE_EXCLUDES)
    if kind == "pause":
        return inputs_digest(_PAUSE_INPUTS)
    assert base is not None
    paths = _PRODUCT_INPUTS if kind == "aiguillage" else _DEMO_INPUTS
    return inputs_digest(paths, base.digest)


def report(kind: str) -> str:
    """What the built image ``kind`` is made of: ``du`` by directory, site-packages apart."""
    image = built(kind)
    if image is None:
        raise ImageBuildError(f"image {kind} is not built: run `make images`")
    with _Buildah() as buildah:
        lines = [f"{image.name}"]
        container = buildah.run("from", "--quiet", "--pull-never", image.name).strip()
        try:
            root = Path(buildah.run("mount", container).strip())
            lines += _du(root, ["usr/lib", "usr/bin", "usr/share", "etc", "var", "opt"], depth=1)
            lines += [] if len(lines) > 1 else _du(root, ["."], depth=1)  # FROM scratch: pause
            site = next(iter((root / "opt" / "aiguillage" / "lib").glob("python3*")), None)
            if site is not None:
                lines.append("site-packages:")
                lines += _du(site / "site-packages", ["."], depth=1, top=15)
        finally:
            buildah.run("umount", container, check=False)
            buildah.run("rm", container, check=False)
    return "\n".join(lines)


def _du(root: Path, paths: Sequence[str], *, depth: int, top: int = 0) -> list[str]:
    """``du -s`` of each path, or of its children (``depth`` 1), biggest first."""
    targets = []
    for relative in paths:
        path = root / relative
        if not path.exists():
            continue
        children = sorted(path.iterdir()) if depth else [path]
        targets += [c for c in children if not c.is_symlink()]
    if not targets:
        return []
    out = _run(["du", "-s", "--block-size=1K", *map(str, targets)], "du")
    rows = sorted(
        ((int(size), Path(name).relative_to(root)) for size, name in
         (line.split("\t", 1) for line in out.splitlines())),
        reverse=True,
    )  # fmt: skip
    if top:
        rows = rows[:top]
    return [f"  {size / 1024:7.1f} MiB  {name}" for size, name in rows if size >= 512]


def _build_base(buildah: _Buildah, name: str) -> None:
    with tempfile.TemporaryDirectory(prefix="aiguillage-base-") as tmp:
        tarball = Path(tmp) / "base.tar"
        purge = " ".join(_BASE_PURGE)
        argv = [
            "mmdebstrap", "--variant=essential", f"--include={','.join(_BASE_PACKAGES)}",
            *(f"--dpkgopt=path-exclude={pattern}" for pattern in _BASE_EXCLUDES),
            "--dpkgopt=path-include=/usr/share/doc/*/copyright",
            f'--customize-hook=chroot "$1" dpkg --purge {purge}',
            '--customize-hook=rm -rf "$1"/var/cache/* "$1"/var/lib/apt/lists/* "$1"/var/log/*',
            DEBIAN_SUITE, str(tarball),
        ]  # fmt: skip
        _run(argv, "mmdebstrap (the Debian base)", timeout=1200)
        container = buildah.run("from", "--quiet", "scratch").strip()
        try:
            buildah.run("add", "--quiet", container, str(tarball), "/")
            buildah.run(
                "config",
                "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--env", "LANG=C.UTF-8",
                "--cmd", "/usr/bin/python3",
                container,
            )  # fmt: skip
            buildah.run("commit", "--quiet", "--rm", container, name)
        except BaseException:
            buildah.run("rm", container, check=False)
            raise


def _build_pause(buildah: _Buildah, name: str) -> None:
    with tempfile.TemporaryDirectory(prefix="aiguillage-pause-") as context:
        env = {**os.environ, "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
        _run(
            ["go", "build", "-trimpath", "-ldflags=-s -w", "-o", f"{context}/pause", "."],
            "go build (the pause program)",
            cwd=ROOT / "hack" / "pause",
            env=env,
        )
        buildah.bud(str(ROOT / "hack" / "pause" / "Containerfile"), name, context=Path(context))


class _Buildah:
    """buildah with its storage in the cache and a throw-away run root."""

    def __init__(self) -> None:
        self.storage = cache_dir() / "storage"
        self._runroot: Path | None = None

    def __enter__(self) -> _Buildah:
        self.storage.mkdir(parents=True, exist_ok=True)
        self._runroot = Path(tempfile.mkdtemp(prefix="aiguillage-buildah-"))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runroot is not None:
            shutil.rmtree(self._runroot, ignore_errors=True)

    def run(self, *args: str, check: bool = True, timeout: float = 1800) -> str:
        assert self._runroot is not None
        argv = [
            "buildah", "--root", str(self.storage), "--runroot", str(self._runroot),
            "--storage-driver", "overlay", *args,
        ]  # fmt: skip
        return _run(argv, f"buildah {args[0]}", timeout=timeout, check=check)

    def has(self, name: str) -> bool:
        result = self.run("images", "--quiet", name, check=False)
        return bool(result.strip())

    def bud(self, containerfile: str, name: str, *, base: str = "", context: Path = ROOT) -> None:
        argv = ["bud", "--isolation", "chroot", "--layers=false", "--quiet", "-f", containerfile]
        argv += ["-t", name]
        if base:
            argv += ["--build-arg", f"BASE={base}"]
        ca_bundle = _host_ca_bundle()
        if ca_bundle is not None:
            # pip inside the build must trust what this machine trusts (a TLS-intercepting
            # proxy's CA, say); mounted for the RUN steps only, never part of the image.
            argv += ["--volume", f"{ca_bundle}:/tmp/host-ca.crt:ro"]
            argv += ["--build-arg", "CA_BUNDLE=/tmp/host-ca.crt"]
        self.run(*argv, str(context))

    def push(self, name: str, archive: Path) -> None:
        archive.parent.mkdir(parents=True, exist_ok=True)
        partial = archive.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        self.run("push", "--quiet", name, f"oci-archive:{partial}:{name}")
        partial.replace(archive)

    def remove(self, name: str) -> None:
        self.run("rmi", name, check=False)


def _host_ca_bundle() -> Path | None:
    for candidate in (os.environ.get("PIP_CERT"), "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _record(image: ImageArchive) -> None:
    data = {
        "name": image.name,
        "archive": str(image.archive),
        "digest": image.digest,
        "seconds": round(image.seconds, 1),
    }
    path = cache_dir() / f"{image.kind}.json"
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(data, indent=2) + "\n")
    partial.replace(path)


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    """One build at a time per cache (buildah's storage would cope; our records would not)."""
    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / ".build.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(
        file
        for file in path.rglob("*")
        if file.is_file() and "__pycache__" not in file.parts and file.suffix != ".pyc"
    )


def _run(
    argv: Sequence[str],
    what: str,
    *,
    timeout: float = 1800,
    check: bool = True,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> str:
    try:
        result = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False,
            cwd=cwd, env=env,
        )  # fmt: skip
    except FileNotFoundError as exc:
        raise ImageBuildError(
            f"{what}: {argv[0]} is not installed (`make node-deps` installs it)"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise ImageBuildError(f"{what}: no result after {timeout:.0f}s") from exc
    if check and result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
        raise ImageBuildError(f"{what} failed (exit {result.returncode}):\n{tail}")
    return result.stdout


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kinds", nargs="*", metavar="KIND", help=f"of {', '.join(KINDS)} (all)")
    parser.add_argument("--report", action="store_true", help="show what each image holds")
    args = parser.parse_args(argv)
    unknown = [kind for kind in args.kinds if kind not in KINDS]
    if unknown:
        parser.error(f"unknown image kind(s) {', '.join(unknown)}; known: {', '.join(KINDS)}")
    try:
        for kind in args.kinds or KINDS:
            image = ensure(kind)
            where = image.archive if kind != "base" else "buildah storage"
            print(f"{kind}: {image.name} ({where})")
            if args.report:
                print(report(kind))
    except ImageBuildError as exc:
        print(f"make images: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
