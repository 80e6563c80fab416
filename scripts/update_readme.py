"""Paste the demo scene's OSC address table (``vj osc --markdown``) into README.md (the tests check it).

    .venv/bin/python scripts/update_readme.py
"""
from __future__ import annotations

import contextlib
import io
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from vj.cli import main as vj

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        vj(["osc", "--markdown"])
    table = out.getvalue().strip()
    readme = ROOT / "README.md"
    text = readme.read_text()
    new, n = re.subn(r"\| address \| range \| default \| what \|\n(\|.*\|\n)+", table + "\n", text, count=1)
    if n != 1:
        sys.exit("README.md has no OSC table to replace")
    readme.write_text(new)
    print(f"README.md: OSC table with {table.count(chr(10)) - 1} addresses")


if __name__ == "__main__":
    main()
