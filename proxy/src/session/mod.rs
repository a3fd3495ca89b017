//! session: sealed cookies, cookie and Redis stores.
