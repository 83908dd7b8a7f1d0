//! One parallel region per forward pass: the pool's other workers stay inside it, spinning between
//! the pass's parallel loops, instead of a rayon fork-join (and often a sleep and a futex wake-up) per
//! product.
//!
//! A short sentence's forward is ~40 parallel loops of 10-50 us each. Through rayon each one pushes a
//! job, wakes or waits for the idle worker, and joins; on a 2-vCPU KVM guest that cost a quarter of the
//! ideal 2x of two threads for int8 (docs/gemm.md, "W1"). OpenMP, ONNX Runtime's and oneDNN's pools
//! keep their workers spinning between loops; [`region`] does the same with rayon's own workers (so
//! `--threads`, a Python model's pool and the server's concurrency mean what they meant):
//!
//! - [`region`] runs `body` on a pool thread, the *owner*, and spawns one helper job per other worker
//!   (at most one per core). A helper spins until the owner opens a loop, joins it, and returns when the
//!   region closes. A helper job that no other worker picked up (all busy: another request's forward)
//!   is run by the owner when the region ends and returns at once: the pass then simply runs on one
//!   thread, never waits for a worker.
//! - [`for_each`] / [`for_each_init`] are the parallel loops: on the owner of a region, the owner and
//!   the helpers that are there claim tasks from one atomic counter (so a late helper is never waited
//!   for); anywhere else, rayon's `for_each` as before.
//!
//! A region must not make rayon calls that split work (`join`, `par_iter` over more than one item):
//! a worker that steals part of one can then, while it waits inside it, pick up a helper job and spin
//! in the region with the stolen part unfinished, which the owner waits for. Every parallel loop a
//! forward pass runs therefore goes through [`for_each`], which is rayon's `for_each` outside a
//! region.

use std::cell::{Cell, UnsafeCell};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::OnceLock;

use rayon::prelude::*;

/// The loop body a helper runs, its lifetime erased (see [`Team::run`]).
type Job = *const (dyn Fn() + Sync);

/// The state one region shares between its owner and its helpers.
struct Team {
    /// Odd while a loop is open (its number), even between loops. Written by the owner only.
    epoch: AtomicUsize,
    /// Helpers inside the open loop (reading `job`, running tasks).
    active: AtomicUsize,
    /// The region has ended: helpers return.
    closed: AtomicBool,
    /// A task run by a helper panicked.
    panicked: AtomicBool,
    /// The open loop's body. Written by the owner while `epoch` is even and `active` is 0, read by a
    /// helper only between its `active` increment and decrement, with `epoch` odd and unchanged.
    job: UnsafeCell<Option<Job>>,
}

// SAFETY: `job` is the only non-Sync field; the protocol on `epoch` and `active` (see `run` and
// `help`) orders every write of it before the reads that use it, and no write overlaps a read. The
// closure it points to is itself Sync.
unsafe impl Sync for Team {}

thread_local! {
    /// The region this thread owns, if any.
    static OWNED: Cell<*const Team> = const { Cell::new(std::ptr::null()) };
}

/// Cores this process may run on: helpers beyond them would only spin against the owner.
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Runs `body` as one parallel region on the current rayon pool (moving to one of its threads if this
/// is not one): the [`for_each`] loops `body` runs on its own thread are shared with the pool's other
/// workers, which stay in the region until `body` returns. Re-entered, it runs `body` in place.
pub fn region<R: Send>(body: impl FnOnce() -> R + Send) -> R {
    if !OWNED.get().is_null() {
        return body();
    }
    let helpers = rayon::current_num_threads().min(cores()).saturating_sub(1);
    let team = Team {
        epoch: AtomicUsize::new(0),
        active: AtomicUsize::new(0),
        closed: AtomicBool::new(false),
        panicked: AtomicBool::new(false),
        job: UnsafeCell::new(None),
    };
    let team = &team;
    rayon::scope(|s| {
        // A helper job the owner itself ends up running returns at once: during `body` (a nested
        // rayon wait) it sees that its thread owns the team; at the end of the scope, that the
        // team is closed.
        for _ in 0..helpers {
            s.spawn(move |_| team.help());
        }
        /// Unregisters and closes the team however `body` ends, so the scope's wait for the helpers
        /// ends too.
        struct Owner<'t>(&'t Team);
        impl Drop for Owner<'_> {
            fn drop(&mut self) {
                OWNED.set(std::ptr::null());
                self.0.closed.store(true, SeqCst);
            }
        }
        OWNED.set(team);
        let _owner = Owner(team);
        body()
    })
}

