//! # Your own database
//!
//! Plans, subscribers and counts usually live in the application's own database. Two small
//! traits put them behind the layer: [`PlanStore`](crate::PlanStore) (the catalog and the
//! records) and [`UsageStore`](crate::UsageStore) (the counters of
//! [counted usage](super::counting)). Implement the first alone when the application keeps the
//! counts itself, both when the layer counts; one type may implement both, as
//! [`MemoryStore`](crate::MemoryStore) does.
//!
//! ## One method per store operation
//!
//! Every method is one operation and returns a [`StoreFuture`](crate::store::StoreFuture): an
//! answer known at once, [`StoreFuture::ready(result)`](crate::store::StoreFuture::ready), or one
//! to wait for, [`StoreFuture::new(async move { .. })`](crate::store::StoreFuture::new). A store
//! that keeps what it is asked in the process (a cached catalog, counters in memory) answers at
//! once, and the layer then decides without waiting or boxing; a database call is a future.
//!
//! | method | the layer calls it | answers |
//! |---|---|---|
//! | [`PlanStore::plans`](crate::PlanStore::plans) | to load or refresh the catalog: once per `plans_ttl`, shared by concurrent requests | the [`Catalog`](crate::Catalog) |
//! | [`PlanStore::user`](crate::PlanStore::user) | for every governed request, unless the user cache has the record | the user's [`Subscriber`](crate::Subscriber) record, `None` for an unknown user |
//! | [`UsageStore::reserve`](crate::UsageStore::reserve) | before calling your service, for a counted request | [`Held::Reserved`](crate::store::Held) with each line's count before, or `Refused` with the line that did not fit |
//! | [`UsageStore::commit`](crate::UsageStore::commit) | after a response that commits, with the units each line spent | nothing |
//! | [`UsageStore::release`](crate::UsageStore::release) | after any other response, or an error | nothing |
//! | [`UsageStore::adjust`](crate::UsageStore::adjust) | after a successful delete (one back), or a create under a quota (one more item) | the used count after |
//! | [`UsageStore::set`](crate::UsageStore::set) | never: it is for your imports and admin tools | nothing |
//! | [`UsageStore::get`](crate::UsageStore::get) | for [entitlements](super::entitlements), and for [usage alerts](super::cycles#usage-alerts) after a commit | the used and held counts, `None` for a counter that does not exist yet |
//! | [`UsageStore::mark`](crate::UsageStore::mark) | with usage alerts only, off the request path, when a commit may have reached a threshold | whether this call set the marker first (`true` once per counter, period and marker) |
//!
//! Errors are boxed ([`BoxError`](crate::BoxError)); the layer logs their text and never sends
//! it to a client. Every call is bounded by the layer's `store_timeout` (see
//! [Configuration](super::configuration#when-a-store-fails)).
//!
//! ## What the layer expects
//!
//! **A future does nothing until it is polled.** The layer first asks whether an answer is ready
//! ([`into_ready`](crate::store::StoreFuture::into_ready)); when it is not, it may drop that
//! future without polling it and make the same call again from a task of its own. So do the
//! work inside the `async` block, which does nothing before it is first polled. A method that
//! starts a query, takes a lock or changes anything before it returns its `StoreFuture` would
//! do it twice.
//!
//! **A reservation is atomic.** A request's reservation is a [`Hold`](crate::store::Hold): one
//! [`Line`](crate::store::Line) per counter it draws on (its action's or items' counter, a
//! credit pool's), each with its units, limit and seed. `reserve` checks every line,
//! `used + held + units <= limit`, and records the hold in one step, all lines or none, or two
//! requests that both read "one left" both pass. A line's limit `None` is unlimited: the units
//! are held all the same, so that a create is counted on every plan. A refused reservation
//! changes nothing: it does not even create the counters.
//!
//! **A commit counts what was spent.** `commit(hold, spent)` turns each line's `spent[i]` units
//! into used ones and releases the rest of its hold: a metered request that reported less than
//! it held gives the difference back. A credit pool's line may carry one-off grants
//! ([`Spill`](crate::store::Spill)), spent after the pool's allowance; the
//! [trait docs](crate::UsageStore#lines-and-grants) give the exact rule, and the SQLite
//! example implements it.
//!
//! Soft limits ask nothing more: a line's limit is already the limit plus its
//! [overage](super::cycles#soft-limits), and a credit pool's overage is one more grant on its
//! line, spent last.
//!
//! **Everything is idempotent by reservation id.** Reserving an id that is held renews its lease
//! and answers `Reserved` with the counts of the other holds; committing or releasing an id that
//! is not held (unknown, settled, or past its lease) changes nothing. A commit after the lease
//! counts nothing: the unit may already have gone to another request.
//!
//! **Holds end with their lease.** A hold that is neither committed nor released stops counting
//! when the `lease` the layer gave ends, so that a crashed instance frees what it held.
//!
//! **A marker is set once.** `mark(counter, marker)` is an insert-if-absent (a unique row, a
//! Redis `HSETNX`): of every call for the same counter (its period included) and marker, from
//! any instance, exactly one answers `true`. A store without alerts may leave it out; the
//! default fails, so alerts are logged as failed and never sent twice.
//!
//! **A counter is keyed by all of [`Counter`](crate::store::Counter).** The user, the resource,
//! what is counted ([`Counted::Items`](crate::store::Counted::Items), the items of the resource,
//! or [`Counted::Action`](crate::store::Counted::Action), the successful calls of one action)
//! and, for a [quota](super::quotas), the period: its label (`2026-11`, or `m1769853600000` for
//! a [billing cycle](super::cycles#billing-cycles)) tells periods apart. A counter displays as
//! `john/clients/items` or `john/reports/create@2026-11` for logs.
//!
//! **A counter that does not exist starts at its [`Seed`](crate::store::Seed).** `reserve` and
//! `adjust` receive one, taken from the subscriber record as the decision reads it:
//!
//! - [`Seed::Count(n)`](crate::store::Seed::Count): start at `n`;
//! - [`Seed::Items(n)`](crate::store::Seed::Items): start at the used count of the same user's
//!   item counter of the same resource (without a period) if that counter exists, else at `n`.
//!   A plain count in a record (`"projects": 5`) is the item count and the usage of every action
//!   without a count of its own, so the counter of such an action follows the item counter until
//!   it exists itself.
//!
//! Once a counter exists, its count is the truth and later seeds are ignored. A quota's counter
//! is seeded with `Seed::Count(0)`: each period starts from nothing.
//!
//! ## Example
//!
//! Plans and records in one table, counters in another, each behind an async lock, as a
//! connection pool would be. To stay short, this store keeps no grants: a line that carries
//! some is an error (the SQLite example keeps them).
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use axum::body::Body;
//! use axum::http::{Request, StatusCode};
//! use axum::routing::post;
//! use axum::Router;
//! use tokio::sync::Mutex;
//! use tokio::time::Instant;
//! use tower::ServiceExt;
//! use tower_plans::store::{Count, Counter, Held, Hold, ReservationId, Seed, StoreFuture};
//! use tower_plans::{Catalog, PlanLimitLayer, PlanStore, Subscriber, UsageStore, UserId};
//!
//! struct Accounts {
//!     /// Read once at start: answered at once.
//!     catalog: Arc<Catalog>,
//!     /// A table: every read waits for it.
//!     records: Mutex<HashMap<String, Arc<Subscriber>>>,
//! }
//!
//! impl PlanStore for Accounts {
//!     fn plans(&self) -> StoreFuture<'_, Arc<Catalog>> {
//!         StoreFuture::ready(Ok(Arc::clone(&self.catalog)))
//!     }
//!
//!     fn user<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Arc<Subscriber>>> {
//!         // Nothing happens before the layer polls it.
//!         StoreFuture::new(async move { Ok(self.records.lock().await.get(id).cloned()) })
//!     }
//! }
//!
//! /// One counter's row: the used count, and the live holds with their units and the end of
//! /// their lease.
//! #[derive(Default)]
//! struct Row {
//!     used: u64,
//!     holds: HashMap<ReservationId, (u64, Instant)>,
//! }
//!
//! impl Row {
//!     /// Forgets the holds whose lease has ended; the units of the others but `except`.
//!     fn held(&mut self, now: Instant, except: ReservationId) -> u64 {
//!         self.holds.retain(|_, (_, end)| *end > now);
//!         self.holds.iter().filter(|(id, _)| **id != except).map(|(_, (units, _))| units).sum()
//!     }
//! }
//!
//! #[derive(Default)]
//! struct Counters {
//!     table: Mutex<HashMap<Counter, Row>>,
//! }
//!
//! /// Where a counter that does not exist yet starts.
//! fn start(table: &HashMap<Counter, Row>, counter: &Counter, seed: Seed) -> u64 {
//!     match seed {
//!         Seed::Count(count) => count,
//!         Seed::Items(count) => {
//!             let items = Counter::items(Arc::clone(&counter.user), counter.resource.clone());
//!             table.get(&items).map_or(count, |row| row.used)
//!         }
//!     }
//! }
//!
//! impl UsageStore for Counters {
//!     fn reserve<'a>(&'a self, hold: &'a Hold, lease: Duration) -> StoreFuture<'a, Held> {
//!         StoreFuture::new(async move {
//!             // One lock for every check and every hold: they are one step.
//!             let mut table = self.table.lock().await;
//!             let now = Instant::now();
//!             let mut counts = Vec::new();
//!             for (index, line) in hold.lines().iter().enumerate() {
//!                 if !line.grants().is_empty() {
//!                     return Err("this store keeps no grants".into());
//!                 }
//!                 let count = match table.get_mut(line.counter()) {
//!                     Some(row) => Count { used: row.used, held: row.held(now, hold.id()) },
//!                     None => Count { used: start(&table, line.counter(), line.start()), held: 0 },
//!                 };
//!                 let after = count.used.saturating_add(count.held).saturating_add(line.units());
//!                 if line.max().is_some_and(|max| after > max) {
//!                     // Refused: nothing is written, not even a counter.
//!                     return Ok(Held::Refused { line: index, count });
//!                 }
//!                 counts.push(count);
//!             }
//!             for (line, count) in hold.lines().iter().zip(&counts) {
//!                 let row = table
//!                     .entry(line.counter().clone())
//!                     .or_insert_with(|| Row { used: count.used, ..Row::default() });
//!                 row.holds.insert(hold.id(), (line.units(), now + lease));
//!             }
//!             Ok(Held::Reserved(counts.into_iter().collect()))
//!         })
//!     }
//!
//!     fn commit<'a>(&'a self, hold: &'a Hold, spent: &'a [u64]) -> StoreFuture<'a, ()> {
//!         StoreFuture::new(async move {
//!             let mut table = self.table.lock().await;
//!             let now = Instant::now();
//!             for (index, line) in hold.lines().iter().enumerate() {
//!                 let Some(row) = table.get_mut(line.counter()) else { continue };
//!                 // Only a live hold is counted: a retry, or a commit past the lease, counts
//!                 // nothing. What it did not spend is released with it.
//!                 if let Some((units, end)) = row.holds.remove(&hold.id()) {
//!                     if end > now {
//!                         let spent = spent.get(index).copied().unwrap_or(units);
//!                         row.used = row.used.saturating_add(spent);
//!                     }
//!                 }
//!             }
//!             Ok(())
//!         })
//!     }
//!
//!     fn release<'a>(&'a self, hold: &'a Hold) -> StoreFuture<'a, ()> {
//!         StoreFuture::new(async move {
//!             let mut table = self.table.lock().await;
//!             for line in hold.lines() {
//!                 if let Some(row) = table.get_mut(line.counter()) {
//!                     row.holds.remove(&hold.id());
//!                 }
//!             }
//!             Ok(())
//!         })
//!     }
//!
//!     fn adjust<'a>(&'a self, counter: &'a Counter, delta: i64, seed: Seed) -> StoreFuture<'a, u64> {
//!         StoreFuture::new(async move {
//!             let mut table = self.table.lock().await;
//!             let used = match table.get(counter) {
//!                 Some(row) => row.used,
//!                 None => start(&table, counter, seed),
//!             };
//!             let used = used.saturating_add_signed(delta);
//!             table.entry(counter.clone()).or_default().used = used;
//!             Ok(used)
//!         })
//!     }
//!
//!     fn set<'a>(&'a self, counter: &'a Counter, used: u64) -> StoreFuture<'a, ()> {
//!         StoreFuture::new(async move {
//!             self.table.lock().await.entry(counter.clone()).or_default().used = used;
//!             Ok(())
//!         })
//!     }
//!
//!     fn get<'a>(&'a self, counter: &'a Counter) -> StoreFuture<'a, Option<Count>> {
//!         StoreFuture::new(async move {
//!             let mut table = self.table.lock().await;
//!             let now = Instant::now();
//!             let none = ReservationId::new();
//!             Ok(table.get_mut(counter).map(|row| Count { used: row.used, held: row.held(now, none) }))
//!         })
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_plans::BoxError> {
//! let john = Subscriber::from_json(r#"{"plan": "free", "usage": {"clients": 2}}"#)?;
//! let accounts = Accounts {
//!     catalog: Arc::new(Catalog::from_json(r#"[{"name": "free", "clients": 3}]"#)?),
//!     records: Mutex::new(HashMap::from([("john".to_owned(), Arc::new(john))])),
//! };
//! let counters = Arc::new(Counters::default());
//! let plans = PlanLimitLayer::builder(accounts).count_usage(Arc::clone(&counters)).build()?;
//! let app = Router::new()
//!     .route("/clients", post(|| async { StatusCode::CREATED }))
//!     .route_layer(plans);
//! let create = || {
//!     let mut request = Request::post("/clients").body(Body::empty()).unwrap();
//!     request.extensions_mut().insert(UserId::from("john"));
//!     request
//! };
//!
//! // The counter starts at the record's 2: one more client fits, then no more.
//! assert_eq!(app.clone().oneshot(create()).await?.status(), StatusCode::CREATED);
//! assert_eq!(app.clone().oneshot(create()).await?.status(), StatusCode::FORBIDDEN);
//! let clients = Counter::items("john", "clients");
//! assert_eq!(counters.get(&clients).await?, Some(Count { used: 3, held: 0 }));
//! # Ok(())
//! # }
//! ```
//!
//! ## Over SQL
//!
//! `cargo run --example sqlite` serves the quickstart's REST app with a `PlanStore` and a
//! `UsageStore` over an SQLite file (sqlx), counting usage in the database; `-- --check` runs
//! its tour and exits 0 when every answer is as printed. Its `examples/sqlite/store.rs` says,
//! method by method, which statements run. The points that carry over to any SQL database:
//!
//! - **The reservation is one statement**: an `INSERT INTO reservations ... SELECT ... WHERE`
//!   `used + live holds < limit` (or the limit is `NULL`, or the id already holds a live unit)
//!   `... RETURNING id`; a row back means held, none means refused. SQLite runs it atomically.
//!   On a server database under `READ COMMITTED` two such statements can both see the old count:
//!   lock the counter's row first in the same transaction (`SELECT ... FOR UPDATE`) or run it
//!   `SERIALIZABLE`.
//! - **A commit is one transaction**: delete the hold `RETURNING` whether it was live, and raise
//!   `used` only if it was, so that a retried commit counts nothing.
//! - **Holds carry the end of their lease** (`expires_ms`), and every query counts only live
//!   ones; expired rows are deleted when their counter is next touched, and by a periodic purge.
//! - **The records are the counters**: `user()` builds a record's usage from the counter rows,
//!   so that the layer decides on what it counted.
//! - In SQLite: WAL mode (readers never wait for the writer), a busy timeout, one writer
//!   connection and a few readers, and write transactions that begin with `BEGIN IMMEDIATE`, so
//!   that one that reads and then writes cannot fail half-way with `SQLITE_BUSY`.
//!
//! ## Telling the layer about changes
//!
//! The layer caches the catalog for `plans_ttl` and, with a user cache, records. When an admin
//! action or a billing webhook changes the database, change it first, then tell the layer
//! through its [`Invalidator`](crate::Invalidator):
//!
//! ```
//! use tower_plans::{BoxError, Invalidator};
//! # async fn update_plan_row(_: &str, _: &str) -> Result<(), BoxError> { Ok(()) }
//!
//! async fn upgrade(invalidator: &Invalidator, user: &str) -> Result<(), BoxError> {
//!     update_plan_row(user, "pro").await?; // UPDATE subscribers SET plan = 'pro' WHERE id = ?
//!     invalidator.user(user); // the user's next request reads the new plan
//!     Ok(())
//! }
//! // After changing plans or their limits: invalidator.catalog().
//! ```
//!
//! Counts need no invalidation: the usage store is asked on every counted request. The SQLite
//! example's `PUT /admin/users/{id}/plan` does exactly this. With several instances, each layer
//! has its own caches: broadcast the change to all of them (see [Several instances](super::redis)),
//! or keep the cache lifetimes short.
