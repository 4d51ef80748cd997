//! The local tier: an in-process cache in front of Redis, kept coherent by Redis client
//! tracking (RESP3 `CLIENT TRACKING ... BCAST`). Opt-in per function:
//! [`CachedFunctionBuilder::local`](super::CachedFunctionBuilder::local) or
//! `#[cache_wrapper(..., local = true)]` / `local_capacity = N`.
//!
//! # When to turn it on
//!
//! For functions read far more often than their entries change, where a Redis round trip
//! per call is the cost that matters. A local hit sends nothing to Redis and does no zlib:
//! it costs the key (JSON of the arguments, sha256), a concurrent-map lookup and a clone
//! of the kept value (`call_cloned*`), or the JSON decoding of the value (`call*`). Redis
//! stays the source of truth: keys and values there are unchanged (Python `dtpyfw`
//! services keep sharing them), and the tier fills only from values read from Redis.
//!
//! # The coherence guarantee (as tested in `tests/cache_local.rs` and `tests/cache_coherence.rs`)
//!
//! - Across processes (`cache_coherence`, on Redis 7.0 and Valkey 8.1): 2 writer
//!   processes update versioned values of 16 keys with random pauses, a reader process
//!   runs 4 tasks on this tier; each task's versions of a key never go backwards, and a
//!   read started 50 ms or more after a write of its key completed returns that version
//!   or a newer one. Also while the tracking connection is killed (`CLIENT KILL`) every
//!   150 ms, and while the server restarts twice (then some reads find no value: they
//!   run the function instead, nothing old is served). 2 000 updates by default,
//!   10 000 with `DTRSFW_COHERENCE_UPDATES=10000`.
//! - Once the invalidation of a key has reached this process (a push on the tracking
//!   connection, or this process's own `invalidate`, `invalidate_namespace` or
//!   `cache_data`), no call returns the value the key had before that write, even when a
//!   fill read the old value concurrently (the *epoch* rule below).
//! - Every writer counts: another process of ours, a Python `dtpyfw` service (its `DEL` +
//!   `SETEX`), `dtredis cache invalidate`, `invalidate_namespace`, expiry and eviction
//!   (the server reports them), `FLUSHALL`/`FLUSHDB` (a flush of the tier).
//! - An entry never outlives the key's TTL in Redis: the TTL is read (`PTTL`, pipelined
//!   with the `GET`: one round trip) when filling and becomes the entry's lifetime.
//! - While the tracking connection is down or reconnecting, the tier is flushed and
//!   bypassed: calls go to Redis as without the tier, until tracking is on again.
//! - The window: a write becomes invisible here when its invalidation arrives, i.e. one
//!   network trip after the write (see the `cache_invalidation_visible` bench row). A
//!   connection that dies silently (no FIN, no RST) is noticed by a `PING` every
//!   [`PING_EVERY`] answered within [`PING_TIMEOUT`]:
//!   that is the worst case window in that failure. A connection that is closed (a
//!   `CLIENT KILL`, a server restart) is noticed as soon as the tracker thread runs:
//!   within microseconds on a host with a free core, later on one that starves that
//!   thread, and the window grows by that delay (writes made meanwhile send this
//!   process no invalidation).
//!
//! # Design
//!
//! **Tracking mode: BCAST with the namespace prefixes.** In the default mode the server
//! remembers the keys *each connection read* and invalidates those; our reads happen on
//! the instance's shared multiplexed client and the sync side's short-timeout
//! connections, so every one of them would have to send `CLIENT TRACKING on REDIRECT
//! <id>` and send it again after each of redis-rs's silent reconnects, for which redis-rs
//! gives no hook; a read on a connection that missed it would fill the tier untracked.
//! BCAST needs one connection that subscribes to prefixes, whichever connection reads.
//! Its cost: the server sends us an invalidation for every write under the prefixes,
//! including keys we do not hold (cheap to drop; a namespace with heavy writes and few
//! local reads should not use the tier), and no per-key memory on the server. The
//! prefix of a namespace `ns` is `ns` (so the no-argument key `ns` is covered; `nsx...`
//! keys also match, which only costs spurious invalidations). Prefixes may not overlap
//! in Redis, so the subscribed set is the minimal cover (`a` covers `a:b`); an empty
//! namespace subscribes to every key.
//!
//! **The invalidation connection** is dedicated (never the shared client): a redis-rs
//! `MultiplexedConnection` opened with `ProtocolVersion::RESP3` and
//! `AsyncConnectionConfig::set_push_sender` (a tokio channel); tracking is switched on
//! *on that same connection* (RESP3 delivers pushes on the connection itself, so no
//! `REDIRECT` and no second connection). It is driven by one thread per server, with a
//! current-thread tokio runtime of its own, so sync users need no runtime. The thread
//! reads `PushKind::Invalidate` (an array of keys, or nil for a flush),
//! `PushKind::Disconnection` (redis-rs's notice that the socket closed) and `PING`s every
//! second; on any failure it flushes, marks the tier down and reconnects with a backoff
//! (100 ms doubling to 2 s while sessions keep failing; back to 100 ms after a session
//! that lasted 2 s). A namespace registered after tracking started (a new local
//! function) changes the prefix set: the tier is flushed and the connection reopened
//! with the new set.
//!
//! **Epochs** (`coherence.rs`): one counter per server, bumped by every invalidation and
//! flush. Each invalidated key also writes the new count into one of 16 384 slots chosen
//! by the key's hash; a flush writes it into a flush mark. A fill takes a ticket (the
//! counter) *before* its `GET` and keeps it in the entry it inserts. A ticket is
//! *admitted* while tracking is up and neither the key's slot nor the flush mark moved
//! past it. A hit serves an entry only while its ticket is admitted: an invalidation
//! bumps the slot *before* removing the key, so from the bump on no hit serves a value
//! read before it, even one that a fill, preempted between its check and its insert,
//! puts into the map after the removal (removal alone cannot close that window). The
//! fill still checks before inserting (no insert of a refused value) and after (to
//! remove an entry no hit would serve rather than keep it until evicted). A
//! hash collision only refuses a hit or a fill. The slots are a fixed array: no memory
//! per key, no locks on the hit path, whose added cost is one hash of the key and three
//! atomic loads.
//!
//! **What is stored** (`form.rs`): for `call_cloned*` (what `#[cache_wrapper(local)]`
//! calls) the decoded value itself, type-erased (`Arc<dyn Any + Send + Sync>`), so a hit
//! is a downcast and a clone: no JSON. That is why those methods ask `T: Clone + Send +
//! Sync + 'static` (a large value can be returned as an `Arc<T>`, whose clone is a
//! reference count). The plain `call*` methods keep their bounds (no `Clone`) and keep
//! the value's JSON, decoded on every hit. One flow serves both (`LocalForm`); an entry
//! kept in the other form or type is not served, the call reads Redis (call one function
//! one way). An entry's size is its JSON's length, whichever form is kept.
//! Both bounds in one `moka` weight: an entry weighs `max(its bytes, max_bytes /
//! max_entries)` against a capacity of `max_bytes`, so neither the total of bytes nor the
//! number of entries can pass its bound (an entry's bytes: key + JSON + 64 of overhead).
//!
//! **redis-rs's `cache-aio` (experimental) is not used**: it caches the raw (here:
//! zlib-compressed) reply bytes, so a hit would still pay zlib and JSON; it is async only
//! (our sync API would get nothing); it tracks in the default mode on the connection that
//! reads, which is the shared `ConnectionManager` of every user of the instance, caching
//! every `GET` of the process, not the functions that opted in; and it has no BCAST, no
//! bound in bytes, no per-function opt-in.
//!
//! **Redis Cluster: every node that serves slots is tracked.** One tracker session
//! covers the cluster: the nodes are read from `CLUSTER SLOTS` (on a cluster connection
//! of the session's own, not the shared client), the primaries *and* the replicas it
//! lists (the server leaves out failed replicas), and each gets a dedicated RESP3
//! connection (`links.rs`; the node's address with the first seed's credentials and TLS
//! settings) with the same `CLIENT TRACKING ON BCAST PREFIX ...`. All of them send their
//! pushes into one channel, so one loop applies them to the one set of epochs: the epoch
//! rule above holds unchanged. The tier is up only once every node of that topology is
//! subscribed. Every [`PING_EVERY`] each connection is asked `CLUSTER SLOTS` (the check
//! that it is alive, and the node's view of the topology): if a node reports one we do
//! not track (a node added, a slot moved to it, a replica that just became available),
//! the tier is flushed and a new session subscribes the new set. A node that leaves the
//! topology stays subscribed (harmless) until the session ends.
//!
//! Why replicas too: after a manual `CLUSTER FAILOVER` the promoted replica was already
//! subscribed and the old primary, now a replica, keeps its connection (and still sends
//! invalidations for the writes it replicates), so no window opens at the promotion and
//! nothing is flushed (`tests/cache_local_cluster.rs` checks it past two checks of the
//! links: the copy is still served locally, then a write through the new primary is seen;
//! tracking primaries only, that test fails). The cost: the server's invalidation of a
//! write arrives from the primary and again from each replica (a spurious second
//! invalidation: a refill), and one connection per node.
//!
//! What a node loss costs: when any connection is lost (a node killed, `CLIENT KILL`) the
//! session fails, the tier is flushed and bypassed (calls go to Redis, which fails over
//! as without the tier) and a new session re-reads the topology with the usual backoff.
//! While the dead primary is still listed (until a replica is promoted, about
//! `cluster-node-timeout` plus an election) it cannot be subscribed, so the whole tier,
//! every primary's keys, stays bypassed until the new topology is subscribed: in
//! `tests/cache_local_cluster.rs` (`cluster-node-timeout` 1000 ms, Redis 7.0 and Valkey
//! 8.1, 3 runs each) the replica was promoted 2.1–2.9 s after the `kill -9` and local
//! hits were back by 3.2–3.3 s (an upper bound: the test checks other things between).
//!
//! The windows that remain: a write is invisible here until its invalidation arrives
//! (one network trip, as on one server); a node that starts serving slots without having
//! been listed before (a new node, or a replica that was not yet available when the
//! session read the topology, then promoted) serves reads unsubscribed until the next
//! check notices it, at most [`PING_EVERY`] plus a `CLUSTER SLOTS` round trip; a node's
//! connection that dies silently is noticed by the same check, within [`PING_EVERY`] +
//! [`PING_TIMEOUT`].
//!
//! Layers: `coherence` (epochs, no I/O) · `form` (what is kept: JSON or the typed
//! value) · `store` (the `moka` tier of one function, [`LocalTier`]) · `links` (one
//! session's invalidation connections: the server, or every node of a cluster) ·
//! `tracker` (the thread running one session after the other) · `server` (per-server
//! state: which stores, which prefixes, the tracker) · `slot` (a function's handle on its
//! store).

mod coherence;
mod form;
mod links;
mod server;
mod slot;
mod store;
mod tracker;

pub(crate) use self::coherence::Ticket;
pub(crate) use self::form::{AsJson, LocalForm, Typed};
pub use self::links::{PING_EVERY, PING_TIMEOUT};
pub(crate) use self::server::Tracking;
pub(crate) use self::slot::LocalSlot;
pub(crate) use self::store::LocalStore;
pub use self::store::{DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, LocalTier};
