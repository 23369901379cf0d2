"""The downloader against a real HTTP server on 127.0.0.1: checksums, resume, retries, stalls, mirrors, extraction."""

from __future__ import annotations

import bz2
import contextlib
import hashlib
import io
import logging
import os
import socket
import threading
import time
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from stylegan_inversion.download import (
    MIRROR_ENV,
    DownloadError,
    Progress,
    download,
    extract,
    normalize_sha256,
    part_path,
    torch_hub_path,
    url_basename,
)

FAST = {"retries": 0, "backoff": 0.01, "stall_timeout": 5.0}


def payload(n: int = 300_000, seed: int = 0) -> bytes:
    """Deterministic incompressible bytes."""
    out = bytearray()
    h = hashlib.sha256(str(seed).encode()).digest()
    while len(out) < n:
        h = hashlib.sha256(h).digest()
        out += h
    return bytes(out[:n])


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@dataclass
class Behaviour:
    """How the server answers one path."""

    data: bytes = b""
    status: int | None = None  # answer with this error status (e.g. 404, 503) ...
    status_times: int = 10**9  # ... for this many requests, then serve normally
    cut_after: int | None = None  # send only this many body bytes, then close ...
    cut_times: int = 1  # ... on this many requests
    stall_after: int | None = None  # send this many body bytes, then go silent
    stall_before_headers: bool = False
    ignore_range: bool = False
    content_type: str = "application/octet-stream"
    served: int = 0  # requests answered so far


@dataclass
class LocalServer:
    """A real HTTP server on 127.0.0.1 (port 0) whose answers each test sets; it records every request."""

    paths: dict[str, Behaviour] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def add(self, path: str, data: bytes = b"", **kw) -> str:
        self.paths[path] = Behaviour(data=data, **kw)
        return self.url(path)

    def ranges(self, path: str) -> list[str | None]:
        return [r for p, r in self.requests if p == path]


def _handler(state: LocalServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output quiet
            pass

        def do_GET(self):
            state.requests.append((self.path, self.headers.get("Range")))
            b = state.paths.get(self.path)
            if b is None:
                self.send_error(404, "Not Found")
                return
            n = b.served
            b.served += 1
            if b.status is not None and n < b.status_times:
                self.send_error(b.status)
                return
            if b.stall_before_headers:
                state.stop.wait(10)
                return
            data, start = b.data, 0
            rng = self.headers.get("Range")
            if rng and not b.ignore_range:
                start = int(rng.split("=")[1].split("-")[0])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Type", b.content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if b.cut_after is not None and n < b.cut_times:
                self.wfile.write(body[: b.cut_after])
                self.wfile.flush()
                self.close_connection = True
                return
            if b.stall_after is not None:
                self.wfile.write(body[: b.stall_after])
                self.wfile.flush()
                state.stop.wait(10)
                return
            self.wfile.write(body)

    return Handler


@contextlib.contextmanager
def local_server() -> Iterator[LocalServer]:
    """Run a LocalServer in a thread for the duration of the block."""
    state = LocalServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield state
    finally:
        state.stop.set()
        httpd.shutdown()
        httpd.server_close()


def closed_port_url(path: str = "/x.bin") -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused, like an offline machine)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}{path}"


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# ---------------------------------------------------------------- good file and progress


def test_good_file_is_verified_and_renamed(server, tmp_path):
    data = payload()
    url = server.add("/w/good.bin", data)
    out = tmp_path / "sub" / "good.bin"
    assert download(url, out, sha256=sha(data), size=len(data), name="asset-good", **FAST) == out
    assert out.read_bytes() == data
    assert leftovers(out.parent, {"good.bin"}) == []  # no .part, no temp file
    assert server.ranges("/w/good.bin") == [None]


def test_progress_bar_on_a_terminal_shows_size_and_speed(server, tmp_path):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    data = payload(500_000)
    stream = Tty()
    download(server.add("/p.bin", data), tmp_path / "p.bin", sha256=sha(data), progress_stream=stream, **FAST)
    text = stream.getvalue()
    assert "\r" in text and "MB/s" in text and "100%" in text and "0.5 MB / 0.5 MB" in text


def test_progress_without_terminal_logs_at_most_one_line_per_tenth(server, tmp_path, caplog):
    data = payload(2_000_000)
    with caplog.at_level(logging.INFO, logger="stylegan_inversion.download"):
        download(server.add("/q.bin", data), tmp_path / "q.bin", sha256=sha(data), progress_stream=io.StringIO(), **FAST)
    lines = [r.getMessage() for r in caplog.records if "MB/s" in r.getMessage()]
    assert 5 <= len(lines) <= 11  # ~130 chunks of 64 KiB, but only a line per 10% plus the final one
    assert any("100%" in m for m in lines)


