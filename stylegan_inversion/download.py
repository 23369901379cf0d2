"""Robust downloads of large files: checksum before rename, resume, retries, stall timeout, local mirror.

``download(urls, out, sha256=...)`` makes ``out`` exist with the given SHA-256:

1. a file already at ``out`` with the right checksum is kept and no network is touched;
2. local mirror folders (``mirrors`` argument, then ``$STYLEGAN_INVERSION_MIRROR``) are searched
   for the file by its URL basename or by its sha256 as file name, verified and copied into place;
3. otherwise each URL is tried in turn. Bytes go to ``<out>.part``, which is kept between attempts
   and resumed with an HTTP Range request (checked against the 206 Content-Range; a server that
   ignores Range is restarted cleanly). Transient errors (cut connections, 5xx, stalls) are
   retried with exponential backoff; a connection that delivers no byte for ``stall_timeout``
   seconds counts as stalled. The file is renamed to ``out`` only after its checksum matches.

Every failure raises ``DownloadError`` with one line naming the asset, the URL(s), why, and what
to do (where to place the file by hand, or how to use a mirror folder). Standard library only.
"""

from __future__ import annotations

import bz2
import contextlib
import hashlib
import http.client
import logging
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import IO, Iterable, Iterator, Sequence

from .errors import UserError

log = logging.getLogger(__name__)

MIRROR_ENV = "STYLEGAN_INVERSION_MIRROR"
DEFAULT_STALL_TIMEOUT = 60.0
DEFAULT_RETRIES = 4
DEFAULT_BACKOFF = 1.0
MAX_BACKOFF = 60.0
CHUNK = 1 << 16
USER_AGENT = "stylegan-inversion-study-downloader/1"
PERMANENT_HTTP = {400, 401, 403, 404, 405, 410, 451}
EXTRACT_KINDS = ("bz2", "zip")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class DownloadError(UserError, RuntimeError):
    """A file that could not be obtained; the message names the asset, the URL and what to do."""


class _Transient(Exception):
    """A failure worth retrying (cut connection, stall, server error)."""


class _Permanent(Exception):
    """A failure that retrying the same URL will not fix (404, wrong checksum)."""


# ---------------------------------------------------------------- small helpers


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def normalize_sha256(value: str | None) -> str | None:
    """Lower-case hex digest, or None; anything else is refused (a typo must not pass as 'no checksum')."""
    if value is None or str(value).strip() == "":
        return None
    v = str(value).strip().lower()
    if v.startswith("sha256:"):
        v = v[len("sha256:"):]
    if not _SHA256_RE.match(v):
        raise DownloadError(f"not a SHA-256 hex digest (64 hex digits): {value!r}")
    return v


def url_basename(url: str) -> str:
    """The file name at the end of a URL's path (query and fragment ignored)."""
    return Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name


def part_path(out: str | Path) -> Path:
    """Where the partial download of ``out`` lives between attempts."""
    out = Path(out)
    return out.with_name(out.name + ".part")


def torch_hub_dir(torch_home: str | Path | None = None) -> Path:
    """Where torch.hub / torchvision cache weights: $TORCH_HOME/hub/checkpoints (default ~/.cache/torch)."""
    if torch_home is None:
        torch_home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "torch")
    return Path(os.path.expanduser(str(torch_home))) / "hub" / "checkpoints"


def torch_hub_path(filename: str, torch_home: str | Path | None = None) -> Path:
    """The path torchvision loads ``filename`` (e.g. vgg16-397923af.pth) from without downloading."""
    return torch_hub_dir(torch_home) / filename


