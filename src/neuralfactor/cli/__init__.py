"""The ``neuralfactor`` command: a Typer app that parses, calls the library and prints.

Each subcommand lives in a module of this package exposing ``register(app)``; modules are
discovered at start-up, so adding a command never touches this file. Errors from bad input
print one readable line and exit 2; other failures exit 1; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer
from rich.console import Console

__all__ = ["app", "main", "console", "err_console", "state"]

app = typer.Typer(
    name="neuralfactor",
    help="Learned low-rank and structured factorizations, measured against classical linear algebra.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # click's plain help: Typer's Rich panels print "<bool>" after every flag (--resume,
    # --nested/--no-nested, even --help) as if it took a value; the plain layout shows flags
    # as flags and the type of every other option, and reads the same when piped
    rich_markup_mode=None,
)
console = Console()
err_console = Console(stderr=True)
#: Global CLI flags, set once by the callback.
state: dict[str, bool] = {"debug": False, "quiet": False}


def _version(value: bool) -> None:
    if value:
        from neuralfactor import __version__

        console.print(f"neuralfactor {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    state["debug"] = debug
    state["quiet"] = quiet


def _register_commands() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_commands()


def _click_exceptions() -> tuple[tuple[type, ...], ...]:
    """(Exit, Abort, NoArgsIsHelpError, ClickException) from click and Typer's vendored copy.

    Recent Typer vendors click and no longer installs it, older Typer uses click itself: take
    the exception classes from whichever is importable (both when both are).
    """
    mods = []
    try:
        import click

        mods.append(click.exceptions)
    except ImportError:  # a fresh `pip install -e .` with a Typer that vendors click
        pass
    try:  # Typer >= 0.16 ships its own click (and its own Exit / Abort)
        from typer import exceptions as typer_exceptions
        from typer._click import exceptions as vendored

        mods += [vendored, typer_exceptions]
    except ImportError:
        pass
    names = ("Exit", "Abort", "NoArgsIsHelpError", "ClickException")
    return tuple(tuple(getattr(m, n) for m in mods if hasattr(m, n)) for n in names)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point with the project's exit-code convention (0 / 1 / 2)."""
    exit_, abort, no_args, click_error = _click_exceptions()
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        rc = app(args=args, prog_name="neuralfactor", standalone_mode=False)
    except exit_ as exc:
        return int(exc.exit_code)
    except abort:
        err_console.print("Aborted.")
        return 130
    except no_args:  # the help text was printed already
        return 2
    except click_error as exc:  # usage errors: one line and exit 2
        ctx = getattr(exc, "ctx", None)
        cmd = ctx.command_path if ctx is not None else "neuralfactor"
        msg = " ".join(exc.format_message().split())
        err_console.print(
            f"error: {msg} (see '{cmd} --help')", markup=False, highlight=False, soft_wrap=True
        )
        return 2
    except KeyboardInterrupt:
        err_console.print("Interrupted; finished stages are kept, rerun to resume.")
        return 130
    except (
        ValueError,
        TypeError,
        FileNotFoundError,
        FileExistsError,
        NotADirectoryError,
        PermissionError,
        IsADirectoryError,
    ) as exc:
        if debug:
            raise
        err_console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except Exception as exc:  # noqa: BLE001 - the one place that turns failures into a line
        if debug:
            raise
        err_console.print(
            f"error ({type(exc).__name__}): {exc}", markup=False, highlight=False, soft_wrap=True
        )
        err_console.print("Rerun with --debug for the traceback.", style="dim")
        return 1
    return rc if isinstance(rc, int) else 0
