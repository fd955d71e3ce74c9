#!/bin/sh
# The image's dependencies, exactly as poetry.lock pins them (hash-checked), into
# /app/.venv. Run by docker/Dockerfile's build stage. A CA bundle handed to the build as
# the secret `ca` (a proxy that re-signs TLS) is trusted by pip; it never enters a layer.
set -eu
if [ -f /run/secrets/ca ]; then
    export PIP_CERT=/run/secrets/ca
fi
/opt/poetry/bin/poetry check --lock
/opt/poetry/bin/poetry export --only main --format requirements.txt --output /tmp/locked.txt
# The lock pins two versions of a few CUDA packages (torch's and cuda-toolkit's extras,
# under markers that both hold on Linux). Poetry installs both, one over the other; pip
# refuses the pair. Keep the newer: only torch loads them, and only in this stage.
/opt/poetry/bin/python - /tmp/locked.txt /tmp/requirements.txt <<'PY'
import re
import sys

from packaging.version import Version

blocks: list[list[str]] = []
for line in open(sys.argv[1]):
    if line[:1].isalnum():
        blocks.append([line])
    elif blocks:
        blocks[-1].append(line)
newest: dict[str, tuple[Version, int]] = {}
for i, block in enumerate(blocks):
    name, version = re.match(r"([A-Za-z0-9._-]+)==([^ ;\\]+)", block[0]).groups()
    key = name.lower().replace("_", "-")
    if key not in newest or Version(version) > newest[key][0]:
        newest[key] = (Version(version), i)
keep = {i for _, i in newest.values()}
with open(sys.argv[2], "w") as out:
    for i, block in enumerate(blocks):
        if i in keep:
            out.writelines(block)
PY
python -m venv /app/.venv
/app/.venv/bin/pip install --no-deps --require-hashes -r /tmp/requirements.txt
/app/.venv/bin/pip check
rm /tmp/locked.txt /tmp/requirements.txt