def test_progress_interval_limits_redraws():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    p = Progress("x", 10_000_000, stream=stream, interval=10.0)
    for i in range(1, 1001):
        p.update(i * 10_000)
    assert stream.getvalue().count("\r") <= 1


# ---------------------------------------------------------------- resume


def test_resume_after_a_cut_connection(server, tmp_path):
    data = payload()
    cut = 120_000
    url = server.add("/r.bin", data, cut_after=cut)
    out = tmp_path / "r.bin"
    download(url, out, sha256=sha(data), retries=2, backoff=0.01, stall_timeout=5)
    assert out.read_bytes() == data
    assert server.ranges("/r.bin") == [None, f"bytes={cut}-"]  # the second request resumed, not restarted
    assert not part_path(out).exists()


def test_a_rerun_resumes_what_a_failed_run_kept(server, tmp_path):
    data = payload()
    url = server.add("/rerun.bin", data, cut_after=90_000)
    out = tmp_path / "rerun.bin"
    with pytest.raises(DownloadError, match="will be resumed"):
        download(url, out, sha256=sha(data), **FAST)
    assert part_path(out).stat().st_size == 90_000 and not out.exists()
    download(url, out, sha256=sha(data), **FAST)
    assert out.read_bytes() == data
    assert server.ranges("/rerun.bin") == [None, "bytes=90000-"]


def test_partial_file_from_an_earlier_run_is_resumed(server, tmp_path):
    data = payload()
    out = tmp_path / "r2.bin"
    part_path(out).write_bytes(data[:100_000])
    download(server.add("/r2.bin", data), out, sha256=sha(data), **FAST)
    assert out.read_bytes() == data
    assert server.ranges("/r2.bin") == ["bytes=100000-"]


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    data = payload()
    out = tmp_path / "r3.bin"
    part_path(out).write_bytes(b"\0" * 50_000)  # whatever is in the partial must not survive a 200 answer
    download(server.add("/r3.bin", data, ignore_range=True), out, sha256=sha(data), **FAST)
    assert out.read_bytes() == data
    assert server.ranges("/r3.bin") == ["bytes=50000-"]


def test_stale_partial_with_wrong_bytes_is_restarted_once(server, tmp_path):
    data = payload()
    out = tmp_path / "r4.bin"
    part_path(out).write_bytes(b"\1" * 70_000)  # e.g. left over from an older version of the file
    download(server.add("/r4.bin", data), out, sha256=sha(data), **FAST)
    assert out.read_bytes() == data
    assert server.ranges("/r4.bin") == ["bytes=70000-", None]


def test_complete_partial_answered_with_416_is_verified(server, tmp_path):
    data = payload()
    out = tmp_path / "r5.bin"
    part_path(out).write_bytes(data)
    download(server.add("/r5.bin", data), out, sha256=sha(data), **FAST)
    assert out.read_bytes() == data


# ---------------------------------------------------------------- failures


def test_wrong_checksum_fails_and_leaves_nothing(server, tmp_path):
    data = payload()
    url = server.add("/bad.bin", data)
    out = tmp_path / "bad.bin"
    wrong = sha(b"something else")
    with pytest.raises(DownloadError) as e:
        download(url, out, sha256=wrong, name="asset-bad", **FAST)
    msg = str(e.value)
    assert "asset-bad" in msg and url in msg and "checksum mismatch" in msg and wrong in msg and sha(data) in msg
    assert "deleted" in msg and os.path.abspath(out) in msg
    assert not out.exists() and not part_path(out).exists()
    assert leftovers(tmp_path, set()) == []


def test_html_page_instead_of_file_is_named_in_the_error(server, tmp_path):
    url = server.add("/drive.bin", b"<html>quota exceeded</html>", content_type="text/html; charset=utf-8")
    with pytest.raises(DownloadError, match="web page"):
        download(url, tmp_path / "drive.bin", sha256=sha(payload()), **FAST)