def mirror_dirs(mirrors: str | Path | Iterable[str | Path] | None = None) -> list[Path]:
    """Mirror folders to search, in order: the given ones, then $STYLEGAN_INVERSION_MIRROR (os.pathsep-separated)."""
    dirs: list[Path] = []
    if isinstance(mirrors, (str, Path)):
        mirrors = [mirrors]
    for m in list(mirrors or []):
        if m not in (None, ""):
            dirs.append(Path(os.path.expanduser(str(m))))
    for m in os.environ.get(MIRROR_ENV, "").split(os.pathsep):
        if m.strip():
            dirs.append(Path(os.path.expanduser(m.strip())))
    return list(dict.fromkeys(dirs))


def _human(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


# ---------------------------------------------------------------- progress


class Progress:
    """Download progress on stderr: a bar redrawn a few times a second on a terminal, a log line per 10% otherwise."""

    def __init__(self, label: str, total: int | None, done: int = 0, stream: IO[str] | None = None, interval: float = 0.25):
        self.label = label
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval
        self.t0 = time.monotonic()
        self.start = done
        self.done = done
        self._last_draw = 0.0
        self._last_decile = self._decile(done)
        self._last_log = self.t0
        if done:
            log.info("%s: resuming at %s%s", label, _human(done), f" of {_human(total)}" if total else "")

    def _decile(self, done: int) -> int:
        return int(10 * done / self.total) if self.total else 0

    def speed(self) -> float:
        """Bytes per second since this progress started."""
        dt = time.monotonic() - self.t0
        return (self.done - self.start) / dt if dt > 0 else 0.0

    def line(self) -> str:
        """One-line status: bytes, total, percentage and speed."""
        spd = f"{self.speed() / 1e6:.2f} MB/s"
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 24) + "." * (24 - int(frac * 24))
            return f"{self.label}: [{bar}] {frac:4.0%} {_human(self.done)} / {_human(self.total)} {spd}"
        return f"{self.label}: {_human(self.done)} {spd}"

    def update(self, done: int) -> None:
        """Record bytes written so far; redraw or log when due."""
        self.done = done
        now = time.monotonic()
        if self.tty:
            if now - self._last_draw >= self.interval:
                self._last_draw = now
                self.stream.write("\r" + self.line().ljust(79))  # pad: a shorter line must erase the last
                self.stream.flush()
        elif self.total:
            d = self._decile(done)
            if d > self._last_decile:
                self._last_decile = d
                log.info("%s", self.line())
        elif now - self._last_log >= 30.0:
            self._last_log = now
            log.info("%s", self.line())

    def close(self) -> None:
        """Finish the bar line (terminal) or log the final state."""
        if self.tty:
            self.stream.write("\r" + self.line().ljust(79) + "\n")
            self.stream.flush()
        elif self.done > self.start:
            finished = self.total is None or self.done >= self.total
            log.info("%s (%s)", self.line(), "done" if finished else "interrupted")


# ---------------------------------------------------------------- atomic copies with verification


