"""Fixtures of the data tests: a real HTTP server on 127.0.0.1 (Range support switchable, can cut a response
mid-file) serving copies of the shared data, for the download and fetch tests."""

from __future__ import annotations

import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

ISBI_SUBSET = ("train/image/0.png", "train/label/0.png", "train/image/1.png", "train/label/1.png", "test/0.png")


class _Handler(BaseHTTPRequestHandler):
    server: DataServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        server = self.server
        relative = unquote(urlparse(self.path).path).lstrip("/")
        server.requests.append((relative, self.headers.get("Range")))
        path = server.root / relative
        if not path.is_file():
            self.send_error(404, "Not Found")
            return
        data = path.read_bytes()
        start = 0
        wanted = re.match(r"bytes=(\d+)-$", self.headers.get("Range") or "")
        if wanted and server.honour_range:
            start = int(wanted.group(1))
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
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes" if server.honour_range else "none")
        self.end_headers()
        if relative in server.cut_once:  # send part of the body, then drop the connection
            server.cut_once.discard(relative)
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class DataServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root
        self.honour_range = True
        self.cut_once: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []
        self.files = ISBI_SUBSET

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def server(tmp_path: Path, shared_data: Path):
    """An HTTP server whose ``/isbi2012/`` holds copies of a few shared ISBI files (``server.files``)."""
    root = tmp_path / "www"
    for relative in ISBI_SUBSET:
        target = root / "isbi2012" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_data / "isbi2012_em" / relative, target)
    httpd = DataServer(root)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)
