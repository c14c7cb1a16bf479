#!/usr/bin/env python3
# The Workspace simulator with its signature check turned off: the upstream
# of the benchmark's nginx, which cannot sign requests. Arguments are
# sim.py's.
#
# tests/sim/sim.py has no option to accept unsigned requests (and the
# benchmark does not change it), so this runs sim.py's own server as
# sim_nodelay.py does (same fixtures, TLS set-up, control API, request
# counting, TCP_NODELAY, and the same per-request work apart from the
# check) with verify_request replaced by a function that accepts every
# request. The check costs the simulator a few SHA-256/HMAC computations
# per request: recgate's upstream pays them, nginx's does not.

import sys

import sim_nodelay
from sim_nodelay import sim


def _accept_unsigned(method, target, header_pairs, body, creds, now):
    return ""


def main():
    if not callable(getattr(sim, "verify_request", None)):
        sys.stderr.write("open_sim: tests/sim/sim.py no longer has "
                         "verify_request(); update tests/bench/\n")
        return 2
    sim.verify_request = _accept_unsigned
    sim.log("signature check OFF (benchmark upstream for nginx)")
    return sim_nodelay.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
