"""The book's srv_async.py, on the selectors module: one thread, non-blocking sockets.
Requests are answered when the data so far ends with '?', as in the book."""
import selectors
import zen_utils


def main():
    listener = zen_utils.create_srv_socket()
    listener.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    bufs = {}
    while True:
        for key, _ in sel.select():
            sock = key.fileobj
            if sock is listener:
                conn, _ = listener.accept()
                conn.setblocking(False)
                bufs[conn] = b''
                sel.register(conn, selectors.EVENT_READ)
                continue
            try:
                data = sock.recv(4096)
            except OSError:
                data = b''
            if not data:
                sel.unregister(sock)
                del bufs[sock]
                sock.close()
                continue
            buf = bufs[sock] + data
            if buf.endswith(b'?'):
                bufs[sock] = b''
                try:
                    sock.send(zen_utils.get_answer(buf))
                except OSError:
                    pass
            else:
                bufs[sock] = buf


if __name__ == '__main__':
    main()
