"""The student's server (seed 003), as the report describes it: bind 127.0.0.1:8888, accept,
one recv(1024), print 'Server received: ...', send DONE, close. Port from argv[1] (0 = any
free port); prints 'Server listening on HOST:PORT' so scripts can find it."""
import socket
import sys

HOST = '127.0.0.1'
PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 8888

with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((HOST, PORT))
    s.listen()
    print('Server listening on {}:{}'.format(*s.getsockname()), flush=True)
    try:
        while True:
            conn, addr = s.accept()
            with conn:
                data = conn.recv(1024)
                if data:
                    print('Server received:', data.decode(errors='replace'), flush=True)
                    conn.sendall(b'DONE')
    except KeyboardInterrupt:
        pass
