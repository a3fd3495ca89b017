//! OpenID Connect: discovery, the JWKS cache, token verification and (for browsers) the code flow.
