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
use std::path::Path;
use std::sync::Mutex;

use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};

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
#[derive(Debug)]
pub struct RocksStore {
    db: DB,
}

impl RocksStore {
    /// Open or create a ledger directory.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, true)
    }

    /// Open an existing ledger; a missing directory or database is an error, nothing is created.
    pub fn open_existing(path: impl AsRef<Path>) -> Result<Self> {
        let p = path.as_ref();
        if !p.join("CURRENT").is_file() {
            return Err(LedgerError::Store(format!(
                "{} is not a fedchain ledger (no RocksDB database there)",
                p.display()
            )));
        }
        Self::open_with(p, false)
    }

    fn open_with(path: impl AsRef<Path>, create: bool) -> Result<Self> {
        let mut opts = Options::default();
        opts.create_if_missing(create);
        // the database itself must exist when `!create`; a column family added by a later
        // version (pending) is created empty on first open
        opts.create_missing_column_families(true);
        let cfs = Column::ALL
            .iter()
            .map(|c| ColumnFamilyDescriptor::new(c.name(), Options::default()));
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        Ok(Self { db })
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

    /// Raw access for repair tooling and tamper tests.
    pub fn raw_get(&self, c: Column, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get(c, key)
    }

    /// Raw overwrite for tamper tests.
    pub fn raw_put(&self, c: Column, key: &[u8], value: &[u8]) -> Result<()> {
        self.db
            .put_cf_opt(self.cf(c)?, key, value, &Self::synced())?;
        Ok(())
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
        self.db
            .put_cf_opt(self.cf(Column::Payloads)?, d.0, bytes, &Self::synced())?;
        Ok(d)
    }
    fn put_pending(&self, seq: u64, record: &[u8], payload: &[u8]) -> Result<Hash> {
        let d = Hash::sha256(payload);
        let mut wb = WriteBatch::default();
        wb.put_cf(self.cf(Column::Payloads)?, d.0, payload);
        wb.put_cf(self.cf(Column::Pending)?, seq.to_be_bytes(), record);
        self.db.write_opt(wb, &Self::synced())?;
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
        self.db.write_opt(wb, &Self::synced())?;
        Ok(())
    }
    fn commit(&self, b: &CommitBatch) -> Result<()> {
        let mut wb = WriteBatch::default();
        let hk = Self::height_key(b.height);
        wb.put_cf(self.cf(Column::Headers)?, hk, &b.header);
        wb.put_cf(self.cf(Column::Bodies)?, hk, &b.body);
        let txs = self.cf(Column::Txs)?;
        for (i, t) in b.tx_hashes.iter().enumerate() {
            let mut v = hk.to_vec();
            v.extend_from_slice(&(i as u32).to_be_bytes());
            wb.put_cf(txs, t.0, v);
        }
        wb.put_cf(self.cf(Column::State)?, STATE_KEY, &b.state);
        let mut head = hk.to_vec();
        head.extend_from_slice(&b.header_hash.0);
        wb.put_cf(self.cf(Column::Meta)?, HEAD_KEY, head);
        if let Some(g) = &b.genesis {
            wb.put_cf(self.cf(Column::Meta)?, GENESIS_KEY, g);
        }
        self.db.write_opt(wb, &Self::synced())?;
        Ok(())
    }
}
