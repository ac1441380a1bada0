//! Storage behind a trait: an in-memory store and a RocksDB store pass one test suite.
//!
//! The store keeps raw canonical bytes (header, body, state) so an audit can detect any
//! flipped byte. Committing a block is one atomic write of its header, body, transaction
//! index, the state it produces and the new head (a RocksDB WriteBatch, synced). Payloads are
//! content-addressed and written (synced) before a submission is acknowledged.
//!
//! Messages the aggregator accepted for the open round but has not yet seen committed are
//! kept as *pending* records (key: a sequence number, 8 bytes big-endian; value: the caller's
//! record), written in one atomic, synced write together with their payload, so an accepted
//! submission is durable before it is acknowledged and a restarted aggregator can replay them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rocksdb::{ColumnFamilyDescriptor, DBRecoveryMode, Options, WriteBatch, WriteOptions, DB};

use crate::dir::{self, Anchor, DirLock, StoreError};
use crate::types::Hash;
use crate::{LedgerError, Result};

/// Everything one block commit writes, atomically.
#[derive(Debug)]
pub struct CommitBatch {
    pub height: u64,
    pub header_hash: Hash,
    pub header: Vec<u8>,
    pub body: Vec<u8>,
    pub state: Vec<u8>,
    pub tx_hashes: Vec<Hash>,
    /// The genesis configuration (written with block 0 only).
    pub genesis: Option<Vec<u8>>,
}

/// The chain's head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub height: u64,
    pub hash: Hash,
}

/// What [`Store::scan`] calls with each (key, value) of a column; an error stops the scan.
pub type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<()> + 'a;

/// Ledger storage.
pub trait Store: Send + Sync {
    /// The last committed block, if any.
    fn head(&self) -> Result<Option<Head>>;
    /// Raw header bytes at a height.
    fn header(&self, height: u64) -> Result<Option<Vec<u8>>>;
    /// Raw body bytes at a height.
    fn body(&self, height: u64) -> Result<Option<Vec<u8>>>;
    /// Raw bytes of the state after the head block.
    fn state(&self) -> Result<Option<Vec<u8>>>;
    /// Where a transaction is: (height, index in body).
    fn tx_location(&self, tx: &Hash) -> Result<Option<(u64, u32)>>;
    /// A payload by digest.
    fn payload(&self, digest: &Hash) -> Result<Option<Vec<u8>>>;
    /// Store a payload under its SHA-256 digest; durable when this returns.
    fn put_payload(&self, bytes: &[u8]) -> Result<Hash>;
    /// Commit a block atomically.
    fn commit(&self, batch: &CommitBatch) -> Result<()>;
    /// The genesis configuration this ledger was created with.
    fn genesis(&self) -> Result<Option<Vec<u8>>>;
    /// Record an accepted, not yet committed message under sequence number `seq` together
    /// with its payload (stored under its SHA-256 digest), in one atomic write that is
    /// durable when this returns. Gives the payload's digest.
    fn put_pending(&self, seq: u64, record: &[u8], payload: &[u8]) -> Result<Hash>;
    /// Every pending record, in sequence order.
    fn pending(&self) -> Result<Vec<(u64, Vec<u8>)>>;
    /// Forget pending records (their round was committed or voided); payloads stay.
    fn remove_pending(&self, seqs: &[u64]) -> Result<()>;
    /// Every entry of a column as stored (key, value), so the audit can check each column in
    /// full, the transaction index included.
    fn scan(&self, c: Column, f: &mut Visit<'_>) -> Result<()>;

    /// Whether a payload is present. Payloads are keyed by the SHA-256 of their bytes when
    /// written, so presence means it hashed to its digest then; later damage is what the
    /// audit's [`Store::has_valid_payload`] looks for.
    fn has_payload(&self, digest: &Hash) -> bool {
        matches!(self.payload(digest), Ok(Some(_)))
    }

    /// Whether a payload is present and hashes to its digest now (re-reads and re-hashes).
    fn has_valid_payload(&self, digest: &Hash) -> bool {
        matches!(self.payload(digest), Ok(Some(b)) if Hash::sha256(&b) == *digest)
    }
}

#[derive(Default, Debug)]
struct Mem {
    headers: BTreeMap<u64, Vec<u8>>,
    bodies: BTreeMap<u64, Vec<u8>>,
    state: Option<Vec<u8>>,
    genesis: Option<Vec<u8>>,
    head: Option<Head>,
    txs: HashMap<Hash, (u64, u32)>,
    payloads: HashMap<Hash, Vec<u8>>,
    pending: BTreeMap<u64, Vec<u8>>,
}

/// A store in memory (tests, simulations that need no disk).
#[derive(Default, Debug)]
pub struct MemoryStore(Mutex<Mem>);

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Mem> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Overwrite raw bytes (tests of tamper detection).
    pub fn tamper(&self, what: Column, key: &[u8], value: Vec<u8>) {
        let mut m = self.lock();
        match what {
            Column::Headers => {
                m.headers.insert(height_of(key), value);
            }
            Column::Bodies => {
                m.bodies.insert(height_of(key), value);
            }
            Column::State => m.state = Some(value),
            Column::Payloads => {
                let mut d = [0u8; 32];
                d.copy_from_slice(&key[..32.min(key.len())]);
                m.payloads.insert(Hash(d), value);
            }
            Column::Txs | Column::Meta | Column::Pending => {}
        }
    }
}

