// Command compare is the Go side of filch's head-to-head harness (`make compare`).
//
// It runs one workload with GOMAXPROCS = -workers and prints one JSON line per
// repetition: {"workload": ..., "ns": ..., "result": ...}. Every result is checked here
// against a sequential computation (a wrong one exits 1 before anything is printed for
// it), and again by the Rust runner (examples/compare), which starts this program once
// per round and compares it with the Rust sides' expected values.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

func emit(workload string, ns int64, result uint64) {
	fmt.Printf("{\"workload\":%q,\"ns\":%d,\"result\":%d}\n", workload, ns, result)
}

// spawnOutside: the main goroutine starts n empty goroutines and waits for all.
func spawnOutside(n int) uint64 {
	var wg sync.WaitGroup
	var ran atomic.Uint64
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			ran.Add(1)
			wg.Done()
		}()
	}
	wg.Wait()
	return ran.Load()
}

// spawnInside: one goroutine starts n empty goroutines; the main goroutine waits for all.
func spawnInside(n int) uint64 {
	var wg sync.WaitGroup
	var ran atomic.Uint64
	wg.Add(n)
	go func() {
		for i := 0; i < n; i++ {
			go func() {
				ran.Add(1)
				wg.Done()
			}()
		}
	}()
	wg.Wait()
	return ran.Load()
}

// skynet as in the classic benchmark: one goroutine per node, one unbuffered channel per
// parent.
func skynet(c chan<- uint64, num, size, div uint64) {
	if size == 1 {
		c <- num
		return
	}
	rc := make(chan uint64)
	var sum uint64
	for i := uint64(0); i < div; i++ {
		sub := num + i*(size/div)
		go skynet(rc, sub, size/div, div)
	}
	for i := uint64(0); i < div; i++ {
		sum += <-rc
	}
	c <- sum
}

// smallTreeRepeats: how many times the small-tree row computes its fib (the Rust side's
// SMALL_TREE_REPEATS).
const smallTreeRepeats = 200

// fib with one goroutine and one channel per split.
func fib(n uint64) uint64 {
	if n < 2 {
		return n
	}
	c := make(chan uint64)
	go func() { c <- fib(n - 1) }()
	b := fib(n - 2)
	return <-c + b
}

func splitmix64(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}

// The UTS-style binomial tree: the root has utsRoot children; every other node has utsM
// children when its hash falls under utsQ (per million), else none. Same as the Rust side.
const (
	utsM = 4
	utsQ = 247500 // q·m = 0.99: subcritical, expected size utsRoot / 0.01
)

func utsChild(h uint64, i uint64) uint64 { return splitmix64(h ^ ((i + 1) * 0x9E3779B97F4A7C15)) }

func utsChildren(h uint64, isRoot bool, root uint64) uint64 {
	if isRoot {
		return root
	}
	if h%1000000 < utsQ {
		return utsM
	}
	return 0
}

func utsVisit(h uint64, isRoot bool, root uint64, wg *sync.WaitGroup, count *atomic.Uint64) {
	count.Add(1)
	k := utsChildren(h, isRoot, root)
	for i := uint64(0); i < k; i++ {
		c := utsChild(h, i)
		wg.Add(1)
		go func() {
			utsVisit(c, false, root, wg, count)
			wg.Done()
		}()
	}
}

// utsSequential counts the tree's nodes on one goroutine (the expected value).
func utsSequential(root uint64) uint64 {
	type node struct {
		h      uint64
		isRoot bool
	}
	stack := []node{{splitmix64(42), true}}
	var count uint64
	for len(stack) > 0 {
		nd := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		count++
		for i := uint64(0); i < utsChildren(nd.h, nd.isRoot, root); i++ {
			stack = append(stack, node{utsChild(nd.h, i), false})
		}
	}
	return count
}

func uts(root uint64) uint64 {
	var wg sync.WaitGroup
	var count atomic.Uint64
	utsVisit(splitmix64(42), true, root, &wg, &count)
	wg.Wait()
	return count.Load()
}

