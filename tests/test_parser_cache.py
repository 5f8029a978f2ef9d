"""The parser's tables are cached per user (compiler/syntax/parser.py): a second process loads them
instead of rebuilding, and never from a folder other users can write to."""
from __future__ import annotations

import os
import subprocess
import sys

CODE = ("from insightql.compiler.syntax.parser import parse; "
        "print(parse('SELECT a, COUNT(*) AS n FROM t GROUP BY a;', 'q.iq') is not None)")


def run(env_extra: dict) -> str:
    env = {**os.environ, **env_extra}
    env.pop("IQ_NO_PARSER_CACHE", None)
    return subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env, check=True).stdout


def test_cache_in_a_private_folder_is_written_then_used(tmp_path):
    assert run({"XDG_CACHE_HOME": str(tmp_path)}).strip() == "True"
    folder = tmp_path / "insightql"
    cache = folder / "grammar.lark.cache"
    assert cache.is_file() and folder.stat().st_mode & 0o777 == 0o700
    before = cache.stat().st_mtime_ns
    assert run({"XDG_CACHE_HOME": str(tmp_path)}).strip() == "True"
    assert cache.stat().st_mtime_ns == before  # loaded, not rebuilt


def test_no_cache_in_a_folder_others_can_write(tmp_path):
    folder = tmp_path / "insightql"
    folder.mkdir()
    folder.chmod(0o777)
    assert run({"XDG_CACHE_HOME": str(tmp_path)}).strip() == "True"
    assert not (folder / "grammar.lark.cache").exists()
