# A Sluice node: an image holding the node binary and nothing else.
#
# No base image is pulled (not even golang): the binary is built outside
# Docker, static, then copied in. From the repository's top directory:
#
#   CGO_ENABLED=0 go build -trimpath -o deploy/node ./cmd/node
#   docker build -t sluice-node:dev .
#
# or `make image`, which does both. docker-compose.yml runs three of these
# as a cluster (`make compose-up`). Alone:
#
#   docker run --rm -p 127.0.0.1:4040:4040 sluice-node:dev
#
# runs word count over the built-in sample, its UI at http://127.0.0.1:4040/.
FROM scratch
COPY deploy/node /node
# 4040: the web UI, JSON API and ingest (--http 0.0.0.0:4040).
# 7000: raft and the other nodes' calls (each node's address in --peers).
EXPOSE 4040 7000
ENTRYPOINT ["/node"]
CMD ["run", "--http", "0.0.0.0:4040"]
