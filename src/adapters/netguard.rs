//! Guarded HTTP fetching of media URLs taken from chat messages.
//!
//! QQ media URLs (images, files, voice) expire within hours, so leakwatch has
//! to download them the moment a message arrives or the evidence is gone. But
//! every such URL was written by whoever posted the message, and the people we
//! watch are hostile: a URL pointing at `127.0.0.1`, at a cloud metadata
//! endpoint, at `10.x` or at a name that resolves there would turn our own
//! fetcher into a tool for probing the network it runs in (SSRF). This module
//! is the only way leakwatch should fetch such URLs.
//!
//! Invariants:
//! - Only `http` and `https` URLs are fetched; credentials in the URL are
//!   stripped so nothing from a chat message is sent as an `Authorization`.
//! - Unless [`FetchPolicy::allow_private`] is set, no packet goes to an address
//!   for which [`forbidden_reason`] returns a reason: IP-literal hosts are
//!   checked by [`check_url`]; names are resolved exactly once per connection
//!   by the injected [`HostResolver`], forbidden answers are dropped, and the
//!   connector dials only what is left. The address connected to is the
//!   address checked, so there is no second lookup and no DNS-rebinding window.
//! - Redirects are never followed by the HTTP client: each hop is re-checked
//!   with [`check_url`] and resolved through the guard again, up to
//!   [`FetchPolicy::max_redirects`] hops.
//! - No proxy is taken from the environment: a proxy would do the resolving
//!   and connecting for us, past the guard.
//! - A body is never held beyond [`FetchPolicy::max_bytes`]: a larger
//!   `Content-Length` is refused before reading, and a streamed body is
//!   abandoned (dropping the connection) as soon as it passes the cap.
//! - The whole fetch, redirects included, ends within [`FetchPolicy::timeout`].

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, LOCATION};
use url::{Host, Url};

/// IPv4 special-purpose ranges (IANA registry, RFC 6890 and successors), as
/// (network, prefix length, reason). Checked in order, so the single-address
/// entries come before the ranges that contain them.
const V4_RANGES: &[(Ipv4Addr, u32, &str)] = &[
    (Ipv4Addr::new(255, 255, 255, 255), 32, "broadcast"),
    (Ipv4Addr::new(0, 0, 0, 0), 32, "wildcard (unspecified)"),
    (Ipv4Addr::new(0, 0, 0, 0), 8, "current-network"),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private-network"),
    (Ipv4Addr::new(100, 64, 0, 0), 10, "carrier-grade NAT"),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link-local"),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private-network"),
    (Ipv4Addr::new(192, 0, 0, 0), 24, "IETF protocol-assignment"),
    (Ipv4Addr::new(192, 0, 2, 0), 24, "documentation"),
    (Ipv4Addr::new(192, 88, 99, 0), 24, "6to4-relay anycast"),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private-network"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "benchmarking"),
    (Ipv4Addr::new(198, 51, 100, 0), 24, "documentation"),
    (Ipv4Addr::new(203, 0, 113, 0), 24, "documentation"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved"),
];

/// IPv6 special-purpose ranges that carry no usable embedded IPv4 address.
/// Teredo comes before the /23 that contains it so it gets its own reason.
const V6_RANGES: &[(Ipv6Addr, u32, &str)] = &[
    (
        Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0),
        48,
        "NAT64 local-use",
    ),
    (
        Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0),
        64,
        "discard-only",
    ),
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32, "Teredo"),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        "documentation",
    ),
    (
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        23,
        "IETF protocol-assignment",
    ),
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        "documentation",
    ),
    (
        Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
        7,
        "unique-local",
    ),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, "link-local"),
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10, "site-local"),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, "multicast"),
];

/// Why an address is refused, or None if it is a public unicast address.
///
/// IPv6 forms that embed an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`,
/// IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are
/// judged by that IPv4 address, because that is where the packets end up.
/// IPv6 outside 2000::/3 (the only block IANA hands out) is "reserved".
pub fn forbidden_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let n = u32::from(ip);
    V4_RANGES
        .iter()
        .find(|(net, len, _)| {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            n & mask == u32::from(*net)
        })
        .map(|(_, _, reason)| *reason)
}

fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    let n = u128::from(ip);
    if ip.is_unspecified() {
        return Some("wildcard (unspecified)");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    // Embedded IPv4: the low 32 bits (or bits 16..48 for 6to4) are the real
    // destination once the packet is translated or tunnelled.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_reason(v4);
    }
    if n >> 32 == 0 {
        // IPv4-compatible ::a.b.c.d (deprecated, but some stacks still map it).
        return v4_reason(Ipv4Addr::from(n as u32));
    }
    if in_v6_prefix(n, Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96) {
        return v4_reason(Ipv4Addr::from(n as u32));
    }
    if in_v6_prefix(n, Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16) {
        return v4_reason(Ipv4Addr::from((n >> 80) as u32));
    }
    if let Some((_, _, reason)) = V6_RANGES
        .iter()
        .find(|(net, len, _)| in_v6_prefix(n, *net, *len))
    {
        return Some(reason);
    }
    if !in_v6_prefix(n, Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3) {
        return Some("reserved");
    }
    None
}

fn in_v6_prefix(n: u128, net: Ipv6Addr, len: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
    n & mask == u128::from(net)
}

/// Names that are loopback by definition (RFC 6761), refused before any
/// lookup so that the system resolver is not even asked.
fn name_reason(domain: &str) -> Option<&'static str> {
    let name = domain.trim_end_matches('.').to_ascii_lowercase();
    if name == "localhost" || name.ends_with(".localhost") {
        return Some("loopback");
    }
    None
}

/// What to fetch and how much of it.
#[derive(Debug, Clone)]
pub struct FetchPolicy {
    /// Let the fetcher reach loopback, private and other special addresses.
    /// Only for tests and for deliberately local deployments.
    pub allow_private: bool,
    /// Largest body accepted, in bytes.
    pub max_bytes: u64,
    /// Deadline for the whole fetch, redirects and body included.
    pub timeout: Duration,
    /// Redirect hops followed before giving up.
    pub max_redirects: usize,
}

