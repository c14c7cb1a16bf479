#!/usr/bin/env python3
# The Workspace simulator as the benchmark runs it: tests/sim/sim.py's own
# server, unchanged but for TCP_NODELAY on every accepted connection.
# Arguments are sim.py's.
#
# sim.py sends an answer's headers and its body in two writes. Without
# TCP_NODELAY, Nagle's algorithm holds the body back until the client
# acknowledges the headers, and the client delays that acknowledgement
# (about 40 ms on Linux): every request on a kept-alive connection then
# takes over 40 ms, which would swamp what the benchmark's miss cells
# measure (the gateway's own cost of a miss). recgate's upstream is this;
# nginx's is open_sim.py, which is this with the signature check off.

import os
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "sim"))
sys.dont_write_bytecode = True     # leave no __pycache__ in tests/sim

import sim  # noqa: E402  (tests/sim/sim.py)


def patch_nodelay():
    """Sets TCP_NODELAY on every connection the simulator accepts."""
    server = getattr(sim, "SimServer", None)
    if server is None or not callable(getattr(server, "get_request", None)):
        raise SystemExit("sim_nodelay: tests/sim/sim.py no longer has "
                         "SimServer.get_request(); update tests/bench/")
    accept = server.get_request

    def get_request(self):
        conn, addr = accept(self)
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        return conn, addr

    server.get_request = get_request


def main(argv=None):
    patch_nodelay()
    sim.log("TCP_NODELAY on (benchmark upstream)")
    return sim.main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
