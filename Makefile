# caddy-build-server. `make test` and `make bench` start everything they need
# (a throwaway Postgres, MinIO, Docker and the builder image) and stop what they started.
.PHONY: build run test bench migrate clean builder-image docker

CARGO ?= cargo

build:
	$(CARGO) build --release --locked

# Everything on one machine: Postgres, Docker, the builder image, then the service on :8234.
run:
	scripts/run.sh

test: builder-image
	scripts/ensure-deps.sh --test
	scripts/test-env.sh $(CARGO) test --locked --no-fail-fast --all-targets -- --test-threads=8

bench: builder-image
	scripts/ensure-deps.sh --test
	scripts/test-env.sh $(CARGO) bench --locked --benches

# A Docker engine for the worker (installed and started when missing).
docker:
	scripts/docker.sh

# The default Go's builder image, made from the module proxy's toolchain (see
# scripts/builder-image.sh); workers make it themselves when missing.
builder-image: docker
	scripts/ensure-deps.sh
	scripts/builder-image.sh

clean:
	$(CARGO) clean
