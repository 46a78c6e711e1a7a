"""The ``perceptiongap`` command: one sub-command per stage of the data flow, plus ``reproduce``.

Each stage's commands live in their own module here and register themselves on :data:`app`;
they parse options, call the library and draw its callbacks (:mod:`perceptiongap.cli.progress`).
Heavy libraries (JAX, matplotlib, pydicom) are imported inside the commands, so that ``--help``
stays fast. Bad input raises :class:`~perceptiongap.errors.InputError`, which :func:`main`
prints as one line on stderr with exit code 2; a library error that names a parameter
(``source="advi_seeds"``, or ```resume``` in its text) is shown with the command's flag for it
(``--advi-seeds``, ``--resume``).
"""

from __future__ import annotations

import functools
import re
import sys

import typer

from perceptiongap.errors import InputError
from perceptiongap.files import os_error_message

__all__ = ["INTERRUPTED_MESSAGE", "Interrupted", "app", "main", "plain_help"]

app = typer.Typer(
    name="perceptiongap",
    help="Measure whether humans and machines use the same image features (Makino et al. 2022).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



def _version(value: bool) -> None:
    if value:
        from importlib import metadata

        try:
            version = metadata.version("perceptiongap")
        except metadata.PackageNotFoundError:  # run from a source tree that was never installed
            version = "unknown"
        typer.echo(f"perceptiongap {version}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the installed version and exit."),
) -> None:
    """Measure whether humans and machines use the same image features (Makino et al. 2022)."""


# Each module adds its commands to `app` on import; the order is the order of the data flow.
from perceptiongap.cli import perturb, predict, readers, release, fit, report, stats, plan  # noqa: E402,F401,I001


def _click_errors() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """(usage-error types, abort types) of the Click that Typer runs on, found through Typer's public names.

    Typer >= 0.29 runs on its own copy of Click and raises that copy's exceptions, not Click's;
    older Typer runs on Click itself. ``typer.BadParameter`` is the usage error of whichever Click
    Typer runs on, so its base class named ``ClickException`` is the one to catch; Click's own is
    added when Click is installed, so both are caught, whichever raised.
    """
    usage = [base for base in typer.BadParameter.__mro__ if base.__name__ == "ClickException"]
    abort = [typer.Abort]
    try:
        import click
    except ImportError:  # Typer that vendors Click, without Click installed
        pass
    else:
        usage.append(click.ClickException)
        abort.append(click.Abort)
    return tuple(dict.fromkeys(usage)) or (typer.BadParameter,), tuple(dict.fromkeys(abort))


class Interrupted(Exception):
    """Ctrl-C inside a command, carried past Typer (which would turn it into a silent exit code 130)."""


INTERRUPTED_MESSAGE = "interrupted: completed work was kept; re-run the same command to resume"


def parameter_flags(command) -> dict[str, str]:
    """Python parameter name -> how the user writes it: ``advi_seeds`` -> ``--advi-seeds``, ``out`` -> ``--out``,
    an argument ``results`` -> ``RESULTS``."""
    flags = {}
    for parameter in command.params:
        options = [opt for opt in getattr(parameter, "opts", []) if opt.startswith("--")]
        if parameter.param_type_name == "option" and options:
            flags[parameter.name] = options[0]
        elif parameter.param_type_name == "argument":
            flags[parameter.name] = parameter.name.upper()
    return flags


def in_flags(error: InputError, flags: dict[str, str]) -> InputError:
    """``error`` with parameter names (its source, and names in backticks in its text) shown as flags."""

    def flag(match: re.Match) -> str:
        name = match.group(1)
        return flags.get(name, flags.get(name.replace("-", "_"), f"`{name}`"))

    message = re.sub(r"`([A-Za-z_][A-Za-z0-9_-]*)`", flag, error.message)
    source = flags.get(error.source, error.source) if error.source is not None else None
    mapped = InputError(message, source=source)
    return mapped


def _speak_flags(group) -> None:
    """Wrap every command's callback so that an InputError leaving it names the command's flags."""
    for command in group.commands.values():
        if hasattr(command, "commands"):  # a group of commands, e.g. `release`
            _speak_flags(command)
            continue
        callback, flags = command.callback, parameter_flags(command)

        @functools.wraps(callback)
        def wrapped(*args, _callback=callback, _flags=flags, **kwargs):
            try:
                return _callback(*args, **kwargs)
            except InputError as error:
                raise in_flags(error, _flags) from None
            except KeyboardInterrupt:
                raise Interrupted() from None

        command.callback = wrapped


