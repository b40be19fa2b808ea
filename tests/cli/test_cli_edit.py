"""`memcube update` and `delete`, id prefixes, text from stdin or a file, `--version`,
`add --extract`, the scope of `export`, `init` beside orphaned Chroma data, and error messages
that name the CLI's flags."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memcube import MemCube
from memcube.cli import EXIT_NOT_FOUND, EXIT_REFUSED, EXIT_USAGE, app
from memcube.cli_common import cli_words

runner = CliRunner()


def run(*args: str, code: int = 0, input: str | None = None):
    result = runner.invoke(app, list(args), input=input)
    assert result.exit_code == code, (result.output, result.exception)
    return result


def words(text: str) -> str:
    """``text`` with rich's line wrapping undone."""
    return " ".join(text.split())


def run_json(*args: str, code: int = 0, input: str | None = None):
    return json.loads(run(*args, "--json", code=code, input=input).stdout)


@pytest.fixture(scope="module")
def cube_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cube with memories of two users, two of them with ids sharing a prefix."""
    path = tmp_path_factory.mktemp("cli-edit") / "cube"
    run("init", "--cube", str(path))
    with MemCube.open(path) as cube:
        cube.add("Ida keeps bees", user_id="ida", id="abcd1111" + "0" * 24)
        cube.add("Ida grows tomatoes", user_id="ida", id="abcd2222" + "0" * 24)
        cube.add("Jon plays the oboe", user_id="jon", id="ef01" + "0" * 28)
    return path


def test_update_writes_a_new_version(cube_dir: Path) -> None:
    item = run_json("add", "Ida lives in Gent", "--user", "ida", "--cube", str(cube_dir),
                    "--meta", "since=2020", "--meta", "src=chat", "--tag", "home")  # fmt: skip
    new = run_json("update", item["id"][:8], "Ida lives in Antwerp", "--meta", "since=2024",
                   "--tag", "moved", "--importance", "0.9", "--cube", str(cube_dir))  # fmt: skip
    assert (
        new["id"] == item["id"] and new["version"] == 2 and new["content"] == "Ida lives in Antwerp"
    )
    assert new["metadata"] == {"since": 2024, "src": "chat"}  # --meta sets keys, keeps the others
    assert new["tags"] == ["moved"] and new["importance"] == 0.9
    meta_only = run_json("update", item["id"], "--type", "fact", "--cube", str(cube_dir))
    assert meta_only["version"] == 3 and meta_only["memory_type"] == "fact"
    shown = run_json("show", item["id"][:8], "--cube", str(cube_dir))
    assert [v["content"] for v in shown["history"]] == [
        "Ida lives in Gent", "Ida lives in Antwerp", "Ida lives in Antwerp",
    ]  # fmt: skip
    assert "version 4" in run("update", item["id"][:6], "Ida lives in Ghent", "--cube",
                              str(cube_dir)).stdout  # fmt: skip
    nothing = run_json("update", item["id"], "--cube", str(cube_dir), code=EXIT_USAGE)
    assert "at least one field" in nothing["error"]["message"]


def test_delete_archives_then_hard_purges(cube_dir: Path) -> None:
    item = run_json("add", "Ida's locker code is 4711", "--user", "ida", "--cube", str(cube_dir))
    done = run_json("delete", item["id"][:8], "--cube", str(cube_dir))
    assert done["hard"] is False and done["item"]["state"] == "archived"
    listed = run_json("list", "--user", "ida", "--cube", str(cube_dir))
    assert item["id"] not in {i["id"] for i in listed["items"]}
    assert "archived" in run_json("show", item["id"], "--cube", str(cube_dir))["item"]["state"]
    assert "purged" in run("delete", item["id"][:8], "--hard", "--cube", str(cube_dir)).stdout
    run("show", item["id"], "--cube", str(cube_dir), code=EXIT_NOT_FOUND)
    run("delete", item["id"], "--cube", str(cube_dir), code=EXIT_NOT_FOUND)
    run("delete", "--cube", str(cube_dir), code=EXIT_USAGE)  # no id


def test_id_prefixes_resolve(cube_dir: Path) -> None:
    assert run_json("show", "abcd1", "--cube", str(cube_dir))["item"]["content"] == "Ida keeps bees"
    ambiguous = run_json("show", "abcd", "--cube", str(cube_dir), code=EXIT_USAGE)["error"]
    assert ambiguous["type"] == "AmbiguousId" and "matches 2 memories" in ambiguous["message"]
    assert "abcd1111" in ambiguous["message"] and "more characters" in ambiguous["hint"]
    text = run("update", "abcd", "x", "--cube", str(cube_dir), code=EXIT_USAGE).stderr
    assert "ambiguous" in text
    missing = run_json("show", "9999", "--cube", str(cube_dir), code=EXIT_NOT_FOUND)["error"]
    assert missing["type"] == "ItemNotFoundError" and "prefix '9999'" in missing["message"]
    run("show", "ab", "--cube", str(cube_dir), code=EXIT_NOT_FOUND)  # too short to be a prefix
    # --user resolves among that user's memories only.
    assert (
        run_json("show", "ef01", "--user", "jon", "--cube", str(cube_dir))["item"]["user_id"]
        == "jon"
    )
    run("show", "ef01", "--user", "ida", "--cube", str(cube_dir), code=EXIT_NOT_FOUND)
    run("delete", "ef01", "--user", "ida", "--cube", str(cube_dir), code=EXIT_NOT_FOUND)
    run("update", "abcd", "x", "--user", "jon", "--cube", str(cube_dir), code=EXIT_NOT_FOUND)


def test_content_from_stdin_and_files(cube_dir: Path, tmp_path: Path) -> None:
    piped = run_json(
        "add", "-", "--user", "ida", "--cube", str(cube_dir), input="Ida's cat is Miso\n"
    )
    assert piped["content"] == "Ida's cat is Miso"
    note = tmp_path / "note.txt"
    note.write_text("Ida's dog is Pip\nand he is old\n", encoding="utf-8")
    filed = run_json("add", f"@{note}", "--user", "ida", "--cube", str(cube_dir))
    assert filed["content"] == "Ida's dog is Pip\nand he is old"
    literal = run_json("add", "@@ida on the forum", "--user", "ida", "--cube", str(cube_dir))
    assert literal["content"] == "@ida on the forum"
    note.write_text("Ida's dog is Rex", encoding="utf-8")
    assert (
        run_json("update", filed["id"], f"@{note}", "--cube", str(cube_dir))["content"]
        == "Ida's dog is Rex"
    )
    updated = run_json(
        "update", piped["id"], "-", "--cube", str(cube_dir), input="Ida's cat is Tofu"
    )
    assert updated["content"] == "Ida's cat is Tofu"
    missing = run("add", f"@{tmp_path / 'absent.txt'}", "--user", "ida", "--cube", str(cube_dir),
                  code=EXIT_NOT_FOUND)  # fmt: skip
    assert "absent.txt does not exist" in words(missing.stderr)
    err = run_json("update", filed["id"], f"@{tmp_path / 'absent.txt'}", "--cube", str(cube_dir),
                   code=EXIT_NOT_FOUND)["error"]  # fmt: skip
    assert err["type"] == "FileNotFound"


def test_version() -> None:
    out = run("--version").stdout
    assert out.strip() == f"memcube {version('memos-integrations')}"


def test_add_extract_runs_the_reader(tmp_path: Path) -> None:
    path = tmp_path / "cube"
    run("init", "--cube", str(path))
    said = "I'm allergic to peanuts"
    stored = run_json("add", said, "--extract", "--user", "kim", "--cube", str(path))
    types = {it["memory_type"] for it in stored["items"]}
    assert "episodic" in types and types - {"episodic"}  # the turn, and what was read from it
    assert all(it["user_id"] == "kim" for it in stored["items"]) and stored["problems"] == []
    with MemCube.open(path) as cube:
        assert cube.count(user_id="kim") == len(stored["items"])
    assert "remembered" in run("add", "I like green tea", "--extract", "--user", "kim", "--cube",
                               str(path)).stdout  # fmt: skip
    run("add", said, "--extract", "--type", "fact", "--user", "kim", "--cube", str(path),
        code=EXIT_USAGE)  # fmt: skip


def test_export_needs_user_or_all(cube_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "x.mip.tar.gz"
    refused = run("export", str(archive), "--cube", str(cube_dir), code=EXIT_USAGE)
    assert "--user" in refused.output and "--all" in refused.output and not archive.exists()
    run("export", str(archive), "--user", "ida", "--all", "--cube", str(cube_dir), code=EXIT_USAGE)
    one = run_json("export", str(archive), "--user", "jon", "--cube", str(cube_dir))
    assert one["users"] == 1 and one["items"] == 1
    assert run_json("export", str(archive), "--all", "--cube", str(cube_dir))["users"] == 2


@pytest.mark.parametrize("leftover", ["chroma/chroma.sqlite3", "chroma.sqlite3"])
def test_init_refuses_orphaned_chroma_data(tmp_path: Path, leftover: str) -> None:
    folder = tmp_path / "old"
    (folder / leftover).parent.mkdir(parents=True, exist_ok=True)
    (folder / leftover).write_bytes(b"SQLite format 3\x00")
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    result = run("init", "--cube", str(folder), code=EXIT_REFUSED)
    assert "holds Chroma data" in words(result.stderr) and "no cube.json" in words(result.stderr)
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before
    failed = run_json("init", "--cube", str(folder), code=EXIT_REFUSED)
    assert failed["error"]["type"] == "OrphanedChromaData"


def test_errors_name_the_cli_flags(cube_dir: Path) -> None:
    failed = run_json("add", "x", "--user", " ", "--cube", str(cube_dir), code=EXIT_USAGE)["error"]
    assert failed["message"] == "--user must be a non-empty string."
    assert "user_id" not in run("search", "x", "--user", "", "--cube", str(cube_dir),
                                code=EXIT_USAGE).stderr  # fmt: skip
    assert cli_words("pass user_id='...'; memory_types and live_user_id") == (
        "pass --user '...'; --type and live_user_id"
    )


def test_delete_every_memory_of_a_user(tmp_path: Path) -> None:
    path = tmp_path / "cube"
    run("init", "--cube", str(path))
    with MemCube.open(path) as cube:
        cube.add_many([{"content": f"Lia note {i}"} for i in range(3)], user_id="lia")
        kept = cube.add("Max note", user_id="max")
        cube.share("max", "lia", ids=[kept.id], access="write")
    no_yes = run("delete", "--user", "lia", "--all", "--cube", str(path), code=EXIT_USAGE)
    assert "--yes" in no_yes.output
    run("delete", "--all", "--yes", "--cube", str(path), code=EXIT_USAGE)  # whose?
    run("delete", kept.id, "--user", "lia", "--all", "--yes", "--cube", str(path), code=EXIT_USAGE)
    done = run_json("delete", "--user", "lia", "--all", "--yes", "--cube", str(path))
    assert done == {"user_id": "lia", "hard": False, "count": 3}
    assert run_json("list", "--user", "lia", "--cube", str(path))["total"] == 0
    assert run_json("list", "--user", "max", "--cube", str(path))["total"] == 1  # shared, not hers
    assert (
        "purged 3 memories of lia"
        in run("delete", "--user", "lia", "--all", "--yes", "--hard", "--cube", str(path)).stdout
    )
    assert run_json("list", "--user", "lia", "--all", "--cube", str(path))["total"] == 0
