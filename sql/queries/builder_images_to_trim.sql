-- The trimming policy: which of this host's builder images to remove.
SELECT image FROM cbs.builder_images_to_trim($1, $2, $3, make_interval(secs => $4::float8)) AS image
