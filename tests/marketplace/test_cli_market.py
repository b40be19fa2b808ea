"""``memcube publish / search-registry / pull / subscribe / sync`` against the real registry;
credentials come from the environment, as a user's shell would have them."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from memcube.cli import app

runner = CliRunner()


def run_json(*args: str, code: int = 0):
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == code, (result.output, result.exception)
    return json.loads(result.stdout)


def test_cli_publish_find_pull_subscribe_sync(repo, creds, tmp_path: Path) -> None:
    ref = repo("team-kb:main")
    key = tmp_path / "it.key"
    run_json("keygen", str(key))
    pub, sub = str(tmp_path / "pub"), str(tmp_path / "sub")
    run_json("init", "--cube", pub)
    run_json("add", "The VPN endpoint is vpn.acme.example", "--user", "kb", "--cube", pub)
    published = run_json("publish", ref, "--cube", pub, "--user", "kb", "--sign", str(key),
                         "--title", "Team KB", "--license", "CC-BY-4.0", "--publisher", "IT desk")  # fmt: skip
    assert published["kind"] == "full" and published["items"] == 1

    host_ns = ref.removeprefix("oci://").rsplit("/", 1)[0]
    found = run_json("search-registry", host_ns)
    assert {x["tag"] for x in found} == {"main", "main.1"}
    main = next(x for x in found if x["tag"] == "main")
    assert main["annotations"]["org.opencontainers.image.title"] == "Team KB"

    # the license must be accepted: refused first (exit 7), nothing created
    refused = run_json("pull", ref, "--cube", sub, "--trust", f"{key}.pub", code=7)
    assert refused["error"]["type"] == "LicenseNotAcceptedError"
    assert not Path(sub).exists()
    pulled = run_json("pull", ref, "--cube", sub, "--trust", f"{key}.pub",
                      "--accept-license", "CC-BY-4.0", "--as-user", "team-kb",
                      "--share-with", "ana")  # fmt: skip
    assert pulled["added"] == 1 and pulled["signatures"] == ["verified"]

    subscribed = run_json("subscribe", ref, "--cube", sub, "--trust", f"{key}.pub",
                          "--accept-license", "CC-BY-4.0", "--as-user", "team-kb",
                          "--share-with", "ana")  # fmt: skip
    assert "password" not in json.dumps(subscribed) and creds[1] not in json.dumps(subscribed)
    run_json("add", "Deploys happen on Tuesdays", "--user", "kb", "--cube", pub)
    delta = run_json("publish", ref, "--cube", pub, "--user", "kb", "--sign", str(key),
                     "--license", "CC-BY-4.0", "--publisher", "IT desk")  # fmt: skip
    assert delta["kind"] == "delta" and delta["items"] == 1
    synced = run_json("sync", "--cube", sub)
    assert synced[0]["added"] == 1 and synced[0]["applied"] == [delta["digest"]]
    assert run_json("sync", "--cube", sub)[0]["up_to_date"] is True

    down = run_json("search-registry", "127.0.0.1:1/nothing", code=4)
    assert down["error"]["type"] == "RegistryUnavailableError"
