"""One process publishes a team knowledge cube to an OCI registry; another subscribes to it,
syncs, and reads it as shared, read-only memory attributed to its publisher.

Offline (starts a throwaway local registry; needs `apt install docker-registry apache2-utils`):

    python examples/marketplace_publish_subscribe.py

Against a registry of your own (credentials from `docker login` or MEMCUBE_REGISTRY_USERNAME /
MEMCUBE_REGISTRY_PASSWORD; plain HTTP only for loopback hosts or those listed in
MEMCUBE_REGISTRY_INSECURE):

    python examples/marketplace_publish_subscribe.py --registry oci://ghcr.io/acme

Each step runs in a fresh Python process, as separate teams' programs would.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def publisher(work: Path, ref: str, step: int) -> None:
    from memcube import MemCube

    with MemCube.open(work / "it-desk-cube") as cube:
        if step == 1:
            cube.add("The VPN endpoint is vpn.acme.example; use WireGuard.", user_id="kb")
            cube.add("Deploys happen on Tuesdays after the 10:00 standup.", user_id="kb")
            cube.add("The old wiki at wiki.acme.example is read-only.", user_id="kb")
        else:
            for item in cube.items(user_id="kb"):
                if item.content.startswith("Deploys"):
                    cube.update(item.id, content="Deploys happen on Wednesdays after standup.")
                if item.content.startswith("The old wiki"):
                    cube.delete(item.id)
            cube.add("Laptops are replaced every three years.", user_id="kb")
        report = cube.publish(
            ref,
            signing_key=work / "it-desk.key",
            user_id="kb",
            title="Acme team knowledge",
            description="What the IT desk wants every assistant to know",
            license="CC-BY-4.0",
            publisher="IT desk",
        )
    print(
        f"[publisher] published {report.kind} #{report.sequence}: {report.items} memories, "
        f"{report.tombstones} tombstones, {report.uploaded_layers}/{report.layers} layers "
        f"uploaded -> {report.digest[:19]}..."
    )


def subscriber(work: Path, ref: str, step: int) -> None:
    from memcube import MemCube

    with MemCube.open(work / "assistant-cube") as cube:
        if step == 1:
            cube.add("I prefer short answers.", user_id="ana")
            cube.subscribe(
                ref,
                trusted_keys=[work / "it-desk.key.pub"],
                accept_license="CC-BY-4.0",
                as_user="team-kb",  # the mounted memories' owner in this cube
                share_with=["ana"],  # readers: they see them read-only
            )
        (report,) = cube.sync()
        who = ", ".join(f"{name} (key {kid})" for kid, name in report.publishers.items())
        print(
            f"[subscriber] sync applied {len(report.applied)} versions: {report.added} new, "
            f"{report.updated} updated, {report.deleted} deleted; from {who}"
        )
        print(cube.memory_block("When do deploys happen, and how do I reach the VPN?",
                                user_id="ana"))  # fmt: skip


def run_step(role: str, work: Path, ref: str, step: int, env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, __file__, "--role", role, "--work", str(work), "--ref", ref,
         "--step", str(step)],
        env=env, check=False, text=True, capture_output=True,
    )  # fmt: skip
    sys.stdout.write(done.stdout)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"the {role} process failed (step {step})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", help="oci://host/namespace to use instead of a local one")
    parser.add_argument("--role", choices=["publisher", "subscriber"], help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--ref", help=argparse.SUPPRESS)
    parser.add_argument("--step", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "publisher":
        return publisher(args.work, args.ref, args.step)
    if args.role == "subscriber":
        return subscriber(args.work, args.ref, args.step)

    from memcube.interchange import generate_signing_key, save_keypair

    work = Path(tempfile.mkdtemp(prefix="marketplace-example-"))
    save_keypair(generate_signing_key(), work / "it-desk.key")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    local = None
    if args.registry:
        ref = args.registry.rstrip("/") + "/team-knowledge:main"
    else:
        from memcube.marketplace.local import LocalRegistry

        local = LocalRegistry().start()
        ref = local.url("acme/team-knowledge:main")
        env["MEMCUBE_REGISTRY_USERNAME"], env["MEMCUBE_REGISTRY_PASSWORD"] = local.credentials
        print(f"[registry] docker-registry on {local.host} (htpasswd auth), storage {local.root}")
    try:
        run_step("publisher", work, ref, 1, env)
        run_step("subscriber", work, ref, 1, env)
        run_step("publisher", work, ref, 2, env)
        run_step("subscriber", work, ref, 2, env)
    finally:
        if local is not None:
            local.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
