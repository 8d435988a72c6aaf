//! # Fuzzing
//!
//! The crate's repository has coverage-guided fuzz targets (`cargo fuzz`, libFuzzer) in `fuzz/`
//! for everything a request, a store or a webhook can feed the crate. It is a cargo workspace of
//! its own, which `cargo test`, `cargo clippy` and `cargo fmt --all` leave alone.
//!
//! | target | input | checked |
//! |---|---|---|
//! | `catalog` | any text, to `Catalog::from_json` and `from_value` | no panic; the two readers agree; a loaded catalog governs the resources it lists, finds each plan and add-on by name, answers the limits it lists (quotas included), rebuilds and round-trips through JSON; a route table for its resources governs them |
//! | `subscriber` | any text, to `Subscriber::from_json` and `from_value` | no panic; the record (add-on grants included) is what a plain reading of the document gives, and round-trips; a memory store loads it exactly when it should; deciding on it at any time allows only what the limit allows |
//! | `routes` | request paths: raw text, assembled from tricky pieces, and re-spellings of governed paths | every spelling resolves as a plain reference normaliser and matcher say, and as its normalised form does: encoding, slashes, dot segments, case and queries open no bypass |
//! | `webhook` | signed (with a known secret) and unsigned requests with any body | unsigned and stale requests are refused, signed ones accepted; the event parser; the receiver's answer and what it changed in the store |
//! | `stripe` | a `Stripe-Signature` header and an event body | the header parser and the event parser never panic and agree with a plain reading; the rights follow the documented table; the receiver's answer and store agree |
//! | `counting` | sequences of reserve, commit, release, adjust, set, get and clock steps on `MemoryStore` | every answer against a plain model: never over the limit, idempotent by reservation id, leases expire, period counters stay out of the record |
//!
//! ```sh
//! bash scripts/fuzz.sh              # every target for 60 s, then executions per second and coverage
//! bash scripts/fuzz.sh 300 routes   # one target for 5 minutes
//! ```
//!
//! It needs a nightly toolchain (`rustup toolchain install nightly`) and installs `cargo-fuzz`
//! when it is missing. Each target starts from its committed seeds in `fuzz/corpus/<target>/`
//! and what earlier runs found in `fuzz/corpus-grown/<target>/`; an input that fails is kept in
//! `fuzz/artifacts/<target>/` (neither of the two is committed). Turn such an input into a
//! regression test in the normal suite, then fix what it found.
