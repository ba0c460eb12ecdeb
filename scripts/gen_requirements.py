"""Write requirements.txt (for Hugging Face Spaces) from pyproject.toml's dependencies.

    python scripts/gen_requirements.py          # write
    python scripts/gen_requirements.py --check  # exit 1 if requirements.txt is stale
"""

import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = "# Generated from pyproject.toml by scripts/gen_requirements.py: do not edit by hand.\n"


def render() -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return HEADER + "".join(d + "\n" for d in deps)


def main() -> int:
    text = render()
    target = ROOT / "requirements.txt"
    if "--check" in sys.argv:
        ok = target.is_file() and target.read_text() == text
        print("requirements.txt is up to date" if ok else "requirements.txt is stale: run scripts/gen_requirements.py")
        return 0 if ok else 1
    target.write_text(text)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
