"""Quiet by default: memcube's own model loads (the MiniLM embedder, the bundled chat model and
its one-time GGUF conversion) print no progress bars and no ``TqdmWarning``, in a console or a
notebook, and leave the user's transformers settings as they were; the demo leaves no temporary
folder behind."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

#: Makes ``tqdm.auto`` behave as in a Jupyter kernel without ipywidgets: it warns with a
#: TqdmWarning when first imported (memcube is often what imports transformers, and so it, first).
NOTEBOOK = """
import sys, types
sys.modules["ipykernel.zmqshell"] = types.ModuleType("ipykernel.zmqshell")
import IPython
"""

OPEN_ADD_SEARCH = """
import json, tempfile
from memcube import MemCube

if USER_SETTINGS is not None:  # the user's own choices, which must survive memcube's loads
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity(USER_SETTINGS["verbosity"])
    if not USER_SETTINGS["bars"]:
        hf_logging.disable_progress_bar()
with MemCube.open(tempfile.mkdtemp()) as cube:
    cube.add("The spare key is under the blue pot.", user_id="u")
    hit = cube.search("where is the key?", user_id="u")[0]
from transformers.utils import logging as hf_logging

after = {"bars": hf_logging.is_progress_bar_enabled(), "verbosity": hf_logging.get_verbosity()}
# a warning filter torch installs when first imported (here, by memcube's load) is still there
import warnings
kept = any(getattr(f[2], "__name__", "") == "TracerWarning" for f in warnings.filters)
print(json.dumps({"after": after, "found": hit.item.content, "torch_filter_kept": kept}))
"""

LOAD_CHAT_MODEL = """
import json
from langchain_memos import ChatMemOS

if USER_SETTINGS is not None:  # the user's own choices, which must survive memcube's loads
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity(USER_SETTINGS["verbosity"])
    if not USER_SETTINGS["bars"]:
        hf_logging.disable_progress_bar()
answer = ChatMemOS(max_tokens=2).invoke("Hi").content    # loads the bundled model as users do
from transformers.utils import logging as hf_logging

