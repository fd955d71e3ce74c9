"""The scale benchmark's knobs: stages and sizes from the environment (make's variables)."""

from __future__ import annotations

import pytest

from bench import growth


def test_the_knobs_come_from_the_environment() -> None:
    cfg = growth.Config.from_env(
        {"SCALE_STAGES": "runs, single", "SCALE_MAX_CHUNKS": "3000", "SCALE_POINTS": "500,1500"}
    )
    assert cfg.stages == ("single", "runs")  # in the stages' own order
    assert (cfg.max_chunks, cfg.points) == (3000, (500, 1500))
    assert growth.Config.from_env({}).stages == growth.STAGES
    with pytest.raises(SystemExit, match="unknown stage"):
        growth.Config.from_env({"SCALE_STAGES": "single,peers"})
