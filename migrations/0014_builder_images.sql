-- Builder images (one per Go version, made by workers from the module proxy's
-- toolchains) and when a build last used each on a worker host, so that the
-- trimming policy (cbs.builder_images_to_trim) can remove the ones nobody uses.
CREATE TABLE cbs.builder_images (
    host         text        NOT NULL,
    image        text        NOT NULL,
    go_version   text        NOT NULL,
    last_used_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (host, image)
);
COMMENT ON TABLE cbs.builder_images IS
    'Builder images on each worker host and when a build last used them (trimming policy input).';
