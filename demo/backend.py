#!/usr/bin/env python3
"""The demo backend behind ProxyPass: answers every request with what it
received, so you can see that the token headers never reach it and that
X-Redox-Source names the sender."""
import http.server
import sys


class Echo(http.server.BaseHTTPRequestHandler):
    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        lines = [f"backend received {self.command} {self.path}"]
        lines += [f"  {k}: {v}" for k, v in self.headers.items()]
        lines.append(f"  body: {len(body)} bytes")
        out = ("\n".join(lines) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = answer

    def log_message(self, fmt, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1])
    http.server.ThreadingHTTPServer(("127.0.0.1", port), Echo).serve_forever()
