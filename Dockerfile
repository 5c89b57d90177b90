# Builds the weft binary and runs it with its data under /var/lib/weft.
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Everything the manifest names: the library and binary, and the declared bench.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY config ./config
RUN cargo build --release --locked --bin weft

FROM debian:bookworm-slim
COPY --from=build /src/target/release/weft /usr/local/bin/weft
COPY config/weft.toml /etc/weft/weft.toml
ENV WEFT_DATA_DIR=/var/lib/weft \
    WEFT_HTTP_LISTEN=0.0.0.0:4318 \
    WEFT_GRPC_LISTEN=0.0.0.0:4317
VOLUME /var/lib/weft
EXPOSE 4317 4318
ENTRYPOINT ["weft", "serve", "--config", "/etc/weft/weft.toml"]
