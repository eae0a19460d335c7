"""A minimal FastCGI client (responder role) for talking to fbconnect's socket directly:
the tests use it where nginx would hide what they check (exit codes, idle connections,
params nginx would not send)."""
import socket
import struct

BEGIN, ABORT, END, PARAMS, STDIN, STDOUT, STDERR = 1, 2, 3, 4, 5, 6, 7
GET_VALUES, GET_VALUES_RESULT, UNKNOWN_TYPE = 9, 10, 11
RESPONDER, AUTHORIZER, FILTER = 1, 2, 3
REQUEST_COMPLETE, CANT_MPX_CONN, OVERLOADED, UNKNOWN_ROLE = 0, 1, 2, 3


def _record(rtype, req_id, content):
    out = b""
    for i in range(0, max(len(content), 1), 65535):
        chunk = content[i:i + 65535]
        pad = (8 - len(chunk) % 8) % 8
        out += struct.pack(">BBHHBx", 1, rtype, req_id, len(chunk), pad) + chunk + b"\0" * pad
        if not content:
            break
    return out


def _nv(name, value):
    def ln(n):
        return struct.pack(">B", n) if n < 128 else struct.pack(">I", n | 0x80000000)
    name, value = name.encode(), value.encode() if isinstance(value, str) else value
    return ln(len(name)) + ln(len(value)) + name + value


def begin(req_id, role=RESPONDER, keep=True):
    """A BEGIN_REQUEST record."""
    return _record(BEGIN, req_id, struct.pack(">HB5x", role, 1 if keep else 0))


def request_bytes(req_id, params, body=b"", keep=True):
    """A whole request: BEGIN_REQUEST, PARAMS, the empty PARAMS, STDIN, the empty STDIN."""
    data = begin(req_id, keep=keep)
    data += _record(PARAMS, req_id, b"".join(_nv(k, v) for k, v in params.items())) + _record(PARAMS, req_id, b"")
    if body:
        data += _record(STDIN, req_id, body)
    return data + _record(STDIN, req_id, b"")


def read_record(sock):
    """The next record from sock: (type, request id, content), or None at EOF."""
    head = _read_exactly(sock, 8)
    if head is None:
        return None
    version, rtype, req_id, clen, plen = struct.unpack(">BBHHBx", head)
    if version != 1:
        raise ValueError(f"record version {version}")
    body = _read_exactly(sock, clen + plen)
    if body is None:
        raise ConnectionError("connection closed inside a record")
    return rtype, req_id, body[:clen]


def _read_exactly(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            if buf:
                raise ConnectionError("connection closed inside a record")
            return None
        buf += chunk
    return buf


def parse_pairs(content):
    """Name-value pairs (GET_VALUES_RESULT, PARAMS) as a dict."""
    out, i = {}, 0
    while i < len(content):
        lens = []
        for _ in range(2):
            if content[i] < 128:
                lens.append(content[i])
                i += 1
            else:
                lens.append(struct.unpack(">I", content[i:i + 4])[0] & 0x7fffffff)
                i += 4
        name, value = content[i:i + lens[0]], content[i + lens[0]:i + lens[0] + lens[1]]
        i += lens[0] + lens[1]
        out[name.decode("latin-1")] = value.decode("latin-1")
    return out


class Connection:
    def __init__(self, path, timeout=10):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.req_id = 0

    def close(self):
        self.sock.close()

    def request(self, params, body=b"", keep=True):
        """Sends one request; returns (status, headers dict, body bytes)."""
        self.req_id = self.req_id % 65535 + 1
        rid = self.req_id
        data = _record(BEGIN, rid, struct.pack(">HB5x", 1, 1 if keep else 0))
        pairs = b"".join(_nv(k, v) for k, v in params.items())
        data += _record(PARAMS, rid, pairs) + _record(PARAMS, rid, b"")
        if body:
            data += _record(STDIN, rid, body)
        data += _record(STDIN, rid, b"")
        self.sock.sendall(data)
        out = b""
        while True:
            head = self._read(8)
            _, rtype, _, clen, plen = struct.unpack(">BBHHBx", head)
            content = self._read(clen)
            self._read(plen)
            if rtype == STDOUT:
                out += content
            elif rtype == END:
                break
        head, _, payload = out.partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            k, _, v = line.partition(":")
            headers.setdefault(k.strip().lower(), v.strip())
        status = int(headers.get("status", "200").split()[0])
        return status, headers, payload

    def _read(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("connection closed by fbconnect")
            buf += chunk
        return buf

    def is_closed_by_peer(self, timeout=5):
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, socket.timeout):
            return False


def params(path, method="GET", query="", **extra):
    p = {"REQUEST_METHOD": method, "DOCUMENT_URI": path, "QUERY_STRING": query,
         "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_URI": path + ("?" + query if query else "")}
    p.update(extra)
    return p
