"""Memory Interchange Protocol, end to end and offline.

Run from the repository root:

    .venv/bin/python examples/interchange.py [--workdir DIR]

1. A cube remembers a few things about a user; one memory is corrected (a new version).
2. It is exported to one signed archive (items with full history and provenance, a manifest with
   the SHA-256 of every member, an Ed25519 signature).
3. A second application imports it into an empty cube, trusting only the producer's key.
4. A tampered copy of the archive is refused, and the target is left unchanged.
5. A mem0 export and a MemTensor MemOS cube folder are imported through the same checks
   (the MemOS pickle is reported and skipped, never unpickled).
"""

from __future__ import annotations

import argparse
import io
import os
import tarfile
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from memcube import MemCube  # noqa: E402
from memcube.errors import ArchiveError  # noqa: E402
from memcube.interchange import generate_signing_key, public_key_of  # noqa: E402

FOREIGN = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "foreign"


def tamper(src: Path, dst: Path) -> None:
    """Copy an archive, changing one memory's text (as an attacker or a bad disk would)."""
    with tarfile.open(src, "r:gz") as tin, tarfile.open(dst, "w:gz") as tout:
        for m in tin.getmembers():
            data = tin.extractfile(m).read()  # type: ignore[union-attr]
            if m.name == "items.jsonl":
                data = data.replace(b"Porto", b"Paris")
            info = tarfile.TarInfo(m.name)
            info.size = len(data)
            tout.addfile(info, io.BytesIO(data))


def main(workdir: Path) -> None:
    key = generate_signing_key()

    # 1-2. Remember, correct, export signed.
    with MemCube.open(workdir / "app-a") as cube:
        home = cube.add("Maya lives in Lisbon", user_id="maya", memory_type="fact",
                        provenance={"source": "message", "message_ids": ["turn-3"]})  # fmt: skip
        cube.update(home.id, content="Maya moved from Lisbon to Porto in 2026")
        cube.add("Maya is allergic to peanuts", user_id="maya", memory_type="fact")
        cube.add("Maya prefers green tea over coffee", user_id="maya", memory_type="preference")
        exported = cube.export(workdir / "maya.mip.tar.gz", signing_key=key)
    print(f"exported {exported.items} memories ({exported.versions} versions) to {exported.path}")
    print(
        f"  {exported.bytes} bytes, sha256 {exported.sha256[:16]}..., signed by key {exported.key_id}"
    )

    # 3. Import into an empty cube, trusting only that key.
    target, report = MemCube.import_archive(
        workdir / "maya.mip.tar.gz", into=workdir / "app-b", trusted_keys=[public_key_of(key)]
    )
    with target:
        print(f"imported {report.added} memories; signature {report.signature}")
        print("  history of the corrected memory:",
              [f"v{v.version}: {v.content}" for v in target.history(home.id)])  # fmt: skip
        hits = target.search("which city did Maya move to?", user_id="maya", k=2)
        print("  search 'which city did Maya move to?' ->", [h.item.content for h in hits])

        # 4. A tampered archive is refused; nothing changes.
        tamper(workdir / "maya.mip.tar.gz", workdir / "tampered.mip.tar.gz")
        before = target.count(include_archived=True)
        try:
            MemCube.import_archive(
                workdir / "tampered.mip.tar.gz", into=target, on_conflict="overwrite"
            )
        except ArchiveError as exc:
            print(f"tampered archive refused: {type(exc).__name__}: {exc}")
        assert target.count(include_archived=True) == before

        # 5. Other memory systems, through the same validation.
        _, mem0 = MemCube.import_archive(FOREIGN / "mem0_memories.json", into=target)
        print(f"mem0 export: {mem0.added} memories;",
              repr(target.search("favourite films", user_id="alex", k=1)[0].item.content))  # fmt: skip
        _, memos = MemCube.import_archive(FOREIGN / "memos_general", into=target)
        print(f"MemOS cube: {memos.added} memories;",
              repr(target.search("food allergy", user_id="user03alice", k=1)[0].item.content))  # fmt: skip
        for name, why in memos.skipped_files:
            print(f"  skipped {name}: {why}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workdir", type=Path, help="folder for the cubes and archives (default: a temp folder)"
    )
    args = parser.parse_args()
    main(args.workdir or Path(tempfile.mkdtemp(prefix="mip-example-")))
