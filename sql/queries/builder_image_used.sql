-- A build on this host is about to run in this builder image.
SELECT cbs.builder_image_used($1, $2, $3)
