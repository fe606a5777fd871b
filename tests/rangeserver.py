"""A local HTTP server for the download tests: serves the files of a folder on 127.0.0.1, honours
``Range: bytes=N-``, can throttle (``delay`` seconds after each ``chunk`` bytes), records each request's path
and Range, and misbehaves on demand, per path, through ``server.faults[path] = {...}``:

- ``drop_after=N``: close the connection after N bytes of the body (each response, or the first
  ``drops`` responses);
- ``ignore_range=True``: answer every request with the whole file (200), as servers without Range do;
- ``length=N``: announce ``Content-Length: N`` whatever is sent (a lie, longer or shorter);
- ``chunked=True``: ``Transfer-Encoding: chunked`` without a length (with ``drop_after``: a chunked body that
  ends early, without its last chunk);
- ``html=True``: a 200 HTML error page instead of the file, as captive portals and expired links give;
- ``status=N``: that HTTP error instead of the file.
"""

import http.server
import os
import threading
import time

HTML_PAGE = b"<!DOCTYPE html><html><head><title>Moved</title></head><body>Please log in.</body></html>\n"


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 (http.server's name)
        server = self.server
        rel = self.path.split("?")[0]
        path = os.path.join(server.root, rel.lstrip("/"))
        rng = self.headers.get("Range")
        server.requests.append((self.path, rng))
        fault = server.faults.get(rel, {})
        served = sum(1 for p, _ in server.requests if p == self.path)
        if fault.get("status"):
            self._close_with(fault["status"])
            return
        if fault.get("html"):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(HTML_PAGE)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(HTML_PAGE)
            return
        if not os.path.isfile(path):
            self._close_with(404)
            return
        with open(path, "rb") as f:
            data = f.read()
        start = 0
        if rng and rng.startswith("bytes=") and not fault.get("ignore_range"):
            start = int(rng[len("bytes="):].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("ETag", f'"{len(data)}-{int(os.path.getmtime(path))}"')
        body = data[start:]
        drop = fault.get("drop_after")
        if drop is not None and served > fault.get("drops", 1 << 30):
            drop = None
        chunked = fault.get("chunked")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(fault.get("length", len(body))))
        self.send_header("Connection", "close")
        self.end_headers()
        if drop is not None:
            body = body[:drop]
        try:
            for i in range(0, len(body), server.chunk):
                piece = body[i:i + server.chunk]
                if chunked:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                else:
                    self.wfile.write(piece)
                self.wfile.flush()
                if server.delay:
                    time.sleep(server.delay)
            if chunked and drop is None:
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def _close_with(self, code):
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True


def serve_folder(root, chunk=1 << 16, delay=0.0):
    """A generator for a fixture: the running server (``.root``, ``.url``, ``.requests``, ``.chunk``,
    ``.delay``, ``.faults``, ``.range_starts()``), shut down when the fixture ends."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.root, httpd.requests, httpd.chunk, httpd.delay, httpd.faults = str(root), [], chunk, delay, {}
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.range_starts = lambda: [int(r[len("bytes="):].split("-")[0]) for _, r in httpd.requests if r]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
