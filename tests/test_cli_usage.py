"""Usage errors from the console entry point: one red line and exit 2, like any user error."""

from __future__ import annotations

import pytest

from readyml.cli import main


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as stopped:
        main(args)
    captured = capsys.readouterr()
    return int(stopped.value.code or 0), captured.out, captured.err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["score", "--fail-under", "abc"], "Invalid value for '--fail-under'"),
        (["profile"], "Missing argument 'data'."),
        (["nosuch"], "No such command 'nosuch'."),
        (["serve", "--port", "abc"], "Invalid value for '--port'"),
    ],
)
def test_a_usage_error_is_one_line_naming_the_option_and_exits_2(
    args: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(args, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and not out.strip()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]
    assert f"(see: readyml {args[0] if args[0] != 'nosuch' else ''}".rstrip() in lines[0]


def test_no_arguments_print_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run([], capsys)
    assert code == 2 and "Usage: readyml" in out and "serve" in out


def test_a_command_exit_code_is_the_process_exit_code(
    capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    assert _run(["--help"], capsys)[0] == 0
    code, _, err = _run(["models", "list", "-p", "/nonexistent-project"], capsys)
    assert code == 2 and "not found" in err


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["compress", "m@c", "--quantize", "int8", "--quantize", "torch-int8"], "--quantize"),
        (["models", "show", "m", "--format=json", "--format", "text"], "--format"),
        (["schema", "infer", "data.csv", "--out", "a.yaml", "--out", "b.yaml"], "--out"),
    ],
)
def test_a_one_value_option_given_twice_is_refused_not_silently_overridden(
    args: list[str], option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(args, capsys)
    assert code == 2 and not out.strip()
    assert f"error: option {option}: expected once" in err


def test_flags_and_repeatable_options_may_be_given_more_than_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = _run(["run", "--force", "--force", "-p", "/nonexistent-project"], capsys)
    assert code == 2 and "expected once" not in err and "not found" in err
