"""Development tooling for the tests and benchmarks: hostile inputs, mixed load with fault
injection, the two-tenant isolation sweep, the schemathesis runner, free port ranges.

Not part of the product: it is not packaged (pyproject.toml lists only ``myaiserv`` and
``indexers``), not copied into the image (docker/Dockerfile), and no module of
``myaiserv`` or ``indexers`` may import it (tests/unit/test_imports.py). Tests and
benchmarks import it from the repository root, which pytest and ``python -m bench.x``
put on ``sys.path``.
"""