/// A tx index value: height (8 bytes) and index in the body (4 bytes), big-endian.
pub fn tx_location_bytes(height: u64, index: u32) -> [u8; 12] {
    let mut v = [0u8; 12];
    v[..8].copy_from_slice(&height.to_be_bytes());
    v[8..].copy_from_slice(&index.to_be_bytes());
    v
}

/// The head record: height (8 bytes, big-endian) and header hash.
fn head_bytes(h: &Head) -> [u8; 40] {
    let mut v = [0u8; 40];
    v[..8].copy_from_slice(&h.height.to_be_bytes());
    v[8..].copy_from_slice(&h.hash.0);
    v
}

fn height_of(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&key[..8.min(key.len())]);
    u64::from_be_bytes(b)
}

impl Store for MemoryStore {
    fn head(&self) -> Result<Option<Head>> {
        Ok(self.lock().head)
    }
    fn header(&self, height: u64) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().headers.get(&height).cloned())
    }
    fn body(&self, height: u64) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().bodies.get(&height).cloned())
    }
    fn state(&self) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().state.clone())
    }
    fn tx_location(&self, tx: &Hash) -> Result<Option<(u64, u32)>> {
        Ok(self.lock().txs.get(tx).copied())
    }
    fn payload(&self, digest: &Hash) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().payloads.get(digest).cloned())
    }
    fn has_payload(&self, digest: &Hash) -> bool {
        self.lock().payloads.contains_key(digest)
    }
    fn genesis(&self) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().genesis.clone())
    }
    fn put_payload(&self, bytes: &[u8]) -> Result<Hash> {
        let d = Hash::sha256(bytes);
        self.lock().payloads.insert(d, bytes.to_vec());
        Ok(d)
    }
    fn put_pending(&self, seq: u64, record: &[u8], payload: &[u8]) -> Result<Hash> {
        let d = Hash::sha256(payload);
        let mut m = self.lock();
        m.payloads.insert(d, payload.to_vec());
        m.pending.insert(seq, record.to_vec());
        Ok(d)
    }
    fn pending(&self) -> Result<Vec<(u64, Vec<u8>)>> {
        Ok(self
            .lock()
            .pending
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect())
    }
    fn remove_pending(&self, seqs: &[u64]) -> Result<()> {
        let mut m = self.lock();
        for s in seqs {
            m.pending.remove(s);
        }
        Ok(())
    }
    fn scan(&self, c: Column, f: &mut Visit<'_>) -> Result<()> {
        let m = self.lock();
        match c {
            Column::Headers | Column::Bodies => {
                let map = if c == Column::Headers {
                    &m.headers
                } else {
                    &m.bodies
                };
                for (h, v) in map {
                    f(&h.to_be_bytes(), v)?;
                }
            }
            Column::Txs => {
                for (t, (h, i)) in &m.txs {
                    f(&t.0, &tx_location_bytes(*h, *i))?;
                }
            }
            Column::State => {
                if let Some(v) = &m.state {
                    f(STATE_KEY, v)?;
                }
            }
            Column::Payloads => {
                for (d, v) in &m.payloads {
                    f(&d.0, v)?;
                }
            }
            Column::Meta => {
                if let Some(h) = &m.head {
                    f(HEAD_KEY, &head_bytes(h))?;
                }
                if let Some(g) = &m.genesis {
                    f(GENESIS_KEY, g)?;
                }
            }
            Column::Pending => {
                for (s, v) in &m.pending {
                    f(&s.to_be_bytes(), v)?;
                }
            }
        }
        Ok(())
    }
    fn commit(&self, b: &CommitBatch) -> Result<()> {
        let mut m = self.lock();
        m.headers.insert(b.height, b.header.clone());
        m.bodies.insert(b.height, b.body.clone());
        m.state = Some(b.state.clone());
        for (i, t) in b.tx_hashes.iter().enumerate() {
            m.txs.insert(*t, (b.height, i as u32));
        }
        if let Some(g) = &b.genesis {
            m.genesis = Some(g.clone());
        }
        m.head = Some(Head {
            height: b.height,
            hash: b.header_hash,
        });
        Ok(())
    }
}

