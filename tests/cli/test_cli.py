"""The `memcube` command: every subcommand, JSON output, exit codes, and the installed script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memcube.cli import (
    EXIT_NOT_FOUND,
    EXIT_REJECTED,
    EXIT_USAGE,
    app,
)
from tests.interchange._util import repack

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).parent / "memcube"
runner = CliRunner()


def run(*args: str, code: int = 0):
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, (result.output, result.exception)
    return result


def run_json(*args: str, code: int = 0):
    return json.loads(run(*args, "--json", code=code).stdout)


@pytest.fixture(scope="module")
def cube_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cube with a few memories of two users, one updated."""
    path = tmp_path_factory.mktemp("cli") / "cube"
    assert run_json("init", "--cube", str(path), "--owner", "team")["created"] is True
    run("add", "Lena is training for a triathlon", "--user", "lena", "--cube", str(path), "--type", "fact",
        "--tag", "sport", "--meta", "year=2026", "--meta", "coach=Ana")  # fmt: skip
    run(
        "add",
        "Lena drinks oat flat whites",
        "--user",
        "lena",
        "--cube",
        str(path),
        "--type",
        "preference",
    )
    run("add", "Omar collects fountain pens", "--user", "omar", "--cube", str(path))
    return path


def test_init_is_idempotent(cube_dir: Path) -> None:
    info = run_json("init", "--cube", str(cube_dir))
    assert info["created"] is False and info["memories"] == 3
    assert "already a cube" in run("init", "--cube", str(cube_dir)).stdout


def test_add_search_list_show(cube_dir: Path) -> None:
    item = run_json("add", "Lena moved to Utrecht", "--user", "lena", "--cube", str(cube_dir))
    assert item["provenance"]["source"] == "cli" and item["user_id"] == "lena"
    hits = run_json("search", "which sport", "--user", "lena", "--cube", str(cube_dir), "-k", "2")
    assert hits[0]["item"]["content"] == "Lena is training for a triathlon"
    assert hits[0]["item"]["metadata"] == {"year": 2026, "coach": "Ana"} and hits[0]["item"][
        "tags"
    ] == ["sport"]
    assert run_json("search", "pens", "--user", "nobody", "--cube", str(cube_dir)) == []
    table = run("search", "which sport", "--user", "lena", "--cube", str(cube_dir)).stdout
    assert "score" in table and "triathlon" in table

    listed = run_json("list", "--cube", str(cube_dir), "--user", "lena")
    assert listed["total"] == 3 and {i["user_id"] for i in listed["items"]} == {"lena"}
    assert "content" in run("list", "--cube", str(cube_dir)).stdout

    shown = run_json("show", item["id"], "--cube", str(cube_dir))
    assert [v["version"] for v in shown["history"]] == [1]
    text = run("show", item["id"], "--cube", str(cube_dir)).stdout
    assert "history" in text and "Utrecht" in text


def test_show_history_after_update(cube_dir: Path) -> None:
    from memcube import MemCube

    item = run_json(
        "add", "Omar's favourite ink is blue", "--user", "omar", "--cube", str(cube_dir)
    )
    with MemCube.open(cube_dir) as cube:
        cube.update(item["id"], content="Omar's favourite ink is sepia")
    shown = run_json("show", item["id"], "--cube", str(cube_dir))
    assert [v["content"] for v in shown["history"]] == [
        "Omar's favourite ink is blue",
        "Omar's favourite ink is sepia",
    ]


def test_stats(cube_dir: Path) -> None:
    info = run_json("stats", "--cube", str(cube_dir))
    assert info["users"]["lena"] >= 2 and info["users"]["omar"] >= 1
    assert info["types"]["fact"] >= 1 and info["activation"] == {"files": 0, "bytes": 0}
    assert "users" in run("stats", "--cube", str(cube_dir)).stdout


