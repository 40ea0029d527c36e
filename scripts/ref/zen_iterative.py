"""The book's srv_single.py: one client at a time."""
import zen_utils

if __name__ == '__main__':
    zen_utils.accept_connections_forever(zen_utils.create_srv_socket())