/// The RocksDB column families.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    Headers,
    Bodies,
    Txs,
    State,
    Payloads,
    Meta,
    /// Accepted messages of the open round not yet known committed (key: sequence number).
    Pending,
}

impl Column {
    pub const ALL: [Column; 7] = [
        Column::Headers,
        Column::Bodies,
        Column::Txs,
        Column::State,
        Column::Payloads,
        Column::Meta,
        Column::Pending,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Column::Headers => "headers",
            Column::Bodies => "bodies",
            Column::Txs => "txs",
            Column::State => "state",
            Column::Payloads => "payloads",
            Column::Meta => "meta",
            Column::Pending => "pending",
        }
    }
}

const HEAD_KEY: &[u8] = b"head";
const GENESIS_KEY: &[u8] = b"genesis";
const STATE_KEY: &[u8] = b"current";

/// A RocksDB store: column families headers / bodies (key: height, big-endian), txs (tx hash ->
/// height, index), state (the current state), payloads (digest -> bytes), meta (`head`: height
/// and header hash; `genesis`: the genesis configuration),
/// pending (sequence number -> accepted, uncommitted message record).
///
/// Opening never lies and never harms: a writer ([`RocksStore::open`], [`RocksStore::create`],
/// [`RocksStore::open_existing`]) owns the directory (`FEDCHAIN-LOCK`), creates a store only in
/// an empty or absent directory, runs RocksDB with paranoid checks and a WAL recovery mode that
/// refuses a damaged log, checks the store against its anchor (`FEDCHAIN-ANCHOR`, see
/// [`crate::dir`]) with a read-only open *before* the read-write open can change anything, and
/// advances the anchor after every commit. A reader ([`RocksStore::open_read_only`]) opens
/// RocksDB read-only with its info log outside the directory and writes no byte there.
#[derive(Debug)]
pub struct RocksStore {
    db: DB,
    dir: PathBuf,
    /// Writers advance the anchor after each commit; readers never write.
    writer: bool,
    /// The writer's ownership of `dir` (dropped after `db`).
    _lock: Option<DirLock>,
    /// A reader's RocksDB info log (outside the ledger directory; dropped after `db`).
    _log_dir: Option<tempfile::TempDir>,
}

/// The WAL recovery mode of every open. `TolerateCorruptedTailRecords` refuses a log whose
/// records fail their checksum anywhere (a flipped byte: the open fails with `Corruption`)
/// and tolerates only an incomplete last record, which is a write torn by a power loss before
/// its sync returned: never a commit that was acknowledged (every commit is synced, and the
/// anchor is written after the sync). RocksDB's default, `PointInTime`, instead stops the
/// replay at the first bad record and silently drops everything after it (issue #13 case 1);
/// `AbsoluteConsistency` would also refuse the torn, never-acknowledged tail after a power
/// loss and leave the ledger unopenable.
const WAL_RECOVERY: DBRecoveryMode = DBRecoveryMode::TolerateCorruptedTailRecords;