@contextlib.contextmanager
def _temp_beside(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path``, renamed onto it only when the block succeeds."""
    from .io import atomic_path

    with atomic_path(path) as tmp:
        yield tmp


def _copy_hashing(src: IO[bytes], dst: Path) -> tuple[str, int]:
    """Copy a binary stream to a file, fsync it, and return (sha256, bytes)."""
    h = hashlib.sha256()
    n = 0
    with open(dst, "wb") as f:
        while b := src.read(1 << 20):
            h.update(b)
            f.write(b)
            n += len(b)
        f.flush()
        os.fsync(f.fileno())
    return h.hexdigest(), n


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def mirror_candidates(mirrors: Sequence[Path], names: Iterable[str], sha256: str | None) -> list[Path]:
    """Files in the mirror folders named like the asset (URL basename, given name) or its sha256, in search order."""
    names = [n for n in dict.fromkeys([*names, sha256 or ""]) if n]
    found = []
    for d in mirrors:
        if not d.is_dir():
            log.warning("mirror folder %s does not exist; ignored", d)
            continue
        found += [d / n for n in names if (d / n).is_file()]
    return found


def copy_verified(src: str | Path, out: str | Path, sha256: str | None = None) -> Path:
    """Copy src to out atomically, checking the copy's sha256 before it takes the final name."""
    out = Path(out)
    with _temp_beside(out) as tmp, open(src, "rb") as f:
        got, _ = _copy_hashing(f, tmp)
        if sha256 and got != sha256:
            raise DownloadError(f"{src}: sha256 {got} does not match the expected {sha256}; nothing was written to {out}")
    return out


# ---------------------------------------------------------------- extraction


def extract(archive: str | Path, out: str | Path, kind: str, member: str | None = None, sha256: str | None = None) -> Path:
    """Extract a .bz2 file, or one member of a .zip, to ``out`` atomically (checked against sha256 if given)."""
    archive, out = Path(archive), Path(out)
    sha256 = normalize_sha256(sha256)
    if kind not in EXTRACT_KINDS:
        raise DownloadError(f"{archive}: unknown extract kind {kind!r} (one of {', '.join(EXTRACT_KINDS)})")
    try:
        with _temp_beside(out) as tmp:
            if kind == "bz2":
                with bz2.open(archive, "rb") as src:
                    got, n = _copy_hashing(src, tmp)
            else:
                with zipfile.ZipFile(archive) as z:
                    name = _zip_member(z, member, archive)
                    with z.open(name) as src:
                        got, n = _copy_hashing(src, tmp)
            if sha256 and got != sha256:
                raise DownloadError(f"{archive}: extracted file has sha256 {got}, expected {sha256}; nothing was written to {out}")
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise DownloadError(f"{archive}: cannot extract ({kind}): {e}; delete it and re-run to fetch it again") from None
    log.info("extracted %s (%s) -> %s", archive.name, _human(n), out)
    return out


def _zip_member(z: zipfile.ZipFile, member: str | None, archive: Path) -> str:
    files = [i.filename for i in z.infolist() if not i.is_dir()]
    if member is None:
        if len(files) == 1:
            return files[0]
        raise DownloadError(f"{archive}: holds {len(files)} files; name the one to extract (member): {', '.join(files[:20])}")
    if member in files:
        return member
    by_base = [f for f in files if Path(f).name == member]
    if len(by_base) == 1:
        return by_base[0]
    raise DownloadError(f"{archive}: has no member {member!r}; it holds: {', '.join(files[:20])}")


# ---------------------------------------------------------------- HTTP


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """'bytes 100-199/1000' -> (100, 1000); 'bytes */1000' -> (None, 1000)."""
    m = re.match(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", value or "")
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    total = int(m.group(2)) if m.group(2) != "*" else None
    return start, total


def _fetch_once(url: str, part: Path, *, label: str, expected_size: int | None, stall_timeout: float,
                progress_stream: IO[str] | None) -> str:
    """One HTTP attempt appending to ``part``; returns the Content-Type. Raises _Transient/_Permanent."""
    have = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=stall_timeout)
    except urllib.error.HTTPError as e:
        with contextlib.closing(e):
            if e.code == 416 and have:
                _, total = _content_range(e.headers.get("Content-Range"))
                if total == have:
                    return e.headers.get("Content-Type", "")
                part.unlink(missing_ok=True)
                raise _Transient(f"server refused to resume at byte {have}; restarting from the beginning") from None
            reason = f"HTTP {e.code} {e.reason}"
            if e.code in PERMANENT_HTTP or (400 <= e.code < 500 and e.code not in (408, 425, 429)):
                raise _Permanent(reason) from None
            raise _Transient(reason) from None
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            raise _Transient(f"no response within {stall_timeout:g} s") from None
        raise _Transient(f"cannot connect ({reason})") from None
    except (TimeoutError, socket.timeout):
        raise _Transient(f"no response within {stall_timeout:g} s") from None
    except (ConnectionError, http.client.HTTPException, OSError) as e:
        raise _Transient(f"connection failed ({e.__class__.__name__}: {e})") from None

    with resp:
        ctype = resp.headers.get("Content-Type", "") or ""
        if resp.status == 206:
            start, total = _content_range(resp.headers.get("Content-Range"))
            if start != have:
                part.unlink(missing_ok=True)
                raise _Transient(f"server resumed at byte {start} instead of {have}; restarting from the beginning")
            mode = "ab"
        else:
            if have:
                log.info("%s: server ignored the Range request; restarting from the beginning", label)
            have = 0
            mode = "wb"
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        if total is None:
            total = expected_size
        elif expected_size is not None and total != expected_size:
            raise _Permanent(f"size mismatch: the server offers {total} bytes, expected {expected_size}")
        progress = Progress(label, total, have, stream=progress_stream)
        try:
            with open(part, mode) as f:
                while True:
                    try:
                        chunk = resp.read1(CHUNK)  # what has arrived, so a stall keeps the bytes already received
                    except (TimeoutError, socket.timeout):
                        raise _Transient(f"stalled: no data for {stall_timeout:g} s after {have} bytes") from None
                    except (ConnectionError, http.client.HTTPException, OSError) as e:
                        raise _Transient(f"connection lost after {have} bytes ({e.__class__.__name__})") from None
                    if not chunk:
                        break
                    f.write(chunk)
                    have += len(chunk)
                    progress.update(have)
                    if expected_size is not None and have > expected_size:
                        f.close()
                        part.unlink(missing_ok=True)
                        raise _Permanent(f"size mismatch: received more than the expected {expected_size} bytes; "
                                         f"the partial file {part.name} was deleted")
                f.flush()
                os.fsync(f.fileno())
        finally:
            progress.close()
        if total is not None and have < total:
            raise _Transient(f"connection closed after {have} of {total} bytes")
        return ctype


def _fetch_url(url: str, part: Path, *, label: str, sha256: str | None, expected_size: int | None,
               stall_timeout: float, retries: int, backoff: float, progress_stream: IO[str] | None) -> None:
    """Get url into ``part`` with retries; verify size and checksum. Raises _Permanent on final failure."""
    restarted_after_mismatch = False
    attempt = 0
    while True:
        resumed_from = part.stat().st_size if part.is_file() else 0
        try:
            ctype = _fetch_once(url, part, label=label, expected_size=expected_size, stall_timeout=stall_timeout,
                                progress_stream=progress_stream)
        except _Transient as e:
            if attempt >= retries:
                raise _Permanent(f"{e} (gave up after {attempt + 1} attempts)") from None
            wait = min(backoff * (2 ** attempt), MAX_BACKOFF)
            attempt += 1
            log.warning("%s: %s; retry %d/%d in %.1f s", label, e, attempt, retries, wait)
            time.sleep(wait)
            continue
        size = part.stat().st_size
        got = sha256_file(part)
        if sha256 is not None and got != sha256:
            part.unlink(missing_ok=True)
            if resumed_from and not restarted_after_mismatch:
                # The kept partial may come from an older version of the file: start once from scratch.
                restarted_after_mismatch = True
                log.warning("%s: checksum mismatch after resuming; deleted %s and starting again from byte 0", label, part.name)
                continue
            hint = " (the server sent a web page, not the file: a login, quota or warning page?)" if "html" in ctype.lower() else ""
            raise _Permanent(f"checksum mismatch: expected sha256 {sha256}, got {got} ({size} bytes){hint}; "
                             f"the partial file {part.name} was deleted")
        if expected_size is not None and size != expected_size:
            part.unlink(missing_ok=True)
            raise _Permanent(f"size mismatch: expected {expected_size} bytes, got {size}; the partial file {part.name} was deleted")
        if sha256 is None:
            log.warning("%s: no sha256 recorded, so the download is unverified; its sha256 is %s (%d bytes): "
                        "record it in the registry to pin this file", label, got, size)
        else:
            log.info("%s: sha256 verified (%s)", label, got)
        return


def download(urls: str | Sequence[str], out: str | Path, *, sha256: str | None = None, size: int | None = None,
             name: str | None = None, mirrors: str | Path | Iterable[str | Path] | None = None,
             filename: str | None = None, stall_timeout: float = DEFAULT_STALL_TIMEOUT,
             retries: int = DEFAULT_RETRIES, backoff: float = DEFAULT_BACKOFF,
             progress_stream: IO[str] | None = None) -> Path:
    """Make ``out`` hold the file published at ``urls`` (checked against sha256/size), from disk, a mirror or the network."""
    out = Path(out)
    urls = [urls] if isinstance(urls, str) else [u for u in urls if u]
    sha256 = normalize_sha256(sha256)
    size = int(size) if size not in (None, "") else None
    label = name or out.name
    names = [n for n in [filename, *(url_basename(u) for u in urls), out.name] if n]

    if _present(out, sha256, size, label):
        return out

    for candidate in mirror_candidates(mirror_dirs(mirrors), names, sha256):
        log.info("%s: copying from mirror %s", label, candidate)
        try:
            copy_verified(candidate, out, sha256)
        except DownloadError as e:
            log.warning("%s: mirror file ignored: %s", label, e)
            continue
        if sha256 is None:
            log.warning("%s: %s came from the mirror without a checksum to verify it", label, out)
        return out

    if not urls:
        raise DownloadError(f"{label}: no URL to download from and not found in a mirror; {_what_to_do(out, names, sha256, size)}")

    out.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(out)
    failures: list[str] = []
    for url in urls:
        log.info("%s: downloading %s -> %s", label, url, out)
        try:
            _fetch_url(url, part, label=label, sha256=sha256, expected_size=size, stall_timeout=stall_timeout,
                       retries=retries, backoff=backoff, progress_stream=progress_stream)
        except _Permanent as e:
            failures.append(f"{url}: {e}")
            log.warning("%s: %s: %s", label, url, e)
            continue
        os.replace(part, out)
        _fsync_dir(out.parent)
        log.info("%s: ready at %s", label, out)
        return out
    if part.exists() and part.stat().st_size:
        kept = f" The partial download {part} ({part.stat().st_size} bytes) is kept and will be resumed."
    else:
        part.unlink(missing_ok=True)
        kept = ""
    raise DownloadError(f"{label}: could not download: {'; '.join(failures)}.{kept} {_what_to_do(out, names, sha256, size)}")


def _present(out: Path, sha256: str | None, size: int | None, label: str) -> bool:
    """True when out already holds the right file (checked without any network access)."""
    if not out.is_file():
        return False
    if sha256 is not None:
        got = sha256_file(out)
        if got == sha256:
            log.info("%s: already present at %s (sha256 verified)", label, out)
            return True
        log.warning("%s: %s has sha256 %s, expected %s; fetching it again", label, out, got, sha256)
        return False
    if size is not None and out.stat().st_size != size:
        log.warning("%s: %s has %d bytes, expected %d; fetching it again", label, out, out.stat().st_size, size)
        return False
    log.info("%s: already present at %s (no sha256 recorded to verify it)", label, out)
    return True


def _what_to_do(out: Path, names: Sequence[str], sha256: str | None, size: int | None) -> str:
    """The fix for an offline machine: where to place the file by hand, or how to use a mirror folder."""
    facts = ", ".join(x for x in [f"sha256 {sha256}" if sha256 else "", f"{size} bytes" if size else ""] if x)
    mirror_name = names[0] if names else out.name
    return (f"If this machine is offline or the URL is unavailable, get the file elsewhere{f' ({facts})' if facts else ''} "
            f"and place it at {os.path.abspath(out)}, or put it in a mirror folder as {mirror_name}"
            f"{f' (or named {sha256})' if sha256 else ''} and pass --mirror DIR or set {MIRROR_ENV}=DIR; then re-run.")
