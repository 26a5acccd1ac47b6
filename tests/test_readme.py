"""The README is the first page: short, its two commands first, and every link on it resolves."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FIRST_COMMANDS = [
    'python3 -m venv .venv && .venv/bin/pip install -e ".[data,viz,fast]" && .venv/bin/python examples/lenet_mnist.py',
    'python3 -m venv .venv && .venv/bin/pip install -e ".[test]" && .venv/bin/python -m pytest',
]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _text(path):
    return path.read_text(encoding="utf-8")


def _relative_links(path):
    """Every link and image target in a Markdown file that is not a URL or an anchor."""
    targets = LINK.findall(_text(path))
    return [t.split("#")[0] for t in targets
            if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


def test_readme_is_under_250_lines():
    assert len(_text(README).splitlines()) < 250


def test_readme_first_code_block_is_the_two_commands():
    first = re.search(r"```[a-z]*\n(.*?)```", _text(README), re.S).group(1)
    assert first.splitlines() == FIRST_COMMANDS


def test_readme_test_command_is_the_line_ci_runs():
    lines = [l for l in _text(README).splitlines() if 'pip install -e ".[test]"' in l]
    assert lines[0] == FIRST_COMMANDS[1]


def test_readme_keeps_the_torch_swap_table():
    assert "| `import torch` | `import minicnn as torch` |" in _text(README)


def test_every_relative_link_in_the_readme_exists():
    links = _relative_links(README)
    assert links, "the README links to nothing: the pattern is broken"
    missing = [t for t in links if not (README.parent / t).exists()]
    assert missing == []


def test_every_relative_link_in_the_pages_it_links_exists():
    pages = [ROOT / "docs" / "guide.md", ROOT / "benchmarks" / "PERFORMANCE.md"]
    missing = [(p.name, t) for p in pages for t in _relative_links(p) if not (p.parent / t).exists()]
    assert missing == []
