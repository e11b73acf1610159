# Gate's images: one per binary, from one build stage.
#   docker build --target gate-control   -t ghcr.io/gate-dev/gate-control:0.1.0 .
#   docker build --target gate-connector -t ghcr.io/gate-dev/gate-connector:0.1.0 .
#   docker build --target gate-operator  -t ghcr.io/gate-dev/gate-operator:0.1.0 .
# or `make image` (all three, tagged with IMAGE_REGISTRY and IMAGE_TAG). The runtime base is
# distroless (glibc, CA certificates, no shell), user 65532 (nonroot), matching the chart's
# securityContext (runAsNonRoot, readOnlyRootFilesystem).

FROM rust:1.95-bookworm AS build
WORKDIR /src
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends patch \
 && rm -rf /var/lib/apt/lists/*
COPY . .
# The patched dependencies (third_party/) first: the workspace's [patch] points at .patched/.
RUN scripts/patch-deps.sh \
 && cargo build --release --locked -p gate-control -p gate-connector -p gate-operator \
 && mkdir /out \
 && cp target/release/gate-control target/release/gate-connector target/release/gate-operator /out/

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
USER 65532:65532
WORKDIR /var/lib/gate

FROM runtime AS gate-control
COPY --from=build /out/gate-control /usr/local/bin/gate-control
COPY config/control.yaml /etc/gate/control.yaml
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/gate-control"]
CMD ["--config", "/etc/gate/control.yaml"]

FROM runtime AS gate-operator
COPY --from=build /out/gate-operator /usr/local/bin/gate-operator
EXPOSE 8081 9443
ENTRYPOINT ["/usr/local/bin/gate-operator"]

FROM runtime AS gate-connector
COPY --from=build /out/gate-connector /usr/local/bin/gate-connector
COPY config/connector.yaml /etc/gate/connector.yaml
COPY policies /etc/gate/policies
EXPOSE 6432 9090
ENTRYPOINT ["/usr/local/bin/gate-connector"]
CMD ["--config", "/etc/gate/connector.yaml"]
