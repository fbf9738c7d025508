# distributed_analytics_system: one image with both binaries (the control node
# `distributed_analytics_system`, the default command, and `worker`). See docs/operations.md, "Docker".
#
#   docker build -t distributed-analytics-system .
#   docker build --build-arg BUILD_JOBS=2 -t distributed-analytics-system .   # cap ninja's jobs
#
# Works with the classic builder and BuildKit, on the Docker Hub base images and on a minimal
# (debootstrap --variant=minbase) bookworm: everything needed is installed explicitly.

# ---- builder: the project's own setup script, then a Release build --------------------------
FROM debian:bookworm AS builder

# The dependencies first, from scripts/setup.sh alone, so that a source change reuses this
# layer: it apt-installs the pinned toolchain and libraries (and Debian's npm, since the image
# has none) and fetches DuckDB 1.4.4 from the npm registry into /src/.deps/duckdb; not the
# browser the console's test needs.
WORKDIR /src
COPY scripts/setup.sh scripts/apt-backports.sh scripts/
RUN SETUP_SKIP_BROWSER=1 scripts/setup.sh \
 && rm -rf /var/lib/apt/lists/* /root/.npm
# The exact versions of the shared libraries the binaries will link (setup.sh pins them, or falls
# back to the current bookworm version), for the runtime stage to install the same ones.
RUN dpkg-query -W -f='${Package}=${Version}\n' libprotobuf32 libspdlog1.10 libfmt9 libxxhash0 \
      libraft0 libuv1 liblz4-1 libssl3 libprometheus-cpp-core1.0 >/runtime-packages.txt \
 && cat /runtime-packages.txt

# Then the sources (.dockerignore admits only what the build needs).
COPY . .
# Empty: ninja's default (cores + 2). Set it on a busy or small machine.
ARG BUILD_JOBS=
# The compiler by name: the pinned g++-12, whatever `c++` points at (on a fresh image only
# Debian's `g++` package provides that name).
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=g++-12 \
          -DDAS_BUILD_TESTS=OFF -DDAS_BUILD_BENCH=OFF \
 && ninja -C build ${BUILD_JOBS:+-j "$BUILD_JOBS"} \
 && cmake --install build --prefix /opt/das --strip
# /opt/das/bin/{distributed_analytics_system,worker}, /opt/das/lib/libduckdb.so (RPATH
# $ORIGIN/../lib finds it).

# ---- runtime: the binaries, libduckdb.so and the shared libraries they link -------------------
FROM debian:bookworm-slim

# What `ldd` shows beyond the base system (libc, libstdc++, libgcc, zlib): protobuf, spdlog,
# fmt, xxHash, and libraft 0.22.1 (from bookworm-backports, as scripts/setup.sh installs it)
# with libuv and liblz4, OpenSSL's libssl3 and prometheus-cpp's core library, at the versions
# the builder compiled against.
# Boost is header-only here. (This layer is rebuilt only when those versions change, not on a
# source change.)
# bookworm-backports from the mirror the image's own apt sources use (scripts/apt-backports.sh).
COPY --from=builder /runtime-packages.txt /tmp/runtime-packages.txt
COPY scripts/apt-backports.sh /tmp/apt-backports.sh
RUN /tmp/apt-backports.sh \
 && rm /tmp/apt-backports.sh \
 && apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive xargs -a /tmp/runtime-packages.txt \
      apt-get install -y -q --no-install-recommends \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt

# A non-root user owns /data and /secret, so a fresh named volume mounted there is writable by
# it (docker-compose.yml keeps the cluster secret on one at /secret).
RUN useradd --system --uid 10001 --user-group --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin das \
 && mkdir -p /data /secret \
 && chown das:das /data /secret

COPY --from=builder /opt/das /opt/das

ENV PATH=/opt/das/bin:$PATH \
    DAS_HOST=0.0.0.0 \
    WORKER_HOST=0.0.0.0 \
    WORKER_DATA_DIR=/data \
    DAS_DATA_DIR=/data
WORKDIR /data
USER das:das
EXPOSE 8080 8081 8082

# GET /health over bash's /dev/tcp (no curl in the image). The port is the one the node serves:
# HEALTHCHECK_PORT if set; else a worker's (WORKER_ID set) WORKER_PORT or 8080 + WORKER_ID;
# else the control node's DAS_PORT or 8080. Healthy when the answer is 200 (the control node
# answers 200 also when a worker is down: its body then says "degraded").
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "port=${HEALTHCHECK_PORT:-${WORKER_ID:+${WORKER_PORT:-$((8080 + WORKER_ID))}}}; exec 3<>/dev/tcp/127.0.0.1/${port:-${DAS_PORT:-8080}} && printf 'GET /health HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && read -r -t 4 status <&3 && [[ $status == 'HTTP/1.1 200'* ]]"]

CMD ["distributed_analytics_system"]
