//! The coordinator and worker services talking through plain in-process queues. Every message
//! crosses the "network" as bincode bytes, so the messages are wire-ready; the transport's
//! authenticated peer identity is the queue entry's address.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use fedchain_coordinator::service::{
    CoordinatorMsg, CoordinatorService, Outbound, Outcome, Refusal, WorkerMsg, WorkerService,
};
use fedchain_coordinator::simulate::run_one;
use fedchain_coordinator::{Consortium, Quiet, SimulateConfig};
use fedchain_ledger::{Address, Store, TxKind};
use fedchain_worker::{ShareRefusal, WorkerError};

/// 512-bit key (tests only), breast cancer, 4 hospitals, t = 3 (also the minimum).
fn small(rounds: u32) -> SimulateConfig {
    SimulateConfig {
        key_bits: 512,
        hospitals: 4,
        threshold: 3,
        rounds,
        validators: 3,
        baseline: false,
        ..SimulateConfig::default()
    }
}

fn wire<T: serde::Serialize>(m: &T) -> Vec<u8> {
    bincode::serialize(m).unwrap()
}

/// One coordinator, the workers, and two FIFO queues of serialized messages.
struct Net {
    coord: Option<CoordinatorService>,
    /// `None`: the worker has vanished (its messages are lost).
    workers: BTreeMap<Address, Option<WorkerService>>,
    order: Vec<Address>,
    to_coord: VecDeque<(Address, Vec<u8>)>,
    to_workers: VecDeque<(Address, Vec<u8>)>,
    /// What workers refused, in order.
    refusals: Vec<(Address, WorkerError)>,
}

impl Net {
    fn new(c: &Consortium, dir: &Path) -> Self {
        let mut hospitals = c.hospitals().unwrap();
        let coord = CoordinatorService::create(dir, c, &mut hospitals).unwrap();
        let job = coord.job();
        let mut net = Self {
            coord: Some(coord),
            workers: BTreeMap::new(),
            order: Vec::new(),
            to_coord: VecDeque::new(),
            to_workers: VecDeque::new(),
            refusals: Vec::new(),
        };
        for (i, h) in hospitals.into_iter().enumerate() {
            let w = WorkerService::new(h, job, c.cfg.seed, i);
            net.order.push(w.address());
            net.connect(w);
        }
        net
    }

    fn coord(&mut self) -> &mut CoordinatorService {
        self.coord.as_mut().unwrap()
    }

    /// A worker (re)connects: it says hello.
    fn connect(&mut self, w: WorkerService) {
        let a = w.address();
        self.to_coord.push_back((a, wire(&w.hello())));
        self.workers.insert(a, Some(w));
    }

    fn worker(&self, i: usize) -> &WorkerService {
        self.workers[&self.order[i]].as_ref().unwrap()
    }

    fn send(&mut self, out: Vec<Outbound>) {
        for o in out {
            match o {
                Outbound::To(a, m) => self.to_workers.push_back((a, wire(&m))),
                Outbound::All(m) => {
                    let bytes = wire(&m);
                    for a in &self.order {
                        self.to_workers.push_back((*a, bytes.clone()));
                    }
                }
            }
        }
    }

    /// Deliver every queued message (and the replies they cause) until both queues are empty.
    fn pump(&mut self) {
        self.pump_with(|_, reply| reply);
    }

    /// [`Self::pump`], passing each worker reply through `on_the_wire` (an attacker on the
    /// path, or a misbehaving worker) before the coordinator sees it.
    fn pump_with(&mut self, mut on_the_wire: impl FnMut(Address, WorkerMsg) -> WorkerMsg) {
        loop {
            if let Some((a, bytes)) = self.to_workers.pop_front() {
                let Some(Some(w)) = self.workers.get_mut(&a) else {
                    continue; // vanished: lost
                };
                let msg: CoordinatorMsg = bincode::deserialize(&bytes).unwrap();
                // the hospitals check every claim against the final chain (the coordinator's
                // in-process replicas certify each block before it is committed)
                let chain = self.coord.as_ref().map(|c| c.ledger().chain().state());
                match w.on_message_at(msg, chain) {
                    Ok(replies) => {
                        for reply in replies {
                            let reply = on_the_wire(a, reply);
                            self.to_coord.push_back((a, wire(&reply)));
                        }
                    }
                    // a refusal (as the worker process logs and counts it): no reply
                    Err(e) => self.refusals.push((a, e)),
                }
            } else if let Some((from, bytes)) = self.to_coord.pop_front() {
                let msg: WorkerMsg = bincode::deserialize(&bytes).unwrap();
                let out = self.coord().on_message(from, msg).unwrap();
                self.send(out);
            } else {
                return;
            }
        }
    }

    fn start_round(&mut self) {
        let out = self.coord().start_round().unwrap();
        self.send(out);
    }

    fn tick(&mut self) {
        let out = self.coord().on_tick().unwrap();
        self.send(out);
        self.pump();
    }