func work(x uint64) uint64 {
	x ^= 0x9E3779B97F4A7C15
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	return x
}

// parfor: out[i] = work(i) over GOMAXPROCS goroutines, one contiguous chunk each (as the
// swarm seed does); returns the wrapping sum.
func parfor(data []uint64, workers int) uint64 {
	n := len(data)
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / workers
	for w := 0; w < workers; w++ {
		lo, hi := w*chunk, (w+1)*chunk
		if hi > n {
			hi = n
		}
		if lo >= hi {
			continue
		}
		wg.Add(1)
		go func(lo, hi int) {
			for i := lo; i < hi; i++ {
				data[i] = work(uint64(i))
			}
			wg.Done()
		}(lo, hi)
	}
	wg.Wait()
	var sum uint64
	for _, v := range data {
		sum += v
	}
	return sum
}

func fibSequential(n uint64) uint64 {
	a, b := uint64(0), uint64(1)
	for i := uint64(0); i < n; i++ {
		a, b = b, a+b
	}
	return a
}

func parforSequential(n int) uint64 {
	var sum uint64
	for i := 0; i < n; i++ {
		sum += work(uint64(i))
	}
	return sum
}

// sleepMany: one goroutine starts n goroutines that each sleep 1 ms; the main goroutine
// waits for all. Returns how many woke.
func sleepMany(n int) uint64 {
	var wg sync.WaitGroup
	var woke atomic.Uint64
	wg.Add(n)
	go func() {
		for i := 0; i < n; i++ {
			go func() {
				time.Sleep(time.Millisecond)
				woke.Add(1)
				wg.Done()
			}()
		}
	}()
	wg.Wait()
	return woke.Load()
}

// pingPong: one goroutine starts n goroutines; each starts a partner, sends it a ping on
// an unbuffered channel and waits for the pong on another. Returns the pairs finished.
func pingPong(n int) uint64 {
	var wg sync.WaitGroup
	var pairs atomic.Uint64
	wg.Add(n)
	go func() {
		for i := 0; i < n; i++ {
			go func() {
				ping, pong := make(chan struct{}), make(chan struct{})
				go func() {
					<-ping
					pong <- struct{}{}
				}()
				ping <- struct{}{}
				<-pong
				pairs.Add(1)
				wg.Done()
			}()
		}
	}()
	wg.Wait()
	return pairs.Load()
}

// yieldsPerTask is the Rust side's YIELDS_PER_TASK.
const yieldsPerTask = 1000

// yieldMany: n goroutines, each calling runtime.Gosched yieldsPerTask times. Returns the
// yields made.
func yieldMany(n int) uint64 {
	var wg sync.WaitGroup
	var yields atomic.Uint64
	wg.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			var y uint64
			for j := 0; j < yieldsPerTask; j++ {
				runtime.Gosched()
				y++
			}
			yields.Add(y)
			wg.Done()
		}()
	}
	wg.Wait()
	return yields.Load()
}

// chainedSpawn: a chain of goroutines, each starting the next, n starts deep; the last
// reports how many starts the chain made.
func chainedSpawn(n int) uint64 {
	done := make(chan uint64)
	var link func(left int, spawned uint64)
	link = func(left int, spawned uint64) {
		if left == 0 {
			done <- spawned
			return
		}
		go link(left-1, spawned+1)
	}
	go link(n, 0)
	return <-done
}

// The Rust side's IDLE_TIMERS, IDLE_TIMER_SLEEP and IDLE_TIMERS_SETTLE.
const (
	idleTimers      = 100000
	idleTimerSleep  = 10 * time.Second
	idleTimerSettle = 50 * time.Millisecond
)

// The channel rows, the same workloads as benches/common/chan_workloads.rs.

// chanCap is the Rust side's CAP: the buffered channels' capacity.
const chanCap = 128