/// Calls `f(t)` for every `t` in `0..tasks`, in parallel: over the region's team on the thread that
/// owns a [`region`], over rayon's pool anywhere else. Returns when every call has returned.
pub fn for_each(tasks: usize, f: impl Fn(usize) + Sync + Send) {
    for_each_init(tasks, || (), |_, t| f(t));
}

/// [`for_each`] with a state made by `init` once per participating thread (rayon: per split) and
/// passed to each of its calls, such as a scratch buffer.
pub fn for_each_init<S>(
    tasks: usize,
    init: impl Fn() -> S + Sync + Send,
    f: impl Fn(&mut S, usize) + Sync + Send,
) {
    match tasks {
        0 => {}
        1 => f(&mut init(), 0),
        _ => {
            let owned = OWNED.get();
            if owned.is_null() {
                (0..tasks).into_par_iter().for_each_init(init, f);
                return;
            }
            let next = AtomicUsize::new(0);
            let body = || {
                let mut state = None;
                loop {
                    let t = next.fetch_add(1, SeqCst);
                    if t >= tasks {
                        break;
                    }
                    f(state.get_or_insert_with(&init), t);
                }
            };
            // SAFETY: OWNED is set only by `region` on this thread, to its team, for as long as the
            // team lives (cleared before `region` returns).
            unsafe { &*owned }.run(&body);
        }
    }
}

/// [`for_each`] over the `chunk`-long pieces of `xs` (the last may be shorter): `f(i, piece i)`,
/// as `xs.par_chunks_mut(chunk).enumerate().for_each(...)` does.
pub fn for_each_chunk_mut<T: Send>(
    xs: &mut [T],
    chunk: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    assert!(chunk > 0, "for_each_chunk_mut: chunk must be positive");
    let (len, base) = (xs.len(), SendPtr(xs.as_mut_ptr()));
    for_each(len.div_ceil(chunk), |i| {
        let start = i * chunk;
        // SAFETY: piece i is xs[start..start + chunk] clipped to len; pieces are disjoint, each is
        // handed to one call only, and `xs` is borrowed mutably until every call has returned.
        let piece = unsafe {
            std::slice::from_raw_parts_mut(base.get().add(start), chunk.min(len - start))
        };
        f(i, piece);
    });
}

/// A buffer's base pointer handed to the tasks of one parallel loop, each of which writes its own
/// disjoint part of the buffer (its (rows, columns) block of a product's `y`, one (sequence, head)'s
/// columns, one tile's scales, one chunk): the one raw-pointer wrapper of this crate's parallel
/// loops. Each construction site says which part a task owns; the buffer outlives the loop.
pub(crate) struct SendPtr<T>(pub(crate) *mut T);
// By hand: a derive would require `T: Copy`.
impl<T> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SendPtr<T> {}
// SAFETY: tasks sharing one `SendPtr` access disjoint parts of a buffer that outlives them (see
// the type's documentation), as if each held its own `&mut` to its part.
unsafe impl<T: Send> Send for SendPtr<T> {}
// SAFETY: as for Send.
unsafe impl<T: Send> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// Through a method, so closures capture the whole (Sync) wrapper, not its raw field.
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

