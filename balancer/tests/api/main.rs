//! The balancer over real HTTP on loopback: test upstreams are small
//! servers in this process that echo, stream, hang, fail or die on purpose;
//! the balancer runs in-process on port 0 and is driven with reqwest, a
//! hyper client (for streaming uploads) or raw TCP (for exact headers).

mod binary;
mod client_faults;
mod connections;
mod cors;
mod failover;
mod framing;
mod headers;
mod limits;
mod own_endpoints;
mod replicas;
mod routing;
mod storefront;
mod streaming;
mod support;