    /// Run one round with whoever is connected, ticking until it ends.
    fn round(&mut self) {
        let done = self.coord().results().len();
        self.start_round();
        self.pump();
        for _ in 0..20 {
            if self.coord().results().len() > done {
                return;
            }
            self.tick();
        }
        panic!("round did not finish");
    }

    fn audit(&mut self, c: &Consortium) {
        let r = self.coord().audit(c).unwrap();
        assert!(r.rounds_verified >= 1);
    }

    /// Audit a ledger that may hold no committed round.
    fn audit_blocks(&mut self, c: &Consortium) {
        let h = self.coord().ledger().height();
        let r = self.coord().audit(c).unwrap();
        assert_eq!(r.blocks, h + 1);
    }
}

fn last_outcome(w: &WorkerService) -> Outcome {
    w.acks().last().unwrap().outcome.clone()
}

#[test]
fn four_workers_three_rounds_equal_the_simulation_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small(3);
    let c = Consortium::new(&cfg, &mut Quiet).unwrap();
    let t = std::time::Instant::now();
    let mut net = Net::new(&c, &dir.path().join("svc"));
    net.pump();
    for _ in 0..3 {
        net.round();
    }
    let service_s = t.elapsed().as_secs_f64();
    let results = net.coord().results().to_vec();
    assert_eq!(results.len(), 3);
    for r in &results {
        assert!(r.committed, "round {} voided", r.round);
        assert_eq!(r.accepted.len(), 4);
        assert!(r.missing.is_empty());
        assert_eq!(r.share_providers.len(), 3);
    }
    net.audit(&c);
    // every worker saw every round end
    for i in 0..4 {
        assert_eq!(net.worker(i).results().len(), 3);
    }
    let t = std::time::Instant::now();
    let sim = run_one(&cfg, &dir.path().join("sim"), &mut Quiet).unwrap();
    // a figure, not an assertion: services (incl. bincode) vs the simulation (incl. its keygen)
    eprintln!(
        "3 rounds: services {service_s:.2} s, run_one {:.2} s",
        t.elapsed().as_secs_f64()
    );
    assert!(sim.audit.starts_with("ok"), "{}", sim.audit);
    let ours: Vec<u32> = net.coord().params().iter().map(|x| x.to_bits()).collect();
    let theirs: Vec<u32> = sim.final_params.iter().map(|x| x.to_bits()).collect();
    assert_eq!(ours, theirs, "service and simulation models differ");
}

#[test]
fn a_vanished_worker_is_charged_and_rejoins_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let c = Consortium::new(&small(2), &mut Quiet).unwrap();
    let mut net = Net::new(&c, &dir.path().join("svc"));
    net.pump();
    let gone = net.order[3];
    // round 0: all four receive the round, hospital 3 trains but dies before its submission
    // reaches the coordinator
    net.start_round();
    while let Some((a, bytes)) = net.to_workers.pop_front() {
        let msg: CoordinatorMsg = bincode::deserialize(&bytes).unwrap();
        let w = net.workers.get_mut(&a).unwrap().as_mut().unwrap();
        for reply in w.on_message(msg).unwrap() {
            if a != gone {
                net.to_coord.push_back((a, wire(&reply)));
            }
        }
    }
    assert!(net.workers[&gone].as_ref().unwrap().submission(0).is_some());
    net.workers.insert(gone, None);
    net.pump();
    assert_eq!(net.coord().counted().len(), 3);
    for _ in 0..20 {
        if !net.coord().results().is_empty() {
            break;
        }
        net.tick();
    }
    let r0 = net.coord().results()[0].clone();
    assert!(r0.committed, "round 0 should complete with 3 of 4");
    assert_eq!(r0.accepted.len(), 3);
    assert_eq!(r0.missing, vec![gone]);
    let job = net.coord().job();
    let deposit =
        |net: &mut Net, a: &Address| net.coord().ledger().chain().state().jobs[&job].members[a];
    assert_eq!(
        deposit(&mut net, &gone),
        2000 - 200,
        "missed deadline charged"
    );
    let first = net.order[0];
    assert_eq!(deposit(&mut net, &first), 2000);

    // restart: a new worker from the same key and data (nonce 0); the coordinator's welcome
    // tells it where its nonces stand
    let w = WorkerService::new(c.hospital(3).unwrap(), job, c.cfg.seed, 3);
    net.connect(w);
    net.pump();
    net.round();
    let r1 = net.coord().results()[1].clone();
    assert!(r1.committed);
    assert_eq!(r1.accepted.len(), 4, "the restarted worker takes part");
    assert!(r1.missing.is_empty());
    net.audit(&c);
}

