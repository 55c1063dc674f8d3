//! An emulator of the Microsoft Graph presence API and the Entra ID token endpoint.
//!
//! Will hold: an HTTP server for tests and demos that follows the documented rules (valid pairs, expiration bounds, batch limits, 429 with Retry-After).
