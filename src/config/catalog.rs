//! The plugin catalog shown on the download page. Operators replace or extend it
//! in config (`catalog:`); these defaults are well-known, maintained plugins.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    pub module: String,
    pub description: String,
}

const DEFAULTS: &[(&str, &str)] = &[
    ("github.com/caddy-dns/cloudflare", "DNS provider for Cloudflare (ACME DNS challenge)"),
    ("github.com/caddy-dns/route53", "DNS provider for Amazon Route 53"),
    ("github.com/caddy-dns/digitalocean", "DNS provider for DigitalOcean"),
    ("github.com/caddy-dns/duckdns", "DNS provider for Duck DNS"),
    ("github.com/caddy-dns/porkbun", "DNS provider for Porkbun"),
    ("github.com/caddy-dns/hetzner", "DNS provider for Hetzner"),
    ("github.com/mholt/caddy-l4", "Layer 4 (TCP/UDP) routing and proxying"),
    ("github.com/mholt/caddy-ratelimit", "HTTP rate limiting"),
    ("github.com/mholt/caddy-dynamicdns", "Keeps DNS records pointed at this server's IP"),
    ("github.com/greenpau/caddy-security", "Authentication, authorization and identity portal"),
    ("github.com/caddyserver/replace-response", "Rewrites response bodies"),
    ("github.com/caddyserver/cache-handler", "HTTP cache (Souin)"),
    ("github.com/caddyserver/transform-encoder", "Log encoders such as Apache common log format"),
    ("github.com/corazawaf/coraza-caddy/v2", "Web application firewall with the OWASP rule set"),
    ("github.com/hslatman/caddy-crowdsec-bouncer", "Blocks clients CrowdSec flags"),
    ("github.com/porech/caddy-maxmind-geolocation", "Matches requests by MaxMind geolocation"),
    ("github.com/lucaslorentz/caddy-docker-proxy/v2", "Configuration from Docker labels"),
    ("github.com/ueffel/caddy-brotli", "Brotli compression"),
    ("github.com/caddyserver/ntlm-transport", "NTLM-aware reverse proxy transport"),
    ("github.com/sagikazarmark/caddy-fs-s3", "Serves files from S3"),
];

pub fn default_catalog() -> Vec<CatalogEntry> {
    DEFAULTS
        .iter()
        .map(|(m, d)| CatalogEntry { module: m.to_string(), description: d.to_string() })
        .collect()
}