// chanPingPong: n round trips between the main goroutine and an echo goroutine over two
// unbuffered channels; returns the sum of what came back.
func chanPingPong(n int) uint64 {
	ping, pong := make(chan uint64), make(chan uint64)
	go func() {
		for v := range ping {
			pong <- v
		}
	}()
	var sum uint64
	for i := 0; i < n; i++ {
		ping <- uint64(i)
		sum += <-pong
	}
	close(ping)
	return sum
}

// chanPipeline: n values through source -> +1 -> +1 -> sink over channels of chanCap.
func chanPipeline(n int) uint64 {
	a, b, c := make(chan uint64, chanCap), make(chan uint64, chanCap), make(chan uint64, chanCap)
	go func() {
		for i := 0; i < n; i++ {
			a <- uint64(i)
		}
		close(a)
	}()
	go func() {
		for v := range a {
			b <- v + 1
		}
		close(b)
	}()
	go func() {
		for v := range b {
			c <- v + 1
		}
		close(c)
	}()
	var sum uint64
	for v := range c {
		sum += v
	}
	return sum
}

// fanInPer is the Rust side's FANIN_PER: values per producer.
const fanInPer = 1000

// chanFanIn: producers goroutines send fanInPer values each into one channel of
// chanCap; the main goroutine sums them. The last producer to finish closes it.
func chanFanIn(producers int) uint64 {
	c := make(chan uint64, chanCap)
	var wg sync.WaitGroup
	wg.Add(producers)
	for p := 0; p < producers; p++ {
		go func(p uint64) {
			for i := uint64(0); i < fanInPer; i++ {
				c <- p*fanInPer + i
			}
			wg.Done()
		}(uint64(p))
	}
	go func() {
		wg.Wait()
		close(c)
	}()
	var sum uint64
	for v := range c {
		sum += v
	}
	return sum
}

// chanSelect: two goroutines send n/2 values each into their own channel of chanCap; the
// main goroutine selects over both until both are closed (a closed one is set to nil).
func chanSelect(n int) uint64 {
	a, b := make(chan uint64, chanCap), make(chan uint64, chanCap)
	half := n / 2
	go func() {
		for i := 0; i < half; i++ {
			a <- uint64(i)
		}
		close(a)
	}()
	go func() {
		for i := half; i < n; i++ {
			b <- uint64(i)
		}
		close(b)
	}()
	var sum uint64
	for a != nil || b != nil {
		select {
		case v, ok := <-a:
			if !ok {
				a = nil
				continue
			}
			sum += v
		case v, ok := <-b:
			if !ok {
				b = nil
				continue
			}
			sum += v
		}
	}
	return sum
}

// The Rust side's pool constants: workers, which jobs hang, what a timeout counts, and
// the two time limits.
const (
	poolWorkers     = 16
	poolSlowEvery   = 1000
	poolTimedOut    = uint64(1) << 40
	poolTimeout     = time.Second
	poolSlowTimeout = time.Millisecond
	// How long a hanging job's goroutine sleeps: far past its time limit.
	poolSlowSleep = time.Second
)

func jobIsSlow(j uint64) bool { return j%poolSlowEvery == poolSlowEvery-1 }

func jobTimeout(j uint64) time.Duration {
	if jobIsSlow(j) {
		return poolSlowTimeout
	}
	return poolTimeout
}

func runJob(j uint64) uint64 {
	if jobIsSlow(j) {
		time.Sleep(poolSlowSleep)
	}
	return j
}

