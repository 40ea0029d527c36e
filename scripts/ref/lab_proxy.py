"""The student's proxy (seed 003): listen on 127.0.0.1:6000, recv(1024) one JSON request per
connection, refuse port 7777 ('Error, not allowed address'), otherwise connect to the named
server, send the message, recv(1024) its reply and send it back, then close both. Port from
argv[1] (0 = any free port); prints 'Proxy Server listening on HOST:PORT'."""
import json
import socket
import sys

HOST = '127.0.0.1'
PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 6000
BLOCKLIST = {7777}
QUIET = '-q' in sys.argv

with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((HOST, PORT))
    s.listen()
    print('Proxy Server listening on {}:{}'.format(*s.getsockname()), flush=True)
    try:
        while True:
            conn, addr = s.accept()
            with conn:
                data = conn.recv(1024)
                if not data:
                    continue
                try:
                    req = json.loads(data.decode())
                except ValueError:
                    conn.sendall(b'Error, bad request')
                    continue
                if not QUIET:
                    print('Proxy received:', data.decode(), flush=True)
                if req['server_port'] in BLOCKLIST:
                    conn.sendall(b'Error, not allowed address')
                    continue
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as up:
                    up.connect((req['server_ip'], req['server_port']))
                    up.sendall(req['message'].encode())
                    response = up.recv(1024)
                conn.sendall(response)
                if not QUIET:
                    print('response:', response.decode(errors='replace'), flush=True)
    except KeyboardInterrupt:
        pass
