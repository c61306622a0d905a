"""The fuzz targets: what each one feeds its input to, its seeds and its tokens (see harness.py)."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from tests.fuzz.harness import DATA, Hang, Mutator, Target

Feed = Callable[[bytes], None]

XML_TOKENS = [
    b"<", b">", b"</", b"/>", b"='", b"'", b'"', b"=", b"&amp;", b"&lt;", b"&#0;", b"&#x110000;", b"&x;",
    b"<!DOCTYPE d [<!ENTITY x 'y'>]>", b"<![CDATA[", b"]]>", b"<!--", b"-->", b"<?pi x?>",
    b"<?xml version='1.0' encoding='latin-1'?>", b"\xef\xbb\xbf", b"\xff\xfe", b"\xed\xa0\x80",
    b"0", b"-1", b"010", b"08", b"0x10", b"0xffffffffffffffff", b"99999999999999999999", b"1e3", b" ",
    b"KiB", b"MiB", b"T", b"bytes", b"yes", b"no", b"on", b"off", b"auto", b"none", b"\n", b"\t",
]  # fmt: skip
HTTP_TOKENS = [
    b"\r\n", b"\n", b"\r\n\r\n", b"Content-Length: ", b"Content-Length: 0\r\n", b"Content-Length: -1\r\n",
    b"Transfer-Encoding: chunked\r\n", b"Transfer-Encoding: gzip\r\n", b"0\r\n\r\n", b"ffffffff\r\n",
    b"Host: h\r\n", b"Expect: 100-continue\r\n", b"Connection: close\r\n",
    b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n",
    b"GET ", b"POST ", b"PUT ", b"DELETE ", b"HEAD ", b"OPTIONS ", b" HTTP/1.1", b" HTTP/1.0", b" HTTP/2",
    b"/", b"%00", b"%2f", b"%ff", b"..", b"?", b"&", b"=", b"#", b"{", b"}", b'{"', b'":', b"null",
    b"[]", b"1e999", b"-0", b'"\\ud800"', b'"\\u0000"', b"true", b"99999999999999999999",
]  # fmt: skip
for seed_value in (b"vm1", b"default"):
    XML_TOKENS.append(seed_value)


def _decode(data: bytes) -> str:
    # A JSON string on the wire can carry any code point, lone surrogates included.
    return data.decode("utf-8", errors="surrogateescape")


def _xml_seeds(*patterns: str) -> tuple[list[bytes], list[bytes]]:
    seeds = sorted({p.read_bytes() for pattern in patterns for p in DATA.glob(pattern)})
    names = {m.group(1) for s in seeds for m in re.finditer(rb"</?([a-zA-Z_][\w:.-]*)", s)}
    attrs = {m.group(1) for s in seeds for m in re.finditer(rb"\s([a-zA-Z_][\w:.-]*)=", s)}
    tokens = [*XML_TOKENS, *(b"<" + n for n in names), *(b" " + a + b"='1'" for a in attrs)]
    return seeds, tokens


def domain_xml(work: Path, rng: random.Random) -> tuple[Mutator, Feed]:
    from pyvirt.conf.domain_xml import format_domain, load_domain_xml

    seeds, tokens = _xml_seeds("domain/*.xml", "qemu/*.xml")

    def feed(data: bytes) -> None:
        format_domain(load_domain_xml(_decode(data)))

    return Mutator(seeds, tokens, rng), feed


def network_xml(work: Path, rng: random.Random) -> tuple[Mutator, Feed]:
    from pyvirt.conf.network_xml import format_network_xml, parse_network_xml

    seeds, tokens = _xml_seeds("network/*.xml")

    def feed(data: bytes) -> None:
        format_network_xml(parse_network_xml(_decode(data)))

    return Mutator(seeds, tokens, rng), feed


def pool_xml(work: Path, rng: random.Random) -> tuple[Mutator, Feed]:
    from pyvirt.conf.storage import format_pool_config, parse_pool

    seeds, tokens = _xml_seeds("storage/pool-*.xml")
    seeds.append(b"<pool type='dir'><name>p</name><target><path>/var/lib/p</path></target></pool>")

    def feed(data: bytes) -> None:
        format_pool_config(parse_pool(_decode(data)))

    return Mutator(seeds, tokens, rng), feed


def _image_target(
    fmt: str, variants: list[dict[str, object]], hot: int
) -> Callable[[Path, random.Random], tuple[Mutator, Feed]]:
    def setup(work: Path, rng: random.Random) -> tuple[Mutator, Feed]:
        from pyvirt.image import create_image, open_image

        seeds = []
        for index, options in enumerate(variants):
            path = work / f"seed{index}.{fmt}"
            path.unlink(missing_ok=True)
            create_image(str(path), fmt, 1 << 20, **options)  # type: ignore[arg-type]
            with open_image(str(path), readonly=False) as img:
                img.write(0, b"\x5a" * (64 << 10))
                img.write(512 << 10, b"\xa5" * 4096)
            seeds.append(path.read_bytes())
        target = work / f"input.{fmt}"

        def feed(data: bytes) -> None:
            target.write_bytes(data)
            # Probed, as ``pyvirt img info`` would: the format is what the bytes say.
            with open_image(str(target), readonly=True) as img:
                size = min(img.size, 1 << 20)
                if size:
                    img.read(0, min(size, 64 << 10))
                    img.block_status(0, size)

        return Mutator(seeds, [b"\0" * 8, b"\xff" * 8, b"\x00\x00\x01\x00"], rng, hot), feed

    return setup


class _Server:
    """The daemon's HTTP server in a thread of its own, every route of the API table answered by a
    stub once the request has passed the route's checks (a stream route's stub refuses, as a handler
    must accept or refuse). Whatever escapes a connection's task, or is logged as an error, is kept,
    and :meth:`settle` waits until the server is done with every connection made so far, so that it is
    put down to the input that caused it."""

    def __init__(self, work: Path) -> None:
        self.path = str(work / "http.sock")
        self.errors: list[str] = []
        self.finished = 0
        self.done = threading.Condition()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(30)

    def settle(self, connections: int, timeout: float) -> bool:
        with self.done:
            return self.done.wait_for(lambda: self.finished >= connections, timeout)

    def _run(self, ready: threading.Event) -> None:
        from pyvirt.api.table import ACTIONS
        from pyvirt.daemon.http import HTTPServer, Peer
        from pyvirt.daemon.routes import build_router
        from pyvirt.errors import NotFound

        errors, outer = self.errors, self

        class Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                errors.append(self.format(record))

        handler = Keep(logging.ERROR)
        logging.getLogger("pyvirt").addHandler(handler)

        class Watched(HTTPServer):
            async def _serve(
                self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Peer
            ) -> None:
                try:
                    await super()._serve(reader, writer, peer)
                except Exception as err:
                    errors.append(f"escaped the connection: {err!r}")
                finally:
                    with outer.done:
                        outer.finished += 1
                        outer.done.notify_all()

        async def stub(*args: object) -> dict[str, object]:
            if len(args) > 1:  # a stream handler: (request, websocket)
                raise NotFound("no such thing (fuzz stub)")
            return {}

        async def main() -> None:
            server = Watched(build_router({a.name: stub for a in ACTIONS}), read_timeout=5.0)
            Path(self.path).unlink(missing_ok=True)
            sock = socket.socket(socket.AF_UNIX)
            sock.bind(self.path)
            sock.listen(64)
            await server.listen_unix(sock)
            ready.set()
            await asyncio.Event().wait()

        asyncio.run(main())


def http_requests(work: Path, rng: random.Random) -> tuple[Mutator, Feed]:
    from pyvirt.api.table import ACTIONS

    seeds = []
    for action in ACTIONS:
        path = re.sub(r"\{[^}]+\}", "vm1", action.path)
        head = f"{action.method} {path} HTTP/1.1\r\nHost: localhost\r\n"
        if action.method in ("POST", "PUT"):
            body = b'{"xml": "<domain/>", "name": "vm1", "flags": []}'
            seeds.append(
                f"{head}Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
            )
            seeds.append(
                f"{head}Transfer-Encoding: chunked\r\n\r\n{len(body):x}\r\n".encode()
                + body
                + b"\r\n0\r\n\r\n"
            )
        else:
            seeds.append(f"{head}\r\n".encode())
            seeds.append(f"HEAD{head[len(action.method) :]}\r\n".encode())
            seeds.append(f"{head.replace(' HTTP/1.1', '?force=1&x= HTTP/1.1')}\r\n".encode())
    server = _Server(work)
    made = 0

    def feed(data: bytes) -> None:
        nonlocal made
        made += 1
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(30)
            sock.connect(server.path)
            try:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered and closed before taking it all: an answer
            reply = b""
            try:
                while chunk := sock.recv(65536):
                    reply += chunk
            except TimeoutError as err:
                raise Hang("the server did not answer in 30 s") from err
            except ConnectionResetError:
                pass
        if not server.settle(made, 30):
            raise Hang("the server did not finish the connection in 30 s")
        if re.search(rb"(^|\r\n)HTTP/1\.[01] 500 ", reply):
            raise AssertionError(f"server error: {reply[:200]!r}")
        if server.errors:
            errors = "\n".join(server.errors)
            server.errors.clear()
            raise AssertionError(f"the server logged: {errors}")

    return Mutator(seeds, HTTP_TOKENS, rng), feed


TARGETS = [
    Target("domain-xml", domain_xml),
    Target("network-xml", network_xml),
    Target("pool-xml", pool_xml),
    Target(
        "qcow2",
        _image_target("qcow2", [{"cluster_size": 4096}, {"cluster_size": 512, "compat": "0.10"}], 32768),
    ),
    Target("vmdk", _image_target("vmdk", [{}], 65536)),
    Target("vdi", _image_target("vdi", [{}], 8192)),
    Target("http", http_requests),
]
BY_NAME = {t.name: t for t in TARGETS}
