//! The HTML forms of the pages (site login, operator login and controls, the reception
//! emulator): documented in the OpenAPI document like the JSON bodies, so a client (or a fuzzer)
//! built from it posts what the pages accept.