after = {"bars": hf_logging.is_progress_bar_enabled(), "verbosity": hf_logging.get_verbosity()}
print(json.dumps({"after": after, "answer": answer}))
"""

LOAD_MODEL = """
import json
from memcube.runtime.model import load_model, model_cache_dir
model, tokenizer = load_model()
print(json.dumps({"cached": sorted(p.name for p in model_cache_dir().iterdir())}))
"""


def run_python(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "ANONYMIZED_TELEMETRY": "False",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": str(REPO),
        **env,
    }
    environment.pop("PYTHONWARNINGS", None)  # Python's default warning filters, as users have
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def assert_quiet(stderr: str) -> None:
    for noise in ("Loading weights", "TqdmWarning", "IProgress", "de-quantizing", "shards"):
        assert noise not in stderr, stderr[-3000:]
    assert "it/s" not in stderr and "%|" not in stderr, stderr[-3000:]  # any tqdm bar


DEFAULTS = {"bars": True, "verbosity": 30}  # transformers' own: bars on, WARNING


@pytest.mark.parametrize(
    ("notebook", "user_settings"),
    [
        (False, None),
        (False, {"bars": False, "verbosity": 40}),
        (False, {"bars": True, "verbosity": 10}),
        (True, None),  # in a notebook, memcube is what first imports transformers (and tqdm)
    ],
    ids=["console", "console-bars-off-error", "console-bars-on-debug", "notebook"],
)
def test_open_add_search_is_quiet_and_keeps_the_users_settings(
    tmp_path: Path, notebook: bool, user_settings: dict[str, object] | None
) -> None:
    if notebook:
        pytest.importorskip("IPython")
    code = (NOTEBOOK if notebook else "") + OPEN_ADD_SEARCH.replace(
        "USER_SETTINGS", repr(user_settings)
    )
    result = run_python(code, tmp_path)
    if user_settings is None or user_settings["verbosity"] != 10:
        assert_quiet(result.stderr)
    else:  # the user asked transformers for debug logs: those show, still without a bar
        assert "Loading weights" not in result.stderr and "%|" not in result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["found"] == "The spare key is under the blue pot."
    assert out["after"] == (user_settings or DEFAULTS)
    assert out["torch_filter_kept"] is True


def test_quiet_loading_hides_only_this_threads_bars_and_restores_the_users_hook() -> None:
    from transformers.utils import logging as hf_logging

    from memcube.plaintext.embedder import quiet_model_loading

    if not hf_logging.is_progress_bar_enabled():
        pytest.skip("transformers progress bars are disabled in this environment")

    def draw(desc: str) -> str:
        out = io.StringIO()
        for _ in hf_logging.tqdm(range(3), desc=desc, file=out):
            pass
        return out.getvalue()

    seen: list[str] = []

    def users_hook(factory, args, kwargs):  # type: ignore[no-untyped-def]
        seen.append(kwargs.get("desc", ""))
        return factory(*args, **kwargs)

    previous = hf_logging.set_tqdm_hook(users_hook)
    try:
        before = (hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity())
        other: list[str] = []
        with quiet_model_loading():
            assert draw("ours") == ""  # memcube's own bar: hidden
            with quiet_model_loading():  # nested blocks
                assert draw("ours, nested") == ""
            assert draw("ours, after nesting") == ""
            # a bar of the user's own code in another thread still shows, through their hook
            thread = threading.Thread(target=lambda: other.append(draw("theirs")))
            thread.start()
            thread.join()
        assert "theirs" in other[0] and "3/3" in other[0]
        assert seen == ["theirs"]
        assert hf_logging.set_tqdm_hook(users_hook) is users_hook  # their hook is back
        assert (hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()) == before
        assert "3/3" in draw("theirs again")  # and bars show again in this thread
    finally:
        hf_logging.set_tqdm_hook(previous)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("notebook", "user_settings"),
    [(False, None), (False, {"bars": False, "verbosity": 40}), (True, None)],
    ids=["console", "console-bars-off-error", "notebook"],
)
def test_loading_the_bundled_chat_model_is_quiet(
    tmp_path: Path, notebook: bool, user_settings: dict[str, object] | None
) -> None:
    if notebook:
        pytest.importorskip("IPython")
    code = (NOTEBOOK if notebook else "") + LOAD_CHAT_MODEL.replace(
        "USER_SETTINGS", repr(user_settings)
    )
    result = run_python(code, tmp_path)
    assert_quiet(result.stderr)
    assert json.loads(result.stdout.strip().splitlines()[-1])["after"] == (
        user_settings or DEFAULTS
    )


@pytest.mark.slow
def test_converting_the_bundled_model_is_quiet(tmp_path: Path) -> None:
    """The first use on a machine de-quantizes the GGUF file into the model cache."""
    cache = tmp_path / "models"
    result = run_python(LOAD_MODEL, tmp_path, MEMCUBE_MODEL_CACHE=str(cache))
    assert_quiet(result.stderr)
    assert "SmolLM2-135M-Instruct" in json.loads(result.stdout.strip().splitlines()[-1])["cached"]


@pytest.mark.slow
def test_demo_removes_its_temporary_folder_and_keeps_a_given_one(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    code = "from memcube.demo import main; main()"
    result = run_python(code, tmp_path, TMPDIR=str(temp))
    assert "Q:" in result.stdout
    assert_quiet(result.stderr)
    # the temporary cube is gone (torch may leave caches of its own there)
    assert [p.name for p in temp.iterdir() if p.name.startswith("memcube-demo-")] == []
    assert not any((p / "cube.json").exists() for p in temp.iterdir())

    kept = tmp_path / "kept"
    result = run_python(f"from memcube.demo import main; main(['--path', {str(kept)!r}])", tmp_path)
    assert "Q:" in result.stdout
    assert (kept / "cube.json").is_file()  # a folder the user named stays