_CLICK_TYPE_NAMES = {"str": "TEXT", "int": "INTEGER", "int range": "INTEGER", "float": "FLOAT",
                     "float range": "FLOAT", "bool": "BOOLEAN", "path": "PATH", "file": "PATH", "dir": "PATH",
                     "directory": "PATH"}


def _plain_label(typer_label: str | None, nargs: int) -> str | None:
    """Typer's type label as Click writes it: ``<path>`` -> PATH, ``<int range>`` -> INTEGER, ``<list[Path]>`` ->
    PATH..., ``<parquet|csv>`` -> [parquet|csv]."""
    if not typer_label:
        return typer_label
    label = typer_label.strip("<>")
    many = nargs != 1 or label.startswith("list[")
    if label.startswith("list[") and label.endswith("]"):
        label = label[5:-1]
    if "|" in label:
        shown = f"[{label}]"
    else:
        shown = _CLICK_TYPE_NAMES.get(label.lower(), label.upper())
    return shown + ("..." if many else "")


def _plain_parameters(parameters: list) -> list:
    for parameter in parameters:
        if getattr(parameter, "_plain_help", False) or not hasattr(parameter, "display_type_rich"):
            continue  # done already, or a Click that needs no help (Typer before 0.29)
        if getattr(parameter, "is_flag", False):
            parameter.display_type_rich = lambda ctx: None
        elif getattr(parameter, "metavar", None) and getattr(parameter, "param_type_name", "") == "option":
            parameter.display_type_rich = lambda ctx, _shown=parameter.metavar: _shown  # the command named it
        elif hasattr(parameter, "display_type"):
            parameter.display_type_rich = (lambda ctx, _shown=parameter.display_type, _nargs=parameter.nargs:
                                           _plain_label(_shown(ctx), _nargs))
        if getattr(parameter, "param_type_name", "") == "argument":
            name = parameter.name.upper()
            parameter.metavar = name
            usage = (name if parameter.required else f"[{name}]") + ("..." if parameter.nargs != 1 else "")
            parameter._usage_display_name = lambda _usage=usage: _usage
        parameter._plain_help = True
    return parameters


def plain_help(command) -> None:
    """Help as Click writes it, for ``command`` and every command under it: no ``<bool>`` after a flag (nor after
    ``--help``), PATH instead of ``<path>``, ``OBSERVATIONS`` instead of ``{observations}``, ``INPUTS...`` instead of
    ``<list[Path]>``.

    Typer >= 0.29 draws its own type labels; they are replaced here, once, for every parameter, including the
    ``--help`` option each command creates when help is asked for (hence the wrapped ``get_params``).
    """
    get_params = command.get_params
    command.get_params = lambda ctx: _plain_parameters(get_params(ctx))
    for sub in getattr(command, "commands", {}).values():
        plain_help(sub)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: exit code 0, 2 (bad input, usage, an output in use) or 130 (Ctrl-C)."""
    from perceptiongap.cli.progress import show_log_messages

    usage_errors, aborts = _click_errors()
    command = typer.main.get_command(app)
    _speak_flags(command)
    plain_help(command)
    show_log_messages()
    try:
        # standalone_mode=False lets our handlers below see errors and interrupts first.
        code = command.main(args=argv, prog_name="perceptiongap", standalone_mode=False)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except usage_errors as error:
        error.show()
        sys.exit(error.exit_code)
    except (KeyboardInterrupt, Interrupted, *aborts):
        print(INTERRUPTED_MESSAGE, file=sys.stderr)
        sys.exit(130)
    except OSError as error:
        # A file or folder the user named cannot be read or written (read-only, a folder where a file is wanted,
        # a full disk): the stages check their outputs first, this is the net below them.
        where = f"{error.filename}: " if error.filename else ""
        print(f"error: {where}{os_error_message(error)}", file=sys.stderr)
        sys.exit(2)
    if code == 130:  # Typer turned a Ctrl-C outside a command's callback (e.g. while parsing) into its exit code
        print(INTERRUPTED_MESSAGE, file=sys.stderr)
    if isinstance(code, int) and code:
        sys.exit(code)
