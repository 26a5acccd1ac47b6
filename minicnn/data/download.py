"""Downloading a file safely: short timeout, checksum verified, written atomically.

`fetch(url, dest, md5)` either leaves a verified file at `dest` or leaves
nothing: the bytes go to a temporary file next to `dest`, are checked against
the published MD5, and only then renamed into place (a rename within one
folder is atomic). A half-finished or tampered download can never be mistaken
for data.

pooch (optional extra `minicnn[data]`) does exactly this, with a tqdm
progress bar; without it we do the same with urllib, hashlib and os.replace.
"""

import hashlib
import os
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from .errors import CorruptDatasetError, DownloadError

TIMEOUT = 5  # seconds: an offline machine should give up quickly, not hang


def md5sum(path, chunk=1 << 20):
    """The hex MD5 digest of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url, dest, md5):
    """Download `url` to `dest` (a Path) if its MD5 matches `md5`; returns `dest`.

    Raises DownloadError when the server cannot be reached (offline, timeout,
    HTTP error) and CorruptDatasetError on a checksum mismatch. Either way
    nothing is left at `dest`.
    """
    dest = Path(dest)
    if dest.is_file() and md5sum(dest) == md5:  # already here from an earlier, partial run
        return dest
    made = [p for p in [dest.parent, *dest.parent.parents] if not p.exists()]  # innermost first
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        import pooch
    except ImportError:
        pooch = None
    try:
        if pooch is not None:
            _fetch_pooch(pooch, url, dest, md5)
        else:
            _fetch_urllib(url, dest, md5)
    except OSError as exc:  # URLError, timeouts, refused connections, requests' errors
        raise DownloadError(f"could not download {url}: {_short(exc)}") from exc
    finally:
        for folder in made:  # leave no empty folder behind a failure, nor the folders above it
            if any(folder.iterdir()):
                break
            folder.rmdir()
    return dest


def _short(exc):
    """The gist of a network error: its type and the first line of its text, trimmed."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:120]}{'...' if len(text) > 120 else ''}"


def _fetch_pooch(pooch, url, dest, md5):
    progressbar = _have_tqdm() and sys.stderr.isatty()
    downloader = pooch.HTTPDownloader(progressbar=progressbar, timeout=TIMEOUT)
    pooch.get_logger().setLevel("WARNING")  # its "Downloading data from ..." line: the bar says enough
    try:
        pooch.retrieve(url, known_hash=f"md5:{md5}", fname=dest.name,
                       path=dest.parent, downloader=downloader)
    except ValueError as exc:  # pooch's way of saying "hash mismatch"; it kept nothing
        raise CorruptDatasetError(f"{url}: checksum mismatch, file refused ({exc})") from exc


def _fetch_urllib(url, dest, md5):
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        digest = hashlib.md5()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            progress = _Progress(url, int(response.headers.get("Content-Length") or 0))
            for block in iter(lambda: response.read(1 << 16), b""):
                out.write(block)
                digest.update(block)
                progress.update(len(block))
            progress.close()
        if digest.hexdigest() != md5:
            raise CorruptDatasetError(
                f"{url}: checksum mismatch, file refused (MD5 {digest.hexdigest()}, "
                f"expected {md5}); the mirror served a damaged or different file")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):  # only when something went wrong before the rename
            os.remove(tmp)


def _have_tqdm():
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


class _Progress:
    """A tqdm bar when tqdm is installed, otherwise one line of percentages."""

    def __init__(self, url, total):
        self.total, self.done, self.shown = total, 0, -10
        if _have_tqdm():
            from tqdm import tqdm
            self.bar = tqdm(total=total or None, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1])
        else:
            self.bar = None
            print(f"downloading {url}", end="", file=sys.stderr, flush=True)

    def update(self, n):
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.total and 100 * self.done // self.total >= self.shown + 10:
            self.shown = 100 * self.done // self.total
            print(f" {self.shown}%", end="", file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
        else:
            print(file=sys.stderr)


def fetch_from_mirrors(mirrors, name, dest, md5):
    """Try `mirror + name` for each mirror in turn; the first verified file wins.

    A mirror that cannot be reached is skipped; if none can, DownloadError says
    why for each. A checksum mismatch stops at once (CorruptDatasetError).
    """
    failures = []
    for mirror in mirrors:
        try:
            return fetch(mirror + name, dest, md5)
        except DownloadError as exc:
            reason = type(exc.__cause__).__name__ if exc.__cause__ is not None else str(exc)
            failures.append(f"{mirror}{name} ({reason})")
    raise DownloadError("no mirror answered: " + ", ".join(failures))


def extract_files(archive, member_dir, names, folder):
    """Copy `member_dir/name` for each of `names` out of a .tar.gz into `folder`.

    Each file is written to a temporary name and renamed, like a download.
    Only the named members are read, so an archive cannot write outside `folder`.
    """
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for name in names:
                fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
                try:
                    with os.fdopen(fd, "wb") as out, tar.extractfile(f"{member_dir}/{name}") as src:
                        out.write(src.read())
                    os.replace(tmp, folder / name)
                finally:
                    if os.path.exists(tmp):
                        os.remove(tmp)
    except (tarfile.TarError, KeyError, EOFError) as exc:
        raise CorruptDatasetError(f"{archive}: cannot extract {member_dir}/ ({exc})") from exc
    return [folder / name for name in names]
