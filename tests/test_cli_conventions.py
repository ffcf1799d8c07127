"""CLI conventions: option values checked by the parser (exit 2, a message, no traceback), --version,
-h, flags shown as flags, examples and required settings in the help."""

from __future__ import annotations

from importlib.metadata import version

import pytest
from typer.testing import CliRunner

import migrator
from migrator.cli import app
from migrator.cli.conventions import SANDBOX_MAX_USERS
from migrator.sandbox.generator import MAX_USERS

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["sandbox", "serve", "--faults", "wild"], "--faults"),
        (["sandbox", "serve", "--duplicate-status", "418"], "--duplicate-status"),
        (["sandbox", "serve", "--clerk-rps", "0"], "--clerk-rps"),
        (["sandbox", "serve", "--kinde-rps", "0"], "--kinde-rps"),
        (["sandbox", "serve", "--kinde-rps", "-3"], "--kinde-rps"),
        (["sandbox", "serve", "--clerk-port", "99999"], "--clerk-port"),
        (["sandbox", "serve", "--kinde-port", "-1"], "--kinde-port"),
        (["sandbox", "serve", "--users", "0"], "--users"),
        (["demo", "--users", "0"], "--users"),
        (["demo", "--users", str(MAX_USERS + 1)], "--users"),
        (["demo", "--sign-ins", "-1"], "--sign-ins"),
        (["run", "--unimportable-passwords", "maybe"], "--unimportable-passwords"),
        (["-v", "-q", "status"], "-v/-q"),
    ],
)
def test_a_bad_option_value_exits_2_naming_the_option(args: list[str], named: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert named in result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)


def test_the_parser_limit_is_the_generators() -> None:
    assert SANDBOX_MAX_USERS == MAX_USERS


def test_version_prints_the_one_version_the_installed_distribution_carries() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    # pip recorded the version the build read from migrator/__init__.py; --version shows that same one.
    assert result.output.strip() == f"migrator {version('clerk-to-kinde')}" == f"migrator {migrator.__version__}"


def test_dash_h_is_help_with_examples_and_the_required_settings() -> None:
    result = runner.invoke(app, ["-h"], terminal_width=80)
    assert result.exit_code == 0
    assert "Examples:" in result.output
    assert "migrator run --clerk-export users.csv --dry-run" in result.output
    for name in ("CLERK_SECRET_KEY", "KINDE_DOMAIN", "KINDE_MANAGEMENT_CLIENT_ID", "KINDE_MANAGEMENT_CLIENT_SECRET"):
        assert name in result.output
    for flag in ("--version", "-v, --verbose", "-q, --quiet", "--install-completion"):
        assert flag in result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80


def test_run_help_names_the_required_settings_and_shows_flags_as_flags() -> None:
    result = runner.invoke(app, ["run", "-h"], terminal_width=100)
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "KINDE_MANAGEMENT_CLIENT_SECRET" in text and "CLERK_SECRET_KEY" in text
    assert "<bool>" not in result.output
    assert "--dry-run Read everything" in text  # no value between the flag and its help
    assert "[properties] maps to" in text  # help text is not read as markup


def test_verbose_and_quiet_are_accepted_before_a_command(tmp_path) -> None:
    for flag in ("-v", "-q", "--verbose", "--quiet"):
        result = runner.invoke(app, [flag, "status", "--state-dir", str(tmp_path)])
        assert result.exit_code == 2  # the command ran: no journal here
        assert "no journal" in result.output
