-- The host removed this builder image: forget it.
SELECT cbs.builder_image_removed($1, $2)