#[test]
fn a_round_without_enough_shares_is_voided_after_the_decryption_window() {
    let dir = tempfile::tempdir().unwrap();
    let c = Consortium::new(&small(1), &mut Quiet).unwrap();
    let mut net = Net::new(&c, &dir.path().join("svc"));
    net.pump();
    net.start_round();
    // everyone submits; then two holders vanish: 2 < t = 3 shares can come
    while let Some((a, bytes)) = net.to_workers.pop_front() {
        let msg: CoordinatorMsg = bincode::deserialize(&bytes).unwrap();
        let w = net.workers.get_mut(&a).unwrap().as_mut().unwrap();
        for reply in w.on_message(msg).unwrap() {
            net.to_coord.push_back((a, wire(&reply)));
        }
    }
    let (a2, a3) = (net.order[2], net.order[3]);
    net.workers.insert(a2, None);
    net.workers.insert(a3, None);
    net.pump();
    assert_eq!(net.coord().counted().len(), 4);
    assert!(
        net.coord().results().is_empty(),
        "cannot complete with 2 shares"
    );
    let mut ticks = 0;
    while net.coord().results().is_empty() {
        net.tick();
        ticks += 1;
        assert!(ticks <= 40, "never voided");
    }
    let r = net.coord().results()[0].clone();
    assert!(!r.committed, "voided");
    assert!(ticks >= fedchain_ledger::state::DECRYPTION_WINDOW as usize);
    assert_eq!(net.coord().round(), None);
    net.audit_blocks(&c);
}

#[test]
fn a_worker_restarted_after_its_submission_does_not_submit_again() {
    let dir = tempfile::tempdir().unwrap();
    let c = Consortium::new(&small(1), &mut Quiet).unwrap();
    let mut net = Net::new(&c, &dir.path().join("svc"));
    net.pump();
    let a0 = net.order[0];
    net.start_round();
    // only hospital 0 gets the round now; its submission is accepted
    let mut held = Vec::new();
    while let Some((a, bytes)) = net.to_workers.pop_front() {
        if a != a0 {
            held.push((a, bytes));
            continue;
        }
        let msg: CoordinatorMsg = bincode::deserialize(&bytes).unwrap();
        let w = net.workers.get_mut(&a).unwrap().as_mut().unwrap();
        for reply in w.on_message(msg).unwrap() {
            net.to_coord.push_back((a, wire(&reply)));
        }
    }
    net.pump();
    assert_eq!(last_outcome(net.worker(0)), Outcome::Accepted);
    let first = fedchain_ledger::Hash::sha256(&net.worker(0).submission(0).unwrap().payload);
    // it restarts (its memory of the submission is gone; its durable marks stay, as the
    // worker process keeps them) and reconnects; following the chain, it does not take the
    // coordinator's word for what it holds, its marks keep it from signing again
    let job = net.coord().job();
    let marks = net.worker(0).hospital().marks().clone();
    net.connect(WorkerService::new(
        c.restarted_hospital(0, marks).unwrap(),
        job,
        c.cfg.seed,
        0,
    ));
    net.to_workers.extend(held);
    net.pump();
    // no second submission was sent: nothing answered as a duplicate or an equivocation
    assert!(
        net.worker(0)
            .acks()
            .iter()
            .all(|a| a.digest != first && a.outcome == Outcome::Accepted),
        "{:?}",
        net.worker(0).acks()
    );
    let r = net.coord().results()[0].clone();
    assert!(r.committed);
    assert_eq!(
        r.accepted.len(),
        4,
        "its first submission counts, no equivocation"
    );
    assert_eq!(
        net.coord().ledger().chain().state().jobs[&job].members[&a0],
        2000
    );
    net.audit(&c);
}

#[test]
fn coordinator_crash_between_accepted_and_committed_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("svc");
    let c = Consortium::new(&small(1), &mut Quiet).unwrap();
    let mut net = Net::new(&c, &path);
    net.pump();
    net.start_round();
    // every worker trains; keep their submissions in flight
    let mut subs: Vec<(Address, Vec<u8>)> = Vec::new();
    while let Some((a, bytes)) = net.to_workers.pop_front() {
        let msg: CoordinatorMsg = bincode::deserialize(&bytes).unwrap();
        let w = net.workers.get_mut(&a).unwrap().as_mut().unwrap();
        for reply in w.on_message(msg).unwrap() {
            subs.push((a, wire(&reply)));
        }
    }
    assert_eq!(subs.len(), 4);
    // three are accepted and acknowledged
    for s in &subs[..3] {
        net.to_coord.push_back(s.clone());
    }
    net.pump();
    for i in 0..3 {
        assert_eq!(last_outcome(net.worker(i)), Outcome::Accepted);
    }
    let acked: Vec<Address> = net.order[..3].to_vec();
    let height_before = net.coord().ledger().height();
    // crash before the block that would hold them commits
    crash(&mut net, &path);
    // the block was not committed
    {
        let store = fedchain_ledger::RocksStore::open(&path).unwrap();
        assert_eq!(store.head().unwrap().unwrap().height, height_before);
        assert_eq!(store.pending().unwrap().len(), 3);
    }
    let (coord, out) = CoordinatorService::open(&path, &c).unwrap();
    let mut counted = coord.counted();
    counted.sort();
    let mut want = acked.clone();
    want.sort();
    assert_eq!(counted, want, "every acknowledged submission survives");
    net.coord = Some(coord);
    net.send(out);
    // the restarted coordinator re-announces the round; workers answer with the very same
    // submissions, which are duplicates now
    net.pump();
    for (i, (_, bytes)) in subs[..3].iter().enumerate() {
        let WorkerMsg::Submit(m) = bincode::deserialize(bytes).unwrap() else {
            panic!("not a submission");
        };
        let d = fedchain_ledger::Hash::sha256(&m.payload);
        let outcomes: Vec<Outcome> = net
            .worker(i)
            .acks()
            .iter()
            .filter(|a| a.digest == d)
            .map(|a| a.outcome.clone())
            .collect();
        assert_eq!(outcomes, vec![Outcome::Accepted, Outcome::Duplicate]);
    }
    // the fourth arrives: the round closes, the holders decrypt, the round commits
    for _ in 0..20 {
        if !net.coord().results().is_empty() {
            break;
        }
        net.tick();
    }
    let r = net.coord().results()[0].clone();
    assert!(r.committed);
    assert_eq!(r.accepted.len(), 4, "nothing lost, nothing counted twice");
    assert!(net
        .coord()
        .ledger()
        .chain()
        .store()
        .pending()
        .unwrap()
        .is_empty());
    net.audit(&c);
    // and it reopens cleanly after the round: no open round, nothing pending
    drop(net.coord.take());
    let (coord, out) = CoordinatorService::open(&path, &c).unwrap();
    assert!(out.is_empty());
    assert_eq!(coord.round(), None);
    assert_eq!(coord.params(), c_params_after(&r, &coord));
}

