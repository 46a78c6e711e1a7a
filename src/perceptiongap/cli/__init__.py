"""The ``perceptiongap`` command: one sub-command per stage of the data flow, plus ``reproduce``.

Each stage's commands live in their own module here and register themselves on :data:`app`.
Heavy libraries (JAX, matplotlib, pydicom) are imported inside the commands, so that ``--help``
stays fast. Bad input raises :class:`~perceptiongap.errors.InputError`, which :func:`main` prints
as one line on stderr with exit code 2.
"""

from __future__ import annotations

import sys

import typer

from perceptiongap.errors import InputError

app = typer.Typer(
    name="perceptiongap",
    help="Measure whether humans and machines use the same image features (Makino et al. 2022).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each module adds its commands to `app` on import; the order is the order of the data flow.
_STAGE_MODULES = ("perturb", "predict", "readers", "release", "fit", "report", "stats")


def _register_stages() -> None:
    import importlib

    for name in _STAGE_MODULES:
        try:
            importlib.import_module(f"perceptiongap.cli.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"perceptiongap.cli.{name}":
                raise


_register_stages()


def _use_all_cores_for_jax() -> None:
    """Let NUTS run its chains in parallel: one XLA CPU device per core (must precede importing JAX)."""
    import os

    flag = "--xla_force_host_platform_device_count"
    if flag not in os.environ.get("XLA_FLAGS", "") and "jax" not in sys.modules:
        cores = min(os.cpu_count() or 1, 4)
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}={cores}".strip()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    import click

    _use_all_cores_for_jax()
    command = typer.main.get_command(app)
    try:
        # standalone_mode=False lets our handlers below see errors and interrupts first.
        code = command.main(args=argv, prog_name="perceptiongap", standalone_mode=False)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except (KeyboardInterrupt, click.Abort):
        print("interrupted: completed work was kept; re-run the same command to resume", file=sys.stderr)
        sys.exit(130)
    if isinstance(code, int) and code:
        sys.exit(code)
