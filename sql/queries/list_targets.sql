-- The targets a build may ask for, with their ARM variants and default: loaded once by the api for its checks, its page and GET /api/targets.
SELECT os, arch, arm_versions, default_arm FROM cbs.target_list()