#[test]
fn coordinator_crash_while_decrypting_keeps_the_accepted_shares() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("svc");
    let c = Consortium::new(&small(1), &mut Quiet).unwrap();
    let mut net = Net::new(&c, &path);
    net.pump();
    net.start_round();
    let slow = [net.order[2], net.order[3]];
    // everybody submits; the share request reaches only hospitals 0 and 1
    loop {
        if let Some((a, bytes)) = net.to_workers.pop_front() {
            let msg: CoordinatorMsg = bincode::deserialize(&bytes).unwrap();
            if slow.contains(&a) && matches!(msg, CoordinatorMsg::ShareRequest(_)) {
                continue;
            }
            let w = net.workers.get_mut(&a).unwrap().as_mut().unwrap();
            for reply in w.on_message(msg).unwrap() {
                net.to_coord.push_back((a, wire(&reply)));
            }
        } else if let Some((from, bytes)) = net.to_coord.pop_front() {
            let msg: WorkerMsg = bincode::deserialize(&bytes).unwrap();
            let out = net.coord().on_message(from, msg).unwrap();
            net.send(out);
        } else {
            break;
        }
    }
    assert_eq!(net.coord().counted().len(), 4);
    assert!(net.coord().results().is_empty());
    for i in 0..2 {
        assert_eq!(last_outcome(net.worker(i)), Outcome::Accepted, "share {i}");
    }
    crash(&mut net, &path);
    let (coord, out) = CoordinatorService::open(&path, &c).unwrap();
    assert!(
        out.iter()
            .any(|o| matches!(o, Outbound::All(CoordinatorMsg::ShareRequest(_)))),
        "the share request is sent again"
    );
    net.coord = Some(coord);
    net.send(out);
    net.pump();
    let r = net.coord().results()[0].clone();
    assert!(r.committed);
    assert_eq!(r.accepted.len(), 4);
    assert_eq!(r.share_providers.len(), 3);
    // the two shares accepted before the crash were kept: resent, they are duplicates
    for i in 0..2 {
        let outcomes: Vec<Outcome> = net
            .worker(i)
            .acks()
            .iter()
            .map(|a| a.outcome.clone())
            .collect();
        assert_eq!(
            outcomes[outcomes.len() - 2..],
            [Outcome::Accepted, Outcome::Duplicate],
            "hospital {i}"
        );
        assert!(r.share_providers.contains(&net.order[i]));
    }
    net.audit(&c);
}

#[test]
fn equivocation_evidence_survives_a_coordinator_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("svc");
    let c = Consortium::new(&small(1), &mut Quiet).unwrap();
    let mut net = Net::new(&c, &path);
    net.pump();
    net.start_round();
    let mut subs: Vec<(Address, Vec<u8>)> = Vec::new();
    while let Some((a, bytes)) = net.to_workers.pop_front() {
        let msg: CoordinatorMsg = bincode::deserialize(&bytes).unwrap();
        let w = net.workers.get_mut(&a).unwrap().as_mut().unwrap();
        for reply in w.on_message(msg).unwrap() {
            subs.push((a, wire(&reply)));
        }
    }
    for s in &subs[..3] {
        net.to_coord.push_back(s.clone());
    }
    net.pump();
    // hospital 0 signs a second, different update for the same round
    let a0 = net.order[0];
    let job = net.coord().job();
    let mut h = c.hospital(0).unwrap();
    h.resume_nonce(1_000);
    let mut u = h.train(&c.initial_params, 7, c.ciphertexts()).unwrap();
    u.update[0] += 0.01;
    let second = h.submission(job, 0, &u).unwrap();
    let out = net
        .coord()
        .on_message(a0, WorkerMsg::Submit(second))
        .unwrap();
    assert!(matches!(
        &out[..],
        [Outbound::To(_, CoordinatorMsg::Ack(a))]
            if a.outcome == Outcome::Rejected { reason: Refusal::Equivocation }
    ));
    assert_eq!(net.coord().counted().len(), 2, "the equivocator is out");
    crash(&mut net, &path);
    let (coord, out) = CoordinatorService::open(&path, &c).unwrap();
    assert_eq!(coord.counted().len(), 2, "the evidence was replayed");
    net.coord = Some(coord);
    net.send(out);
    net.pump();
    let r = net.coord().results()[0].clone();
    assert!(r.committed);
    assert_eq!(r.accepted.len(), 3);
    assert!(!r.accepted.contains(&a0));
    // the equivocator's own worker sees its submission out of the aggregate and refuses to
    // decrypt it; the other three holders decrypt
    assert!(net.refusals.iter().any(|(a, e)| *a == a0
        && matches!(
            e,
            WorkerError::ShareRefused(ShareRefusal::OwnSubmissionMissing)
        )));
    let state = net.coord().ledger().chain().state();
    assert_eq!(
        state.jobs[&job].members[&a0], 1000,
        "half the deposit forfeited"
    );
    net.audit(&c);
}

