//! A DNS resolver for connections to URLs that others chose (an operator's file URL from a
//! Bitrix24 event): every address a name resolves to must be on the public internet, or the
//! connection is refused before it is opened (issue 15, server-side request forgery).
//!
//! Checking the URL's host text is not enough: `files.example.com` may resolve to
//! `169.254.169.254` (the cloud metadata service) or `10.0.0.5`. The check sits in the
//! resolver the connector calls, so the address checked is the address connected to (no
//! window for the name to change in between), and every redirect hop, which connects anew,
//! is checked again. One internal address among several refuses the name: a rebinding name
//! may hand out both.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;

/// True for addresses that are not on the public internet.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1])) // carrier-grade NAT
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19)) // benchmarking
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link local
                || v6.to_ipv4_mapped().is_some_and(|v4| is_internal(IpAddr::V4(v4)))
        }
    }
}

/// The error a refused name fails its connection with; found again in the error's source
/// chain to tell a refusal from a network failure.
#[derive(Debug, thiserror::Error)]
#[error("the host resolves to an internal network address")]
pub struct InternalAddress;

/// Which addresses a [`Resolver`] lets through.
#[derive(Clone, Debug, Default)]
pub enum AddressRule {
    /// Whatever the name resolves to (the APIs we call at configured hosts).
    #[default]
    Any,
    /// Public addresses only; loopback too when `allow_loopback` (tests and the local
    /// server, whose fakes listen there).
    PublicOnly { allow_loopback: bool },
}

impl AddressRule {
    fn allows(&self, ip: IpAddr) -> bool {
        match self {
            AddressRule::Any => true,
            AddressRule::PublicOnly { allow_loopback } => {
                !is_internal(ip) || (*allow_loopback && ip.is_loopback())
            }
        }
    }
}

/// Resolves with the system resolver (or a fixed table of names, like curl's `--resolve`)
/// and applies an [`AddressRule`].
#[derive(Clone, Debug, Default)]
pub struct Resolver {
    rule: AddressRule,
    fixed: Option<Arc<HashMap<String, Vec<IpAddr>>>>,
}

impl Resolver {
    pub fn new(rule: AddressRule) -> Self {
        Resolver { rule, fixed: None }
    }

    /// Answers these names from the table instead of DNS (names not in it do not resolve).
    pub fn with_fixed_names(mut self, names: HashMap<String, Vec<IpAddr>>) -> Self {
        self.fixed = Some(Arc::new(names));
        self
    }

    async fn resolve(self, name: Name) -> io::Result<std::vec::IntoIter<SocketAddr>> {
        let host = name.as_str().to_ascii_lowercase();
        let addrs: Vec<SocketAddr> = match &self.fixed {
            Some(table) => table
                .get(&host)
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "unknown host"))?
                .iter()
                .map(|ip| SocketAddr::new(*ip, 0))
                .collect(),
            // The port is set by the connector; 0 here as hyper's own resolver does.
            None => tokio::net::lookup_host((host.as_str(), 0)).await?.collect(),
        };
        if addrs.iter().any(|a| !self.rule.allows(a.ip())) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                InternalAddress,
            ));
        }
        Ok(addrs.into_iter())
    }
}

impl tower_service::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        Box::pin(self.clone().resolve(name))
    }
}

/// True when `e` (or one of its sources) is a refusal by a [`Resolver`].
pub fn is_refusal(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        if err.downcast_ref::<InternalAddress>().is_some() {
            return true;
        }
        if let Some(io) = err.downcast_ref::<io::Error>() {
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<InternalAddress>().is_some())
            {
                return true;
            }
        }
        next = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_ranges() {
        for internal in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_internal(ip(internal)), "{internal}");
        }
        for public in ["93.184.216.34", "2606:2800:220:1::248", "8.8.8.8"] {
            assert!(!is_internal(ip(public)), "{public}");
        }
    }

    #[tokio::test]
    async fn one_internal_address_refuses_the_name() {
        let table = HashMap::from([
            ("public.example".to_owned(), vec![ip("93.184.216.34")]),
            (
                "rebind.example".to_owned(),
                vec![ip("93.184.216.34"), ip("169.254.169.254")],
            ),
            ("local.example".to_owned(), vec![ip("127.0.0.1")]),
        ]);
        let strict = Resolver::new(AddressRule::PublicOnly {
            allow_loopback: false,
        })
        .with_fixed_names(table.clone());
        let name = |s: &str| s.parse::<Name>().unwrap();
        assert!(strict.clone().resolve(name("public.example")).await.is_ok());
        let refused = strict
            .clone()
            .resolve(name("rebind.example"))
            .await
            .unwrap_err();
        assert!(is_refusal(&refused));
        assert!(strict.clone().resolve(name("local.example")).await.is_err());
        let tests = Resolver::new(AddressRule::PublicOnly {
            allow_loopback: true,
        })
        .with_fixed_names(table);
        assert!(tests.resolve(name("local.example")).await.is_ok());
    }
}
