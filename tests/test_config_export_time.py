"""The export-time setting: parsed strictly, defaulted once from the export file, fingerprinted, kept on resume."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migrator.config import Settings, load_settings
from migrator.errors import ConfigError

FILE_TIME = datetime(2025, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)

aware_datetimes = st.datetimes(
    min_value=datetime(1990, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.builds(timezone, st.integers(-14 * 60, 14 * 60).map(lambda m: timedelta(minutes=m))),
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No .env, no config file, no CLERK_* variable from the developer's shell."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("CLERK_", "KINDE_")):
            monkeypatch.delenv(name)


@pytest.fixture
def export(tmp_path: Path) -> Path:
    path = tmp_path / "clerk-export.csv"
    path.write_text("id\n")
    os.utime(path, (FILE_TIME.timestamp(), FILE_TIME.timestamp()))
    return path


@settings(max_examples=200)
@given(moment=aware_datetimes, separator=st.sampled_from(["T", " "]))
def test_any_iso_8601_time_with_an_offset_is_read_as_that_instant(moment: datetime, separator: str) -> None:
    loaded = load_settings(None, clerk_export_time=moment.isoformat(sep=separator))
    assert loaded.export_time == moment
    assert loaded.export_time is not None and loaded.export_time.utcoffset() == timedelta(0)


def test_z_is_utc() -> None:
    assert load_settings(None, clerk_export_time="2025-06-01T12:00:00Z").export_time == datetime(
        2025, 6, 1, 12, tzinfo=UTC
    )


def test_the_environment_variable_sets_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLERK_EXPORT_TIME", "2025-06-01T14:00:00+02:00")
    assert load_settings(None).export_time == datetime(2025, 6, 1, 12, tzinfo=UTC)


def test_the_config_file_sets_it_as_a_toml_datetime(tmp_path: Path) -> None:
    config = tmp_path / "migrator.toml"
    config.write_text("clerk_export_time = 2025-06-01T12:00:00Z\n")
    assert load_settings(config).export_time == datetime(2025, 6, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("2025-06-01T12:00:00", "has no timezone"),
        ("2025-06-01", "has no timezone"),
        ("yesterday", "got a value that is not one"),
        ("2025-13-01T00:00:00Z", "got a value that is not one"),
        ("1748779200", "got a value that is not one"),
        ("   ", "set but empty"),
    ],
)
def test_a_bad_export_time_is_a_config_error_naming_the_option(value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, clerk_export_time=value)
    message = str(caught.value)
    assert message.startswith("invalid configuration: CLERK_EXPORT_TIME: ")
    assert problem in message and "--export-time" in message and "ISO 8601" in message


@pytest.mark.parametrize("value", ["clerk_export_time = 2025-06-01T12:00:00", "clerk_export_time = 1748779200"])
def test_a_toml_time_without_offset_or_a_number_is_refused(tmp_path: Path, value: str) -> None:
    config = tmp_path / "migrator.toml"
    config.write_text(value + "\n")
    with pytest.raises(ConfigError, match=r"CLERK_EXPORT_TIME: .*timezone"):
        load_settings(config)


def test_unset_it_is_the_export_files_modification_time(export: Path) -> None:
    loaded = load_settings(None, clerk_export=str(export))
    assert loaded.clerk_export_time is None
    assert loaded.export_time == FILE_TIME


def test_the_file_time_is_read_once_when_the_settings_are_resolved(export: Path) -> None:
    loaded = load_settings(None, clerk_export=str(export))
    fingerprint = loaded.fingerprint()
    os.utime(export, (0, 0))  # touched later: the run keeps the value it started with
    assert loaded.export_time == FILE_TIME
    assert loaded.fingerprint() == fingerprint


def test_the_setting_wins_over_the_file_time(export: Path) -> None:
    loaded = load_settings(None, clerk_export=str(export), clerk_export_time="2025-01-01T00:00:00Z")
    assert loaded.export_time == datetime(2025, 1, 1, tzinfo=UTC)


def test_settings_built_directly_default_to_the_file_time_too(export: Path) -> None:
    assert Settings(clerk_export=export).export_time == FILE_TIME


def test_without_an_export_or_a_setting_there_is_none(tmp_path: Path) -> None:
    assert load_settings(None).export_time is None
    assert load_settings(None, clerk_export=str(tmp_path / "missing.csv")).export_time is None


def test_the_export_time_is_fingerprinted(export: Path) -> None:
    from_file = load_settings(None, clerk_export=str(export))
    explicit_same = load_settings(None, clerk_export=str(export), clerk_export_time=FILE_TIME.isoformat())
    other = load_settings(None, clerk_export=str(export), clerk_export_time="2025-01-01T00:00:00Z")
    assert from_file.mapping_summary()["clerk_export_time"] == FILE_TIME.isoformat()
    assert from_file.fingerprint() == explicit_same.fingerprint()
    assert from_file.fingerprint() != other.fingerprint()


def test_no_export_time_leaves_the_summary_as_before_the_setting_existed() -> None:
    assert "clerk_export_time" not in load_settings(None).mapping_summary()


# -- resume: the run's recorded export time is kept unless the operator sets one again ----------------


def recorded(moment: datetime | None) -> dict[str, Any]:
    return {} if moment is None else {"clerk_export_time": moment.isoformat()}


@pytest.mark.parametrize("with_export", [True, False], ids=["export-setting-present", "export-from-journal"])
def test_resume_keeps_the_recorded_time_when_none_is_set(export: Path, with_export: bool) -> None:
    began = datetime(2024, 12, 31, 23, 59, 59, 123_456, tzinfo=UTC)
    now = load_settings(None, clerk_export=str(export)) if with_export else load_settings(None)
    kept = now.keeping_export_time(recorded(began))
    assert kept.export_time == began
    assert kept.mapping_summary()["clerk_export_time"] == began.isoformat()
    assert now.export_time == (FILE_TIME if with_export else None)  # the original is not changed


def test_resume_with_a_set_time_keeps_that_one(export: Path) -> None:
    explicit = load_settings(None, clerk_export_time="2025-01-01T00:00:00Z")
    kept = explicit.keeping_export_time(recorded(FILE_TIME))
    assert kept.export_time == datetime(2025, 1, 1, tzinfo=UTC)
    assert kept.fingerprint() != load_settings(None).keeping_export_time(recorded(FILE_TIME)).fingerprint()


def test_resume_of_a_run_begun_without_an_export_time_keeps_none(export: Path) -> None:
    kept = load_settings(None, clerk_export=str(export)).keeping_export_time({})
    assert kept.export_time is None
    assert kept.fingerprint() == load_settings(None).fingerprint()


def test_a_recorded_value_that_is_not_a_time_counts_as_none() -> None:
    assert load_settings(None).keeping_export_time({"clerk_export_time": "garbage"}).export_time is None
