"""The registry commands of ``memcube``: ``publish``, ``search-registry``, ``pull``,
``subscribe`` and ``sync`` (see :mod:`memcube.marketplace`).

Registry credentials come from ``MEMCUBE_REGISTRY_USERNAME`` / ``MEMCUBE_REGISTRY_PASSWORD`` or
the docker config (``docker login``); they are never written into the cube.

Example:
    >>> from typer.testing import CliRunner
    >>> from memcube.cli import app
    >>> result = CliRunner().invoke(app, ["search-registry", "not a registry", "--json"])
    >>> result.exit_code
    2
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from memcube.cli_common import (
    DEFAULT_CUBE,
    ChromaOpt,
    CubeOpt,
    JsonOpt,
    emit,
    errors,
    opened,
)

RefArg = Annotated[
    str, typer.Argument(help="Registry channel, e.g. oci://ghcr.io/acme/team-kb:main.")
]
TrustOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--trust", help="A publisher's Ed25519 public key (repeatable); versions must be signed "
        "by one of them.",
    ),
]  # fmt: skip
LicenseOpt = Annotated[
    list[str] | None,
    typer.Option("--accept-license", help="A license (SPDX id or URL) you accept (repeatable)."),
]
ConflictOpt = Annotated[
    str, typer.Option(help="skip, overwrite or new_version for memories changed here.")
]
AsUserOpt = Annotated[
    str | None,
    typer.Option("--as-user", help="Mount the pulled memories under this owner id."),
]
ShareOpt = Annotated[
    list[str] | None,
    typer.Option("--share-with", help="A user who reads the mounted memories (repeatable)."),
]


def publish(
    ctx: typer.Context,
    reference: RefArg,
    sign: Annotated[
        Path, typer.Option("--sign", help="Ed25519 private key (PEM); see `memcube keygen`.")
    ],
    cube: CubeOpt = Path(DEFAULT_CUBE),
    chroma_url: ChromaOpt = None,
    user: Annotated[
        str | None, typer.Option("--user", "-u", help="Publish only this user's memories.")
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Publish every user's memories.")] = False,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", "-t", help="Only memories with this tag.")
    ] = None,
    title: Annotated[str | None, typer.Option(help="Catalog title.")] = None,
    description: Annotated[str | None, typer.Option(help="Catalog description.")] = None,
    license_: Annotated[
        str | None, typer.Option("--license", help="SPDX license id or license URL.")
    ] = None,
    terms: Annotated[str | None, typer.Option(help="Terms or price URI.")] = None,
    publisher: Annotated[str | None, typer.Option(help="Publisher name shown to readers.")] = None,
    full: Annotated[bool, typer.Option("--full", help="Publish a full cube, not a delta.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Push the cube (--user, --all, --tag) to an OCI registry as a signed artifact: a full cube
    the first time, then deltas of what changed."""
    if user is None and not every:
        ctx.fail("pass --user USER to publish one user's memories, or --all for everyone's.")
    if user is not None and every:
        ctx.fail("pass --user USER or --all, not both.")
    with errors(json_out):
        with opened(cube, chroma_url, json_out) as mc:
            report = mc.publish(
                reference, signing_key=sign, user_id=user, tags=tag, title=title,
                description=description, license=license_, terms=terms, publisher=publisher,
                full=full,
            )  # fmt: skip
        emit(report.to_dict(), json_out=json_out, show=_publish_view(report))


def _publish_view(report: Any) -> Iterator[str]:
    if report.unchanged:
        yield f"[green]up to date[/]: nothing changed since {report.digest}"
        return
    yield (
        f"[green]published[/] {report.kind} #{report.sequence}: {report.items} memories, "
        f"{report.tombstones} tombstones -> {report.reference}"
    )
    yield (
        f"{report.artifact_bytes / 1e6:.2f} MB in {report.layers} layers, {report.uploaded_layers} "
        f"uploaded ({report.uploaded_bytes / 1e6:.2f} MB), signed by key {report.key_id}"
    )


def search_registry(
    where: Annotated[str, typer.Argument(help="HOST/NAMESPACE (or HOST/NAMESPACE/NAME) to list.")],
    json_out: JsonOpt = False,
) -> None:
    """List the memory cubes published under a registry namespace, with their annotations."""
    from memcube.marketplace import Marketplace
    from memcube.marketplace import media as m

    with errors(json_out):
        listings = Marketplace().search(where)
        table = Table("reference", "kind", "title", "license", "items", "publisher", "embedder")
        for x in listings:
            a = x.annotations
            who = a.get(m.VENDOR) or ""
            table.add_row(
                x.reference, x.kind, a.get(m.TITLE, ""), a.get(m.LICENSES, ""),
                a.get(m.ITEMS, ""), f"{who} ({a.get(m.PUBLISHER_KEY, '?')})".strip(),
                a.get(m.EMBEDDER, ""),
            )  # fmt: skip
        emit(
            [x.to_dict() for x in listings],
            json_out=json_out,
            show=[table] if listings else [f"no memory cubes published under {where}"],
        )


