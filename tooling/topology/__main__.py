"""The production topology (docker-compose.yml) on this machine's container engine.

    python -m tooling.topology up [--scale N]   build every image, start, wait for /ready
    python -m tooling.topology down [--volumes] stop (volumes are kept unless --volumes)
    python -m tooling.topology compose ARGS...  any compose command, with the right files,
                                                engine and settings (ps, logs, up --scale)
    python -m tooling.topology build            only build the images
    python -m tooling.topology env              the environment for running compose by hand

`make compose-up`, `make compose-test` and `make compose-down` call these.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from tooling.topology import engine as engines
from tooling.topology import images
from tooling.topology.settings import compose_env, compose_files, http_port, wait_ready


def _engine() -> engines.Engine:
    engine = engines.detect()
    if engine.kind == "podman":
        engines.start_podman_service(engine)
    return engine


def local_images(engine: engines.Engine) -> bool:
    """Stand-ins wherever the public images cannot be pulled: always on podman here;
    on Docker only when asked (MYAISERV_LOCAL_IMAGES=1)."""
    return engine.kind == "podman" or os.environ.get("MYAISERV_LOCAL_IMAGES") == "1"


def compose(engine: engines.Engine, *args: str, check: bool = True) -> int:
    command = [
        *engine.compose_command(),
        "--project-directory",
        str(engines.ROOT),
        "--env-file",
        str(compose_env()),
    ]
    for path in compose_files(local_images(engine)):
        command += ["-f", str(path)]
    proc = subprocess.run(
        [*command, *args], env={**os.environ, **engine.env}, cwd=engines.ROOT, check=False
    )
    if check and proc.returncode != 0:
        raise SystemExit(proc.returncode)
    return proc.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tooling.topology")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up")
    up.add_argument("--scale", type=int, default=3, help="web instances (default 3)")
    up.add_argument("--no-build", action="store_true")
    down = sub.add_parser("down")
    down.add_argument("--volumes", action="store_true", help="also delete the data volumes")
    sub.add_parser("build")
    sub.add_parser("env")
    sub.add_parser("tick")
    passthrough = sub.add_parser("compose")
    passthrough.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    if args.command == "tick":
        engines.tick_forever()
        return 0
    engine = _engine()
    if args.command == "env":
        for key, value in engine.env.items():
            print(f"export {key}={value}")
        return 0
    if args.command == "build":
        took = images.build_all(engine, local_images=local_images(engine))
        print(f"topology: images built in {took:.0f}s ({engine.kind})")
        return 0
    if args.command == "compose":
        return compose(engine, *args.args, check=False)
    if args.command == "down":
        compose(engine, "down", *(["--volumes"] if args.volumes else []))
        if engine.kind == "podman":
            engines.stop_podman_service()
        return 0
    # up
    started = time.monotonic()
    if not args.no_build:
        took = images.build_all(engine, local_images=local_images(engine))
        print(f"topology: images built in {took:.0f}s ({engine.kind})", flush=True)
    compose(engine, "up", "-d", "--no-build", "--scale", f"web={args.scale}")
    wait_ready(timeout_s=600)
    print(
        f"topology: up in {time.monotonic() - started:.0f}s; "
        f"MyAIServ answers at http://127.0.0.1:{http_port()}/ (nginx, {args.scale} web instances)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
