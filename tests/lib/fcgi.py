"""A minimal FastCGI client (responder role) for talking to fbconnect's socket directly:
the tests use it where nginx would hide what they check (exit codes, idle connections,
params nginx would not send)."""
import socket
import struct

BEGIN, ABORT, END, PARAMS, STDIN, STDOUT, STDERR = 1, 2, 3, 4, 5, 6, 7


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
