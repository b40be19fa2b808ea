"""``memcube``: the command line of a MemCube.

Every command works on the cube folder given by ``--cube`` (or ``$MEMCUBE_PATH``, default
``./.memcube``); add ``--chroma-url`` (or ``$MEMCUBE_CHROMA_URL``) to keep the memories on a
Chroma server. ``--json`` prints machine-readable output on stdout.

Exit codes: 0 success, 1 unexpected failure, 2 bad usage or input, 3 no such cube or memory,
4 cube busy or Chroma unreachable, 5 archive or export refused (unsafe, tampered, unsigned,
malformed), 6 incompatible (embedder, format version, model), 7 refused by the cube (e.g. frozen),
130 interrupted.

Example:
    >>> from typer.testing import CliRunner
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> CliRunner().invoke(app, ["init", "--cube", d, "--json"]).exit_code
    0
"""

from __future__ import annotations

import itertools
import json
import os
import sys
from collections import Counter
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
from memcube.cli_views import (
    export_view,
    history_view,
    import_notes,
    import_view,
    items_table,
    short,
    stats_view,
)

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

# The default models ship inside wheels: never wait on a model hub, never draw its progress bars.
# Applied by main() rather than at import, so importing this module changes nothing for the caller.
_QUIET_MODEL_HUB = {
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TOKENIZERS_PARALLELISM": "false",
}

app = typer.Typer(
    name="memcube",
    help="MemCube: MemOS-style memory on your machine. Plaintext memories, KV caches and adapters "
    "in one cube; export, verify and import them anywhere.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    epilog="Exit codes: 0 ok, 1 failure, 2 bad input, 3 not found, 4 busy/unreachable, "
    "5 archive refused, 6 incompatible, 7 refused by the cube, 130 interrupted.",
)

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
_EXIT_CODES: tuple[tuple[type[E.MemCubeError], int], ...] = (
    (E.ArchiveError, EXIT_REJECTED),
    (E.ItemNotFoundError, EXIT_NOT_FOUND),
    (E.InvalidInputError, EXIT_USAGE),
    (E.CubeLockedError, EXIT_UNAVAILABLE),
    (E.BackendUnavailableError, EXIT_UNAVAILABLE),
    (E.EmbedderMismatchError, EXIT_INCOMPATIBLE),
    (E.ManifestError, EXIT_INCOMPATIBLE),
    (E.ModelMismatchError, EXIT_INCOMPATIBLE),
    (E.MemCubeError, EXIT_REFUSED),
)


