"""The book's srv_asyncio2.py: asyncio streams, a coroutine per connection."""
import asyncio
import sys
import zen_utils


async def handle_conversation(reader, writer):
    try:
        while True:
            data = b''
            while not data.endswith(b'?'):
                more = await reader.read(4096)
                if not more:
                    return
                data += more
            writer.write(zen_utils.get_answer(data))
    finally:
        writer.close()


async def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 1060
    server = await asyncio.start_server(handle_conversation, '127.0.0.1', port,
                                        reuse_address=True, backlog=1024)
    print('Listening at {}:{}'.format(*server.sockets[0].getsockname()), flush=True)
    async with server:
        await server.serve_forever()


if __name__ == '__main__':
    asyncio.run(main())
