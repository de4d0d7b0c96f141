#!/usr/bin/python3
"""MLLP peer for `make bench-peers`: Debian's python3-hl7 (hl7.mllp, asyncio)
answering every message with hl7's own ACK (AA), no persistence. It is the
same job as careflow's MLLP echo limit, done by a Python HL7 library.

Usage: python_hl7_server.py PORT
"""
import asyncio
import sys

import hl7
from hl7.mllp import start_hl7_server


async def handle(reader, writer):
    try:
        while not writer.is_closing():
            message = await reader.readmessage()
            writer.writemessage(message.create_ack())
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port):
    async with await start_hl7_server(handle, host="127.0.0.1", port=port, limit=4 << 20) as server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