// chanPool: a job channel, poolWorkers workers, a result channel (both chanCap). Each
// worker runs a job in its own goroutine and waits for its answer or its time limit
// (time.After), whichever comes first; returns the sum of the answers, poolTimedOut per
// timeout.
func chanPool(n int) uint64 {
	jobs, results := make(chan uint64, chanCap), make(chan uint64, chanCap)
	var wg sync.WaitGroup
	wg.Add(poolWorkers)
	for w := 0; w < poolWorkers; w++ {
		go func() {
			defer wg.Done()
			for j := range jobs {
				done := make(chan uint64, 1)
				go func(j uint64) { done <- runJob(j) }(j)
				select {
				case v := <-done:
					results <- v
				case <-time.After(jobTimeout(j)):
					results <- poolTimedOut
				}
			}
		}()
	}
	go func() {
		for i := 0; i < n; i++ {
			jobs <- uint64(i)
		}
		close(jobs)
	}()
	go func() {
		wg.Wait()
		close(results)
	}()
	var sum uint64
	for v := range results {
		sum += v
	}
	return sum
}

func poolExpected(n int) uint64 {
	var sum uint64
	for i := uint64(0); i < uint64(n); i++ {
		if jobIsSlow(i) {
			sum += poolTimedOut
		} else {
			sum += i
		}
	}
	return sum
}

// cpuNanos is the CPU time this process's threads have used: CLOCK_PROCESS_CPUTIME_ID,
// the kernel's exact run-time accounting (the Rust harness reads the same clock), not
// getrusage, whose user and system times are sampled at timer ticks.
func cpuNanos() int64 {
	const clockProcessCPUTimeID = 2
	var ts syscall.Timespec
	if _, _, errno := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockProcessCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0); errno != 0 {
		fmt.Fprintln(os.Stderr, "clock_gettime:", errno)
		os.Exit(1)
	}
	return ts.Nano()
}

