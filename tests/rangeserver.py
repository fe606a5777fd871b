"""A local HTTP server for the download tests: serves the files of a folder, honours ``Range: bytes=N-``,
can throttle (``delay`` seconds after each ``chunk`` bytes) and records each request's path and Range."""

import http.server
import os
import threading
import time


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802 (http.server's name)
        server = self.server
        path = os.path.join(server.root, self.path.lstrip("/"))
        server.requests.append((self.path, self.headers.get("Range")))
        if not os.path.isfile(path):
            self.send_error(404)
            return
        with open(path, "rb") as f:
            data = f.read()
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng[len("bytes="):].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        try:
            for i in range(start, len(data), server.chunk):
                self.wfile.write(data[i:i + server.chunk])
                self.wfile.flush()
                if server.delay:
                    time.sleep(server.delay)
        except (BrokenPipeError, ConnectionResetError):
            pass


def serve_folder(root, chunk=1 << 16, delay=0.0):
    """A generator for a fixture: the running server (``.root``, ``.url``, ``.requests``, ``.chunk``,
    ``.delay``, ``.range_starts()``), shut down when the fixture ends."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.root, httpd.requests, httpd.chunk, httpd.delay = str(root), [], chunk, delay
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.range_starts = lambda: [int(r[len("bytes="):].split("-")[0]) for _, r in httpd.requests if r]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
