"""Every image the topology runs, built where no image registry can be reached.

docker-compose.yml names public images (python:3.11-slim, Elastic's, postgres, redis,
nginx, Prometheus, Alertmanager, Grafana). Where they cannot be pulled, stand-ins that
play the same roles are built from the same software's Debian packages (and
Elasticsearch's own distribution from Maven Central) on a Debian root filesystem that
mmdebstrap makes from the machine's own APT sources. The app image is always built from
the project's own docker/Dockerfile, the file Docker users build, FROM the python
stand-in. Builds are cached by the engine (its storage is under ~/.cache), so a second
run rebuilds only what changed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from myaiserv.stack.config import DEFAULT_ES_VERSION
from myaiserv.stack.elasticsearch import distribution_zip
from tooling.topology.engine import CACHE, ROOT, Engine, EngineError

BASE_IMAGE = "localhost/myaiserv-base:bookworm"
LOCAL = "localhost/myaiserv-local"
# docker/local/Dockerfile's stages, each standing in for one public image.
STANDINS = ("python", "postgres", "redis", "nginx", "prometheus", "alertmanager")
APP_IMAGE = os.environ.get("MYAISERV_IMAGE", "myaiserv:latest")
# Debian bookworm's PostgreSQL, which the postgres stand-in runs: pg_dump must match.
PG_MAJOR = "15"
SUITE = "bookworm"


def ca_bundle() -> Path | None:
    """The CA bundle pip trusts on this machine (a proxy may re-sign TLS): handed to
    builds as a secret, never copied into an image."""
    for candidate in (
        os.environ.get("PIP_CERT"),
        os.environ.get("SSL_CERT_FILE"),
        "/etc/ssl/certs/ca-certificates.crt",
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _apt_sources() -> Path:
    for path in (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")):
        if path.is_file() and path.read_text().strip():
            return path
    raise EngineError("no Debian APT sources on this machine for mmdebstrap to use")


def base_rootfs() -> Path:
    """A minimal Debian root filesystem as a tar, made once and cached: the machine's own
    APT sources (so no mirror is named here), no recommends, no docs or locales."""
    target = CACHE / "images" / f"{SUITE}.tar"
    if target.exists():
        return target
    if not shutil.which("mmdebstrap"):
        raise EngineError("mmdebstrap is needed to make the base image (make compose-deps)")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial.tar")
    with _apt_sources().open("rb") as sources:
        subprocess.run(
            [
                "mmdebstrap",
                "--quiet",
                "--variant=minbase",
                "--include=ca-certificates",
                '--aptopt=APT::Install-Recommends "false"',
                "--dpkgopt=path-exclude=/usr/share/doc/*",
                "--dpkgopt=path-exclude=/usr/share/man/*",
                "--dpkgopt=path-exclude=/usr/share/locale/*",
                "--dpkgopt=path-include=/usr/share/doc/*/copyright",
                SUITE,
                str(partial),
                "-",  # the sources, from stdin
            ],
            stdin=sources,
            check=True,
        )
    partial.rename(target)
    return target


def image_exists(engine: Engine, name: str) -> bool:
    return engine.run("image", "inspect", name, check=False, capture=True).returncode == 0


def _build(engine: Engine, *args: str) -> None:
    secret = ca_bundle()
    options = ["--secret", f"id=ca,src={secret}"] if secret else []
    if engine.kind == "podman":
        # Docker's image format: OCI's has no HEALTHCHECK, and podman would drop the
        # Dockerfile's.
        options += ["--format", "docker"]
    engine.run("build", *options, *args)


def build_base(engine: Engine) -> None:
    if not image_exists(engine, BASE_IMAGE):
        engine.run("import", "--quiet", str(base_rootfs()), BASE_IMAGE, capture=True)


def build_standins(engine: Engine) -> None:
    for stage in STANDINS:
        _build(
            engine,
            "--quiet",
            "--target",
            stage,
            "--build-arg",
            f"BASE_IMAGE={BASE_IMAGE}",
            "--build-arg",
            f"PG_MAJOR={PG_MAJOR}",
            "-t",
            f"{LOCAL}/{stage}:latest",
            str(ROOT / "docker" / "local"),
        )


def es_image(version: str = DEFAULT_ES_VERSION) -> str:
    return f"{LOCAL}/elasticsearch:{version}"


def build_elasticsearch(engine: Engine, version: str = DEFAULT_ES_VERSION) -> None:
    """Elastic's image has the JDK and the full distribution; the stand-in is the
    integ-test distribution from Maven Central (the local stack's, cached) on Debian.
    Its build context is its folder plus that zip, copied into a scratch folder."""
    source = ROOT / "docker" / "local" / "elasticsearch"
    with tempfile.TemporaryDirectory(prefix="myaiserv-es-") as scratch:
        context = Path(scratch) / "context"
        shutil.copytree(source, context)
        shutil.copy2(distribution_zip(version), context / f"elasticsearch-{version}.zip")
        _build(
            engine,
            "--quiet",
            "--build-arg",
            f"BASE_IMAGE={BASE_IMAGE}",
            "--build-arg",
            f"ES_VERSION={version}",
            "-t",
            es_image(version),
            str(context),
        )


def build_app(engine: Engine, *, local_base: bool) -> None:
    """docker/Dockerfile as Docker users build it; on the stand-ins, FROM the python one
    and with Debian's own pg_dump (the PostgreSQL stand-in is Debian's)."""
    args = ["-f", str(ROOT / "docker" / "Dockerfile"), "-t", APP_IMAGE]
    if local_base:
        args += [
            "--build-arg",
            f"PYTHON_IMAGE={LOCAL}/python:latest",
            "--build-arg",
            "PG_CLIENT_APT=debian",
            "--build-arg",
            f"PG_CLIENT_MAJOR={PG_MAJOR}",
        ]
    _build(engine, *args, str(ROOT))


def build_all(engine: Engine, *, local_images: bool) -> float:
    """Builds what the topology needs; returns the seconds it took."""
    started = time.monotonic()
    if local_images:
        build_base(engine)
        build_standins(engine)
        build_elasticsearch(engine)
    build_app(engine, local_base=local_images)
    return time.monotonic() - started


def image_size_mb(engine: Engine, name: str) -> float:
    out = engine.run("image", "inspect", "--format", "{{.Size}}", name, capture=True).stdout
    return int(out.strip()) / 1e6
