"""Every subcommand turns what a user can cause into one line, ``amiguard: error: …``, and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from amiguard_cli import main as cli


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    err = capsys.readouterr().err
    return code, err


def _one_line_error(err: str) -> bool:
    lines = [line for line in err.splitlines() if line.strip()]
    return len(lines) == 1 and lines[0].startswith("amiguard: error: ") and "Traceback" not in err


def test_replay_of_a_missing_file_is_one_line_and_exit_2_when_the_path_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run(capsys, "replay", str(tmp_path / "nope.json"))

    assert code == 2 and _one_line_error(err) and "nope.json" in err


def test_replay_of_a_file_that_is_not_json_is_one_line_and_exit_2_when_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "event.json"
    path.write_text("this is not json", encoding="utf-8")

    code, err = _run(capsys, "replay", str(path))

    assert code == 2 and _one_line_error(err) and "not JSON" in err


def test_replay_of_a_json_file_without_events_says_so_when_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "empty.json"
    path.write_text(json.dumps({"Records": []}), encoding="utf-8")

    code, err = _run(capsys, "replay", str(path))

    assert code == 2 and _one_line_error(err) and "no CloudTrail record" in err


def test_scan_output_to_a_bad_path_is_exit_2_not_findings_when_the_folder_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run(capsys, "scan", "--sandbox", "--format", "json", "--output", str(tmp_path / "no" / "r.json"))

    assert code == 2 and "amiguard: error: " in err and "Traceback" not in err


def test_unknown_profile_is_one_line_and_exit_2_when_scanning_a_real_account(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile-anywhere")

    code, err = _run(capsys, "scan")

    assert code == 2 and _one_line_error(err) and "no-such-profile-anywhere" in err


def test_bad_setting_is_one_line_naming_the_variable_when_scanning(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMIGUARD_MODE", "fix-everything")

    code, err = _run(capsys, "scan", "--sandbox")

    assert code == 2 and "amiguard: error: " in err and "AMIGUARD_MODE" in err and "Traceback" not in err


def test_missing_cli_extra_names_the_extra_to_install_when_a_module_is_absent(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def without_moto() -> None:
        raise ModuleNotFoundError("No module named 'moto'", name="moto")

    monkeypatch.setattr(cli, "build_parser", without_moto)

    code, err = _run(capsys, "demo")

    assert code == 2 and _one_line_error(err) and "pip install 'amiguard[cli]'" in err


def test_sandbox_ignores_the_shells_profile_and_endpoint_when_it_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile-anywhere")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    event = Path(__file__).resolve().parents[2] / "events" / "public_guard" / "make-ami-public.json"

    code = cli.main(["replay", str(event), "--enforce"])

    out = capsys.readouterr()
    assert code == 0 and "Traceback" not in out.err
    assert "public-share" in out.out


def test_help_is_rendered_without_restructuredtext_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["scan", "--help"])

    out = capsys.readouterr().out
    assert "``" not in out and "amiguard scan" in out
