"""Execute every tutorial from a clean kernel and write its paired .ipynb, outputs included.

    pip install -e ".[docs]"
    python docs/tutorials/build.py            # all of them
    python docs/tutorials/build.py 01_pairs   # one

The .py files (jupytext's percent format) are the source; the .ipynb files are what this writes.
"""
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


def execute(source, timeout=120):
    """Run the tutorial `source` (a .py path) in a fresh python3 kernel: (executed notebook, seconds)."""
    nb = jupytext.read(source)
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(Path(source).parent)}}).execute()
    return nb, time.perf_counter() - start


def main(names):
    sources = [HERE / f"{n}.py" for n in names] or sorted(HERE.glob("[0-9][0-9]_*.py"))
    for source in sources:
        nb, seconds = execute(source)
        nbformat.write(nb, source.with_suffix(".ipynb"))
        print(f"{source.name}: {seconds:.1f} s -> {source.with_suffix('.ipynb').name}")


if __name__ == "__main__":
    main(sys.argv[1:])