fn options(create: bool) -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(create);
    opts.set_paranoid_checks(true);
    opts.set_wal_recovery_mode(WAL_RECOVERY);
    opts
}

fn rocks_err(path: &Path) -> impl Fn(rocksdb::Error) -> StoreError + '_ {
    move |e| StoreError::Rocks {
        path: path.to_path_buf(),
        reason: e.into_string(),
    }
}

impl RocksStore {
    /// Open the ledger in `path`, or create one if the directory is absent or empty. A
    /// non-empty directory without a valid store is `StoreError::NotALedger`, never a fresh
    /// start.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let p = path.as_ref();
        if dir::is_vacant(p)? {
            Self::create(p)
        } else {
            Self::open_existing(p)
        }
    }

    /// Create a ledger in an absent or empty directory (`StoreError::NotEmpty` otherwise).
    pub fn create(path: impl AsRef<Path>) -> Result<Self> {
        let p = path.as_ref();
        std::fs::create_dir_all(p).map_err(|e| StoreError::Io {
            path: p.to_path_buf(),
            reason: e.to_string(),
        })?;
        let lock = DirLock::acquire(p)?;
        if !dir::is_vacant(p)? {
            return Err(StoreError::NotEmpty {
                path: p.to_path_buf(),
            }
            .into());
        }
        let mut opts = options(true);
        opts.create_missing_column_families(true);
        let db = DB::open_cf_descriptors(&opts, p, Self::descriptors(Column::ALL.iter()))
            .map_err(rocks_err(p))?;
        Ok(Self {
            db,
            dir: p.to_path_buf(),
            writer: true,
            _lock: Some(lock),
            _log_dir: None,
        })
    }

    /// Open an existing ledger for writing; a missing directory or database is an error and
    /// nothing is created. The store is checked against its anchor by a read-only open first,
    /// so a store that lost blocks is refused before RocksDB's recovery can change a file.
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Self> {
        let p = path.as_ref();
        Self::check_present(p)?;
        let lock = DirLock::acquire(p)?;
        // recovery as a reader first: WAL, MANIFEST and anchor checked, nothing written
        drop(Self::open_read_only(p)?);
        let mut opts = options(false);
        // the database itself must exist; a column family added by a later version (pending)
        // is created empty on first open
        opts.create_missing_column_families(true);
        let db = DB::open_cf_descriptors(&opts, p, Self::descriptors(Column::ALL.iter()))
            .map_err(rocks_err(p))?;
        let s = Self {
            db,
            dir: p.to_path_buf(),
            writer: true,
            _lock: Some(lock),
            _log_dir: None,
        };
        s.check_anchor()?;
        Ok(s)
    }

    /// Open an existing ledger read-only (audit, inspect, export): RocksDB's read-only mode
    /// with its info log in a temporary directory, so no byte of `path` changes and a
    /// read-only copy opens. The store is checked against its anchor.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self> {
        let p = path.as_ref();
        Self::check_present(p)?;
        let log_dir = tempfile::tempdir().map_err(|e| StoreError::Io {
            path: std::env::temp_dir(),
            reason: e.to_string(),
        })?;
        let mut opts = options(false);
        opts.set_db_log_dir(log_dir.path());
        let present = DB::list_cf(&opts, p).map_err(|e| StoreError::NotALedger {
            path: p.to_path_buf(),
            reason: e.into_string(),
        })?;
        let cfs = Column::ALL
            .iter()
            .filter(|c| present.iter().any(|n| n == c.name()));
        let db = DB::open_cf_descriptors_read_only(&opts, p, Self::descriptors(cfs), false)
            .map_err(rocks_err(p))?;
        let s = Self {
            db,
            dir: p.to_path_buf(),
            writer: false,
            _lock: None,
            _log_dir: Some(log_dir),
        };
        s.check_anchor()?;
        Ok(s)
    }

    fn descriptors<'a>(
        cfs: impl Iterator<Item = &'a Column> + 'a,
    ) -> impl Iterator<Item = ColumnFamilyDescriptor> + 'a {
        cfs.map(|c| ColumnFamilyDescriptor::new(c.name(), Options::default()))
    }

    /// The directory must exist and hold a RocksDB database (its `CURRENT` file).
    fn check_present(p: &Path) -> Result<(), StoreError> {
        if !p.is_dir() {
            return Err(StoreError::Missing {
                path: p.to_path_buf(),
            });
        }
        if !p.join("CURRENT").is_file() {
            return Err(StoreError::NotALedger {
                path: p.to_path_buf(),
                reason: "no RocksDB CURRENT file".into(),
            });
        }
        Ok(())
    }

    /// The store must hold the anchor's block: its head at or above the anchor's height, and
    /// the header at that height hashing to the anchor's hash.
    fn check_anchor(&self) -> Result<(), StoreError> {
        let Some(anchor) = Anchor::read(&self.dir)? else {
            return Ok(());
        };
        let path = self.dir.clone();
        let bad = |reason: String| StoreError::NotALedger {
            path: path.clone(),
            reason,
        };
        let stored = self.head().map_err(|e| bad(e.to_string()))?;
        let head = stored.map_or(0, |h| h.height);
        if stored.is_none() || head < anchor.height {
            return Err(StoreError::BehindAnchor {
                path,
                head,
                anchor: anchor.height,
            });
        }
        let header = self
            .header(anchor.height)
            .map_err(|e| bad(e.to_string()))?
            .ok_or_else(|| StoreError::BehindAnchor {
                path: path.clone(),
                head,
                anchor: anchor.height,
            })?;
        let found = header_hash(&header);
        if found != anchor.hash {
            return Err(StoreError::AnchorMismatch {
                path,
                height: anchor.height,
                expected: anchor.hash,
                found,
            });
        }
        Ok(())
    }

    /// The ledger directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether this handle may write (false for [`RocksStore::open_read_only`]).
    pub fn is_writer(&self) -> bool {
        self.writer
    }

    fn cf(&self, c: Column) -> Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(c.name())
            .ok_or_else(|| LedgerError::Store(format!("missing column family {}", c.name())))
    }

    fn get(&self, c: Column, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(c)?, key)?)
    }

    fn synced() -> WriteOptions {
        let mut w = WriteOptions::default();
        w.set_sync(true);
        w
    }

    fn write(&self, wb: WriteBatch) -> Result<()> {
        if !self.writer {
            return Err(LedgerError::Store(format!(
                "{} is open read-only",
                self.dir.display()
            )));
        }
        self.db.write_opt(wb, &Self::synced())?;
        Ok(())
    }

    /// Raw access for repair tooling and tamper tests.
    pub fn raw_get(&self, c: Column, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get(c, key)
    }

    /// Raw overwrite for tamper tests.
    pub fn raw_put(&self, c: Column, key: &[u8], value: &[u8]) -> Result<()> {
        let mut wb = WriteBatch::default();
        wb.put_cf(self.cf(c)?, key, value);
        self.write(wb)
    }

    /// Raw delete for tamper tests.
    pub fn raw_delete(&self, c: Column, key: &[u8]) -> Result<()> {
        let mut wb = WriteBatch::default();
        wb.delete_cf(self.cf(c)?, key);
        self.write(wb)
    }

    /// Key of a block at `height`.
    pub fn height_key(height: u64) -> [u8; 8] {
        height.to_be_bytes()
    }

    /// Key of the current state.
    pub fn state_key() -> &'static [u8] {
        STATE_KEY
    }
}