/// The parameters a reopened coordinator resumes from are the committed ones.
fn c_params_after<'a>(
    r: &fedchain_coordinator::service::RoundSummary,
    coord: &'a CoordinatorService,
) -> &'a [f32] {
    let h = r.new_params_hash.unwrap();
    assert_eq!(
        fedchain_coordinator::strategy::params_hash(coord.params()),
        h
    );
    coord.params()
}

/// Kill the coordinator between "accepted" and "committed". With the `failpoints` feature the
/// next block fails inside the service (the failpoint named for this ledger directory);
/// without it, the process simply "dies" here: either way only the store survives.
fn crash(net: &mut Net, path: &Path) {
    #[cfg(feature = "failpoints")]
    {
        let name = fedchain_coordinator::service::FAILPOINT_BEFORE_BLOCK;
        fail::cfg(name, &format!("return({})", path.display())).unwrap();
        let err = net.coord().on_tick().unwrap_err();
        fail::remove(name);
        assert!(err.to_string().contains("failpoint"), "{err}");
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = path;
    drop(net.coord.take());
}

#[test]
fn a_submission_signed_by_another_hospital_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let c = Consortium::new(&small(1), &mut Quiet).unwrap();
    let mut net = Net::new(&c, &dir.path().join("svc"));
    net.pump();
    let (a0, a1) = (net.order[0], net.order[1]);
    // a hello claiming another identity is refused
    let out = net
        .coord()
        .on_message(
            a1,
            WorkerMsg::Hello {
                version: fedchain_coordinator::service::PROTOCOL_VERSION,
                address: a0,
                job: 0,
            },
        )
        .unwrap();
    assert!(matches!(
        &out[..],
        [Outbound::To(to, CoordinatorMsg::Refused { reason: Refusal::SenderMismatch { peer, claimed } })]
            if *to == a1 && *peer == a1 && *claimed == a0
    ));
    // another protocol version, a stranger, another job: refused
    let hello = |version, address, job| WorkerMsg::Hello {
        version,
        address,
        job,
    };
    let stranger = Address([7; 20]);
    let v = fedchain_coordinator::service::PROTOCOL_VERSION;
    for (from, msg, want) in [
        (
            a0,
            hello(v + 1, a0, 0),
            Refusal::Version {
                got: v + 1,
                want: v,
            },
        ),
        (
            stranger,
            hello(v, stranger, 0),
            Refusal::NotMember(stranger),
        ),
        (a0, hello(v, a0, 9), Refusal::WrongJob { got: 9, want: 0 }),
    ] {
        let out = net.coord().on_message(from, msg).unwrap();
        assert_eq!(
            out,
            vec![Outbound::To(from, CoordinatorMsg::Refused { reason: want })]
        );
    }
    net.start_round();
    let mut subs: BTreeMap<Address, WorkerMsg> = BTreeMap::new();
    while let Some((a, bytes)) = net.to_workers.pop_front() {
        let msg: CoordinatorMsg = bincode::deserialize(&bytes).unwrap();
        let w = net.workers.get_mut(&a).unwrap().as_mut().unwrap();
        for reply in w.on_message(msg).unwrap() {
            subs.insert(a, reply);
        }
    }
    // hospital 1's connection relays hospital 0's (validly signed) submission
    let stolen = subs[&a0].clone();
    let out = net.coord().on_message(a1, stolen).unwrap();
    let [Outbound::To(to, CoordinatorMsg::Ack(ack))] = &out[..] else {
        panic!("expected one ack, got {out:?}");
    };
    assert_eq!(*to, a1);
    assert_eq!(
        ack.outcome,
        Outcome::Rejected {
            reason: Refusal::SenderMismatch {
                peer: a1,
                claimed: a0
            }
        }
    );
    assert!(net.coord().counted().is_empty(), "nothing counted");
    assert!(net
        .coord()
        .ledger()
        .chain()
        .store()
        .pending()
        .unwrap()
        .is_empty());
    // from its own connection it is accepted
    let out = net.coord().on_message(a0, subs[&a0].clone()).unwrap();
    assert!(matches!(
        &out[..],
        [Outbound::To(_, CoordinatorMsg::Ack(a))] if a.outcome == Outcome::Accepted
    ));
}