def test_404_fails_at_once_with_what_to_do(server, tmp_path):
    url = server.url("/missing/ffhq.pkl")
    out = tmp_path / "ffhq.pkl"
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as e:
        download(url, out, sha256=sha(b"x"), name="weights 'ffhq1024'", retries=3, backoff=1.0, stall_timeout=5)
    assert time.monotonic() - t0 < 1.0  # a 404 is not retried
    msg = str(e.value)
    assert "weights 'ffhq1024'" in msg and url in msg and "HTTP 404" in msg
    assert os.path.abspath(out) in msg and MIRROR_ENV in msg and "--mirror" in msg and "ffhq.pkl" in msg
    assert server.ranges("/missing/ffhq.pkl") == [None]
    assert not out.exists() and not part_path(out).exists()


def test_offline_fails_with_place_the_file_message(tmp_path):
    url = closed_port_url("/nets/vgg16-397923af.pth")
    out = tmp_path / "hub" / "vgg16-397923af.pth"
    with pytest.raises(DownloadError) as e:
        download(url, out, sha256=sha(b"y"), name="lpips-vgg", retries=1, backoff=0.01, stall_timeout=2)
    msg = str(e.value)
    assert "lpips-vgg" in msg and url in msg and "cannot connect" in msg and "gave up after 2 attempts" in msg
    assert f"place it at {os.path.abspath(out)}" in msg and MIRROR_ENV in msg
    assert not out.exists()


def test_transient_server_error_is_retried(server, tmp_path):
    data = payload()
    url = server.add("/flaky.bin", data, status=503, status_times=2)
    out = tmp_path / "flaky.bin"
    download(url, out, sha256=sha(data), retries=3, backoff=0.01, stall_timeout=5)
    assert out.read_bytes() == data
    assert len(server.ranges("/flaky.bin")) == 3


@pytest.mark.parametrize("before_headers", [False, True], ids=["mid-body", "before-headers"])
def test_stalled_server_times_out(server, tmp_path, before_headers):
    data = payload()
    kw = {"stall_before_headers": True} if before_headers else {"stall_after": 10_000}
    url = server.add("/stall.bin", data, **kw)
    out = tmp_path / "stall.bin"
    t0 = time.monotonic()
    with pytest.raises(DownloadError) as e:
        download(url, out, sha256=sha(data), name="stalled-asset", retries=1, backoff=0.01, stall_timeout=1.0)
    elapsed = time.monotonic() - t0
    assert 1.9 <= elapsed < 6.0  # two attempts of ~1 s each, not the server's 10 s
    msg = str(e.value)
    assert "stalled-asset" in msg and url in msg
    assert ("no response within 1 s" if before_headers else "stalled: no data for 1 s") in msg
    assert not out.exists()
    if not before_headers:  # each attempt resumed the last; what arrived is kept for the next run
        assert server.ranges("/stall.bin") == [None, "bytes=10000-"]
        assert part_path(out).read_bytes() == data[:20_000] and "will be resumed" in msg


def test_fallback_url_is_used_when_the_first_fails(server, tmp_path):
    data = payload()
    url2 = server.add("/b/f.bin", data)
    out = tmp_path / "f.bin"
    download([server.url("/a/f.bin"), url2], out, sha256=sha(data), **FAST)
    assert out.read_bytes() == data
    assert server.ranges("/a/f.bin") == [None] and server.ranges("/b/f.bin") == [None]


def test_size_mismatch_fails_before_the_body_is_read(server, tmp_path):
    data = payload(1000)
    with pytest.raises(DownloadError, match="size mismatch: the server offers 1000 bytes, expected 999"):
        download(server.add("/s.bin", data), tmp_path / "s.bin", size=999, **FAST)
    assert leftovers(tmp_path, set()) == []


def test_without_checksum_the_computed_one_is_logged(server, tmp_path, caplog):
    data = payload(1000)
    with caplog.at_level(logging.WARNING, logger="stylegan_inversion.download"):
        download(server.add("/n.bin", data), tmp_path / "n.bin", **FAST)
    assert sha(data) in caplog.text and "unverified" in caplog.text


def test_bad_checksum_text_is_refused_before_any_request(server, tmp_path):
    url = server.add("/z.bin", b"z")
    with pytest.raises(DownloadError, match="64 hex digits"):
        download(url, tmp_path / "z.bin", sha256="abc123", **FAST)
    assert server.requests == []
    assert normalize_sha256("SHA256:" + "A" * 64) == "a" * 64 and normalize_sha256(None) is None


# ---------------------------------------------------------------- already present, mirrors