impl Team {
    /// Opens a loop running `body` on the owner and on every helper that joins before it ends;
    /// returns when all of them have left it. Owner only.
    fn run(&self, body: &(dyn Fn() + Sync)) {
        // SAFETY: only the lifetime is erased. Helpers call `job` only while counted in `active`,
        // and this function does not return before `active` is back to 0 with the loop closed (no
        // helper can join after that), so no call outlives `body`.
        let job: Job = unsafe { std::mem::transmute::<*const (dyn Fn() + Sync + '_), Job>(body) };
        // SAFETY: the epoch is even and `active` 0 (the previous `run` waited for both): no helper
        // reads `job` now.
        unsafe { *self.job.get() = Some(job) };
        let open = self.epoch.load(SeqCst) + 1;
        self.epoch.store(open, SeqCst);
        let mine = catch_unwind(AssertUnwindSafe(body));
        self.epoch.store(open + 1, SeqCst);
        // Helpers still in the loop are running its last claimed tasks.
        while self.active.load(SeqCst) != 0 {
            std::hint::spin_loop();
        }
        if let Err(panic) = mine {
            resume_unwind(panic);
        }
        if self.panicked.swap(false, SeqCst) {
            panic!("a task of a parallel loop panicked on a helper thread");
        }
    }

    /// A helper: joins every loop the owner opens until the region closes.
    fn help(&self) {
        if std::ptr::eq(OWNED.get(), self) {
            return;
        }
        let mut seen = 0;
        loop {
            let open = self.epoch.load(SeqCst);
            if open % 2 == 1 && open != seen {
                seen = open;
                self.active.fetch_add(1, SeqCst);
                // Sequentially consistent with the owner's close-then-check-`active`: either this
                // sees the loop still open, and the owner then sees this helper in `active` and
                // waits for it, or this backs out without touching `job`.
                if self.epoch.load(SeqCst) == open {
                    // SAFETY: the loop `open` is still open and counts this helper: `job` was
                    // written before it opened and stays valid until `active` drops to 0.
                    let job = unsafe { (*self.job.get()).expect("an open loop has a job") };
                    // SAFETY: as above, `run` has not returned, so `body` is alive.
                    if catch_unwind(AssertUnwindSafe(|| unsafe { (*job)() })).is_err() {
                        self.panicked.store(true, SeqCst);
                    }
                }
                self.active.fetch_sub(1, SeqCst);
            } else if self.closed.load(SeqCst) {
                return;
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    }

    /// Every task runs exactly once, inside and outside a region, for 1-3 threads.
    #[test]
    fn every_task_runs_once() {
        for threads in 1..=3 {
            pool(threads).install(|| {
                for tasks in [0, 1, 2, 7, 100] {
                    let hits: Vec<AtomicU64> = (0..tasks).map(|_| AtomicU64::new(0)).collect();
                    let sweep = || {
                        for_each(tasks, |t| {
                            hits[t].fetch_add(1, SeqCst);
                        })
                    };
                    sweep();
                    region(|| {
                        for _ in 0..50 {
                            sweep();
                        }
                    });
                    assert!(
                        hits.iter().all(|h| h.load(SeqCst) == 51),
                        "{threads} {tasks}"
                    );
                }
            });
        }
    }

    /// Each participant gets its own state, made once and reused across its tasks.
    #[test]
    fn init_runs_once_per_participant() {
        let inits = AtomicUsize::new(0);
        pool(2).install(|| {
            region(|| {
                for_each_init(
                    64,
                    || {
                        inits.fetch_add(1, SeqCst);
                        Vec::<usize>::new()
                    },
                    |seen, t| {
                        seen.push(t);
                        assert!(seen.windows(2).all(|w| w[0] < w[1]));
                    },
                );
            })
        });
        let n = inits.load(SeqCst);
        assert!((1..=2).contains(&n), "{n} states for 2 threads");
    }

    /// Regions started from several threads at once on one pool (more regions than workers) and
    /// nested: all finish (a helper job the owner ends up running returns at once).
    #[test]
    fn concurrent_nested_and_mixed_regions_finish() {
        let p = pool(2);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    p.install(|| {
                        for _ in 0..20 {
                            let sum = region(|| {
                                let total = AtomicUsize::new(0);
                                region(|| {
                                    for_each(10, |t| {
                                        total.fetch_add(t, SeqCst);
                                    })
                                });
                                total.load(SeqCst)
                            });
                            assert_eq!(sum, 45);
                        }
                    })
                });
            }
        });
        // And from a thread that is not in any pool (rayon's global pool).
        assert_eq!(region(|| 7), 7);
    }

    /// A panic in a task reaches the owner, and the region still closes.
    #[test]
    fn a_panicking_task_propagates() {
        let p = pool(2);
        for bad in [0, 63] {
            let r = catch_unwind(AssertUnwindSafe(|| {
                p.install(|| {
                    region(|| {
                        for_each(64, |t| {
                            assert!(t != bad, "task {t}");
                        })
                    })
                })
            }));
            assert!(r.is_err(), "task {bad} panicked");
        }
        // The pool is still usable.
        assert_eq!(p.install(|| region(|| 1)), 1);
    }
}