/// A8: an equivocation that arrives while the round decrypts does not change the valid set the
/// aggregate and the shares are about: the round commits with every submission it closed with,
/// and the penalty (with both signed messages) lands in the block right after the commit.
#[test]
fn a08_equivocation_while_decrypting_commits_consistently() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("svc");
    let c = Consortium::new(&small(1), &mut Quiet).unwrap();
    let mut net = Net::new(&c, &path);
    net.pump();
    net.start_round();
    // every worker answers the RoundOpen; every submission reaches the coordinator, which
    // closes the round and queues its share requests
    while let Some((a, bytes)) = net.to_workers.pop_front() {
        let msg: CoordinatorMsg = bincode::deserialize(&bytes).unwrap();
        let w = net.workers.get_mut(&a).unwrap().as_mut().unwrap();
        for reply in w.on_message(msg).unwrap() {
            net.to_coord.push_back((a, wire(&reply)));
        }
    }
    while let Some((from, bytes)) = net.to_coord.pop_front() {
        let msg: WorkerMsg = bincode::deserialize(&bytes).unwrap();
        let out = net.coord().on_message(from, msg).unwrap();
        net.send(out);
    }
    assert!(net.to_workers.iter().any(|(_, b)| matches!(
        bincode::deserialize(b).unwrap(),
        CoordinatorMsg::ShareRequest(_)
    )));
    // now, while decrypting, hospital 0's second, different submission arrives
    let a0 = net.order[0];
    let job = net.coord().job();
    let mut h = c.hospital(0).unwrap();
    h.resume_nonce(1_000);
    let mut u = h.train(&c.initial_params, 7, c.ciphertexts()).unwrap();
    u.update[0] += 0.01;
    let second = h.submission(job, 0, &u).unwrap();
    let out = net
        .coord()
        .on_message(a0, WorkerMsg::Submit(second))
        .unwrap();
    assert!(matches!(
        &out[..],
        [Outbound::To(_, CoordinatorMsg::Ack(a))]
            if a.outcome == Outcome::Rejected { reason: Refusal::Equivocation }
    ));
    net.pump();
    for _ in 0..3 {
        if !net.coord().results().is_empty() {
            break;
        }
        net.tick();
    }
    let r = net.coord().results()[0].clone();
    assert!(r.committed, "the round commits");
    assert_eq!(r.accepted.len(), 4, "with the set it closed with");
    assert!(net.coord().take_dropped().is_empty(), "nothing was refused");
    let state = net.coord().ledger().chain().state();
    assert_eq!(
        state.jobs[&job].members[&a0], 1000,
        "the equivocator forfeits half its deposit after the commit"
    );
    net.audit(&c);
}

/// A5 through the services, with a coordinator crash in the middle of the blame step:
/// hospital 2's submission is replaced on the wire by a proven, overflowing one signed with its
/// key. The aggregate does not unpack, the coordinator opens the blame step and asks for range
/// proofs; the three honest ones are accepted, hospital 2's (of its own honest ciphertext, not
/// the one on chain) is refused. The coordinator crashes, reopens from its pending records,
/// resends the range request (answers are duplicates) and ends the blame step: hospital 2 is
/// penalised and excluded, and the next round commits with the other three.
#[test]
fn a05_blame_step_survives_a_coordinator_crash_and_training_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("svc");
    let c = Consortium::new(&small(2), &mut Quiet).unwrap();
    let mut net = Net::new(&c, &path);
    net.pump();
    let cheat = net.order[2];
    let mut forger = c.hospital(2).unwrap();
    let nonce = net.coord().ledger().chain().state().nonces[&cheat];
    forger.resume_nonce(nonce);
    net.start_round();
    // deliver, replacing hospital 2's submission on its way
    let fedchain_worker::Protection::Encrypted(e) = &c.protection else {
        panic!("encrypted job")
    };
    let (table, chain_id, cts) = (
        c.table.clone().unwrap(),
        c.genesis.chain_id.clone(),
        c.ciphertexts(),
    );
    net.pump_with(|a, reply| match reply {
        WorkerMsg::Submit(m) if a == cheat => {
            let payload = fedchain_coordinator::simulate::overflowing_payload(
                e, &table, &chain_id, 0, 0, &cheat, cts,
            )
            .unwrap();
            let TxKind::Submit { samples, .. } = m.tx.tx.kind else {
                unreachable!()
            };
            let tx = forger.sign(TxKind::Submit {
                job: 0,
                round: 0,
                payload: fedchain_ledger::Hash::sha256(&payload),
                samples,
                payload_bytes: payload.len() as u64,
            });
            WorkerMsg::Submit(fedchain_worker::SubmissionMsg { tx, payload })
        }
        other => other,
    });
    let blaming = |net: &mut Net| {
        net.coord().ledger().chain().state().jobs[&0]
            .open
            .as_ref()
            .and_then(|o| o.blame.clone())
    };
    // accepted proofs go into the next block
    net.tick();
    let step = blaming(&mut net).expect("the blame step is open");
    assert_eq!(
        step.proofs.len(),
        3,
        "the honest hospitals' proofs are on chain"
    );
    assert!(!step.proofs.contains_key(&cheat));
    assert!(matches!(
        last_outcome(net.worker(2)),
        Outcome::Rejected {
            reason: Refusal::Engine(_)
        }
    ));
    crash(&mut net, &path);
    let (coord, out) = CoordinatorService::open(&path, &c).unwrap();
    assert!(
        out.iter()
            .any(|o| matches!(o, Outbound::All(CoordinatorMsg::RangeRequest(_)))),
        "the range request is sent again"
    );
    net.coord = Some(coord);
    net.send(out);
    net.pump();
    for _ in 0..20 {
        if !net.coord().results().is_empty() {
            break;
        }
        net.tick();
    }
    let r = net.coord().results()[0].clone();
    assert!(!r.committed, "round 0 ends void");
    let job = net.coord().ledger().chain().state().jobs[&0].clone();
    assert!(job.excluded.contains(&cheat) && job.excluded.len() == 1);
    assert!(job.members[&cheat] < job.members[&net.order[0]]);
    net.round();
    let r = net.coord().results()[1].clone();
    assert!(r.committed, "round 1 commits without the offender");
    assert_eq!(r.accepted.len(), 3);
    assert!(!r.accepted.contains(&cheat));
    let report = net.coord().audit(&c).unwrap();
    assert_eq!(report.range_proofs_verified, 3);
}

