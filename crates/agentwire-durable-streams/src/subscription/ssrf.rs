//! Webhook URL checks against SSRF (PROTOCOL.md §6.2, §12.8): `https://` to a public host, or
//! — only with `durable_streams.webhook_dev_loopback` — `http://localhost` / `http://127.0.0.x`.
//! The host is checked when the subscription is created and its resolved addresses again on
//! every delivery, which then connects to exactly the addresses checked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;

/// A webhook URL accepted for delivery.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The URL.
    pub url: Url,
    /// Its host name (or address text).
    pub host: String,
    /// Whether it is the loopback development exception.
    pub dev: bool,
}

fn is_dev_host(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<Ipv4Addr>()
            .is_ok_and(|ip| ip.octets()[..3] == [127, 0, 0])
}

/// Checks `raw` by its text (scheme, host literal); `dev_loopback` allows the development
/// exception.
pub(crate) fn check(raw: &str, dev_loopback: bool) -> Result<Target, String> {
    let url = Url::parse(raw).map_err(|_| "webhook.url must be a valid URL".to_owned())?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("webhook.url must not carry credentials".into());
    }
    let host = url
        .host_str()
        .ok_or("webhook.url needs a host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    match url.scheme() {
        "http" if dev_loopback && is_dev_host(&host) => {
            return Ok(Target {
                url,
                host,
                dev: true,
            });
        }
        "http" if is_dev_host(&host) => {
            return Err("http://localhost webhooks are a development exception this server does not allow (durable_streams.webhook_dev_loopback)".into());
        }
        "http" => {
            return Err(
                "webhook URLs must use https (http only for localhost or 127.0.0.x in development)"
                    .into(),
            );
        }
        "https" => {}
        _ => return Err("webhook.url must use https".into()),
    }
    if host == "localhost" || host.ends_with(".localhost") {
        return Err("webhook.url must not target a local host".into());
    }
    if let Ok(ip) = host.parse::<IpAddr>()
        && !is_public(ip)
    {
        return Err("webhook.url must not target private, loopback or link-local addresses".into());
    }
    Ok(Target {
        url,
        host,
        dev: false,
    })
}

/// Resolves the target and keeps its addresses only if every one is allowed: public, or
/// loopback for the development exception.
pub(crate) async fn resolve(target: &Target) -> Result<Vec<SocketAddr>, String> {
    let port = target.url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), port))
        .await
        .map_err(|e| format!("cannot resolve {}: {e}", target.host))?
        .collect();
    let allowed = |ip: IpAddr| {
        if target.dev {
            ip.is_loopback()
        } else {
            is_public(ip)
        }
    };
    if addrs.is_empty() || !addrs.iter().all(|a| allowed(a.ip())) {
        return Err(format!("{} resolves to a refused address", target.host));
    }
    Ok(addrs)
}

/// Whether `ip` is a globally routed unicast address (no private, loopback, link-local,
/// shared, multicast, documentation or reserved range).
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => public_v4(v4),
            None => public_v6(v6),
        },
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || a >= 240
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b)))
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || first == 0x2001 && ip.segments()[1] == 0x0db8
        || first == 0x64 && ip.segments()[1] == 0xff9b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_plain_http_targets_are_refused() {
        for bad in [
            "http://10.0.0.1/hook",
            "https://10.0.0.1/hook",
            "https://192.168.1.2/",
            "https://169.254.169.254/latest",
            "https://[::1]/",
            "https://[fe80::1]/",
            "https://[::ffff:10.0.0.1]/",
            "https://localhost/",
            "https://user:pw@example.com/",
            "ftp://example.com/",
            "http://example.com/",
            "http://127.0.0.1:9/hook",
        ] {
            assert!(check(bad, false).is_err(), "{bad}");
        }
        assert!(check("https://example.com/hook", false).is_ok());
        assert!(check("https://93.184.216.34/hook", false).is_ok());
    }

    #[test]
    fn the_development_exception_is_loopback_http_only() {
        assert!(check("http://127.0.0.1:9/hook", true).unwrap().dev);
        assert!(check("http://localhost:9/hook", true).unwrap().dev);
        assert!(check("http://127.0.1.1/hook", true).is_err());
        assert!(check("http://10.0.0.1/hook", true).is_err());
    }
}
