"""Run by the round-trip test in a NEW process: import an archive into an empty cube and print
the resulting cube (items with history), the import report and search results as JSON."""

from __future__ import annotations

import json
import sys

from memcube import MemCube
from tests.interchange._util import searches, state


def main(archive: str, target: str, chroma_url: str, public_key_hex: str, fingerprint: str) -> None:
    cube, report = MemCube.import_archive(
        archive,
        into=target,
        chroma_url=chroma_url or None,
        trusted_keys=[public_key_hex],
        model_fingerprint=fingerprint,
    )
    try:
        snap = state(cube)
        found = searches(cube)
    finally:
        cube.close()
    print(json.dumps({"report": report.to_dict(), "state": snap, "searches": found}))


if __name__ == "__main__":
    main(*sys.argv[1:6])