/// The hash of a block header from its stored (canonical) bytes.
pub fn header_hash(bytes: &[u8]) -> Hash {
    Hash::of(b"fedchain/header/v1", &[bytes])
}

impl Store for RocksStore {
    fn head(&self) -> Result<Option<Head>> {
        match self.get(Column::Meta, HEAD_KEY)? {
            None => Ok(None),
            Some(b) if b.len() == 40 => {
                let mut h = [0u8; 32];
                h.copy_from_slice(&b[8..]);
                Ok(Some(Head {
                    height: height_of(&b),
                    hash: Hash(h),
                }))
            }
            Some(b) => Err(LedgerError::Store(format!(
                "head record of {} bytes",
                b.len()
            ))),
        }
    }
    fn header(&self, height: u64) -> Result<Option<Vec<u8>>> {
        self.get(Column::Headers, &Self::height_key(height))
    }
    fn body(&self, height: u64) -> Result<Option<Vec<u8>>> {
        self.get(Column::Bodies, &Self::height_key(height))
    }
    fn state(&self) -> Result<Option<Vec<u8>>> {
        self.get(Column::State, STATE_KEY)
    }
    fn tx_location(&self, tx: &Hash) -> Result<Option<(u64, u32)>> {
        Ok(self
            .get(Column::Txs, &tx.0)?
            .filter(|b| b.len() == 12)
            .map(|b| {
                let mut i = [0u8; 4];
                i.copy_from_slice(&b[8..]);
                (height_of(&b), u32::from_be_bytes(i))
            }))
    }
    fn payload(&self, digest: &Hash) -> Result<Option<Vec<u8>>> {
        self.get(Column::Payloads, &digest.0)
    }
    fn has_payload(&self, digest: &Hash) -> bool {
        self.cf(Column::Payloads)
            .ok()
            .and_then(|cf| self.db.get_pinned_cf(cf, digest.0).ok().flatten())
            .is_some()
    }
    fn genesis(&self) -> Result<Option<Vec<u8>>> {
        self.get(Column::Meta, GENESIS_KEY)
    }
    fn put_payload(&self, bytes: &[u8]) -> Result<Hash> {
        let d = Hash::sha256(bytes);
        let mut wb = WriteBatch::default();
        wb.put_cf(self.cf(Column::Payloads)?, d.0, bytes);
        self.write(wb)?;
        Ok(d)
    }
    fn put_pending(&self, seq: u64, record: &[u8], payload: &[u8]) -> Result<Hash> {
        let d = Hash::sha256(payload);
        let mut wb = WriteBatch::default();
        wb.put_cf(self.cf(Column::Payloads)?, d.0, payload);
        wb.put_cf(self.cf(Column::Pending)?, seq.to_be_bytes(), record);
        self.write(wb)?;
        Ok(d)
    }
    fn pending(&self) -> Result<Vec<(u64, Vec<u8>)>> {
        let cf = self.cf(Column::Pending)?;
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
            let (k, v) = item?;
            if k.len() != 8 {
                return Err(LedgerError::Store(format!(
                    "pending record with a {}-byte key",
                    k.len()
                )));
            }
            out.push((height_of(&k), v.to_vec()));
        }
        Ok(out)
    }
    fn remove_pending(&self, seqs: &[u64]) -> Result<()> {
        let cf = self.cf(Column::Pending)?;
        let mut wb = WriteBatch::default();
        for s in seqs {
            wb.delete_cf(cf, s.to_be_bytes());
        }
        self.write(wb)?;
        Ok(())
    }
    fn scan(&self, c: Column, f: &mut Visit<'_>) -> Result<()> {
        let cf = self.cf(c)?;
        for item in self.db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
            let (k, v) = item?;
            f(&k, &v)?;
        }
        Ok(())
    }
    fn commit(&self, b: &CommitBatch) -> Result<()> {
        let mut wb = WriteBatch::default();
        let hk = Self::height_key(b.height);
        wb.put_cf(self.cf(Column::Headers)?, hk, &b.header);
        wb.put_cf(self.cf(Column::Bodies)?, hk, &b.body);
        let txs = self.cf(Column::Txs)?;
        for (i, t) in b.tx_hashes.iter().enumerate() {
            wb.put_cf(txs, t.0, tx_location_bytes(b.height, i as u32));
        }
        wb.put_cf(self.cf(Column::State)?, STATE_KEY, &b.state);
        let head = Head {
            height: b.height,
            hash: b.header_hash,
        };
        wb.put_cf(self.cf(Column::Meta)?, HEAD_KEY, head_bytes(&head));
        if let Some(g) = &b.genesis {
            wb.put_cf(self.cf(Column::Meta)?, GENESIS_KEY, g);
        }
        self.write(wb)?;
        // after the sync: the anchor is never ahead of what the store durably holds
        Anchor {
            height: b.height,
            hash: b.header_hash,
        }
        .write(&self.dir)?;
        Ok(())
    }
}
