"""What the ``memcube`` command line shows: tables, panels and summary lines of its results
(:mod:`memcube.cli` prints them, or JSON with ``--json``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import RenderableType
from rich.panel import Panel
from rich.table import Table

if TYPE_CHECKING:
    from memcube.items import MemoryItem


def short(text: str, n: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def when(dt: datetime | None) -> str:
    return dt.strftime("%Y-%m-%d %H:%M") if dt is not None else ""


def items_table(items: list[MemoryItem], *, title: str, scores: list[float] | None = None) -> Table:
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
            row = [str(i + 1), f"{scores[i]:.3f}", short(it.content, 200), it.memory_type.value]
        else:
            row = [
                short(it.content, 200),
                it.memory_type.value,
                it.user_id,
                str(it.version),
                it.state.value,
            ]
        table.add_row(*row, it.id[:8])
    return table


def history_view(versions: list[MemoryItem]) -> Iterator[RenderableType]:
    cur = versions[-1]
    prov = cur.provenance
    lines = [
        f"[bold]{cur.content}[/]", "",
        f"id {cur.id}   user {cur.user_id}   type {cur.memory_type.value}   state {cur.state.value}",
        f"version {cur.version}   importance {cur.importance}   accessed {cur.access_count}x",
        f"recorded {when(cur.created_at)}   updated {when(cur.updated_at)}"
        + (f"   happened {when(cur.event_time)}" if cur.event_time else ""),
        f"source {prov.source or '-'}   extractor {prov.extractor or '-'}"
        + (f"   messages {', '.join(prov.message_ids)}" if prov.message_ids else ""),
    ]  # fmt: skip
    if cur.tags:
        lines.append("tags " + ", ".join(cur.tags))
    if cur.metadata:
        lines.append("metadata " + json.dumps(cur.metadata, ensure_ascii=False))
    yield Panel("\n".join(lines), title="memory", expand=False)
    table = Table(title="history (oldest first)", header_style="bold", expand=True)
    table.add_column("v", justify="right", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("updated", no_wrap=True)
    table.add_column("content", ratio=1, overflow="fold")
    for v in versions:
        table.add_row(str(v.version), v.state.value, when(v.updated_at), short(v.content, 100))
    yield table


def stats_view(info: dict[str, Any]) -> Iterator[RenderableType]:
    head = Table(title=f"cube {info['cube_id']}", show_header=False)
    head.add_column(style="bold")
    head.add_column()
    for key in ("path", "backend", "embedder", "memories", "visible", "versions"):
        head.add_row(key, str(info[key]))
    for key in ("activation", "adapters"):
        head.add_row(key, f"{info[key]['files']} files, {info[key]['bytes'] / 1e6:.1f} MB")
    yield head
    for key in ("users", "types", "states"):
        t = Table(title=key, header_style="bold")
        t.add_column(key[:-1])
        t.add_column("memories", justify="right")
        for name, n in info[key].items():
            t.add_row(name, str(n))
        yield t


def export_view(report: Any) -> Iterator[RenderableType]:
    yield (
        f"[green]exported[/] {report.items} memories ({report.versions} versions, {report.users} users), "
        f"{report.activation_files} cache files and {report.adapter_files} adapter files to {report.path}"
    )
    yield f"{report.bytes / 1e6:.2f} MB, sha256 {report.sha256}" + (
        f", signed by key {report.key_id}" if report.signed else ", unsigned"
    )


def import_view(report: Any, source: Path) -> Iterator[RenderableType]:
    yield (
        f"[green]imported[/] {report.imported} memories from {report.format} {source} into {report.target} "
        f"({report.added} new, {report.overwritten} overwritten, {report.new_versions} new versions, "
        f"{len(report.skipped)} skipped; signature: {report.signature})"
    )
    if report.reembedded:
        yield f"re-embedded with {report.target_embedder} (source: {report.source_embedder})"
    for key in report.attached:
        yield f"[green]attached[/] {key}"
    for r in getattr(report, "rematerialized", ()):
        done = f" -> {r.result}" if r.result else ""
        yield f"[green]{r.rule}[/] {r.unit} ({r.status}{done}): {r.reason}"


def import_notes(report: Any) -> Iterator[RenderableType]:
    for d in report.dropped:
        yield f"[yellow]dropped[/] {d.unit}: {d.reason}"
    for name, why in report.skipped_files:
        yield f"[yellow]skipped file[/] {name}: {why}"
    for mid, why in report.skipped[:20]:
        yield f"[dim]skipped memory {mid}: {why}[/]"
    for w in report.warnings:
        yield f"[yellow]note[/]: {w}"


__all__ = [
    "export_view",
    "history_view",
    "import_notes",
    "import_view",
    "items_table",
    "short",
    "stats_view",
    "when",
]
