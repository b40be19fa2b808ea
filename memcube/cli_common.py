"""The one open, error and output path of the ``memcube`` command line, which every command of
:mod:`memcube.cli` (and :mod:`memcube.cli_edit`) goes through: exit codes, the report of a
failure (with the core's Python parameter names shown as the CLI's flags), ``--json`` or rich
output, and opening the command's cube.

Example:
    >>> cli_words("user_id is required: pass user_id='...' (a non-empty string).")
    "--user is required: pass --user '...' (a non-empty string)."
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from memcube import errors as E

if TYPE_CHECKING:
    # Only for annotations: the cube (and its Chroma and embedder imports) load when a command runs.
    from memcube import MemCube

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_UNAVAILABLE = 4
EXIT_REJECTED = 5
EXIT_INCOMPATIBLE = 6
EXIT_REFUSED = 7
EXIT_INTERRUPTED = 130

DEFAULT_CUBE = ".memcube"
DISTRIBUTION = "memos-integrations"

out = Console(soft_wrap=False)
err = Console(stderr=True)

CubeOpt = Annotated[
    Path,
    typer.Option("--cube", "-c", envvar="MEMCUBE_PATH", help="Cube folder.", show_default=True),
]
ChromaOpt = Annotated[
    str | None,
    typer.Option(
        "--chroma-url",
        envvar="MEMCUBE_CHROMA_URL",
        help="Chroma server, e.g. http://localhost:8000.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout (for scripts).")]
UserOpt = Annotated[str, typer.Option("--user", "-u", help="Whose memories.")]

ProgressFn = Callable[[str, int, int | None], None]


# ----------------------------------------------------------------------------- errors
# First match wins: an error under two bases (UnsupportedArchiveVersionError is both an
# ArchiveError and a ManifestError) takes the earlier code, and MemCubeError catches the rest.
EXIT_CODES: tuple[tuple[type[E.MemCubeError], int], ...] = (
    (E.ArchiveError, EXIT_REJECTED),
    (E.ItemNotFoundError, EXIT_NOT_FOUND),
    (E.InvalidInputError, EXIT_USAGE),
    (E.CubeLockedError, EXIT_UNAVAILABLE),
    (E.BackendUnavailableError, EXIT_UNAVAILABLE),
    (E.RegistryUnavailableError, EXIT_UNAVAILABLE),
    (E.ArtifactNotFoundError, EXIT_NOT_FOUND),
    (E.EmbedderMismatchError, EXIT_INCOMPATIBLE),
    (E.ManifestError, EXIT_INCOMPATIBLE),
    (E.ModelMismatchError, EXIT_INCOMPATIBLE),
    (E.MemCubeError, EXIT_REFUSED),
)

#: The core's messages name Python parameters; the CLI's user knows the flag that sets each.
#: Only names with an underscore: they never occur as plain words in a message.
FLAGS = {
    "user_id": "--user",
    "session_id": "--session",
    "memory_type": "--type",
    "memory_types": "--type",
    "signing_key": "--sign",
    "trusted_keys": "--trust",
    "on_conflict": "--on-conflict",
    "model_fingerprint": "--model-fingerprint",
}
_PARAMETER = re.compile(r"\b(" + "|".join(sorted(FLAGS, key=len, reverse=True)) + r")\b(=?)")


def cli_words(message: str) -> str:
    """``message`` with each Python parameter name of :data:`FLAGS` replaced by its flag
    (``user_id='x'`` becomes ``--user 'x'``)."""
    return _PARAMETER.sub(lambda m: FLAGS[m.group(1)] + (" " if m.group(2) else ""), message)


class CliError(Exception):
    """A failure to report to the user: a message, an exit code, and what to do about it.

    Raised by the CLI for what it detects itself (no cube, no such file); errors from the cube
    are translated into one by :func:`as_cli_error`.
    """

    def __init__(
        self, message: str, code: int, *, kind: str = "Error", hint: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.kind = kind
        self.hint = hint


def as_cli_error(exc: BaseException) -> CliError | None:
    """The report for ``exc``, or ``None`` for a bug, whose traceback should stay visible."""
    if isinstance(exc, CliError):
        return exc
    if isinstance(exc, KeyboardInterrupt):
        return CliError("interrupted; nothing acknowledged was lost.", EXIT_INTERRUPTED)
    # Before OSError: AccessDeniedError and BackendUnavailableError are OSErrors too, and their
    # own message and code say more.
    if isinstance(exc, E.MemCubeError):
        code = next((c for cls, c in EXIT_CODES if isinstance(exc, cls)), EXIT_FAILURE)
        return CliError(cli_words(str(exc)), code, kind=type(exc).__name__)
    if isinstance(exc, OSError):
        return CliError(
            f"{exc.strerror or exc} ({exc.filename or ''}). Check the path and its permissions.",
            EXIT_FAILURE,
            kind=type(exc).__name__,
        )
    return None


def report_failure(failure: CliError, *, json_out: bool) -> NoReturn:
    if json_out:
        payload: dict[str, Any] = {
            "type": failure.kind,
            "message": failure.message,
            "exit_code": failure.code,
        }
        if failure.hint:
            payload["hint"] = failure.hint
        # On stdout, like every --json result, so a script reads one JSON document either way.
        print_json({"error": payload})
    else:
        err.print(f"[bold red]error[/]: {failure.message}", highlight=False)
        if failure.hint:
            err.print(f"[yellow]hint[/]: {failure.hint}", highlight=False)
    raise typer.Exit(failure.code)


@contextmanager
def errors(json_out: bool) -> Iterator[None]:
    """Turn an error raised in the block into a message and its exit code (see the module doc)."""
    try:
        yield
    except BaseException as exc:  # typer.Exit, usage errors (ctx.fail) and bugs: None
        failure = as_cli_error(exc)
        if failure is None:
            raise
        report_failure(failure, json_out=json_out)


# ----------------------------------------------------------------------------- output
def print_json(data: Any) -> None:
    # default=str: datetimes and paths inside reports print as text instead of failing the command.
    out.print_json(json.dumps(data, default=str, ensure_ascii=False))


def emit(
    data: Any,
    *,
    json_out: bool,
    show: Iterable[RenderableType] = (),
    notes: Iterable[RenderableType] = (),
) -> None:
    """Print a command's result: ``data`` as JSON with ``--json``, else ``show`` and ``notes``.

    ``show`` (lines, tables, panels) goes to stdout; ``notes`` (warnings, things left out) go to
    stderr so they stay out of pipes. With ``--json`` only ``data`` is printed, so either may be
    a generator that is never consumed then.
    """
    if json_out:
        print_json(data)
        return
    for renderable in show:
        out.print(renderable)
    for note in notes:
        # Notes quote file names and reasons verbatim; number and path highlighting would mislead.
        err.print(note, highlight=False)


def package_version() -> str:
    """The installed version of this distribution (``memcube.__version__`` if not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        import memcube

        return str(getattr(memcube, "__version__", "unknown"))


# ----------------------------------------------------------------------------- the cube
def is_cube(folder: Path) -> bool:
    from memcube.config import CubeManifest

    return CubeManifest.read(folder.expanduser().resolve()) is not None


def refuse_orphaned_data(folder: Path) -> None:
    """Refuse to start a new cube in a folder that holds Chroma data but no manifest: a new
    manifest would name new, empty collections beside the memories already there."""
    from memcube.config import MANIFEST_NAME

    path = folder.expanduser()
    found = [p for p in (path / "chroma", path / "chroma.sqlite3") if p.exists()]
    if found:
        raise CliError(
            f"{path} holds Chroma data ({', '.join(p.name for p in found)}) but no "
            f"{MANIFEST_NAME}; a new cube here would not see those memories. Nothing was changed.",
            EXIT_REFUSED,
            kind="OrphanedChromaData",
            hint=f"restore {MANIFEST_NAME} from a backup (or import an export of the cube), or "
            "give `memcube init` an empty folder.",
        )


@contextmanager
def opened(
    cube: Path,
    chroma_url: str | None,
    json_out: bool,
    *,
    create: bool = False,
    owner: str | None = None,
) -> Iterator[MemCube]:
    """Open the command's cube for the block, then close it (releasing its lock).

    Only ``create`` (``init``) makes a new cube: elsewhere a folder without one is an error, so a
    mistyped ``--cube`` fails loudly instead of starting an empty cube.
    """
    from memcube import MemCube

    path = cube.expanduser()
    if not create and not is_cube(path):
        raise CliError(
            f"no cube at {path}.",
            EXIT_NOT_FOUND,
            kind="CubeNotFound",
            hint=f"create one with `memcube init --cube {path}`, or point --cube / $MEMCUBE_PATH at an existing cube.",
        )
    # Loading the embedder takes seconds: tell a person at a terminal, never a script. init has
    # never shown it, and keeps its stderr as it was.
    waiting: AbstractContextManager[object] = (
        nullcontext()
        if create or json_out or not err.is_terminal
        else err.status("opening the cube (loading the embedder)...")
    )
    with waiting:
        mc = MemCube.open(path, chroma_url=chroma_url, owner=owner)
    with mc:
        yield mc


@contextmanager
def progress_bars(json_out: bool) -> Iterator[ProgressFn]:
    """A rich progress display, fed by ``progress(stage, done, total)`` callbacks."""
    bars = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=json_out or not err.is_terminal,
        transient=False,
    )
    tasks: dict[str, TaskID] = {}

    def update(stage: str, done: int, total: int | None) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(stage, total=total)
        bars.update(tasks[stage], completed=done, total=total)

    with bars:
        yield update


def parse_meta(pairs: list[str] | None) -> dict[str, Any] | None:
    if not pairs:
        return None
    md: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise E.InvalidMetadataError(f"--meta takes KEY=VALUE, got {pair!r}.")
        key, raw = pair.split("=", 1)
        try:
            md[key] = json.loads(raw)
        except ValueError:
            md[key] = raw
    return md


__all__ = [
    "DEFAULT_CUBE",
    "EXIT_CODES",
    "EXIT_FAILURE",
    "EXIT_INCOMPATIBLE",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_REJECTED",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "FLAGS",
    "ChromaOpt",
    "CliError",
    "CubeOpt",
    "JsonOpt",
    "ProgressFn",
    "UserOpt",
    "as_cli_error",
    "cli_words",
    "emit",
    "err",
    "errors",
    "is_cube",
    "opened",
    "out",
    "package_version",
    "parse_meta",
    "print_json",
    "progress_bars",
    "refuse_orphaned_data",
    "report_failure",
]
