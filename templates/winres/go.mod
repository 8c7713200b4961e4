module winres

go 1.21

require (
	github.com/Masterminds/semver/v3 v3.4.0
	github.com/caddyserver/xcaddy v0.4.5
	github.com/josephspurrier/goversioninfo v1.5.0
)

require (
	github.com/akavel/rsrc v0.10.2 // indirect
	github.com/google/shlex v0.0.0-20191202100458-e7afc7fbc510 // indirect
)
