"""The book's srv_threaded.py idea: a thread per connection."""
import threading
import zen_utils


def main():
    listener = zen_utils.create_srv_socket()
    while True:
        sock, address = listener.accept()
        threading.Thread(target=zen_utils.handle_conversation,
                         args=(sock, address), daemon=True).start()


if __name__ == '__main__':
    main()