/// Restart time (issue #13 item 4): a reopened coordinator starts its validator replicas from
/// the state stored with the head (checked against the head's certified state root), not by
/// replaying the chain, and they equal the replicas a full replay gives, mid-round included.
/// A damaged stored state falls back to the full replay (`Recovery::Replayed`) and the job
/// goes on: the open round finishes, the next commits, the audit passes.
#[test]
fn a_restart_starts_from_the_head_snapshot_and_replays_a_damaged_one() {
    use std::sync::Arc;

    use fedchain_ledger::{Chain, Column, FinalityRef, Recovery, RocksStore};
    use fedchain_validator::SimplexFinality;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("svc");
    let c = Consortium::new(&small(3), &mut Quiet).unwrap();
    let mut net = Net::new(&c, &path);
    net.pump();
    net.round();
    // round 1 open, three of four submissions accepted, then the coordinator dies
    net.start_round();
    let mut subs = Vec::new();
    while let Some((a, bytes)) = net.to_workers.pop_front() {
        let msg: CoordinatorMsg = bincode::deserialize(&bytes).unwrap();
        let w = net.workers.get_mut(&a).unwrap().as_mut().unwrap();
        for reply in w.on_message(msg).unwrap() {
            subs.push((a, wire(&reply)));
        }
    }
    net.to_coord.extend(subs[..3].iter().cloned());
    net.pump();
    assert_eq!(net.coord().counted().len(), 3);
    drop(net.coord.take());

    // the aggregator's chain reopens from the state stored with its head ...
    let finality = || FinalityRef(Some(Arc::new(SimplexFinality::new())));
    let open = || {
        let store = RocksStore::open(&path).unwrap();
        let chain = Chain::open_with(store, &c.genesis, finality(), &mut |_, _| {}).unwrap();
        let seen = (chain.head(), chain.state().root());
        (seen, chain.recovery().clone())
    };
    let corrupt = || {
        let store = RocksStore::open(&path).unwrap();
        let mut s = store
            .raw_get(Column::State, RocksStore::state_key())
            .unwrap()
            .unwrap();
        let at = s.len() / 2;
        s[at] ^= 0x01;
        store
            .raw_put(Column::State, RocksStore::state_key(), &s)
            .unwrap();
    };
    let (snap, recovery) = open();
    assert_eq!(recovery, Recovery::Snapshot);
    // ... and a stored state that does not match its head is rebuilt by a full replay, to the
    // same head and state
    corrupt();
    let (replayed, recovery) = open();
    assert!(
        matches!(recovery, Recovery::Replayed { .. }),
        "{recovery:?}"
    );
    assert_eq!(replayed, snap, "the replay differs from the snapshot");
    // (a replay does not rewrite the stored state: the service below replays too)
    let mut progress = Vec::new();
    let (coord, out) =
        CoordinatorService::open_observed(&path, &c, &mut |d, t| progress.push((d, t))).unwrap();
    assert!(
        matches!(coord.ledger().chain().recovery(), Recovery::Replayed { .. }),
        "{:?}",
        coord.ledger().chain().recovery()
    );
    let h = snap.0.height;
    assert_eq!(
        coord
            .ledger()
            .chain()
            .block(h)
            .unwrap()
            .unwrap()
            .header
            .hash(),
        snap.0.hash
    );
    let h = coord.ledger().height();
    assert_eq!(progress.last(), Some(&(h, h)));
    net.coord = Some(coord);
    net.send(out);
    net.pump();
    for _ in 0..20 {
        if !net.coord().results().is_empty() {
            break;
        }
        net.tick();
    }
    assert!(
        net.coord().results()[0].committed,
        "round 1 after the restart"
    );
    net.round();
    assert!(net.coord().results()[1].committed, "round 2");
    net.audit(&c);
}

