# Shortcuts for what the README describes; each target is a command you
# can also type.

# The image `image` builds and the compose targets run.
IMAGE ?= sluice-node:dev
# Compose v2 (docker compose) where there is one, else v1 (docker-compose).
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
# Flags for `make cluster`, e.g. ARGS="--nodes 5" or ARGS="-- --batch 500ms".
ARGS ?=

.PHONY: cluster test image compose-up compose-down

# Three local nodes, UIs at http://127.0.0.1:4041/ to :4043; Ctrl-C stops them.
cluster:
	go run ./cmd/node devcluster $(ARGS)

test:
	go test ./...

# No base image can be pulled, so the binary is built here, static, and
# copied into an image FROM scratch (see Dockerfile).
image:
	CGO_ENABLED=0 go build -trimpath -o deploy/node ./cmd/node
	docker build -t $(IMAGE) .

compose-up: image
	SLUICE_IMAGE=$(IMAGE) $(COMPOSE) up -d
	@echo "UIs: http://127.0.0.1:4041/ (n1), http://127.0.0.1:4042/ (n2), http://127.0.0.1:4043/ (n3)"
	@echo "Feed it: go run ./cmd/node produce --to http://127.0.0.1:4041 FILE"

# Keeps the data volumes; `$(COMPOSE) down -v` removes them too.
compose-down:
	SLUICE_IMAGE=$(IMAGE) $(COMPOSE) down