def test_export_import_signed(cube_dir: Path, tmp_path: Path) -> None:
    keys = run_json("keygen", str(tmp_path / "k" / "signer"))
    assert (
        Path(keys["public_key"]).exists()
        and oct(Path(keys["private_key"]).stat().st_mode)[-3:] == "600"
    )
    archive = tmp_path / "out.mip.tar.gz"
    exp = run_json(
        "export", str(archive), "--all", "--cube", str(cube_dir), "--sign", keys["private_key"]
    )
    assert exp["signed"] and exp["items"] >= 3
    assert (
        "exported"
        in run("export", str(tmp_path / "b.mip.tar.gz"), "--all", "--cube", str(cube_dir)).stdout
    )
    rep = run_json(
        "import", str(archive), "--cube", str(tmp_path / "copy"), "--trust", keys["public_key"]
    )
    assert rep["signature"] == "verified" and rep["added"] == exp["items"]
    again = run("import", str(archive), "--cube", str(tmp_path / "copy")).stdout
    assert "0 new" in again and "skipped" in again
    # Wrong key, and a tampered archive: refused with exit code 5 and a message saying why.
    other = run_json("keygen", str(tmp_path / "k" / "other"))
    bad = run_json(
        "import",
        str(archive),
        "--cube",
        str(tmp_path / "x"),
        "--trust",
        other["public_key"],
        code=EXIT_REJECTED,
    )
    assert bad["error"]["type"] == "SignatureError"
    tampered = repack(
        archive,
        tmp_path / "t.tar.gz",
        lambda n, d: d.replace(b"Lena", b"Mona") if n == "items.jsonl" else d,
    )
    result = run("import", str(tampered), "--cube", str(tmp_path / "y"), code=EXIT_REJECTED)
    assert "altered" in result.stderr and not (tmp_path / "y").exists()


def test_import_foreign(tmp_path: Path) -> None:
    fixtures = REPO / "tests" / "fixtures" / "foreign"
    rep = run_json("import", str(fixtures / "mem0_memories.json"), "--cube", str(tmp_path / "c"))
    assert rep["format"] == "mem0" and rep["added"] == 4
    out = run("import", str(fixtures / "memos_general"), "--cube", str(tmp_path / "c"))
    assert "never unpickled" in out.stderr
    hits = run_json(
        "search", "allergy", "--user", "user03alice", "--cube", str(tmp_path / "c"), "-k", "1"
    )
    assert "peanuts" in hits[0]["item"]["content"]


def test_errors_and_exit_codes(cube_dir: Path, tmp_path: Path) -> None:
    missing = run("list", "--cube", str(tmp_path / "nowhere"), code=EXIT_NOT_FOUND)
    assert "memcube init" in missing.stderr
    assert (
        run_json("show", "no-such-id", "--cube", str(cube_dir), code=EXIT_NOT_FOUND)["error"][
            "type"
        ]
        == "ItemNotFoundError"
    )
    assert (
        run_json("add", "   ", "--user", "lena", "--cube", str(cube_dir), code=EXIT_USAGE)["error"][
            "type"
        ]
        == "EmptyContentError"
    )
    run(
        "add", "x", "--user", "lena", "--cube", str(cube_dir), "--type", "nonsense", code=EXIT_USAGE
    )
    run("add", "x", "--user", "lena", "--cube", str(cube_dir), "--meta", "novalue", code=EXIT_USAGE)
    run(
        "import",
        str(tmp_path / "absent.tar.gz"),
        "--cube",
        str(tmp_path / "z"),
        code=EXIT_NOT_FOUND,
    )
    run("import", str(cube_dir / "cube.json"), "--cube", str(tmp_path / "z"), code=EXIT_REJECTED)
    run(
        "search", "x", "--cube", str(cube_dir), code=EXIT_USAGE
    )  # --user is required (click usage error)


@pytest.mark.slow
def test_demo_command(tmp_path: Path) -> None:
    out = run("demo", "--path", str(tmp_path / "demo")).stdout
    assert "Q:" in out and "memories" in out


@pytest.mark.slow
def test_installed_script_in_a_subprocess(tmp_path: Path) -> None:
    assert SCRIPT.exists(), "install the project (make setup) to get the memcube console script"
    env = {**os.environ, "MEMCUBE_PATH": str(tmp_path / "cube")}
    help_ = subprocess.run(
        [str(SCRIPT), "--help"], capture_output=True, text=True, env=env, timeout=120
    )
    assert help_.returncode == 0 and "export" in help_.stdout and "Exit codes" in help_.stdout
    added = subprocess.run([str(SCRIPT), "add", "Pia rides a cargo bike", "--user", "pia", "--json"],
                           capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert added.returncode == EXIT_NOT_FOUND and "memcube init" in added.stdout
    init = subprocess.run(
        [str(SCRIPT), "init", "--json"], capture_output=True, text=True, env=env, timeout=300
    )
    assert init.returncode == 0 and json.loads(init.stdout)["created"] is True
    added = subprocess.run([str(SCRIPT), "add", "Pia rides a cargo bike", "--user", "pia", "--json"],
                           capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["content"] == "Pia rides a cargo bike"
    assert "Loading weights" not in added.stderr
