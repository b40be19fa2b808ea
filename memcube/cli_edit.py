"""The ``memcube`` commands that change memories already stored (``update``, ``delete``), and
what every command that names a memory or takes its text shares: an id given by a unique
prefix (as ``memcube list`` prints them), and text from stdin (``-``) or a file (``@FILE``).

:mod:`memcube.cli` registers the commands; they go through :mod:`memcube.cli_common` like
every other command.

Example:
    >>> read_content("@@handle is my nickname")
    '@handle is my nickname'
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import RenderableType

from memcube import errors as E
from memcube.cli_common import (
    DEFAULT_CUBE,
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    ChromaOpt,
    CliError,
    CubeOpt,
    JsonOpt,
    emit,
    errors,
    opened,
    parse_meta,
)
from memcube.cli_views import items_table, short
from memcube.items import free_metadata

if TYPE_CHECKING:
    from memcube import MemCube

#: The shortest id prefix resolved (a whole id of any length always is).
MIN_PREFIX = 4
#: How many of the ids an ambiguous prefix matches are named in the error.
SHOWN_CANDIDATES = 5

MemoryIdArg = Annotated[
    str,
    typer.Argument(
        help=f"The memory's id, or a unique prefix of it (at least {MIN_PREFIX} characters, "
        "as `memcube list` prints them).",
        show_default=False,
    ),
]
ActingUserOpt = Annotated[
    str | None,
    typer.Option(
        "--user",
        "-u",
        help="Act as this user: only their memories (and those shared with them) are found.",
    ),
]


# ----------------------------------------------------------------------------- arguments
def resolve_id(mc: MemCube, ref: str, user: str | None) -> str:
    """The whole id of the memory ``ref`` names: the id itself, or the one id among ``user``'s
    visible memories (every user's without ``user``, archived ones included) that starts
    with ``ref``.

    Raises:
        ItemNotFoundError: no such memory (or ``ref`` is too short to be a prefix).
        CliError: the prefix matches several memories (exit code 2).
    """
    if mc.get_many([ref], user_id=user):
        return ref
    whose = f" for user {user!r}" if user else ""
    if len(ref) < MIN_PREFIX:
        raise E.ItemNotFoundError(
            f"no memory with id {ref!r}{whose} (an id prefix needs {MIN_PREFIX} characters)."
        )
    visible = mc.items(user_id=user, include_archived=True, include_shared=user is not None)
    found = [it.id for it in visible if it.id.startswith(ref)]
    if not found:
        raise E.ItemNotFoundError(f"no memory with id or id prefix {ref!r}{whose}.")
    if len(found) > 1:
        named = ", ".join(found[:SHOWN_CANDIDATES]) + (
            ", ..." if len(found) > SHOWN_CANDIDATES else ""
        )
        raise CliError(
            f"id prefix {ref!r} is ambiguous: it matches {len(found)} memories{whose} ({named}).",
            EXIT_USAGE,
            kind="AmbiguousId",
            hint="give more characters of the id (`memcube list --json` prints whole ids).",
        )
    return found[0]


def read_content(arg: str) -> str:
    """The text an argument stands for: ``-`` reads stdin, ``@FILE`` reads a UTF-8 file, and
    ``@@...`` is the literal text ``@...``; anything else is the text itself. One final line
    break of stdin or a file is dropped."""
    if arg.startswith("@@"):
        return arg[1:]
    if arg == "-":
        text = sys.stdin.read()
    elif arg.startswith("@"):
        if arg == "@":
            raise CliError("`@` must be followed by a file name (`@notes.txt`).", EXIT_USAGE)
        path = Path(arg[1:]).expanduser()
        if not path.exists():
            raise CliError(
                f"{path} does not exist.",
                EXIT_NOT_FOUND,
                kind="FileNotFound",
                hint="`@FILE` reads the text from FILE; write `@@...` for text starting with @.",
            )
        if not path.is_file():
            raise CliError(f"{path} is not a file.", EXIT_USAGE, kind="NotAFile")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise CliError(f"{path} is not UTF-8 text.", EXIT_USAGE, kind="NotText") from None
    else:
        return arg
    return text[:-1] if text.endswith("\n") else text


# ----------------------------------------------------------------------------- add --extract
def add_extracted(
    mc: MemCube, text: str, *, user: str, session: str | None
) -> tuple[dict[str, Any], list[RenderableType], list[str]]:
    """Read ``text`` as one user turn through the reader (``cube.add_messages``): the data,
    the lines and the notes of what was stored."""
    stored = mc.add_messages([{"role": "user", "content": text}], user_id=user, session_id=session)
    problems = list(getattr(stored, "problems", []))
    data = {
        "items": [it.model_dump(mode="json") for it in stored],
        "problems": [asdict(p) for p in problems],
    }
    show: list[RenderableType] = [
        f"[green]remembered[/] {len(stored)} memories for {user} from {short(text, 60)!r}",
        items_table(list(stored), title=f"stored for {user}"),
    ]
    notes = [f"[yellow]not understood[/] ({p.extractor}): {p.message}" for p in problems]
    return data, show, notes


# ----------------------------------------------------------------------------- commands
def update(
    memory_id: MemoryIdArg,
    content: Annotated[
        str | None,
        typer.Argument(
            help="The new text; `-` reads it from stdin, `@FILE` from a file.", show_default=False
        ),
    ] = None,
    cube: CubeOpt = Path(DEFAULT_CUBE),
    chroma_url: ChromaOpt = None,
    user: ActingUserOpt = None,
    memory_type: Annotated[
        str | None, typer.Option("--type", "-t", help="A new memory type.")
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="Replace the tags with these (repeatable).")
    ] = None,
    meta: Annotated[
        list[str] | None,
        typer.Option("--meta", help="Set KEY=VALUE in the metadata (repeatable; other keys stay)."),
    ] = None,
    importance: Annotated[float | None, typer.Option(min=0.0, max=1.0)] = None,
    json_out: JsonOpt = False,
) -> None:
    """Change a memory: new text and/or fields, stored as a new version (see `memcube show`)."""
    with errors(json_out):
        text = read_content(content) if content is not None else None
        changes = parse_meta(meta)
        with opened(cube, chroma_url, json_out) as mc:
            full = resolve_id(mc, memory_id, user)
            metadata = None
            if changes is not None:
                metadata = {**free_metadata(mc.get(full, user_id=user)), **changes}
            item = mc.update(
                full,
                user_id=user,
                content=text,
                metadata=metadata,
                tags=tag,
                importance=importance,
                memory_type=memory_type,
            )
        emit(
            item.model_dump(mode="json"),
            json_out=json_out,
            show=[f"[green]updated[/] {item.id} to version {item.version}: {short(item.content)}"],
        )


def delete(
    ctx: typer.Context,
    memory_id: Annotated[
        str | None,
        typer.Argument(
            help=f"The memory's id, or a unique prefix of it (at least {MIN_PREFIX} characters).",
            show_default=False,
        ),
    ] = None,
    cube: CubeOpt = Path(DEFAULT_CUBE),
    chroma_url: ChromaOpt = None,
    user: ActingUserOpt = None,
    hard: Annotated[
        bool,
        typer.Option(
            "--hard", help="Purge: remove the memory and every version (default: archive it)."
        ),
    ] = False,
    every: Annotated[
        bool,
        typer.Option(
            "--all", help="Every memory --user owns (not those shared with them); needs --yes."
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Confirm --all.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Archive a memory (hidden from search, kept with its history), or purge it with --hard."""
    run: Callable[[MemCube], tuple[dict[str, Any], str]]
    if every:
        if memory_id is not None:
            ctx.fail("give a memory id or --all, not both.")
        if user is None:
            ctx.fail("--all deletes every memory of one user: pass --user USER.")
        if not yes:
            ctx.fail(f"--all deletes every memory of {user!r}: pass --yes to confirm.")
        run = partial(_delete_every, user=user, hard=hard)
    elif memory_id is None:
        ctx.fail("give the id of the memory to delete (or --user USER --all --yes).")
    else:
        run = partial(_delete_one, ref=memory_id, user=user, hard=hard)
    with errors(json_out):
        with opened(cube, chroma_url, json_out) as mc:
            data, line = run(mc)
        emit(data, json_out=json_out, show=[line])


def _delete_every(mc: MemCube, user: str, *, hard: bool) -> tuple[dict[str, Any], str]:
    count = mc.delete_all(user, hard=hard)
    line = f"[green]{'purged' if hard else 'archived'}[/] {count} memories of {user}"
    return {"user_id": user, "hard": hard, "count": count}, line


def _delete_one(
    mc: MemCube, ref: str, user: str | None, *, hard: bool
) -> tuple[dict[str, Any], str]:
    full = resolve_id(mc, ref, user)
    if hard:
        versions = len(mc.history(full, user_id=user))
        mc.delete(full, user_id=user, hard=True)
        return {"id": full, "hard": True, "item": None}, (
            f"[green]purged[/] {full} and its {versions} versions"
        )
    mc.delete(full, user_id=user)
    item = mc.get(full, user_id=user)
    return {"id": full, "hard": False, "item": item.model_dump(mode="json")}, (
        f"[green]archived[/] {full}: {short(item.content)} (kept with its history; --hard purges it)"
    )


__all__ = [
    "MIN_PREFIX",
    "add_extracted",
    "delete",
    "read_content",
    "resolve_id",
    "update",
]
