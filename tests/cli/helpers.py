"""Run the `perceptiongap` command in-process, as a user's shell would."""

from __future__ import annotations

from perceptiongap.cli import main


def run_cli(argv, capsys) -> tuple[int, str, str]:
    """Run the CLI with ``argv``; return (exit code, stdout, stderr)."""
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as exit_:
        code = exit_.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err
