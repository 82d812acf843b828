"""Raw HTTP/1.x over a socket, for requests a client library would refuse or
"fix": exact bytes out, every response (interim ones too) parsed back.

Every response body read here is recorded with rvhttpd.record_response, so
the final leak test greps it.
"""

import socket
import ssl
import time

import rvhttpd

CRLF = b"\r\n"


class RawResponse(rvhttpd.HeaderAccess):
    def __init__(self, version, status, reason, headers, body):
        self.version = version      # b"HTTP/1.1", or None for an HTTP/0.9 answer
        self.status = status        # int, or None for an HTTP/0.9 answer
        self.reason = reason
        self.headers = headers      # list of (name, value) as str
        self.body = body            # bytes

    def __repr__(self):
        return "<RawResponse %s %s %r body=%r>" % (self.status, self.reason, self.headers,
                                                    self.body[:120])


class Exchange:
    """What came back on one connection."""

    def __init__(self, data, elapsed, closed, head_only=False):
        self.data = data
        self.elapsed = elapsed      # seconds from the last send to the end of reading
        self.closed = closed        # the server closed the connection
        self.responses = parse_responses(data, head_only)

    @property
    def final(self):
        """Final (non-1xx) responses, in order."""
        return [r for r in self.responses if r.status is None or r.status >= 200]

    @property
    def interim(self):
        return [r for r in self.responses if r.status is not None and r.status < 200]

    def __repr__(self):
        return "<Exchange closed=%s %.2fs %r>" % (self.closed, self.elapsed, self.responses)


def _decode_chunked(data, pos):
    body = b""
    while True:
        eol = data.find(CRLF, pos)
        if eol < 0:
            raise ValueError("truncated chunk size line")
        size = int(data[pos:eol].split(b";")[0], 16)
        pos = eol + 2
        if size == 0:
            while True:                      # trailer lines up to an empty one
                eol = data.find(CRLF, pos)
                if eol < 0:
                    raise ValueError("truncated trailers")
                line, pos = data[pos:eol], eol + 2
                if not line:
                    return body, pos
        body += data[pos:pos + size]
        pos += size + 2


def parse_responses(data, head_only=False, partial=False):
    """Every HTTP/1.x response in data, in order; an answer without a status
    line is an HTTP/0.9 one (status None, all of data is the body).
    partial: data may end inside a response: only the complete ones are
    returned, and not recorded (the whole exchange is, later)."""
    out = []
    pos = 0
    record = (lambda b: b) if partial else rvhttpd.record_response
    if data and not data.startswith(b"HTTP/"):
        if not partial:
            out.append(RawResponse(None, None, "", [], record(data)))
        return out
    while pos < len(data):
        end = data.find(CRLF + CRLF, pos)
        if end < 0:
            if partial:
                return out
            raise ValueError("truncated response head: %r" % data[pos:pos + 200])
        lines = data[pos:end].split(CRLF)
        version, status, reason = (lines[0].split(b" ", 2) + [b""])[:3]
        status = int(status)
        headers = []
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            headers.append((k.decode("latin-1"), v.strip().decode("latin-1")))
        pos = end + 4
        names = {k.lower(): v for k, v in headers}
        if status < 200 or status in (204, 304) or head_only:
            body = b""
        elif "chunked" in names.get("transfer-encoding", "").lower():
            try:
                body, pos = _decode_chunked(data, pos)
            except ValueError:
                if partial:
                    return out
                raise
        elif "content-length" in names:
            n = int(names["content-length"])
            if partial and len(data) < pos + n:
                return out
            body = data[pos:pos + n]
            pos += n
        elif partial:
            return out                  # ends only where the connection does
        else:
            body = data[pos:]
            pos = len(data)
        out.append(RawResponse(version, status, reason.decode("latin-1"), headers,
                               record(body)))
    return out


def _connect(port, tls, timeout):
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if tls:
        ctx = ssl.create_default_context(cafile=str(tls))
        ctx.set_alpn_protocols(["http/1.1"])
        sock = ctx.wrap_socket(sock, server_hostname="localhost")
    return sock


def _read_responses(sock, data, n, head_only):
    """Reads until data holds n complete final responses (or the server
    closes); returns data and whether it closed."""
    def answered(data):
        done = parse_responses(data, head_only, partial=True)
        return len([r for r in done if r.status is None or r.status >= 200]) >= n
    return rvhttpd.recv_until(sock, data, stop=answered)


def exchange(port, *parts, timeout=rvhttpd.WAIT, tls=None, one_by_one=False,
             head_only=False):
    """Connect, send each part (bytes) in turn, then read until the server
    closes (or `timeout` passes without data).  one_by_one: send each part
    only once the answers to the parts before it have arrived (keep-alive,
    not pipelining).  tls: the CA file to trust for a TLS connection;
    head_only: the responses have no body (HEAD)."""
    sock = _connect(port, tls, timeout)
    data = b""
    closed = False
    try:
        for i, part in enumerate(parts):
            if i and one_by_one:
                data, closed = _read_responses(sock, data, i, head_only)
                assert not closed, "closed after %d answer(s): %r" % (i, data[:300])
            sock.sendall(part)
        start = time.time()
        data, closed = rvhttpd.recv_until(sock, data, closes=(ConnectionResetError, ssl.SSLError),
                                          timeout_ends=True)
        elapsed = time.time() - start
    finally:
        sock.close()
    return Exchange(data, elapsed, closed, head_only)


def first_bytes(port, head, timeout=rvhttpd.WAIT, tls=None):
    """Send head, return (what arrived first, seconds it took, socket still
    open?) without sending anything more: for Expect: 100-continue."""
    sock = _connect(port, tls, timeout)
    try:
        sock.sendall(head)
        start = time.time()
        # read until the first response head is complete, or close
        data, closed = rvhttpd.recv_until(sock, stop=lambda d: CRLF + CRLF in d,
                                          timeout_ends=True)
        elapsed = time.time() - start
        if not closed and CRLF + CRLF in data:
            # then whatever else comes before the server closes
            data, closed = rvhttpd.recv_until(sock, data, timeout_ends=True)
        if not closed:
            elapsed = time.time() - start
    finally:
        sock.close()
    return data, elapsed, closed


def request(method=b"GET", target=b"/", version=b"HTTP/1.1", host=b"h.test", lines=(),
            body=None, close=True, content_length=True):
    """Bytes of one request.  lines: header lines (bytes or str) sent as-is,
    without CRLF; host=None sends no Host header; body is sent as given
    (with a Content-Length unless content_length is False)."""
    def b(x):
        return x if isinstance(x, bytes) else x.encode("latin-1")
    out = b(method) + b" " + b(target)
    if version is not None:
        out += b" " + b(version)
    out += CRLF
    if host is not None:
        out += b"Host: " + b(host) + CRLF
    for line in lines:
        out += b(line) + CRLF
    if body is not None and content_length:
        out += b"Content-Length: %d" % len(body) + CRLF
    if close:
        out += b"Connection: close" + CRLF
    out += CRLF
    if body is not None:
        out += b(body)
    return out
