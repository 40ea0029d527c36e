"""The student's client (seed 003): a random 4-letter word packed with server_ip and
server_port as JSON, sent to the proxy without a newline on a fresh socket bound to port 0,
then one recv(1024). Arguments: PROXY_PORT SERVER_PORT [COUNT] [--direct]. With --direct the
bare word goes to the server itself. Prints each reply and its latency in ms."""
import json
import random
import socket
import string
import sys
import time

proxy_port, server_port = int(sys.argv[1]), int(sys.argv[2])
count = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3].isdigit() else 1
direct = '--direct' in sys.argv

for _ in range(count):
    word = ''.join(random.choice(string.ascii_lowercase) for _ in range(4))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as c:
        c.bind(('127.0.0.1', 0))
        if direct:
            c.connect(('127.0.0.1', server_port))
            payload = word.encode()
        else:
            c.connect(('127.0.0.1', proxy_port))
            payload = json.dumps({'server_ip': '127.0.0.1', 'server_port': server_port,
                                  'message': word}).encode()
        t = time.perf_counter()
        c.sendall(payload)
        reply = c.recv(1024)
        ms = (time.perf_counter() - t) * 1000
    print(reply.decode(errors='replace'), '%.3f' % ms, flush=True)