class _CliError(Exception):
    """A failure to report to the user: a message, an exit code, and what to do about it.

    Raised by the CLI for what it detects itself (no cube, no such file); errors from the cube
    are translated into one by :func:`_as_cli_error`.
    """

    def __init__(
        self, message: str, code: int, *, kind: str = "Error", hint: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.kind = kind
        self.hint = hint


def _as_cli_error(exc: BaseException) -> _CliError | None:
    """The report for ``exc``, or ``None`` for a bug, whose traceback should stay visible."""
    if isinstance(exc, _CliError):
        return exc
    if isinstance(exc, KeyboardInterrupt):
        return _CliError("interrupted; nothing acknowledged was lost.", EXIT_INTERRUPTED)
    # Before OSError: AccessDeniedError and BackendUnavailableError are OSErrors too, and their
    # own message and code say more.
    if isinstance(exc, E.MemCubeError):
        code = next((c for cls, c in _EXIT_CODES if isinstance(exc, cls)), EXIT_FAILURE)
        return _CliError(str(exc), code, kind=type(exc).__name__)
    if isinstance(exc, OSError):
        return _CliError(
            f"{exc.strerror or exc} ({exc.filename or ''}). Check the path and its permissions.",
            EXIT_FAILURE,
            kind=type(exc).__name__,
        )
    return None


def _report_failure(failure: _CliError, *, json_out: bool) -> NoReturn:
    if json_out:
        payload: dict[str, Any] = {
            "type": failure.kind,
            "message": failure.message,
            "exit_code": failure.code,
        }
        if failure.hint:
            payload["hint"] = failure.hint
        # On stdout, like every --json result, so a script reads one JSON document either way.
        _print_json({"error": payload})
    else:
        err.print(f"[bold red]error[/]: {failure.message}", highlight=False)
        if failure.hint:
            err.print(f"[yellow]hint[/]: {failure.hint}", highlight=False)
    raise typer.Exit(failure.code)


@contextmanager
def _errors(json_out: bool) -> Iterator[None]:
    """Turn an error raised in the block into a message and its exit code (see the module doc)."""
    try:
        yield
    except BaseException as exc:  # typer.Exit and bugs come back as None and propagate
        failure = _as_cli_error(exc)
        if failure is None:
            raise
        _report_failure(failure, json_out=json_out)


# ----------------------------------------------------------------------------- output
def _print_json(data: Any) -> None:
    # default=str: datetimes and paths inside reports print as text instead of failing the command.
    out.print_json(json.dumps(data, default=str, ensure_ascii=False))


def _emit(
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
        _print_json(data)
        return
    for renderable in show:
        out.print(renderable)
    for note in notes:
        # Notes quote file names and reasons verbatim; number and path highlighting would mislead.
        err.print(note, highlight=False)


# ----------------------------------------------------------------------------- the cube
def _is_cube(folder: Path) -> bool:
    from memcube.config import CubeManifest

    return CubeManifest.read(folder.expanduser().resolve()) is not None


@contextmanager
def _opened(
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
    if not create and not _is_cube(path):
        raise _CliError(
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
def _progress(json_out: bool) -> Iterator[ProgressFn]:
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


def _parse_meta(pairs: list[str] | None) -> dict[str, Any] | None:
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


def _folder_stats(path: Path) -> dict[str, int]:
    files = (
        [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()] if path.is_dir() else []
    )
    return {"files": len(files), "bytes": sum(p.stat().st_size for p in files)}


# ----------------------------------------------------------------------------- commands
@app.command()
def init(
    cube: CubeOpt = Path(DEFAULT_CUBE),
    chroma_url: ChromaOpt = None,
    owner: Annotated[str | None, typer.Option(help="Recorded in a new cube's manifest.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a cube (or open the one already there) and print what it is."""
    with _errors(json_out):
        created = not _is_cube(cube)
        with _opened(cube, chroma_url, json_out, create=True, owner=owner) as mc:
            info = {
                "path": str(mc.path), "cube_id": mc.cube_id, "created": created,
                "embedder": mc.manifest.embedder_id, "dimension": mc.manifest.embedding_dimension,
                "backend": chroma_url or "embedded", "memories": mc.count(include_archived=True),
            }  # fmt: skip
        verb = "created" if created else "already a cube:"
        _emit(
            info,
            json_out=json_out,
            show=[
                f"[green]{verb}[/] {info['path']}  (id {info['cube_id']}, {info['embedder']}, "
                f"{info['backend']}, {info['memories']} memories)",
                f'next: memcube add "I like green tea" --user alice --cube {cube}',
            ],
        )


@app.command()
def add(
    text: Annotated[str, typer.Argument(help="The memory text.")],
    user: UserOpt,
    cube: CubeOpt = Path(DEFAULT_CUBE),
    chroma_url: ChromaOpt = None,
    memory_type: Annotated[
        str,
        typer.Option(
            "--type",
            "-t",
            help="fact, preference, episodic, profile, long_term, document, working.",
        ),
    ] = "long_term",
    tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag (repeatable).")] = None,
    meta: Annotated[
        list[str] | None,
        typer.Option("--meta", help="KEY=VALUE metadata (repeatable; VALUE may be JSON)."),
    ] = None,
    importance: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.5,
    session: Annotated[str | None, typer.Option(help="Session id.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Remember one thing for a user."""
    with _errors(json_out):
        with _opened(cube, chroma_url, json_out) as mc:
            item = mc.add(
                text,
                user_id=user,
                memory_type=memory_type,
                tags=tag,
                metadata=_parse_meta(meta),
                importance=importance,
                session_id=session,
                provenance={"source": "cli"},
            )
        _emit(
            item.model_dump(mode="json"),
            json_out=json_out,
            show=[f"[green]remembered[/] {item.id} for {user}: {short(item.content)}"],
        )


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for, in plain words.")],
    user: UserOpt,
    cube: CubeOpt = Path(DEFAULT_CUBE),
    chroma_url: ChromaOpt = None,
    k: Annotated[int, typer.Option("-k", min=1, max=1000, help="How many results.")] = 5,
    memory_type: Annotated[
        list[str] | None, typer.Option("--type", "-t", help="Only these types (repeatable).")
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Only memories with this tag (repeatable).")
    ] = None,
    archived: Annotated[
        bool, typer.Option("--archived", help="Include archived and superseded memories.")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Find a user's memories by meaning and words, best first."""
    with _errors(json_out):
        with _opened(cube, chroma_url, json_out) as mc:
            hits = mc.search(
                query,
                user_id=user,
                k=k,
                memory_types=memory_type,
                tags=tag,
                include_archived=archived,
            )
        table = items_table(
            [h.item for h in hits], title=f"{query!r} for {user}", scores=[h.score for h in hits]
        )
        # Rendered with the usual highlighting up front, since _emit prints notes without it.
        nothing = err.render_str(
            f"no memories of {user!r} match. Add some with `memcube add ... --user {user}`."
        )
        _emit(
            [
                {"score": h.score, "signals": h.signals, "item": h.item.model_dump(mode="json")}
                for h in hits
            ],
            json_out=json_out,
            show=[table] if hits else [],
            notes=[] if hits else [nothing],
        )


@app.command("list")
def list_(
    cube: CubeOpt = Path(DEFAULT_CUBE),
    chroma_url: ChromaOpt = None,
    user: Annotated[
        str | None, typer.Option("--user", "-u", help="Only this user's memories.")
    ] = None,
    archived: Annotated[
        bool, typer.Option("--all", "-a", help="Include archived, superseded and expired.")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 50,
    json_out: JsonOpt = False,
) -> None:
    """List memories (every user's unless --user)."""
    with _errors(json_out):
        with _opened(cube, chroma_url, json_out) as mc:
            items = list(itertools.islice(mc.items(user_id=user, include_archived=archived), limit))
            total = mc.count(user_id=user, include_archived=archived)
        title = f"{len(items)} of {total} memories" + (f" of {user}" if user else "")
        _emit(
            {"total": total, "items": [it.model_dump(mode="json") for it in items]},
            json_out=json_out,
            show=[items_table(items, title=title)],
        )


@app.command()
def show(
    memory_id: Annotated[str, typer.Argument(help="The memory's id.")],
    cube: CubeOpt = Path(DEFAULT_CUBE),
    chroma_url: ChromaOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show one memory with its whole version history."""
    with _errors(json_out):
        with _opened(cube, chroma_url, json_out) as mc:
            versions = mc.history(memory_id)
        _emit(
            {
                "item": versions[-1].model_dump(mode="json"),
                "history": [v.model_dump(mode="json") for v in versions],
            },
            json_out=json_out,
            show=history_view(versions),
        )


@app.command()
def stats(
    cube: CubeOpt = Path(DEFAULT_CUBE),
    chroma_url: ChromaOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Counts by user, type and state; caches and adapters on disk."""
    with _errors(json_out):
        with _opened(cube, chroma_url, json_out) as mc:
            by_user: Counter[str] = Counter()
            by_type: Counter[str] = Counter()
            by_state: Counter[str] = Counter()
            versions = 0
            for it in mc.items(user_id=None, include_archived=True):
                by_user[it.user_id] += 1
                by_type[it.memory_type.value] += 1
                by_state[it.state.value] += 1
                versions += it.version
            info = {
                "path": str(mc.path), "cube_id": mc.cube_id, "backend": chroma_url or "embedded",
                "embedder": mc.manifest.embedder_id, "dimension": mc.manifest.embedding_dimension,
                "memories": sum(by_user.values()), "visible": mc.count(), "versions": versions,
                "users": dict(sorted(by_user.items())), "types": dict(by_type.most_common()),
                "states": dict(by_state.most_common()),
                "activation": _folder_stats(mc.path / "activation"),
                "adapters": _folder_stats(mc.path / "adapters"),
            }  # fmt: skip
        _emit(info, json_out=json_out, show=stats_view(info))


@app.command("export")
def export_(
    archive: Annotated[Path, typer.Argument(help="Archive to write, e.g. cube.mip.tar.gz.")],
    cube: CubeOpt = Path(DEFAULT_CUBE),
    chroma_url: ChromaOpt = None,
    user: Annotated[
        str | None, typer.Option("--user", "-u", help="Export only this user's memories.")
    ] = None,
    sign: Annotated[
        Path | None,
        typer.Option(
            "--sign", help="Ed25519 private key (PEM) to sign with; see `memcube keygen`."
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Write the cube (memories with history, KV caches, adapters) to one verifiable archive."""
    with _errors(json_out):
        with _opened(cube, chroma_url, json_out) as mc, _progress(json_out) as progress:
            report = mc.export(archive, user_id=user, signing_key=sign, progress=progress)
        _emit(
            report.to_dict(),
            json_out=json_out,
            show=export_view(report),
            notes=(f"[yellow]left out[/] {name}: {why}" for name, why in report.skipped_files),
        )


@app.command("import")
def import_(
    source: Annotated[
        Path,
        typer.Argument(
            help="A .mip.tar.gz archive, a MemOS cube folder, or a LangGraph / mem0 JSON export."
        ),
    ],
    cube: CubeOpt = Path(DEFAULT_CUBE),
    chroma_url: ChromaOpt = None,
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="auto, mip, memos, langgraph or mem0.")
    ] = "auto",
    on_conflict: Annotated[
        str, typer.Option(help="skip, overwrite or new_version for ids already in the cube.")
    ] = "skip",
    trust: Annotated[
        list[Path] | None,
        typer.Option(
            "--trust",
            help="Trusted Ed25519 public key (repeatable); the archive must be signed by one.",
        ),
    ] = None,
    model_fingerprint: Annotated[
        str | None,
        typer.Option(
            help="Fingerprint of the target model; caches and adapters for it are attached."
        ),
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", "-u", help="Owner for foreign memories that name none.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Import memories into the cube (created if missing), after verifying everything."""
    from memcube import MemCube

    with _errors(json_out):
        if not source.exists():
            raise _CliError(f"{source} does not exist.", EXIT_NOT_FOUND, kind="FileNotFound")
        # Not _opened: the import checks the whole source before it creates or opens the target,
        # so a refused archive leaves no new cube behind.
        with _progress(json_out) as progress:
            mc, report = MemCube.import_archive(
                source, into=cube, chroma_url=chroma_url, format=fmt, on_conflict=on_conflict,
                trusted_keys=list(trust) if trust else None, model_fingerprint=model_fingerprint,
                user_id=user, progress=progress,
            )  # fmt: skip
            mc.close()
        _emit(
            report.to_dict(),
            json_out=json_out,
            show=import_view(report, source),
            notes=import_notes(report),
        )


@app.command()
def keygen(
    keyfile: Annotated[
        Path, typer.Argument(help="Private key file to create; the public key goes to KEYFILE.pub.")
    ],
    json_out: JsonOpt = False,
) -> None:
    """Create an Ed25519 key pair for signing exports (`export --sign`) and trusting them (`import --trust`)."""
    from memcube.interchange import generate_signing_key, key_id, save_keypair

    with _errors(json_out):
        key = generate_signing_key()
        priv, pub = save_keypair(key, keyfile)
        info = {
            "private_key": str(priv),
            "public_key": str(pub),
            "key_id": key_id(key.public_key()),
        }
        _emit(
            info,
            json_out=json_out,
            show=[
                f"[green]created[/] {priv} (keep it secret) and {pub} (share it); key id {info['key_id']}"
            ],
        )


@app.command()
def demo(
    path: Annotated[
        Path | None,
        typer.Option(help="Cube folder for the demo (default: a new temporary folder)."),
    ] = None,
) -> None:
    """Remember a short conversation and answer questions from it, offline."""
    import tempfile

    from memcube.demo import run

    with _errors(False):
        run(str(path) if path else tempfile.mkdtemp(prefix="memcube-demo-"))


def main() -> None:
    """Console-script entry point: keep the model hub quiet, then run the command line."""
    for name, value in _QUIET_MODEL_HUB.items():
        os.environ.setdefault(name, value)
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - interactive only
        err.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()
