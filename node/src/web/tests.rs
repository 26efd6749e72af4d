//! Tests of the web pages through the real router of a real node in a temporary directory:
//! CSRF, roles, device tokens, and the absence of personal data on public pages.
