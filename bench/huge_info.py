#!/usr/bin/env python3
"""A fake Redis whose INFO has FIELDS numeric fields (`fNNNNNN:NNNN`, about
16 bytes each: 400,000 make a 6.3 MB reply), as a broken or hostile server
may send within the agent's reply budget. Every other command is refused.
Prints its port once listening.

usage: huge_info.py FIELDS
"""
import asyncio
import sys


def info_reply(fields):
    lines = ["# Server", "redis_version:7.0.0", "# Misc"]
    lines += [f"f{i:06d}:{i % 10000}" for i in range(fields)]
    text = "\r\n".join(lines) + "\r\n"
    return f"${len(text)}\r\n{text}\r\n".encode()


async def serve(reader, writer, info):
    try:
        while True:
            line = await reader.readline()
            if not line.startswith(b"*"):
                return
            args = []
            for _ in range(int(line[1:])):
                length = int((await reader.readline())[1:])
                args.append((await reader.readexactly(length + 2))[:-2])
            command = args[0].upper() if args else b""
            if command == b"INFO":
                writer.write(info)
            elif command == b"PING":
                writer.write(b"+PONG\r\n")
            else:
                writer.write(b"-ERR unknown command\r\n")
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, ValueError):
        pass
    finally:
        writer.close()


async def main():
    info = info_reply(int(sys.argv[1]))
    server = await asyncio.start_server(lambda r, w: serve(r, w, info), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


asyncio.run(main())
