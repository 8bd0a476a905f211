"""Connects to 127.0.0.1:<port>; prints what happened. Exit 0 when the connection failed."""
import socket
import sys

port = int(sys.argv[1])
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.settimeout(5)
try:
    sock.connect(("127.0.0.1", port))
except OSError as error:
    print("NETWORK-PROBE: cannot connect to 127.0.0.1:%d: %s" % (port, error))
    sys.exit(0)
print("NETWORK-PROBE: connected to 127.0.0.1:%d" % port)
sys.exit(1)
