#!/usr/bin/env python3
"""A TCP fan-out: N listening ports on 127.0.0.1, each forwarding to one
upstream redis-server, so that one real server looks like N targets.

Each accepted connection gets its own upstream connection; bytes are copied
both ways unchanged. The first listening port is printed on stdout once every
port is bound (ports are FIRST..FIRST+N-1, chosen from a free range).

usage: fanout.py N UPSTREAM_HOST:PORT
"""
import asyncio
import socket
import sys


def free_range(n):
    """A run of n consecutive free ports, found by trying to bind them."""
    for first in range(20000, 60000 - n, n):
        socks = []
        try:
            for port in range(first, first + n):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", port))
                socks.append(s)
            return first, socks
        except OSError:
            for s in socks:
                s.close()
    raise SystemExit("no free port range")


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def main():
    n = int(sys.argv[1])
    host, port = sys.argv[2].rsplit(":", 1)

    async def handle(client_reader, client_writer):
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, up_writer), pipe(up_reader, client_writer))

    first, socks = free_range(n)
    servers = []
    for s in socks:
        s.listen(64)
        servers.append(await asyncio.start_server(handle, sock=s))
    print(first, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
