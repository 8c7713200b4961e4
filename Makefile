# caddy-build-server. `make test` and `make bench` start everything they need
# (a throwaway Postgres) and stop it again.
.PHONY: build test bench migrate clean

CARGO ?= cargo

build:
	$(CARGO) build --release --locked

test:
	scripts/ensure-deps.sh
	scripts/test-env.sh $(CARGO) test --locked --all-targets -- --test-threads=8

bench:
	scripts/ensure-deps.sh
	scripts/test-env.sh $(CARGO) bench --locked --benches

clean:
	$(CARGO) clean
