"""The book's zen_utils (Foundations of Python Network Programming, ch. 7), trimmed:
the aphorism table, recv_until, and a listening socket on 127.0.0.1:PORT (0 = any free port,
printed as "Listening at HOST:PORT" so scripts/bench-lab can find it)."""
import socket
import sys

aphorisms = {b'Beautiful is better than?': b'Ugly.',
             b'Explicit is better than?': b'Implicit.',
             b'Simple is better than?': b'Complex.'}


def get_answer(aphorism):
    return aphorisms.get(aphorism, b'Error: unknown aphorism.')


def create_srv_socket():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 1060
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(('127.0.0.1', port))
    listener.listen(1024)
    print('Listening at {}:{}'.format(*listener.getsockname()), flush=True)
    return listener


def accept_connections_forever(listener):
    while True:
        sock, address = listener.accept()
        handle_conversation(sock, address)


def handle_conversation(sock, address):
    try:
        while True:
            handle_request(sock)
    except (EOFError, OSError):
        pass
    finally:
        sock.close()


def handle_request(sock):
    aphorism = recv_until(sock, b'?')
    sock.sendall(get_answer(aphorism))


def recv_until(sock, suffix):
    message = sock.recv(4096)
    if not message:
        raise EOFError('socket closed')
    while not message.endswith(suffix):
        data = sock.recv(4096)
        if not data:
            raise IOError('received {!r} then socket closed'.format(message))
        message += data
    return message
