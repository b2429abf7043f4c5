# The runbox image: Debian 12 slim, the language runtimes from scripts/install-runtimes.sh (the same script CI
# uses, so the image has exactly the toolchains the catalogue points at), and the two binaries (runbox and the
# jail it starts for every sandbox). Built in two stages so that no Rust toolchain ships in the image.
#
#   docker build -t runbox .
#
# The pod's permissions are in deploy/kubernetes/statefulset.yaml; deploy/entrypoint.sh prepares the container's
# cgroup and /proc, then execs runbox. Not built or run on the machine this was written on (containers cannot run
# there): see docs/scaling.md, "What has been run".

FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p runbox --bin runbox --bin runbox-jail

FROM debian:bookworm-slim
COPY scripts/install-runtimes.sh /tmp/install-runtimes.sh
RUN bash /tmp/install-runtimes.sh \
    && apt-get clean && rm -rf /var/lib/apt/lists/* /tmp/install-runtimes.sh
COPY --from=build /src/target/release/runbox /src/target/release/runbox-jail /usr/local/bin/
COPY deploy/entrypoint.sh /usr/local/bin/runbox-entrypoint
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/runbox-entrypoint"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