def pull(
    reference: RefArg,
    cube: CubeOpt = Path(DEFAULT_CUBE),
    chroma_url: ChromaOpt = None,
    trust: TrustOpt = None,
    accept_license: LicenseOpt = None,
    on_conflict: ConflictOpt = "skip",
    as_user: AsUserOpt = None,
    share_with: ShareOpt = None,
    model_fingerprint: Annotated[
        str | None, typer.Option(help="Target model fingerprint; its caches are attached.")
    ] = None,
    max_bytes: Annotated[int | None, typer.Option(help="Refuse to download more.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Pull a published cube (and its deltas) into the cube (created if missing), after
    verifying digests, signature and license."""
    from memcube import MemCube
    from memcube.marketplace import DEFAULT_MAX_BYTES

    with errors(json_out):
        mc, report = MemCube.pull(
            reference, into=cube, chroma_url=chroma_url,
            trusted_keys=list(trust) if trust else None, accept_license=accept_license,
            on_conflict=on_conflict, as_user=as_user, share_with=share_with or (),
            model_fingerprint=model_fingerprint, max_bytes=max_bytes or DEFAULT_MAX_BYTES,
        )  # fmt: skip
        mc.close()
        emit(report.to_dict(), json_out=json_out, show=_sync_view(report))


def subscribe(
    reference: RefArg,
    cube: CubeOpt = Path(DEFAULT_CUBE),
    chroma_url: ChromaOpt = None,
    trust: TrustOpt = None,
    accept_license: LicenseOpt = None,
    on_conflict: ConflictOpt = "skip",
    as_user: AsUserOpt = None,
    share_with: ShareOpt = None,
    revocations: Annotated[
        str | None, typer.Option(help="Revocation list to honor (oci://.../revocations:tag).")
    ] = None,
    revocation_key: Annotated[
        list[Path] | None,
        typer.Option("--revocation-key", help="Public key of a revocation list signer."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Follow a registry channel; `memcube sync` then applies what is published to it."""
    with errors(json_out):
        with opened(cube, chroma_url, json_out) as mc:
            sub = mc.subscribe(
                reference, trusted_keys=list(trust or []), accept_license=accept_license,
                on_conflict=on_conflict, as_user=as_user, share_with=share_with or (),
                revocations=revocations, revocation_keys=list(revocation_key or []) or None,
            )  # fmt: skip
        emit(sub.to_dict(), json_out=json_out, show=[f"[green]subscribed[/] to {sub.reference}"])


def sync(
    reference: Annotated[
        str | None, typer.Argument(help="Only this channel (default: every subscription).")
    ] = None,
    cube: CubeOpt = Path(DEFAULT_CUBE),
    chroma_url: ChromaOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Apply what was published on the cube's subscriptions since the last sync, in order."""
    with errors(json_out):
        with opened(cube, chroma_url, json_out) as mc:
            reports = mc.sync(reference)
        emit(
            [r.to_dict() for r in reports],
            json_out=json_out,
            show=[line for r in reports for line in _sync_view(r)] or ["no subscriptions"],
        )


def _sync_view(report: Any) -> Iterator[str]:
    if report.up_to_date:
        yield f"[green]up to date[/] {report.reference} at {report.head}"
    else:
        who = ", ".join(f"{n or '?'} ({k})" for k, n in report.publishers.items())
        yield (
            f"[green]applied[/] {len(report.applied)} versions of {report.reference}: "
            f"{report.added} new, {report.updated} updated, {report.deleted} deleted, "
            f"{report.unchanged} unchanged; publishers: {who}"
        )
    for c in report.conflicts:
        yield f"[yellow]conflict[/] {c.id}: {c.reason} ({c.resolution})"
    for rid in report.revoked_items:
        yield f"[red]from a revoked publisher[/] {rid}"


def register(app: typer.Typer) -> None:
    """Add the registry commands to ``app``."""
    app.command("publish")(publish)
    app.command("search-registry")(search_registry)
    app.command("pull")(pull)
    app.command("subscribe")(subscribe)
    app.command("sync")(sync)


__all__ = ["register"]