def test_present_file_is_never_fetched_again(server, tmp_path):
    data = payload()
    out = tmp_path / "have.bin"
    out.write_bytes(data)
    mtime = out.stat().st_mtime_ns
    download(server.add("/have.bin", data), out, sha256=sha(data), **FAST)
    download(closed_port_url(), out, sha256=sha(data), **FAST)  # no network needed at all
    assert server.requests == []
    assert out.stat().st_mtime_ns == mtime


def test_present_file_with_wrong_checksum_is_replaced(server, tmp_path):
    data = payload()
    out = tmp_path / "old.bin"
    out.write_bytes(b"old version")
    download(server.add("/old.bin", data), out, sha256=sha(data), **FAST)
    assert out.read_bytes() == data


@pytest.mark.parametrize("how,named", [("argument", "basename"), ("env", "sha256")])
def test_mirror_is_used_before_the_network(server, tmp_path, monkeypatch, how, named):
    data = payload()
    url = server.add("/nets/ffhq.pkl", data)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / ("ffhq.pkl" if named == "basename" else sha(data))).write_bytes(data)
    out = tmp_path / "weights" / "downloads" / "ffhq.pkl"
    if how == "env":
        monkeypatch.setenv(MIRROR_ENV, str(mirror))
        download(url, out, sha256=sha(data), **FAST)
    else:
        download(url, out, sha256=sha(data), mirrors=[mirror], **FAST)
    assert out.read_bytes() == data
    assert server.requests == []
    assert leftovers(out.parent, {"ffhq.pkl"}) == []


def test_mirror_file_with_wrong_checksum_is_skipped(server, tmp_path):
    data = payload()
    url = server.add("/m.bin", data)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "m.bin").write_bytes(b"corrupt copy")
    out = tmp_path / "m.bin"
    download(url, out, sha256=sha(data), mirrors=mirror, **FAST)
    assert out.read_bytes() == data
    assert server.ranges("/m.bin") == [None]
    assert (mirror / "m.bin").read_bytes() == b"corrupt copy"  # the mirror is never modified


# ---------------------------------------------------------------- extraction and paths


def test_extract_bz2(tmp_path):
    data = payload(50_000)
    src = tmp_path / "shape_predictor.dat.bz2"
    src.write_bytes(bz2.compress(data))
    out = extract(src, tmp_path / "shape_predictor.dat", "bz2", sha256=sha(data))
    assert out.read_bytes() == data


def test_extract_zip_member_by_name_or_basename(tmp_path):
    a, b = payload(2000, 1), payload(3000, 2)
    src = tmp_path / "buffalo_l.zip"
    with zipfile.ZipFile(src, "w") as z:
        z.writestr("buffalo_l/det_10g.onnx", a)
        z.writestr("buffalo_l/w600k_r50.onnx", b)
    assert extract(src, tmp_path / "r.onnx", "zip", member="w600k_r50.onnx", sha256=sha(b)).read_bytes() == b
    assert extract(src, tmp_path / "d.onnx", "zip", member="buffalo_l/det_10g.onnx").read_bytes() == a
    with pytest.raises(DownloadError, match="name the one to extract"):
        extract(src, tmp_path / "x.onnx", "zip")
    with pytest.raises(DownloadError, match="no member 'nope.onnx'"):
        extract(src, tmp_path / "x.onnx", "zip", member="nope.onnx")
    with pytest.raises(DownloadError, match="extracted file has sha256"):
        extract(src, tmp_path / "x.onnx", "zip", member="w600k_r50.onnx", sha256=sha(a))
    assert not (tmp_path / "x.onnx").exists()


def test_extract_corrupt_archive_fails_cleanly(tmp_path):
    src = tmp_path / "bad.bz2"
    src.write_bytes(b"not bzip2 at all")
    with pytest.raises(DownloadError, match="cannot extract"):
        extract(src, tmp_path / "bad", "bz2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.bz2"]


def test_torch_hub_path_is_where_torch_looks(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert torch_hub_path("vgg16-397923af.pth") == Path(torch.hub.get_dir()) / "checkpoints" / "vgg16-397923af.pth"
    monkeypatch.delenv("TORCH_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert torch_hub_path("a.pth") == tmp_path / "xdg" / "torch" / "hub" / "checkpoints" / "a.pth"
    assert torch_hub_path("a.pth", torch_home=tmp_path / "explicit") == tmp_path / "explicit" / "hub" / "checkpoints" / "a.pth"


def test_url_basename_ignores_query():
    assert url_basename("https://example.org/a/b/ffhq%20x.pkl?download=1#frag") == "ffhq x.pkl"
