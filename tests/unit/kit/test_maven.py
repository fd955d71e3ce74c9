"""Maven's trust store from a PEM bundle (an image build behind a TLS-re-signing proxy)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from myaiserv.kit import maven

BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def keytool_list(store: Path, password: str) -> str:
    return subprocess.run(
        ["keytool", "-list", "-keystore", store, "-storetype", "PKCS12", "-storepass", password],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_every_certificate_of_the_bundle_is_a_trusted_entry_java_reads(tmp_path: Path):
    pem = BUNDLE.read_bytes()
    store = tmp_path / "trust.p12"
    store.write_bytes(maven.java_trust_store(pem, "secret-pass"))
    listed = keytool_list(store, "secret-pass")
    certificates = pem.count(b"-----BEGIN CERTIFICATE-----")
    assert certificates > 10
    assert re.search(rf"Your keystore contains {certificates} entr", listed), listed[:300]
    assert listed.count("trustedCertEntry") == certificates


def test_maven_runs_with_the_bundle_as_its_trust_store_and_the_store_is_gone_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A stand-in `mvn` on PATH records what the real one would be given, and delivers."""
    seen = tmp_path / "seen"
    fake = tmp_path / "bin" / "mvn"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$MAVEN_OPTS" > {seen}\n'
        'store=$(echo "$MAVEN_OPTS" | sed -n "s/.*trustStore=\\([^ ]*\\).*/\\1/p")\n'
        f'cp "$store" {tmp_path}/store.p12\n'
        'for a in "$@"; do case "$a" in -DoutputDirectory=*) out="${a#*=}";; esac; done\n'
        'touch "$out/thing-1.0.jar"\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("SSL_CERT_FILE", str(BUNDLE))
    monkeypatch.setenv("MAVEN_OPTS", "-Xmx256m")

    got = maven.maven_artifact("org.example:thing:1.0", "things", "thing-1.0.jar")

    assert got == tmp_path / "cache" / "myaiserv" / "things" / "thing-1.0.jar" and got.exists()
    options = seen.read_text().split()
    assert options[0] == "-Xmx256m" and "-Djavax.net.ssl.trustStoreType=PKCS12" in options
    store = Path(
        next(o for o in options if o.startswith("-Djavax.net.ssl.trustStore=")).split("=")[1]
    )
    password = next(o for o in options if o.startswith("-Djavax.net.ssl.trustStorePassword="))
    assert not store.exists()  # made for the call, deleted after it
    assert "trustedCertEntry" in keytool_list(tmp_path / "store.p12", password.split("=", 1)[1])


def test_without_a_bundle_named_maven_keeps_java_s_own_trust(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.setenv("MAVEN_OPTS", "-Xmx256m")
    assert maven._maven_env(Path("/nonexistent"))["MAVEN_OPTS"] == "-Xmx256m"
