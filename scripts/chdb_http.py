"""Current ClickHouse for the tests: the ClickHouse engine of the `chdb-core` package (26.x,
in-process) behind the part of ClickHouse's HTTP interface that the `clickhouse` crate uses, so the
same Rust tests that run against the local 18.16 server run against a current engine too.

Only transport lives here; every statement is parsed, planned and executed by ClickHouse itself:
- the SQL comes in the POST body, or in `query=` with the data in the body (inserts); `database=`
  selects the database, other URL parameters are settings;
- `decompress=1` bodies are ClickHouse's compressed blocks (checksum, method, sizes, LZ4 or none);
- a multipart body carries external data (a temporary table per file part, `<name>_structure` and
  `<name>_format` in the URL), the SQL in `query=`: each becomes a temporary table of the session
  for the query, as ClickHouse's server does;
- an `INSERT ... FORMAT RowBinary[WithNamesAndTypes]` is given its data through `file()` (with the
  columns' types from `DESCRIBE` for plain RowBinary);
- an error answers 500 with ClickHouse's own message and `X-ClickHouse-Exception-Code`.
Requests run one at a time (one chdb session).

    python scripts/chdb_http.py PORT DATA_DIR
"""

import email.parser
import email.policy
import http.server
import os
import re
import struct
import sys
import tempfile
import threading
import urllib.parse

import lz4.block
from chdb import session

LOCK = threading.Lock()
SESSION = None
DATA_DIR = None
# Settings the engine refuses to SET that the crate may send, and ours that mean nothing here.
IGNORED = {"database", "query", "decompress", "default_format", "compress", "query_id", "session_id"}
INSERT = re.compile(
    r"^\s*INSERT\s+INTO\s+(?P<table>[^\s(]+)\s*\((?P<cols>[^)]*)\)\s*FORMAT\s+(?P<format>RowBinary(?:WithNamesAndTypes)?)\s*$",
    re.I | re.S,
)


def decompress(body):
    out = bytearray()
    pos = 0
    while pos < len(body):
        method = body[pos + 16]
        compressed, plain = struct.unpack_from("<II", body, pos + 17)
        payload = body[pos + 25 : pos + 16 + compressed]
        if method == 0x82:
            out += lz4.block.decompress(payload, uncompressed_size=plain)
        elif method == 0x02:
            out += payload
        else:
            raise ValueError(f"unsupported compression method {method:#x}")
        pos += 16 + compressed
    return bytes(out)


def column_types(table):
    text = SESSION.query(f"DESCRIBE TABLE {table}", "TabSeparated").bytes().decode()
    return {line.split("\t")[0]: line.split("\t")[1] for line in text.splitlines() if line}


def external_tables(content_type, body):
    """The file parts of a multipart/form-data body: [(name, bytes)]."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    return [(part.get_param("name", header="content-disposition"), part.get_payload(decode=True))
            for part in message.iter_parts()]


def run(sql, data, params, external=()):
    database = params.get("database")
    if database:
        SESSION.query(f"USE `{database}`")
    else:
        SESSION.query("USE default")
    tables = {name for name, _ in external}
    for name, value in params.items():
        if name.rsplit("_", 1)[0] in tables:  # <table>_structure, <table>_format
            continue
        if name not in IGNORED and re.fullmatch(r"[a-z_0-9]+", name):
            SESSION.query(f"SET {name} = '{value}'")
    paths = []
    for name, content in external:
        structure = params[f"{name}_structure"]
        fd, path = tempfile.mkstemp(dir=DATA_DIR, suffix=".external")
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        paths.append(path)
        SESSION.query(f"DROP TEMPORARY TABLE IF EXISTS `{name}`")
        SESSION.query(f"CREATE TEMPORARY TABLE `{name}` ({structure})")
        fmt = params.get(f"{name}_format", "TabSeparated")
        SESSION.query(f"INSERT INTO `{name}` SELECT * FROM file('{path}', '{fmt}', '{structure}')")
    try:
        return query(sql, data, params)
    finally:
        for (name, _), path in zip(external, paths):
            SESSION.query(f"DROP TEMPORARY TABLE IF EXISTS `{name}`")
            os.unlink(path)


def query(sql, data, params):
    fmt = params.get("default_format", "TabSeparated")
    insert = INSERT.match(sql)
    if insert:
        table = insert.group("table")
        cols = [c.strip().strip("`") for c in insert.group("cols").split(",")]
        if insert.group("format") == "RowBinary":
            types = column_types(table)
            structure = ", ".join(f"`{c}` {types[c]}" for c in cols)
            source = f"file('{{path}}', 'RowBinary', '{structure}')"
        else:  # the data names its columns and types itself
            source = "file('{path}', 'RowBinaryWithNamesAndTypes')"
        fd, path = tempfile.mkstemp(dir=DATA_DIR, suffix=".rowbinary")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            quoted = ", ".join(f"`{c}`" for c in cols)
            SESSION.query(f"INSERT INTO {table} ({quoted}) SELECT * FROM {source.format(path=path)}")
        finally:
            os.unlink(path)
        return b""
    if data and data.strip():
        raise ValueError(f"a body with data is only taken for INSERT ... FORMAT RowBinary*, not: {sql}")
    result = SESSION.query(sql, fmt)
    return result.bytes() if result is not None else b""


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body, headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = bytearray()
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(body)
                body += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path in ("/ping", "/"):
            return self.answer(200, b"Ok.\n")
        return self.do_POST(body=b"")

    def do_POST(self, body=None):
        url = urllib.parse.urlsplit(self.path)
        params = dict(urllib.parse.parse_qsl(url.query))
        body = self.read_body() if body is None else body
        try:
            if params.get("decompress") == "1":
                body = decompress(body)
            content_type = self.headers.get("Content-Type", "")
            external = []
            if content_type.startswith("multipart/form-data"):
                external, body = external_tables(content_type, body), b""
            if "query" in params:
                sql, data = params["query"], body
            else:
                sql, data = body.decode(), b""
            with LOCK:
                out = run(sql, data, params, external)
            self.answer(200, out, [("Content-Type", "application/octet-stream")])
        except Exception as e:  # the engine's own message, as ClickHouse answers it
            message = str(e)
            code = re.match(r"Code: (\d+)", message)
            headers = [("Content-Type", "text/plain; charset=UTF-8")]
            if code:
                headers.append(("X-ClickHouse-Exception-Code", code.group(1)))
            self.answer(500, message.encode() + b"\n", headers)


def main():
    global SESSION, DATA_DIR
    port, DATA_DIR = int(sys.argv[1]), sys.argv[2]
    os.makedirs(DATA_DIR, exist_ok=True)
    SESSION = session.Session(os.path.join(DATA_DIR, "db"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"chdb {SESSION.query('SELECT version()', 'TabSeparated').bytes().decode().strip()} "
          f"on http://127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