/// THREAT-MODEL G1 against the chain (A1): a holder that follows the chain decrypts only the
/// round's valid set as final there, and only once the chain takes no more submissions. The
/// request is three of four submissions, the holder's own among them and the job's minimum:
/// what an aggregator and colluders would choose to single out a victim. A holder trusting
/// the aggregator (no chain of its own) decrypts it.
#[test]
fn a01_a_holder_following_the_chain_decrypts_only_the_final_valid_set() {
    use fedchain_coordinator::service::ShareRequest;
    let dir = tempfile::tempdir().unwrap();
    let c = Consortium::new(&small(1), &mut Quiet).unwrap();
    let mut net = Net::new(&c, &dir.path().join("svc"));
    net.pump();
    net.start_round();
    // every hospital trains and signs; the coordinator first gets three of the four
    let mut subs = BTreeMap::new();
    while let Some((a, bytes)) = net.to_workers.pop_front() {
        let msg: CoordinatorMsg = bincode::deserialize(&bytes).unwrap();
        let chain = net.coord.as_ref().map(|c| c.ledger().chain().state());
        let w = net.workers.get_mut(&a).unwrap().as_mut().unwrap();
        for reply in w.on_message_at(msg, chain).unwrap() {
            if let WorkerMsg::Submit(m) = reply {
                subs.insert(a, m);
            }
        }
    }
    let order = net.order.clone();
    for a in &order[..3] {
        let out = net
            .coord()
            .on_message(*a, WorkerMsg::Submit(subs[a].clone()))
            .unwrap();
        assert!(matches!(out.as_slice(), [Outbound::To(..)]), "{out:?}");
    }
    net.coord().on_tick().unwrap();
    assert_eq!(net.coord().counted().len(), 3);
    let three = CoordinatorMsg::ShareRequest(ShareRequest {
        job: net.coord().job(),
        round: 0,
        submissions: order[..3].iter().map(|a| subs[a].clone()).collect(),
    });
    // a holder without a chain of its own decrypts the aggregator's choice
    let mut trusting = WorkerService::new(c.hospital(0).unwrap(), 0, c.cfg.seed, 0);
    assert!(matches!(
        trusting.on_message(three.clone()).unwrap().as_slice(),
        [WorkerMsg::Share(_)]
    ));
    // following the chain: the round still takes submissions, nothing is decrypted
    let chain = net.coord().ledger().chain().state().clone();
    fn holder<'a>(net: &'a mut Net, a: &Address) -> &'a mut WorkerService {
        net.workers.get_mut(a).unwrap().as_mut().unwrap()
    }
    match holder(&mut net, &order[0]).on_message_at(three.clone(), Some(&chain)) {
        Err(WorkerError::NotFinal {
            round: 0, claim, ..
        }) => {
            assert_eq!(claim, "the close of submissions")
        }
        other => panic!("decrypted before the chain closed the round: {other:?}"),
    }
    // the fourth submission is final: the round is closed, its valid set is all four
    let a3 = order[3];
    let out = net
        .coord()
        .on_message(a3, WorkerMsg::Submit(subs[&a3].clone()))
        .unwrap();
    net.send(out);
    let chain = net.coord().ledger().chain().state().clone();
    let job = &chain.jobs[&0];
    assert!(job.submissions_closed(0, chain.height + 1));
    assert_eq!(job.open.as_ref().unwrap().valid_submissions(), 4);
    match holder(&mut net, &order[0]).on_message_at(three.clone(), Some(&chain)) {
        Err(WorkerError::ShareRefused(ShareRefusal::NotFinalSet {
            round: 0,
            missing: 1,
            extra: 0,
        })) => {}
        other => panic!("decrypted a subset of the final valid set: {other:?}"),
    }
    // a round that closed is not opened again for a hospital that missed it: signing a
    // submission now would only block its share
    let late = CoordinatorMsg::RoundOpen(fedchain_coordinator::service::RoundOpen {
        job: 0,
        round: 0,
        params: c.initial_params.clone(),
        deadline: job.open.as_ref().unwrap().deadline,
    });
    let mut missed = WorkerService::new(c.hospital(1).unwrap(), 0, c.cfg.seed, 1);
    assert!(matches!(
        missed.on_message_at(late, Some(&chain)),
        Err(WorkerError::NotOnChain { round: 0, .. })
    ));
    // the coordinator's own request is the chain's set: the round decrypts and commits
    net.pump();
    for _ in 0..5 {
        if !net.coord().results().is_empty() {
            break;
        }
        net.tick();
    }
    let r = &net.coord().results()[0];
    assert!(r.committed);
    assert_eq!(r.accepted.len(), 4);
    assert!(net.refusals.is_empty(), "{:?}", net.refusals);
    net.audit(&c);
}
