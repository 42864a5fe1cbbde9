#!/usr/bin/env python3
"""bench/smtp-sink.py PORT COUNT_FILE — a real SMTP server outside onshi's process for the
benchmarks: it accepts every mail (plain SMTP, no TLS, no auth) and, for each one accepted,
appends a line to COUNT_FILE, so a script can count the mails sent in an interval. Prints
"listening" once it accepts connections. Standard library only (asyncio)."""

import asyncio
import sys


async def session(reader, writer, counts):
    def say(line):
        writer.write(line.encode() + b"\r\n")

    say("220 onshi-bench-sink ESMTP")
    await writer.drain()
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            verb = line.decode("latin-1").strip().split(" ", 1)[0].upper()
            if verb == "EHLO":
                writer.write(b"250-onshi-bench-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
            elif verb in ("HELO", "MAIL", "RCPT", "RSET", "NOOP"):
                say("250 OK")
            elif verb == "DATA":
                say("354 end with <CRLF>.<CRLF>")
                await writer.drain()
                while True:
                    body = await reader.readline()
                    if not body or body == b".\r\n":
                        break
                counts.write("accepted\n")
                counts.flush()
                say("250 OK accepted")
            elif verb == "QUIT":
                say("221 bye")
                await writer.drain()
                break
            else:
                say("502 not implemented")
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    counts = open(path, "a", encoding="ascii")
    server = await asyncio.start_server(
        lambda r, w: session(r, w, counts), "127.0.0.1", port, limit=1 << 20
    )
    print("listening", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
