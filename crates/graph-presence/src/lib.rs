//! A Microsoft Graph presence client for app-only services.
//!
//! Will hold: client-credentials tokens, UPN to object-id resolution, setPresence/clearPresence/setStatusMessage, `$batch`, throttling and a request budget.