impl Default for FetchPolicy {
    fn default() -> FetchPolicy {
        FetchPolicy {
            allow_private: false,
            max_bytes: 20 * 1024 * 1024,
            timeout: Duration::from_secs(30),
            max_redirects: 3,
        }
    }
}

/// Name resolution, injectable so tests never touch real DNS.
///
/// The fetcher calls `lookup` with port 0: the port of each answer is ignored
/// and replaced by the URL's port (or the scheme's default).
#[async_trait::async_trait]
pub trait HostResolver: Send + Sync + 'static {
    async fn lookup(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>>;
}

/// The operating system's resolver, through `tokio::net::lookup_host`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

#[async_trait::async_trait]
impl HostResolver for SystemResolver {
    async fn lookup(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host((host, port)).await?.collect())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: refused: {host} is a {reason} address")]
    Forbidden {
        url: String,
        host: String,
        reason: &'static str,
    },
    #[error("{url}: only http and https URLs are fetched")]
    BadScheme { url: String },
    #[error("{url}: not a valid URL")]
    BadUrl { url: String },
    #[error("{url}: larger than the {max}-byte limit")]
    TooLarge { url: String, max: u64 },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: {message}")]
    Network { url: String, message: String },
    #[error("{url}: too many redirects")]
    TooManyRedirects { url: String },
}

