-- Builder images are made per Go version on each worker host's Docker daemon
-- and would pile up as requests name other Go versions. Workers record each use
-- here; the policy of which images go lives in SQL like every other janitor
-- policy, the worker only removes what it is told (image first, then the row).

CREATE OR REPLACE FUNCTION cbs.builder_image_used(p_host text, p_image text, p_go_version text)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO cbs.builder_images (host, image, go_version, last_used_at)
    VALUES (p_host, p_image, p_go_version, now())
    ON CONFLICT (host, image) DO UPDATE SET last_used_at = now(), go_version = EXCLUDED.go_version
$$;

-- p_present: the host's builder images, [{"image", "go_version", "created"}]; an
-- image never used through this table counts as last used when it was made.
-- Returns the images to remove: unused for p_max_unused, not in p_keep (the
-- default Go version's image and those a container uses).
CREATE OR REPLACE FUNCTION cbs.builder_images_to_trim(p_host text, p_present jsonb, p_keep text[], p_max_unused interval)
RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO cbs.builder_images (host, image, go_version, last_used_at)
    SELECT p_host, i->>'image', i->>'go_version', (i->>'created')::timestamptz
      FROM jsonb_array_elements(p_present) i
    ON CONFLICT (host, image) DO NOTHING;
    -- Rows of images no longer on the host are forgotten.
    DELETE FROM cbs.builder_images b
     WHERE b.host = p_host
       AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(p_present) i WHERE i->>'image' = b.image);
    RETURN QUERY
        SELECT b.image FROM cbs.builder_images b
         WHERE b.host = p_host
           AND b.last_used_at < now() - p_max_unused
           AND b.image <> ALL (p_keep)
         ORDER BY b.last_used_at;
END;
$$;

CREATE OR REPLACE FUNCTION cbs.builder_image_removed(p_host text, p_image text)
RETURNS void LANGUAGE sql AS $$
    DELETE FROM cbs.builder_images WHERE host = p_host AND image = p_image
$$;

COMMENT ON FUNCTION cbs.builder_image_used(text, text, text) IS
    'A build on host used a builder image now (trimming keeps recently used images).';
COMMENT ON FUNCTION cbs.builder_images_to_trim(text, jsonb, text[], interval) IS
    'Records the host''s builder images and returns those unused for the given age, except the kept ones.';
COMMENT ON FUNCTION cbs.builder_image_removed(text, text) IS
    'Forgets a builder image its host removed.';
