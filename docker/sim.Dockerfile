# The Workspace simulator (tests/sim/sim.py) for the compose demo profile:
# an HTTPS stand-in for the cloud that checks every request's signature.
# At start it makes a test CA and a certificate for the host name "sim" in
# /pki (a volume that recgate mounts to trust that CA), then serves
# tests/sim/fixtures.json on 0.0.0.0:8443. Never part of a production stack.
#
#   docker build -f docker/sim.Dockerfile -t recgate-sim .   (from the repo root)
FROM debian:12-slim

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 openssl \
    && rm -rf /var/lib/apt/lists/*

# /pki belongs to the simulator's user, so a fresh named volume mounted
# there takes that owner and the simulator can write its certificates.
RUN groupadd --system --gid 10002 sim \
    && useradd --system --uid 10002 --gid sim --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin sim \
    && install -d -o sim -g sim -m 0755 /pki

COPY tests/sim/sim.py tests/sim/fixtures.json /opt/sim/
COPY docker/sim-entrypoint.sh /usr/local/bin/sim-entrypoint

ENV PYTHONDONTWRITEBYTECODE=1 \
    SIM_PKI_DIR=/pki \
    SIM_FIXTURES=/opt/sim/fixtures.json \
    SIM_AK_FILE=/run/secrets/recgate_ak \
    SIM_SK_FILE=/run/secrets/recgate_sk \
    SIM_PORT=8443

USER 10002:10002
EXPOSE 8443

HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=5 \
    CMD python3 -c "import socket; socket.create_connection(('127.0.0.1', 8443), 2).close()"

ENTRYPOINT ["sim-entrypoint"]