func main() {
	workload := flag.String("workload", "", "spawn-outside | spawn-inside | skynet | async-skynet | fib | small-tree | uts | parfor | "+
		"spawn-many | ping-pong | yield-many | chained-spawn | sleep | idle | idle-timers | wake | "+
		"chan-pingpong | chan-pipeline | chan-fanin | chan-select | chan-skynet | chan-pool")
	n := flag.Int("n", 0, "size parameter of the workload")
	workers := flag.Int("workers", runtime.NumCPU(), "GOMAXPROCS")
	reps := flag.Int("reps", 1, "repetitions after one warm-up")
	syncReps := flag.Bool("sync", false, "before each repetition print \"ready\" and wait for a line on stdin "+
		"(the runner starts two copies' repetitions together)")
	flag.Parse()
	if *workers < 1 || *reps < 1 || *n < 0 {
		fmt.Fprintln(os.Stderr, "error: -workers and -reps must be at least 1, -n non-negative")
		os.Exit(2)
	}
	runtime.GOMAXPROCS(*workers)

	var body func() uint64
	var want uint64 // the checked result, computed sequentially
	switch *workload {
	case "spawn-outside", "spawn-many": // a goroutine is Go's async task: one spawn-N for both rows
		body = func() uint64 { return spawnOutside(*n) }
		want = uint64(*n)
	case "spawn-inside":
		body = func() uint64 { return spawnInside(*n) }
		want = uint64(*n)
	case "skynet", "async-skynet", "chan-skynet": // Go's skynet is the channel-per-node one: one for all three rows
		if *n < 1 {
			fmt.Fprintln(os.Stderr, "error: skynet needs -n >= 1 (a power of 10)")
			os.Exit(2)
		}
		body = func() uint64 {
			c := make(chan uint64)
			go skynet(c, 0, uint64(*n), 10)
			return <-c
		}
		want = uint64(*n) * uint64(*n-1) / 2
	case "fib":
		body = func() uint64 { return fib(uint64(*n)) }
		want = fibSequential(uint64(*n))
	case "small-tree": // fib(n) by goroutines, 200 times from the main goroutine (as filch's and rayon's rows)
		body = func() uint64 {
			var sum uint64
			for i := 0; i < smallTreeRepeats; i++ {
				sum += fib(uint64(*n))
			}
			return sum
		}
		want = smallTreeRepeats * fibSequential(uint64(*n))
	case "uts":
		body = func() uint64 { return uts(uint64(*n)) }
		want = utsSequential(uint64(*n))
	case "parfor":
		data := make([]uint64, *n)
		body = func() uint64 { return parfor(data, *workers) }
		want = parforSequential(*n)
	case "sleep":
		body = func() uint64 { return sleepMany(*n) }
		want = uint64(*n)
	case "ping-pong":
		body = func() uint64 { return pingPong(*n) }
		want = uint64(*n)
	case "yield-many":
		body = func() uint64 { return yieldMany(*n) }
		want = uint64(*n) * yieldsPerTask
	case "chained-spawn":
		body = func() uint64 { return chainedSpawn(*n) }
		want = uint64(*n)
	case "chan-pingpong":
		body = func() uint64 { return chanPingPong(*n) }
		want = uint64(*n) * uint64(max(*n-1, 0)) / 2
	case "chan-pipeline":
		body = func() uint64 { return chanPipeline(*n) }
		want = uint64(*n)*uint64(max(*n-1, 0))/2 + 2*uint64(*n)
	case "chan-fanin":
		body = func() uint64 { return chanFanIn(*n) }
		t := uint64(*n) * fanInPer
		want = t * (max(t, 1) - 1) / 2
	case "chan-select":
		if *n%2 != 0 {
			fmt.Fprintln(os.Stderr, "error: chan-select needs an even -n")
			os.Exit(2)
		}
		body = func() uint64 { return chanSelect(*n) }
		want = uint64(*n) * uint64(max(*n-1, 0)) / 2
	case "chan-pool":
		body = func() uint64 { return chanPool(*n) }
		want = poolExpected(*n)
	case "idle-timers":
		// CPU time burned during an idle window of n ms while idleTimers goroutines sleep
		// idleTimerSleep; the window opens idleTimerSettle after the last has started.
		var wg sync.WaitGroup
		var started atomic.Uint64
		wg.Add(idleTimers)
		for i := 0; i < idleTimers; i++ {
			go func() {
				started.Add(1)
				wg.Done()
				time.Sleep(idleTimerSleep)
			}()
		}
		wg.Wait()
		time.Sleep(idleTimerSettle)
		t0 := cpuNanos()
		time.Sleep(time.Duration(*n) * time.Millisecond)
		emit("idle-timers", cpuNanos()-t0, started.Load())
		return
	case "idle":
		// CPU time burned during an idle window of n ms right after a burst.
		spawnOutside(10000)
		t0 := cpuNanos()
		time.Sleep(time.Duration(*n) * time.Millisecond)
		emit("idle", cpuNanos()-t0, 0)
		return
	case "wake":
		// n trials: let everything go idle, then start one goroutine and time until it runs.
		samples := make([]int64, 0, *n)
		for t := 0; t < *n; t++ {
			spawnOutside(1000)
			time.Sleep(20 * time.Millisecond)
			c := make(chan int64)
			t0 := time.Now()
			go func() { c <- int64(time.Since(t0)) }()
			samples = append(samples, <-c)
		}
		sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
		emit("wake-p50", samples[len(samples)/2], 0)
		emit("wake-p99", samples[(len(samples)*99)/100], 0)
		return
	default:
		fmt.Fprintf(os.Stderr, "error: unknown -workload %q\n", *workload)
		os.Exit(2)
	}
	check := func(res uint64) {
		if res != want {
			fmt.Fprintf(os.Stderr, "error: Go %s -n %d computed %d, expected %d\n", *workload, *n, res, want)
			os.Exit(1)
		}
	}
	check(body()) // warm-up
	stdin := bufio.NewReader(os.Stdin)
	for r := 0; r < *reps; r++ {
		if *syncReps {
			fmt.Println("ready")
			if _, err := stdin.ReadString('\n'); err != nil {
				fmt.Fprintln(os.Stderr, "error: -sync: no go-ahead on stdin:", err)
				os.Exit(2)
			}
		}
		t0 := time.Now()
		res := body()
		elapsed := time.Since(t0)
		check(res)
		emit(*workload, int64(elapsed), res)
	}
}