/// The decision for one URL string without fetching: parse, check the scheme,
/// refuse IP-literal hosts (and `localhost`) that the policy forbids, and
/// strip any credentials. Hosts given as names are judged later, by their
/// resolved addresses.
///
/// The `url` crate parses hosts the WHATWG way, so `http://2130706433/`,
/// `http://0x7f.1/` and `http://017700000001/` arrive here as `127.0.0.1`;
/// that normalisation is the same the HTTP connector then sees.
pub fn check_url(url: &str, policy: &FetchPolicy) -> Result<Url, FetchError> {
    let mut parsed = Url::parse(url).map_err(|_| FetchError::BadUrl {
        url: url.to_owned(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(FetchError::BadScheme {
            url: url.to_owned(),
        });
    }
    let reason = match parsed.host() {
        None => {
            return Err(FetchError::BadUrl {
                url: url.to_owned(),
            });
        }
        Some(Host::Ipv4(v4)) => forbidden_reason(IpAddr::V4(v4)),
        Some(Host::Ipv6(v6)) => forbidden_reason(IpAddr::V6(v6)),
        Some(Host::Domain(name)) => name_reason(name),
    };
    if let Some(reason) = reason
        && !policy.allow_private
    {
        return Err(FetchError::Forbidden {
            url: url.to_owned(),
            host: parsed.host_str().unwrap_or_default().to_owned(),
            reason,
        });
    }
    // reqwest turns URL userinfo into an Authorization header; a chat message
    // must not choose what credentials we send. Both setters only fail for
    // URLs without a host, which http(s) URLs always have.
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    Ok(parsed)
}

/// Why the guarded resolver gave no address. It travels through reqwest's
/// error chain as a boxed error and is recognised again by downcasting.
#[derive(Debug)]
enum LookupError {
    Refused { host: String, reason: &'static str },
    NoAddresses { host: String },
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupError::Refused { host, reason } => {
                write!(f, "{host} resolves only to forbidden addresses ({reason})")
            }
            LookupError::NoAddresses { host } => write!(f, "{host} has no addresses"),
        }
    }
}

impl StdError for LookupError {}

/// Keep the answers the policy allows, with the port zeroed so the connector
/// always uses the URL's port rather than one the resolver made up.
fn screen(
    host: &str,
    found: Vec<SocketAddr>,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, LookupError> {
    if found.is_empty() {
        return Err(LookupError::NoAddresses {
            host: host.to_owned(),
        });
    }
    let mut first_reason = None;
    let mut kept = Vec::with_capacity(found.len());
    for mut addr in found {
        match forbidden_reason(addr.ip()) {
            Some(reason) if !allow_private => {
                first_reason.get_or_insert(reason);
            }
            _ => {
                addr.set_port(0);
                kept.push(addr);
            }
        }
    }
    match first_reason {
        Some(reason) if kept.is_empty() => Err(LookupError::Refused {
            host: host.to_owned(),
            reason,
        }),
        _ => Ok(kept),
    }
}

/// One lookup, screened. Used by the connector for every new connection.
async fn guarded_lookup(
    resolver: &dyn HostResolver,
    host: &str,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, Box<dyn StdError + Send + Sync>> {
    if let Some(reason) = name_reason(host)
        && !allow_private
    {
        return Err(Box::new(LookupError::Refused {
            host: host.to_owned(),
            reason,
        }));
    }
    let found = resolver.lookup(host, 0).await?;
    Ok(screen(host, found, allow_private)?)
}

/// The bridge into reqwest: hyper's connector asks this for a name's
/// addresses and dials exactly what it returns. IP-literal hosts never reach
/// it (hyper skips resolution for them), which is why `check_url` judges
/// those before every hop.
struct GuardedResolve {
    resolver: Arc<dyn HostResolver>,
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolve {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = Arc::clone(&self.resolver);
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = guarded_lookup(resolver.as_ref(), &host, allow_private).await?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Map a reqwest failure to a `FetchError`, recovering a resolver refusal
/// from deep in the source chain so the caller learns which host was refused
/// and why, not just "error sending request".
fn classify(url: &Url, err: reqwest::Error) -> FetchError {
    let url = url.to_string();
    let err = err.without_url();
    let mut message = String::new();
    let mut cause: Option<&(dyn StdError + 'static)> = Some(&err);
    while let Some(e) = cause {
        if let Some(LookupError::Refused { host, reason }) = e.downcast_ref::<LookupError>() {
            return FetchError::Forbidden {
                url,
                host: host.clone(),
                reason,
            };
        }
        let text = e.to_string();
        if !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
        cause = e.source();
    }
    FetchError::Network { url, message }
}

/// An HTTP client that can only reach what the policy allows.
#[derive(Debug, Clone)]
pub struct GuardedFetcher {
    policy: FetchPolicy,
    client: reqwest::Client,
}

impl GuardedFetcher {
    pub fn new(
        policy: FetchPolicy,
        resolver: Arc<dyn HostResolver>,
    ) -> Result<GuardedFetcher, FetchError> {
        let resolve = GuardedResolve {
            resolver,
            allow_private: policy.allow_private,
        };
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .referer(false)
            .dns_resolver(Arc::new(resolve))
            .connect_timeout(policy.timeout)
            .timeout(policy.timeout)
            .user_agent(concat!("leakwatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Network {
                url: "(building the HTTP client)".to_owned(),
                message: e.to_string(),
            })?;
        Ok(GuardedFetcher { policy, client })
    }

    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// Fetch the body, streaming and aborting as soon as it passes max_bytes
    /// (also refuse early on a Content-Length over the cap). Non-2xx is
    /// FetchError::Status. Each error names the URL of the hop that failed,
    /// except `TooManyRedirects`, which names the URL as given.
    pub async fn fetch(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        match tokio::time::timeout(self.policy.timeout, self.fetch_hops(url)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Network {
                url: url.to_owned(),
                message: format!("gave up after {:?}", self.policy.timeout),
            }),
        }
    }

    async fn fetch_hops(&self, original: &str) -> Result<Vec<u8>, FetchError> {
        let mut current = check_url(original, &self.policy)?;
        let mut redirects = 0usize;
        loop {
            let response = self
                .client
                .get(current.clone())
                .send()
                .await
                .map_err(|e| classify(&current, e))?;
            let status = response.status();
            if is_followed_redirect(status) {
                let Some(location) = response.headers().get(LOCATION) else {
                    return Err(status_error(&current, status));
                };
                let next = location
                    .to_str()
                    .ok()
                    .and_then(|l| current.join(l).ok())
                    .ok_or_else(|| FetchError::BadUrl {
                        url: String::from_utf8_lossy(location.as_bytes()).into_owned(),
                    })?;
                if redirects >= self.policy.max_redirects {
                    return Err(FetchError::TooManyRedirects {
                        url: original.to_owned(),
                    });
                }
                redirects += 1;
                // Dropping the redirect response before the next hop closes
                // its connection if the body was not read.
                drop(response);
                current = check_url(next.as_str(), &self.policy)?;
                continue;
            }
            if !status.is_success() {
                return Err(status_error(&current, status));
            }
            return self.read_capped(response, &current).await;
        }
    }

    async fn read_capped(
        &self,
        response: reqwest::Response,
        url: &Url,
    ) -> Result<Vec<u8>, FetchError> {
        let max = self.policy.max_bytes;
        let too_large = || FetchError::TooLarge {
            url: url.to_string(),
            max,
        };
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|len| len > max) {
            return Err(too_large());
        }
        // The declared length is attacker-chosen but already capped by the
        // policy, so reserving it cannot exceed what we would hold anyway.
        let reserve = usize::try_from(declared.unwrap_or(0)).unwrap_or(0);
        let mut body = Vec::with_capacity(reserve);
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| classify(url, e))?;
            if body.len() as u64 + chunk.len() as u64 > max {
                // Returning drops the stream, which drops the connection
                // mid-body instead of draining the rest.
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// The redirects whose Location we follow; 300, 304 and the rest are answers.
fn is_followed_redirect(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    )
}

fn status_error(url: &Url, status: StatusCode) -> FetchError {
    FetchError::Status {
        url: url.to_string(),
        status: status.as_u16(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::str::FromStr;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn reason(s: &str) -> Option<&'static str> {
        forbidden_reason(ip(s))
    }

    // ---- forbidden_reason: decisions only, nothing is sent ----

    #[test]
    fn v4_ranges_refused_at_both_edges_and_neighbours_allowed() {
        // (first address, last address, reason, address just below, just above)
        type Case = (
            &'static str,
            &'static str,
            &'static str,
            Option<&'static str>,
            Option<&'static str>,
        );
        let cases: &[Case] = &[
            (
                "0.0.0.1",
                "0.255.255.255",
                "current-network",
                None,
                Some("1.0.0.0"),
            ),
            (
                "10.0.0.0",
                "10.255.255.255",
                "private-network",
                Some("9.255.255.255"),
                Some("11.0.0.0"),
            ),
            (
                "100.64.0.0",
                "100.127.255.255",
                "carrier-grade NAT",
                Some("100.63.255.255"),
                Some("100.128.0.0"),
            ),
            (
                "127.0.0.0",
                "127.255.255.255",
                "loopback",
                Some("126.255.255.255"),
                Some("128.0.0.0"),
            ),
            (
                "169.254.0.0",
                "169.254.255.255",
                "link-local",
                Some("169.253.255.255"),
                Some("169.255.0.0"),
            ),
            (
                "172.16.0.0",
                "172.31.255.255",
                "private-network",
                Some("172.15.255.255"),
                Some("172.32.0.0"),
            ),
            (
                "192.0.0.0",
                "192.0.0.255",
                "IETF protocol-assignment",
                Some("191.255.255.255"),
                Some("192.0.1.0"),
            ),
            (
                "192.0.2.0",
                "192.0.2.255",
                "documentation",
                Some("192.0.1.255"),
                Some("192.0.3.0"),
            ),
            (
                "192.88.99.0",
                "192.88.99.255",
                "6to4-relay anycast",
                Some("192.88.98.255"),
                Some("192.88.100.0"),
            ),
            (
                "192.168.0.0",
                "192.168.255.255",
                "private-network",
                Some("192.167.255.255"),
                Some("192.169.0.0"),
            ),
            (
                "198.18.0.0",
                "198.19.255.255",
                "benchmarking",
                Some("198.17.255.255"),
                Some("198.20.0.0"),
            ),
            (
                "198.51.100.0",
                "198.51.100.255",
                "documentation",
                Some("198.51.99.255"),
                Some("198.51.101.0"),
            ),
            (
                "203.0.113.0",
                "203.0.113.255",
                "documentation",
                Some("203.0.112.255"),
                Some("203.0.114.0"),
            ),
            (
                "224.0.0.0",
                "239.255.255.255",
                "multicast",
                Some("223.255.255.255"),
                None,
            ),
            ("240.0.0.0", "255.255.255.254", "reserved", None, None),
        ];
        for (first, last, why, below, above) in cases {
            assert_eq!(reason(first), Some(*why), "{first}");
            assert_eq!(reason(last), Some(*why), "{last}");
            for outside in [below, above].into_iter().flatten() {
                assert_eq!(reason(outside), None, "{outside} is public");
            }
        }
        assert_eq!(reason("0.0.0.0"), Some("wildcard (unspecified)"));
        assert_eq!(reason("255.255.255.255"), Some("broadcast"));
        assert_eq!(reason("169.254.169.254"), Some("link-local"));
    }

    #[test]
    fn public_addresses_allowed() {
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "101.91.22.57",
            "223.255.255.255",
            "2606:4700::1111",
            "2400:3200::1",
            "240e::1",
            "::ffff:1.1.1.1",
            "::8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:0808:0808::1",
        ] {
            assert_eq!(reason(public), None, "{public}");
        }
    }

    #[test]
    fn v6_special_ranges_refused() {
        let cases: &[(&str, &str)] = &[
            ("::", "wildcard (unspecified)"),
            ("::1", "loopback"),
            ("fe80::", "link-local"),
            ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "link-local"),
            ("fc00::", "unique-local"),
            ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "unique-local"),
            ("fec0::1", "site-local"),
            ("ff00::", "multicast"),
            ("ff02::1", "multicast"),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "multicast"),
            ("2001:db8::", "documentation"),
            ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "documentation"),
            ("3fff::1", "documentation"),
            ("2001::1", "Teredo"),
            ("2001:10::1", "IETF protocol-assignment"),
            ("100::1", "discard-only"),
            ("64:ff9b:1::1", "NAT64 local-use"),
            ("4000::1", "reserved"),
            ("1::1", "reserved"),
            // IPv4 embedded in IPv6 is judged by the IPv4 address.
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private-network"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::ffff:0.0.0.0", "wildcard (unspecified)"),
            ("::127.0.0.1", "loopback"),
            ("::192.168.1.1", "private-network"),
            ("64:ff9b::127.0.0.1", "loopback"),
            ("64:ff9b::10.0.0.1", "private-network"),
            ("2002:7f00:1::", "loopback"),
            ("2002:c0a8:101::1", "private-network"),
            ("2002:a9fe:a9fe::1", "link-local"),
        ];
        for (addr, why) in cases {
            assert_eq!(reason(addr), Some(*why), "{addr}");
        }
        assert_eq!(reason("2001:200::1"), None, "just past 2001::/23");
    }

    // ---- check_url: decisions only ----

    fn refused(url: &str) -> &'static str {
        match check_url(url, &FetchPolicy::default()) {
            Err(FetchError::Forbidden { reason, .. }) => reason,
            other => panic!("{url}: expected Forbidden, got {other:?}"),
        }
    }

    #[test]
    fn ip_literal_forms_refused() {
        for url in [
            "http://127.0.0.1/",
            "http://127.0.0.1./",
            "HTTP://127.0.0.1:8080/x",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0x7f000001/",
            "http://017700000001/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://%31%32%37.0.0.1/",
            "https://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[0:0:0:0:0:0:0:1]/",
            "http://localhost/",
            "http://LOCALHOST./",
            "http://api.localhost/",
        ] {
            assert_eq!(refused(url), "loopback", "{url}");
        }
        assert_eq!(refused("http://0/"), "wildcard (unspecified)");
        assert_eq!(refused("http://[::]/"), "wildcard (unspecified)");
        assert_eq!(refused("http://10.1.2.3/"), "private-network");
        assert_eq!(refused("http://192.168.1.1:8080/"), "private-network");
        assert_eq!(refused("http://172.31.0.1/"), "private-network");
        assert_eq!(
            refused("http://169.254.169.254/latest/meta-data/"),
            "link-local"
        );
        assert_eq!(refused("http://[fe80::1]/"), "link-local");
        assert_eq!(refused("http://[fd00::1]/"), "unique-local");
        assert_eq!(refused("http://100.100.100.200/"), "carrier-grade NAT");
    }

    #[test]
    fn url_crate_normalises_numeric_hosts() {
        // The guard relies on the url crate turning every numeric spelling
        // into a dotted quad; check that instead of assuming it.
        let lenient = FetchPolicy {
            allow_private: true,
            ..FetchPolicy::default()
        };
        for url in [
            "http://2130706433/",
            "http://0x7f.1/",
            "http://017700000001/",
            "http://127.1/",
            "http://127.0.0.1./",
        ] {
            let parsed = check_url(url, &lenient).unwrap();
            assert_eq!(
                parsed.host(),
                Some(Host::Ipv4(Ipv4Addr::LOCALHOST)),
                "{url}"
            );
        }
    }

    #[test]
    fn userinfo_cannot_hide_the_host_and_is_stripped() {
        assert_eq!(refused("http://1.1.1.1@127.0.0.1/"), "loopback");
        assert_eq!(refused("http://media.test@127.0.0.1:80/"), "loopback");
        assert_eq!(refused("http://user:pw@10.0.0.1/"), "private-network");
        let ok = check_url(
            "https://user:secret@media.test/x?y=1",
            &FetchPolicy::default(),
        )
        .unwrap();
        assert_eq!(ok.username(), "");
        assert_eq!(ok.password(), None);
        assert_eq!(ok.as_str(), "https://media.test/x?y=1");
    }

    #[test]
    fn only_http_and_https() {
        for url in [
            "file:///etc/passwd",
            "ftp://1.1.1.1/",
            "gopher://1.1.1.1:70/_x",
            "data:text/plain,hi",
            "javascript:alert(1)",
            "ws://1.1.1.1/",
        ] {
            assert!(
                matches!(
                    check_url(url, &FetchPolicy::default()),
                    Err(FetchError::BadScheme { .. })
                ),
                "{url}"
            );
        }
    }

    #[test]
    fn garbage_refused() {
        for url in [
            "",
            "not a url",
            "http://",
            "http://[::1",
            "//media.test/x",
            "http://exa mple.com/",
            "http://1.2.3.4.5/",
        ] {
            assert!(
                matches!(
                    check_url(url, &FetchPolicy::default()),
                    Err(FetchError::BadUrl { .. })
                ),
                "{url}: {:?}",
                check_url(url, &FetchPolicy::default())
            );
        }
    }

    #[test]
    fn public_urls_pass_and_error_text_names_host_and_reason() {
        let policy = FetchPolicy::default();
        assert!(
            check_url(
                "https://multimedia.nt.qq.com.cn/download?appid=1407&fileid=abc",
                &policy
            )
            .is_ok()
        );
        assert!(check_url("http://1.1.1.1/", &policy).is_ok());
        assert!(check_url("http://[2606:4700::1111]/", &policy).is_ok());
        let err = check_url("http://[::1]:81/", &policy).unwrap_err();
        assert_eq!(
            err.to_string(),
            "http://[::1]:81/: refused: [::1] is a loopback address"
        );
    }

    #[test]
    fn default_policy_values() {
        let p = FetchPolicy::default();
        assert!(!p.allow_private);
        assert_eq!(p.max_bytes, 20 * 1024 * 1024);
        assert_eq!(p.timeout, Duration::from_secs(30));
        assert_eq!(p.max_redirects, 3);
    }

    // ---- fake resolver ----

    /// Answers from a table; a name's first lookup gets `first`, every later
    /// lookup gets `later`. Counts lookups. Unknown names are NotFound, so no
    /// test ever reaches real DNS.
    #[derive(Default)]
    struct FakeResolver {
        first: HashMap<String, Vec<IpAddr>>,
        later: HashMap<String, Vec<IpAddr>>,
        seen: Mutex<HashMap<String, usize>>,
        lookups: AtomicUsize,
    }

    impl FakeResolver {
        fn answer(mut self, name: &str, addrs: &[&str]) -> Self {
            self.first
                .insert(name.to_owned(), addrs.iter().map(|a| ip(a)).collect());
            self
        }
        fn then(mut self, name: &str, addrs: &[&str]) -> Self {
            self.later
                .insert(name.to_owned(), addrs.iter().map(|a| ip(a)).collect());
            self
        }
        fn lookups(&self) -> usize {
            self.lookups.load(Ordering::SeqCst)
        }
    }

    #[async_trait::async_trait]
    impl HostResolver for FakeResolver {
        async fn lookup(&self, host: &str, _port: u16) -> io::Result<Vec<SocketAddr>> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            let nth = {
                let mut seen = self.seen.lock().unwrap();
                let n = seen.entry(host.to_owned()).or_insert(0);
                *n += 1;
                *n
            };
            let table = if nth > 1 && self.later.contains_key(host) {
                &self.later
            } else {
                &self.first
            };
            match table.get(host) {
                // Port 9 on purpose: the guard must replace it with the URL's.
                Some(ips) => Ok(ips.iter().map(|ip| SocketAddr::new(*ip, 9)).collect()),
                None => Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{host}: unknown to the fake resolver"),
                )),
            }
        }
    }

    #[test]
    fn screen_drops_forbidden_and_zeroes_ports() {
        // Decision only: these addresses are compared, never dialled.
        let found = vec![
            SocketAddr::new(ip("127.0.0.1"), 9),
            SocketAddr::new(ip("1.1.1.1"), 9),
            SocketAddr::new(ip("fd00::1"), 9),
        ];
        let kept = screen("x.test", found.clone(), false).unwrap();
        assert_eq!(kept, vec![SocketAddr::new(ip("1.1.1.1"), 0)]);
        assert_eq!(screen("x.test", found, true).unwrap().len(), 3);
        assert!(matches!(
            screen("x.test", vec![], true),
            Err(LookupError::NoAddresses { .. })
        ));
    }

    #[tokio::test]
    async fn mixed_forbidden_answer_refused_before_any_connect() {
        // Decision only: the resolver answer holds nothing but forbidden
        // addresses, and we call the resolver bridge itself, not a client.
        let fake =
            Arc::new(FakeResolver::default().answer("mixed.test", &["10.0.0.1", "127.0.0.1"]));
        let bridge = GuardedResolve {
            resolver: fake.clone(),
            allow_private: false,
        };
        let name = reqwest::dns::Name::from_str("mixed.test").unwrap();
        let err = match reqwest::dns::Resolve::resolve(&bridge, name).await {
            Err(e) => e,
            Ok(addrs) => panic!("expected refusal, got {:?}", addrs.collect::<Vec<_>>()),
        };
        match err.downcast_ref::<LookupError>() {
            Some(LookupError::Refused { host, reason }) => {
                assert_eq!(host, "mixed.test");
                assert_eq!(*reason, "private-network");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(fake.lookups(), 1);
    }

    #[tokio::test]
    async fn rebinding_second_answer_is_never_asked_for() {
        // Decision only: the first answer is loopback, a second lookup would
        // get a public address. The guard must refuse on the first answer and
        // not look again.
        let fake = Arc::new(
            FakeResolver::default()
                .answer("rebind.test", &["127.0.0.1"])
                .then("rebind.test", &["1.1.1.1"]),
        );
        let err = guarded_lookup(fake.as_ref(), "rebind.test", false)
            .await
            .unwrap_err();
        assert!(matches!(
            err.downcast_ref::<LookupError>(),
            Some(LookupError::Refused {
                reason: "loopback",
                ..
            })
        ));
        assert_eq!(fake.lookups(), 1);
    }

    #[tokio::test]
    async fn localhost_names_refused_without_lookup() {
        let fake = Arc::new(FakeResolver::default().answer("localhost", &["127.0.0.1"]));
        assert!(
            guarded_lookup(fake.as_ref(), "localhost", false)
                .await
                .is_err()
        );
        assert!(
            guarded_lookup(fake.as_ref(), "Foo.LocalHost.", false)
                .await
                .is_err()
        );
        assert_eq!(fake.lookups(), 0);
    }

    // ---- loopback test server ----

    enum Reply {
        /// Status, extra header lines, body (sent with Content-Length).
        Fixed(u16, Vec<String>, Vec<u8>),
        /// Chunked body without Content-Length: `total` bytes in 64 KiB chunks,
        /// stopping early (and noting it) when the client goes away.
        Chunked(usize),
        /// Raw bytes, exactly as given.
        Raw(Vec<u8>),
        /// Never answer; the client's deadline must fire.
        Silent,
    }

    struct TestServer {
        addr: SocketAddr,
        connections: Arc<AtomicUsize>,
        requests: Arc<Mutex<Vec<String>>>,
        client_left: Arc<AtomicBool>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl TestServer {
        async fn start<F>(route: F) -> TestServer
        where
            F: Fn(&str, SocketAddr) -> Reply + Send + Sync + 'static,
        {
            // Loopback only: the one place these tests may send packets.
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let connections = Arc::new(AtomicUsize::new(0));
            let requests = Arc::new(Mutex::new(Vec::new()));
            let client_left = Arc::new(AtomicBool::new(false));
            let route = Arc::new(route);
            let task = tokio::spawn({
                let connections = connections.clone();
                let requests = requests.clone();
                let client_left = client_left.clone();
                async move {
                    while let Ok((sock, _)) = listener.accept().await {
                        connections.fetch_add(1, Ordering::SeqCst);
                        let route = route.clone();
                        let requests = requests.clone();
                        let client_left = client_left.clone();
                        tokio::spawn(async move {
                            serve_one(sock, addr, route.as_ref(), &requests, &client_left).await;
                        });
                    }
                }
            });
            TestServer {
                addr,
                connections,
                requests,
                client_left,
                task,
            }
        }

        fn port(&self) -> u16 {
            self.addr.port()
        }
        fn connections(&self) -> usize {
            self.connections.load(Ordering::SeqCst)
        }
        fn requests(&self) -> Vec<String> {
            self.requests.lock().unwrap().clone()
        }
    }

    async fn serve_one<F>(
        mut sock: TcpStream,
        addr: SocketAddr,
        route: &F,
        requests: &Mutex<Vec<String>>,
        client_left: &AtomicBool,
    ) where
        F: Fn(&str, SocketAddr) -> Reply,
    {
        let mut head = Vec::new();
        let mut buf = [0u8; 2048];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
            if head.len() > 16 * 1024 {
                return;
            }
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
        requests.lock().unwrap().push(head);
        match route(&path, addr) {
            Reply::Fixed(status, headers, body) => {
                let mut out = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                    body.len()
                );
                for h in headers {
                    out.push_str(&h);
                    out.push_str("\r\n");
                }
                out.push_str("\r\n");
                let mut bytes = out.into_bytes();
                bytes.extend_from_slice(&body);
                let _ = sock.write_all(&bytes).await;
            }
            Reply::Raw(bytes) => {
                let _ = sock.write_all(&bytes).await;
            }
            Reply::Chunked(total) => {
                let head =
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
                if sock.write_all(head.as_bytes()).await.is_err() {
                    client_left.store(true, Ordering::SeqCst);
                    return;
                }
                let chunk = vec![b'x'; 64 * 1024];
                let mut sent = 0;
                while sent < total {
                    let n = chunk.len().min(total - sent);
                    let mut frame = format!("{n:x}\r\n").into_bytes();
                    frame.extend_from_slice(&chunk[..n]);
                    frame.extend_from_slice(b"\r\n");
                    if sock.write_all(&frame).await.is_err() {
                        client_left.store(true, Ordering::SeqCst);
                        return;
                    }
                    sent += n;
                }
                let _ = sock.write_all(b"0\r\n\r\n").await;
            }
            Reply::Silent => tokio::time::sleep(Duration::from_secs(30)).await,
        }
    }

    fn ok(body: &str) -> Reply {
        Reply::Fixed(200, vec![], body.as_bytes().to_vec())
    }

    fn redirect(location: String) -> Reply {
        Reply::Fixed(302, vec![format!("Location: {location}")], vec![])
    }

    fn lenient() -> FetchPolicy {
        FetchPolicy {
            allow_private: true,
            timeout: Duration::from_secs(10),
            ..FetchPolicy::default()
        }
    }

    fn fetcher(policy: FetchPolicy, resolver: Arc<dyn HostResolver>) -> GuardedFetcher {
        GuardedFetcher::new(policy, resolver).unwrap()
    }

    // ---- end to end, loopback only ----

    #[tokio::test]
    async fn default_policy_refuses_loopback_and_sends_nothing() {
        let server = TestServer::start(|_, _| ok("secret")).await;
        let f = fetcher(FetchPolicy::default(), Arc::new(SystemResolver));
        let p = server.port();
        for url in [
            format!("http://127.0.0.1:{p}/"),
            format!("http://[::ffff:127.0.0.1]:{p}/"),
            format!("http://2130706433:{p}/"),
            format!("http://localhost:{p}/"),
        ] {
            match f.fetch(&url).await {
                Err(FetchError::Forbidden {
                    reason: "loopback", ..
                }) => {}
                other => panic!("{url}: {other:?}"),
            }
        }
        assert_eq!(server.connections(), 0);
        assert!(server.requests().is_empty());
    }

    #[tokio::test]
    async fn name_resolving_to_loopback_refused_with_host_and_reason() {
        let server = TestServer::start(|_, _| ok("secret")).await;
        let fake = Arc::new(FakeResolver::default().answer("media.test", &["127.0.0.1"]));
        let f = fetcher(FetchPolicy::default(), fake.clone());
        let url = format!("http://media.test:{}/img.jpg", server.port());
        let err = f.fetch(&url).await.unwrap_err();
        match &err {
            FetchError::Forbidden {
                url: u,
                host,
                reason,
            } => {
                assert_eq!(u, &url);
                assert_eq!(host, "media.test");
                assert_eq!(*reason, "loopback");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            err.to_string().contains("media.test is a loopback address"),
            "{err}"
        );
        assert_eq!(fake.lookups(), 1);
        assert_eq!(server.connections(), 0);
    }

    #[tokio::test]
    async fn loopback_only_answer_list_refused_end_to_end() {
        // Every answer forbidden (and all of it loopback, so even a broken
        // guard could only reach this machine).
        let server = TestServer::start(|_, _| ok("secret")).await;
        let fake = Arc::new(
            FakeResolver::default().answer("multi.test", &["127.0.0.2", "127.0.0.1", "::1"]),
        );
        let f = fetcher(FetchPolicy::default(), fake.clone());
        let err = f
            .fetch(&format!("http://multi.test:{}/", server.port()))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                FetchError::Forbidden {
                    reason: "loopback",
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(server.connections(), 0);
    }

    #[tokio::test]
    async fn rebinding_one_lookup_per_connection_when_allowed() {
        // A second lookup would answer 127.0.0.2, where nothing listens, so a
        // guard that looked twice would fail this fetch as well as the count.
        let server = TestServer::start(|_, _| ok("picture")).await;
        let fake = Arc::new(
            FakeResolver::default()
                .answer("rebind.test", &["127.0.0.1"])
                .then("rebind.test", &["127.0.0.2"]),
        );
        let f = fetcher(lenient(), fake.clone());
        let body = f
            .fetch(&format!("http://rebind.test:{}/a.png", server.port()))
            .await
            .unwrap();
        assert_eq!(body, b"picture");
        assert_eq!(fake.lookups(), 1);
        assert_eq!(server.requests().len(), 1);
        assert!(
            server.requests()[0]
                .to_ascii_lowercase()
                .contains(&format!("host: rebind.test:{}", server.port()))
        );
    }

    #[tokio::test]
    async fn rebinding_refused_when_first_answer_forbidden() {
        let server = TestServer::start(|_, _| ok("picture")).await;
        let fake = Arc::new(
            FakeResolver::default()
                .answer("rebind.test", &["127.0.0.1"])
                .then("rebind.test", &["127.0.0.2"]),
        );
        let f = fetcher(FetchPolicy::default(), fake.clone());
        let err = f
            .fetch(&format!("http://rebind.test:{}/a.png", server.port()))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                FetchError::Forbidden {
                    reason: "loopback",
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(fake.lookups(), 1);
        assert_eq!(server.connections(), 0);
    }

    #[tokio::test]
    async fn body_fetched_by_ip_and_by_name() {
        let server = TestServer::start(|path, _| ok(&format!("body of {path}"))).await;
        let fake = Arc::new(FakeResolver::default().answer("media.test", &["127.0.0.1"]));
        let f = fetcher(lenient(), fake.clone());
        let p = server.port();
        assert_eq!(
            f.fetch(&format!("http://127.0.0.1:{p}/x")).await.unwrap(),
            b"body of /x"
        );
        assert_eq!(
            f.fetch(&format!("http://user:pw@media.test:{p}/y?z=1"))
                .await
                .unwrap(),
            b"body of /y?z=1"
        );
        assert_eq!(fake.lookups(), 1, "IP literals are never resolved");
        let heads = server.requests();
        assert!(
            heads
                .iter()
                .all(|h| !h.to_ascii_lowercase().contains("authorization")),
            "{heads:?}"
        );
    }

    #[tokio::test]
    async fn unreachable_port_is_a_network_error() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap().port()
        };
        let f = fetcher(lenient(), Arc::new(FakeResolver::default()));
        let err = f
            .fetch(&format!("http://127.0.0.1:{port}/"))
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::Network { .. }), "{err:?}");
        let err = f
            .fetch(&format!("http://unknown.test:{port}/"))
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::Network { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn body_at_the_limit_is_accepted() {
        let server = TestServer::start(|path, _| match path {
            "/fixed" => Reply::Fixed(200, vec![], vec![b'a'; 1000]),
            _ => Reply::Chunked(1000),
        })
        .await;
        let f = fetcher(
            FetchPolicy {
                max_bytes: 1000,
                ..lenient()
            },
            Arc::new(FakeResolver::default()),
        );
        let p = server.port();
        assert_eq!(
            f.fetch(&format!("http://127.0.0.1:{p}/fixed"))
                .await
                .unwrap()
                .len(),
            1000
        );
        assert_eq!(
            f.fetch(&format!("http://127.0.0.1:{p}/chunked"))
                .await
                .unwrap()
                .len(),
            1000
        );
    }

    #[tokio::test]
    async fn content_length_over_the_cap_refused() {
        let server = TestServer::start(|path, _| match path {
            "/big" => Reply::Fixed(200, vec![], vec![b'a'; 1001]),
            // Claims a gigabyte, sends three bytes: refused on the header alone.
            _ => Reply::Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\nabc".to_vec()),
        })
        .await;
        let f = fetcher(
            FetchPolicy {
                max_bytes: 1000,
                ..lenient()
            },
            Arc::new(FakeResolver::default()),
        );
        let p = server.port();
        for path in ["/big", "/claims"] {
            match f.fetch(&format!("http://127.0.0.1:{p}{path}")).await {
                Err(FetchError::TooLarge { max: 1000, .. }) => {}
                other => panic!("{path}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn chunked_body_over_the_cap_refused_and_connection_dropped() {
        // 64 MiB offered, 1 MiB allowed: far more than loopback socket buffers
        // hold, so the server can only finish if the client keeps reading.
        let server = TestServer::start(|_, _| Reply::Chunked(64 * 1024 * 1024)).await;
        let f = fetcher(
            FetchPolicy {
                max_bytes: 1024 * 1024,
                ..lenient()
            },
            Arc::new(FakeResolver::default()),
        );
        let err = f
            .fetch(&format!("http://127.0.0.1:{}/stream", server.port()))
            .await
            .unwrap_err();
        assert!(
            matches!(err, FetchError::TooLarge { max: 1_048_576, .. }),
            "{err:?}"
        );
        // The server notices the closed connection on its next write.
        for _ in 0..100 {
            if server.client_left.load(Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            server.client_left.load(Ordering::SeqCst),
            "client kept the connection"
        );
    }

    #[tokio::test]
    async fn non_success_status_is_an_error() {
        let server = TestServer::start(|path, _| match path {
            "/missing" => Reply::Fixed(404, vec![], b"no".to_vec()),
            "/304" => Reply::Fixed(304, vec!["Location: /elsewhere".into()], vec![]),
            "/no-location" => Reply::Fixed(302, vec![], vec![]),
            _ => Reply::Fixed(500, vec![], vec![]),
        })
        .await;
        let f = fetcher(lenient(), Arc::new(FakeResolver::default()));
        let p = server.port();
        for (path, want) in [
            ("/missing", 404),
            ("/304", 304),
            ("/no-location", 302),
            ("/boom", 500),
        ] {
            match f.fetch(&format!("http://127.0.0.1:{p}{path}")).await {
                Err(FetchError::Status { status, .. }) => assert_eq!(status, want, "{path}"),
                other => panic!("{path}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn redirects_followed_through_the_guard() {
        let server = TestServer::start(|path, addr| match path {
            "/start" => redirect("/middle".into()),
            "/middle" => redirect(format!("http://media.test:{}/end", addr.port())),
            "/end" => ok("arrived"),
            _ => Reply::Fixed(404, vec![], vec![]),
        })
        .await;
        let fake = Arc::new(FakeResolver::default().answer("media.test", &["127.0.0.1"]));
        let f = fetcher(lenient(), fake.clone());
        let body = f
            .fetch(&format!("http://127.0.0.1:{}/start", server.port()))
            .await
            .unwrap();
        assert_eq!(body, b"arrived");
        assert_eq!(server.requests().len(), 3);
        assert_eq!(
            fake.lookups(),
            1,
            "the redirect target went through the resolver"
        );
    }

    #[tokio::test]
    async fn redirect_target_resolving_to_loopback_refused_by_default() {
        // Same chain under the default policy: refused at the first hop,
        // which is already loopback, so nothing is sent anywhere.
        let server =
            TestServer::start(|_, addr| redirect(format!("http://media.test:{}/end", addr.port())))
                .await;
        let fake = Arc::new(FakeResolver::default().answer("media.test", &["127.0.0.1"]));
        let f = fetcher(FetchPolicy::default(), fake.clone());
        let err = f
            .fetch(&format!("http://media.test:{}/start", server.port()))
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::Forbidden { .. }), "{err:?}");
        assert_eq!(server.connections(), 0);
    }

    #[tokio::test]
    async fn too_many_redirects() {
        let server = TestServer::start(|_, _| redirect("/again".into())).await;
        let f = fetcher(lenient(), Arc::new(FakeResolver::default()));
        let url = format!("http://127.0.0.1:{}/loop", server.port());
        match f.fetch(&url).await {
            Err(FetchError::TooManyRedirects { url: u }) => assert_eq!(u, url),
            other => panic!("{other:?}"),
        }
        // The first request plus max_redirects (3) hops.
        assert_eq!(server.requests().len(), 4);

        let strict = fetcher(
            FetchPolicy {
                max_redirects: 0,
                ..lenient()
            },
            Arc::new(FakeResolver::default()),
        );
        assert!(matches!(
            strict.fetch(&url).await,
            Err(FetchError::TooManyRedirects { .. })
        ));
        assert_eq!(server.requests().len(), 5);
    }

    #[tokio::test]
    async fn redirect_to_other_schemes_refused() {
        let server = TestServer::start(|path, _| match path {
            "/file" => redirect("file:///etc/passwd".into()),
            "/gopher" => redirect("gopher://127.0.0.1:70/_x".into()),
            _ => Reply::Fixed(301, vec!["Location: http://[::1".into()], vec![]),
        })
        .await;
        let f = fetcher(lenient(), Arc::new(FakeResolver::default()));
        let p = server.port();
        for path in ["/file", "/gopher"] {
            match f.fetch(&format!("http://127.0.0.1:{p}{path}")).await {
                Err(FetchError::BadScheme { url }) => assert!(!url.starts_with("http:"), "{url}"),
                other => panic!("{path}: {other:?}"),
            }
        }
        assert!(matches!(
            f.fetch(&format!("http://127.0.0.1:{p}/broken")).await,
            Err(FetchError::BadUrl { .. })
        ));
    }

    #[tokio::test]
    async fn silent_server_hits_the_deadline() {
        let server = TestServer::start(|_, _| Reply::Silent).await;
        let f = fetcher(
            FetchPolicy {
                timeout: Duration::from_millis(300),
                ..lenient()
            },
            Arc::new(FakeResolver::default()),
        );
        let err = f
            .fetch(&format!("http://127.0.0.1:{}/", server.port()))
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::Network { .. }), "{err:?}");
        assert_eq!(f.policy().timeout, Duration::from_millis(300));
    }
}
