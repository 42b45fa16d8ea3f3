"""A location name has one limit wherever it is given (SPEC §13): a run request, a schedule's
`locations` and `APIMD_LOCATION`/`APIMD_AGENT` accept and refuse the same names."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from apimd.model.api import RunRequest
from apimd.model.common import MAX_LOCATION
from apimd.model.resources import Schedule
from apimd.settings import Settings, SettingsError

LONGEST = "l" * MAX_LOCATION
TOO_LONG = "l" * (MAX_LOCATION + 1)


def _settings(tmp_path: Path, location: str) -> Settings:
    return Settings.load({"APIMD_HOME": str(tmp_path), "APIMD_LOCATION": location})


@pytest.mark.parametrize("name", [LONGEST, "eu-west.1_a"])
def test_a_name_accepted_in_one_place_is_accepted_in_all(tmp_path: Path, name: str) -> None:
    assert RunRequest(location=name).location == name
    schedule = Schedule(name="s", every="1m", targets=["c"], locations=[name])
    assert schedule.locations == [name]
    assert _settings(tmp_path, name).location == name


@pytest.mark.parametrize("name", [TOO_LONG, "eu west", "eu/west"])
def test_a_name_refused_in_one_place_is_refused_in_all(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValidationError, match="location"):
        RunRequest(location=name)
    with pytest.raises(ValidationError, match="locations"):
        Schedule(name="s", every="1m", targets=["c"], locations=[name])
    with pytest.raises(SettingsError, match=f"APIMD_LOCATION must be 1-{MAX_LOCATION} letters"):
        _settings(tmp_path, name)
