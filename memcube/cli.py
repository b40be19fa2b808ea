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
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from memcube.cli_common import (
    DEFAULT_CUBE,
    EXIT_FAILURE,
    EXIT_INCOMPATIBLE,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_REJECTED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    ChromaOpt,
    CliError,
    CubeOpt,
    JsonOpt,
    UserOpt,
    emit,
    err,
    errors,
    is_cube,
    opened,
    out,
    package_version,
    parse_meta,
    progress_bars,
    refuse_orphaned_data,
)
from memcube.cli_edit import MemoryIdArg, add_extracted, read_content, resolve_id
from memcube.cli_edit import delete as delete_command
from memcube.cli_edit import update as update_command
from memcube.cli_market import register as register_registry_commands
from memcube.cli_views import (
    export_view,
    history_view,
    import_notes,
    import_view,
    items_table,
    short,
    stats_view,
)

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


def _print_version(value: bool) -> None:
    if value:
        out.print(f"memcube {package_version()}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the installed version and exit.",
        ),
    ] = False,
) -> None:
    """The options of the command line itself; each subcommand does the work."""


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
    with errors(json_out):
        created = not is_cube(cube)
        if created:
            refuse_orphaned_data(cube)
        with opened(cube, chroma_url, json_out, create=True, owner=owner) as mc:
            info = {
                "path": str(mc.path), "cube_id": mc.cube_id, "created": created,
                "embedder": mc.manifest.embedder_id, "dimension": mc.manifest.embedding_dimension,
                "backend": chroma_url or "embedded", "memories": mc.count(include_archived=True),
            }  # fmt: skip
        verb = "created" if created else "already a cube:"
        emit(
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
    ctx: typer.Context,
    text: Annotated[
        str, typer.Argument(help="The memory text; `-` reads it from stdin, `@FILE` from a file.")
    ],
    user: UserOpt,
    cube: CubeOpt = Path(DEFAULT_CUBE),
    chroma_url: ChromaOpt = None,
    memory_type: Annotated[
        str | None,
        typer.Option(
            "--type",
            "-t",
            help="fact, preference, episodic, profile, long_term (default), document, working.",
        ),
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag (repeatable).")] = None,
    meta: Annotated[
        list[str] | None,
        typer.Option("--meta", help="KEY=VALUE metadata (repeatable; VALUE may be JSON)."),
    ] = None,
    importance: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="0 to 1 (default 0.5).")
    ] = None,
    session: Annotated[str | None, typer.Option(help="Session id.")] = None,
    extract: Annotated[
        bool,
        typer.Option(
            "--extract",
            help="Read the text as something the user said: the reader stores the turn and the "
            "facts and preferences it finds (instead of one memory as given).",
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Remember one thing for a user."""
    if extract and (memory_type or tag or meta or importance is not None):
        ctx.fail("--extract decides types itself: --type, --tag, --meta and --importance "
                    "apply to a plain add.")  # fmt: skip
    with errors(json_out):
        content = read_content(text)
        with opened(cube, chroma_url, json_out) as mc:
            if extract:
                data, show, notes = add_extracted(mc, content, user=user, session=session)
            else:
                item = mc.add(
                    content,
                    user_id=user,
                    memory_type=memory_type or "long_term",
                    tags=tag,
                    metadata=parse_meta(meta),
                    importance=0.5 if importance is None else importance,
                    session_id=session,
                    provenance={"source": "cli"},
                )
                data, notes = item.model_dump(mode="json"), []
                show = [f"[green]remembered[/] {item.id} for {user}: {short(item.content)}"]
        emit(data, json_out=json_out, show=show, notes=notes)


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
    with errors(json_out):
        with opened(cube, chroma_url, json_out) as mc:
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
        emit(
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
    with errors(json_out):
        with opened(cube, chroma_url, json_out) as mc:
            items = list(itertools.islice(mc.items(user_id=user, include_archived=archived), limit))
            total = mc.count(user_id=user, include_archived=archived)
        title = f"{len(items)} of {total} memories" + (f" of {user}" if user else "")
        emit(
            {"total": total, "items": [it.model_dump(mode="json") for it in items]},
            json_out=json_out,
            show=[items_table(items, title=title)],
        )


@app.command()
def show(
    memory_id: MemoryIdArg,
    cube: CubeOpt = Path(DEFAULT_CUBE),
    chroma_url: ChromaOpt = None,
    user: Annotated[
        str | None, typer.Option("--user", "-u", help="Only among this user's memories.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Show one memory with its whole version history."""
    with errors(json_out):
        with opened(cube, chroma_url, json_out) as mc:
            versions = mc.history(resolve_id(mc, memory_id, user), user_id=user)
        emit(
            {
                "item": versions[-1].model_dump(mode="json"),
                "history": [v.model_dump(mode="json") for v in versions],
            },
            json_out=json_out,
            show=history_view(versions),
        )


app.command("update")(update_command)
app.command("delete")(delete_command)
register_registry_commands(app)


@app.command()
def stats(
    cube: CubeOpt = Path(DEFAULT_CUBE),
    chroma_url: ChromaOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Counts by user, type and state; caches and adapters on disk."""
    with errors(json_out):
        with opened(cube, chroma_url, json_out) as mc:
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
        emit(info, json_out=json_out, show=stats_view(info))


@app.command("export")
def export_(
    ctx: typer.Context,
    archive: Annotated[Path, typer.Argument(help="Archive to write, e.g. cube.mip.tar.gz.")],
    cube: CubeOpt = Path(DEFAULT_CUBE),
    chroma_url: ChromaOpt = None,
    user: Annotated[
        str | None, typer.Option("--user", "-u", help="Export only this user's memories.")
    ] = None,
    every: Annotated[
        bool,
        typer.Option("--all", help="Export every user's memories (say so: it is not the default)."),
    ] = False,
    sign: Annotated[
        Path | None,
        typer.Option(
            "--sign", help="Ed25519 private key (PEM) to sign with; see `memcube keygen`."
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Write one user's memories (--user) or everyone's (--all) to one verifiable archive.

    The archive holds the memories with their history, plus the cube's KV caches and adapters.
    """
    if user is None and not every:
        ctx.fail("pass --user USER to export one user's memories, or --all to export every "
                    "user's (an archive of everyone is no longer the default).")  # fmt: skip
    if user is not None and every:
        ctx.fail("pass --user USER or --all, not both.")
    with errors(json_out):
        with opened(cube, chroma_url, json_out) as mc, progress_bars(json_out) as progress:
            report = mc.export(archive, user_id=user, signing_key=sign, progress=progress)
        emit(
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
    model: Annotated[
        str | None,
        typer.Option(
            help="The target cube's model (a bundled name such as gemma-3-270m, or a local "
            "folder); caches and adapters built for another model are rebuilt for it."
        ),
    ] = None,
    rematerialize: Annotated[
        str, typer.Option(help="now, lazy (on first use) or never, for caches and adapters.")
    ] = "now",
    sign: Annotated[
        Path | None,
        typer.Option("--sign", help="Private key that signs the caches and adapters derived here."),
    ] = None,
    strict_payloads: Annotated[
        bool,
        typer.Option(
            help="Refuse the import unless every cache and adapter is signed by a --trust key."
        ),
    ] = False,
    user: Annotated[
        str | None, typer.Option("--user", "-u", help="Owner for foreign memories that name none.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Import memories into the cube (created if missing), after verifying everything."""
    from memcube import MemCube

    with errors(json_out):
        if not source.exists():
            raise CliError(f"{source} does not exist.", EXIT_NOT_FOUND, kind="FileNotFound")
        # Not _opened: the import checks the whole source before it creates or opens the target,
        # so a refused archive leaves no new cube behind.
        with progress_bars(json_out) as progress:
            mc, report = MemCube.import_archive(
                source, into=cube, chroma_url=chroma_url, format=fmt, on_conflict=on_conflict,
                trusted_keys=list(trust) if trust else None, model_fingerprint=model_fingerprint,
                user_id=user, progress=progress, model=model, rematerialize=rematerialize,
                signing_key=sign, payload_trust="strict" if strict_payloads else "archive",
            )  # fmt: skip
            mc.close()
        emit(
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

    with errors(json_out):
        key = generate_signing_key()
        priv, pub = save_keypair(key, keyfile)
        info = {
            "private_key": str(priv),
            "public_key": str(pub),
            "key_id": key_id(key.public_key()),
        }
        emit(
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

    with errors(False):
        if path is not None:
            run(str(path))
            return
        with tempfile.TemporaryDirectory(prefix="memcube-demo-") as folder:  # removed afterwards
            run(folder)


def main() -> None:
    """Console-script entry point: keep the model hub quiet, then run the command line."""
    for name, value in _QUIET_MODEL_HUB.items():
        os.environ.setdefault(name, value)
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - interactive only
        err.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)


__all__ = [
    "EXIT_FAILURE",
    "EXIT_INCOMPATIBLE",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_REJECTED",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "app",
    "main",
]

if __name__ == "__main__":
    main()
