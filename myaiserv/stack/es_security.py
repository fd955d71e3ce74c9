"""x-pack security for the local Elasticsearch (`stack up --secure`), as production runs it.

TLS on HTTP and transport with a CA and one node certificate (for 127.0.0.1 and localhost)
made once by the distribution's ``elasticsearch-certutil``; a file-realm user for MyAIServ
(``elasticsearch-users``) whose role holds just what the app, its indexers and
``myaiserv backup`` use: cluster health and node info, its index templates, snapshots,
and its own ``{prefix}-*`` indices.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

from myaiserv.stack.config import ElasticsearchConfig
from myaiserv.stack.process import run

ROLE = "myaiserv_app"
CLUSTER_PRIVILEGES = (
    "monitor",
    "manage_index_templates",
    "monitor_snapshot",
    "create_snapshot",
    "cluster:admin/repository/*",  # `myaiserv backup` registers its repository
    "cluster:admin/snapshot/*",  # ...and restores and deletes snapshots
)
INDEX_PRIVILEGES = ("manage", "read", "write")


def tool_env(conf: Path, java_home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "ES_JAVA_HOME": str(java_home),
        "ES_PATH_CONF": str(conf.resolve()),
    }


def make_certificates(home: Path, certs: Path, java_home: Path) -> None:
    """A CA and a node certificate signed by it, as PEM files in ``certs`` (kept across
    restarts: clients trust the CA)."""
    if (certs / "node.crt").exists():
        return
    certs.mkdir(parents=True, exist_ok=True)
    env = tool_env(home / "config", java_home)
    certutil = home / "bin" / "elasticsearch-certutil"
    run([certutil, "ca", "--pem", "--silent", "--out", certs / "ca.zip"], env=env)
    _unzip(certs / "ca.zip", certs)
    run(
        [
            certutil,
            "cert",
            "--pem",
            "--silent",
            "--ca-cert",
            certs / "ca.crt",
            "--ca-key",
            certs / "ca.key",
            "--name",
            "node",
            "--ip",
            "127.0.0.1",
            "--dns",
            "localhost",
            "--out",
            certs / "node.zip",
        ],
        env=env,
    )
    _unzip(certs / "node.zip", certs)
    (certs / "ca.key").unlink()  # nothing signs again; the nodes need only their own key


def _unzip(archive: Path, into: Path) -> None:
    """certutil's zip holds ``<name>/<name>.crt|key``: flattened into ``into``."""
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            if not info.is_dir():
                (into / Path(info.filename).name).write_bytes(zf.read(info))
    archive.unlink()


def node_settings() -> dict[str, object]:
    """elasticsearch.yml lines that turn security on (paths relative to the node's config)."""
    settings: dict[str, object] = {"xpack.security.enabled": True}
    for layer in ("http", "transport"):
        settings |= {
            f"xpack.security.{layer}.ssl.enabled": True,
            f"xpack.security.{layer}.ssl.key": "certs/node.key",
            f"xpack.security.{layer}.ssl.certificate": "certs/node.crt",
            f"xpack.security.{layer}.ssl.certificate_authorities": ["certs/ca.crt"],
        }
    # One certificate serves every node on loopback: check its CA, not its host name.
    settings["xpack.security.transport.ssl.verification_mode"] = "certificate"
    return settings


def configure_node(
    home: Path, conf: Path, certs: Path, config: ElasticsearchConfig, java_home: Path
) -> None:
    """Certificates, the role and the user in one node's config folder (the user is
    written afresh each start, so its password is always stack.json's)."""
    shutil.copytree(certs, conf / "certs", dirs_exist_ok=True)
    role = {
        "cluster": list(CLUSTER_PRIVILEGES),
        "indices": [{"names": [f"{config.index_prefix}-*"], "privileges": list(INDEX_PRIVILEGES)}],
    }
    (conf / "roles.yml").write_text(f"{ROLE}: {json.dumps(role)}\n")  # JSON is YAML
    for name in ("users", "users_roles"):
        (conf / name).write_text("")
    run(
        [
            home / "bin" / "elasticsearch-users",
            "useradd",
            config.user,
            "-p",
            config.password,
            "-r",
            ROLE,
        ],
        env=tool_env(conf, java_home),
    )
