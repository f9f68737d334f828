// Go peer for the GreenThreads benchmarks.
//
// Each workload mirrors the one gt-bench runs, so the numbers are comparable:
// goroutines are Go's green threads and GOMAXPROCS is its worker count.
//
// Usage: go-peer [switch|spawn|fib|skew|pipeline|pingpong|deadline|chan|select|select-default|select-timeout|select-pingpong|mutex|timers|timer|ticker|parkmany ...] [--workers 1,2]
// Prints: RESULT peer=go benchmark=<name> workers=<n> value=<median> unit=<unit>
package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	switchYields = 10_000_000 // total yields over both goroutines
	spawnTotal   = 1_000_000
	spawnBatch   = 10_000
	fibN         = 27
	fibExpected  = 196418
	skewTasks    = 10_000
	skewIters    = 50_000 // dependent xorshift steps per task: ~50-100 µs
	pipeLines    = 4
	pipeStages   = 4
	pipeItems    = 10_000 // per pipeline
	pipeCap      = 64
	pipeIters    = 1_000 // xorshift steps per item per stage: ~1 µs
	pingRounds   = 1_000_000
	chanMessages = 10_000_000
	chanCap      = 1024
	selPerProd   = 250_000
	selProducers = 4
	selCap       = 128
	selDefaults  = 10_000_000
	selTimeoutN  = 1_000_000
	selPingN     = 1_000_000
	mutexThreads = 8
	mutexPerG    = 250_000
	timerSleeps  = 1_000_000
	timerSleep   = time.Second
	timerOps     = 1_000_000
	parkThreads  = 1_000_000
)

// benchmark is one workload; run returns one measurement on the current
// GOMAXPROCS.
type benchmark struct {
	unit string
	run  func() float64
	// onlyOne marks benchmarks defined for a single worker only.
	onlyOne bool
}

var benchmarks = map[string]benchmark{
	"switch":          {"ns/switch", benchSwitch, true},
	"spawn":           {"ns/spawn", benchSpawn, false},
	"fib":             {"ms", benchFib, false},
	"skew":            {"ms", benchSkew, false},
	"pipeline":        {"ns/item", benchPipeline, false},
	"pingpong":        {"ns/roundtrip", benchPingpong, false},
	"deadline":        {"ns/roundtrip", benchDeadline, false},
	"chan":            {"ns/message", benchChan, false},
	"select":          {"ns/message", benchSelect, false},
	"select-default":  {"ns/select", benchSelectDefault, false},
	"select-timeout":  {"ns/message", benchSelectTimeout, false},
	"select-pingpong": {"ns/roundtrip", benchSelectPingpong, false},
	"mutex":           {"ns/op", benchMutex, false},
	"timers":          {"ns/sleeper", benchTimers, false},
	"timer":           {"ns/op", benchTimer, false},
	"ticker":          {"ns/op", benchTicker, false},
	"parkmany":        {"ns/thread", benchParkMany, false},
}

var order = []string{"switch", "spawn", "fib", "skew", "pipeline", "pingpong", "deadline", "chan", "select", "select-default", "select-timeout", "select-pingpong", "mutex", "timers", "timer", "ticker", "parkmany"}

// benchSwitch: two goroutines on one P hand the CPU to each other with
// Gosched, so every yield is one scheduler switch.
func benchSwitch() float64 {
	per := switchYields / 2
	var wg sync.WaitGroup
	wg.Add(2)
	start := time.Now()
	for g := 0; g < 2; g++ {
		go func() {
			for i := 0; i < per; i++ {
				runtime.Gosched()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	return float64(time.Since(start).Nanoseconds()) / switchYields
}

// benchSpawn: spawn a batch of empty goroutines, then join the whole batch,
// so spawn cost is measured with a bounded number alive at once.
func benchSpawn() float64 {
	start := time.Now()
	for b := 0; b < spawnTotal/spawnBatch; b++ {
		var wg sync.WaitGroup
		wg.Add(spawnBatch)
		for i := 0; i < spawnBatch; i++ {
			go wg.Done()
		}
		wg.Wait()
	}
	return float64(time.Since(start).Nanoseconds()) / spawnTotal
}

// fib forks one goroutine per call; a buffered channel of one is Go's
// natural "join handle carrying a result".
func fib(n int) int {
	if n < 2 {
		return n
	}
	h := make(chan int, 1)
	go func() { h <- fib(n - 1) }()
	b := fib(n - 2)
	return <-h + b
}

func benchFib() float64 {
	start := time.Now()
	r := fib(fibN)
	elapsed := time.Since(start)
	if r != fibExpected {
		fmt.Fprintf(os.Stderr, "fib(%d) = %d, want %d\n", fibN, r, fibExpected)
		os.Exit(1)
	}
	return float64(elapsed.Nanoseconds()) / 1e6
}

// spin is the skew task body: a dependent xorshift64 chain folded into an
// accumulator, so the compiler can neither vectorize nor drop it.
func spin(seed uint64, iters int) uint64 {
	x, acc := seed|1, uint64(0)
	for i := 0; i < iters; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		acc += x
	}
	return acc
}

// benchSkew: every task is spawned by one goroutine (main), so with >1
// worker the others only get work by stealing it.
func benchSkew() float64 {
	results := make([]uint64, skewTasks)
	start := time.Now()
	var wg sync.WaitGroup
	wg.Add(skewTasks)
	for i := 0; i < skewTasks; i++ {
		i := i
		go func() {
			results[i] = spin(uint64(i), skewIters)
			wg.Done()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var sum uint64
	for _, r := range results {
		sum += r
	}
	if sum == 0 { // consume the results; never true in practice
		fmt.Fprintln(os.Stderr, "skew: zero checksum")
	}
	return float64(elapsed.Nanoseconds()) / 1e6
}

// benchPipeline: four independent pipelines, each a source, four stages
// and a sink joined by channels of capacity 64; every stage does ~1 µs of
// xorshift work per item and forwards the item. Nanoseconds per item per
// stage.
func benchPipeline() float64 {
	sums := make([]int, pipeLines)
	accs := make([]uint64, pipeLines*pipeStages)
	var wg sync.WaitGroup
	wg.Add(pipeLines * (pipeStages + 1))
	start := time.Now()
	for p := 0; p < pipeLines; p++ {
		src := make(chan int, pipeCap)
		go func() {
			for i := 0; i < pipeItems; i++ {
				src <- i
			}
			close(src)
		}()
		in := src
		for s := 0; s < pipeStages; s++ {
			out := make(chan int, pipeCap)
			go func(in <-chan int, out chan<- int, slot *uint64) {
				var acc uint64
				for v := range in {
					acc += spin(uint64(v), pipeIters)
					out <- v
				}
				close(out)
				*slot = acc
				wg.Done()
			}(in, out, &accs[p*pipeStages+s])
			in = out
		}
		go func(in <-chan int, slot *int) {
			sum := 0
			for v := range in {
				sum += v
			}
			*slot = sum
			wg.Done()
		}(in, &sums[p])
	}
	wg.Wait()
	elapsed := time.Since(start)
	var work uint64
	for _, a := range accs {
		work += a
	}
	for _, s := range sums {
		if s != pipeItems*(pipeItems-1)/2 || work == 0 {
			fmt.Fprintln(os.Stderr, "pipeline: wrong sum or zero work checksum")
			os.Exit(1)
		}
	}
	return float64(elapsed.Nanoseconds()) / (pipeLines * pipeStages * pipeItems)
}

// benchPingpong: unbuffered round trips between two goroutines.
func benchPingpong() float64 {
	ping, pong := make(chan int), make(chan int)
	start := time.Now()
	done := make(chan struct{})
	go func() {
		for v := range ping {
			pong <- v
		}
		close(done)
	}()
	for i := 0; i < pingRounds; i++ {
		ping <- i
		if <-pong != i {
			fmt.Fprintln(os.Stderr, "pingpong: wrong value")
			os.Exit(1)
		}
	}
	close(ping)
	<-done
	return float64(time.Since(start).Nanoseconds()) / pingRounds
}

// benchDeadline: pingpong with each receive under its own one-hour
// context.WithTimeout, waited for with a select on ctx.Done().
func benchDeadline() float64 {
	ping, pong := make(chan int), make(chan int)
	start := time.Now()
	done := make(chan struct{})
	go func() {
		for v := range ping {
			pong <- v
		}
		close(done)
	}()
	bg := context.Background()
	for i := 0; i < pingRounds; i++ {
		ping <- i
		ctx, cancel := context.WithTimeout(bg, time.Hour)
		select {
		case v := <-pong:
			if v != i {
				fmt.Fprintln(os.Stderr, "deadline: wrong value")
				os.Exit(1)
			}
		case <-ctx.Done():
			fmt.Fprintln(os.Stderr, "deadline: expired")
			os.Exit(1)
		}
		cancel()
	}
	close(ping)
	<-done
	return float64(time.Since(start).Nanoseconds()) / pingRounds
}

// benchChan: one producer, one consumer through a buffered channel.
func benchChan() float64 {
	ch := make(chan int, chanCap)
	start := time.Now()
	go func() {
		for i := 0; i < chanMessages; i++ {
			ch <- i
		}
		close(ch)
	}()
	sum := 0
	for v := range ch {
		sum += v
	}
	elapsed := time.Since(start)
	if sum != chanMessages*(chanMessages-1)/2 {
		fmt.Fprintln(os.Stderr, "chan: wrong sum")
		os.Exit(1)
	}
	return float64(elapsed.Nanoseconds()) / chanMessages
}

// benchSelectDefault: a select over two empty channels with default, the
// polling cost.
func benchSelectDefault() float64 {
	a, b := make(chan int), make(chan int)
	hits, misses := 0, 0
	start := time.Now()
	for i := 0; i < selDefaults; i++ {
		select {
		case <-a:
			hits++
		case <-b:
			hits++
		default:
			misses++
		}
	}
	elapsed := time.Since(start)
	if hits != 0 || misses != selDefaults {
		fmt.Fprintln(os.Stderr, "select-default: a case fired")
		os.Exit(1)
	}
	return float64(elapsed.Nanoseconds()) / selDefaults
}

// benchSelectTimeout: receive or a 1 s timeout that never fires, one
// producer on a channel of capacity 128.
func benchSelectTimeout() float64 {
	ch := make(chan int, selCap)
	done := make(chan struct{})
	start := time.Now()
	go func() {
		for i := 0; i < selTimeoutN; i++ {
			ch <- i
		}
		close(done)
	}()
	sum, timeouts := 0, 0
	for i := 0; i < selTimeoutN; i++ {
		select {
		case v := <-ch:
			sum += v
		case <-time.After(time.Second):
			timeouts++
		}
	}
	<-done
	elapsed := time.Since(start)
	if timeouts != 0 || sum != selTimeoutN*(selTimeoutN-1)/2 {
		fmt.Fprintln(os.Stderr, "select-timeout: wrong sum or a timeout fired")
		os.Exit(1)
	}
	return float64(elapsed.Nanoseconds()) / selTimeoutN
}

// benchSelectPingpong: an unbuffered round trip where both sides select on
// the exchange channel and on a quit channel.
func benchSelectPingpong() float64 {
	ping, pong, quit := make(chan int), make(chan int), make(chan struct{})
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		for {
			select {
			case v := <-ping:
				select {
				case pong <- v:
				case <-quit:
					return
				}
			case <-quit:
				return
			}
		}
	}()
	for i := 0; i < selPingN; i++ {
		select {
		case ping <- i:
		case <-quit:
		}
		select {
		case v := <-pong:
			if v != i {
				fmt.Fprintln(os.Stderr, "select-pingpong: wrong value")
				os.Exit(1)
			}
		case <-quit:
		}
	}
	close(quit)
	<-done
	return float64(time.Since(start).Nanoseconds()) / selPingN
}

// benchSelect: fan-in of four producers through one select.
func benchSelect() float64 {
	total := selPerProd * selProducers
	a, b, c, d := make(chan int, selCap), make(chan int, selCap), make(chan int, selCap), make(chan int, selCap)
	var wg sync.WaitGroup
	wg.Add(selProducers)
	start := time.Now()
	for _, ch := range []chan int{a, b, c, d} {
		ch := ch
		go func() {
			for i := 0; i < selPerProd; i++ {
				ch <- i
			}
			wg.Done()
		}()
	}
	sum := 0
	for i := 0; i < total; i++ {
		select {
		case v := <-a:
			sum += v
		case v := <-b:
			sum += v
		case v := <-c:
			sum += v
		case v := <-d:
			sum += v
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	if sum != selProducers*selPerProd*(selPerProd-1)/2 {
		fmt.Fprintln(os.Stderr, "select: wrong sum")
		os.Exit(1)
	}
	return float64(elapsed.Nanoseconds()) / float64(total)
}

// benchMutex: 8 goroutines contending for one sync.Mutex.
func benchMutex() float64 {
	var mu sync.Mutex
	n := 0
	var wg sync.WaitGroup
	wg.Add(mutexThreads)
	start := time.Now()
	for g := 0; g < mutexThreads; g++ {
		go func() {
			for i := 0; i < mutexPerG; i++ {
				mu.Lock()
				n++
				mu.Unlock()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if n != mutexThreads*mutexPerG {
		fmt.Fprintln(os.Stderr, "mutex: lost increments")
		os.Exit(1)
	}
	return float64(elapsed.Nanoseconds()) / (mutexThreads * mutexPerG)
}

// Goroutines asleep in benchTimers now, and the most ever asleep at once
// (over all runs): the divisor of timers-rss.
var asleep, peakAsleep int64

// fallAsleep counts one more sleeper and raises the peak if it is one.
func fallAsleep() {
	now := atomic.AddInt64(&asleep, 1)
	for {
		peak := atomic.LoadInt64(&peakAsleep)
		if now <= peak || atomic.CompareAndSwapInt64(&peakAsleep, peak, now) {
			return
		}
	}
}

// benchTimers: 10^6 goroutines each sleeping one second, joined by a
// WaitGroup; the overhead beyond the second, per sleeper. main also
// reports timers-rss: peak RSS over the most goroutines asleep at once.
func benchTimers() float64 {
	var wg sync.WaitGroup
	wg.Add(timerSleeps)
	start := time.Now()
	for i := 0; i < timerSleeps; i++ {
		go func() {
			fallAsleep()
			time.Sleep(timerSleep)
			atomic.AddInt64(&asleep, -1)
			wg.Done()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	return float64((elapsed - timerSleep).Nanoseconds()) / timerSleeps
}

// benchTimer: 10^6 × NewTimer(1 h) then Stop on one goroutine, the
// start/stop of a request's timeout (ns per create+stop).
func benchTimer() float64 {
	start := time.Now()
	for i := 0; i < timerOps; i++ {
		t := time.NewTimer(time.Hour)
		t.Stop()
	}
	return float64(time.Since(start).Nanoseconds()) / timerOps
}

// benchTicker: 10^6 × NewTicker(1 h) then Stop on one goroutine.
func benchTicker() float64 {
	start := time.Now()
	for i := 0; i < timerOps; i++ {
		t := time.NewTicker(time.Hour)
		t.Stop()
	}
	return float64(time.Since(start).Nanoseconds()) / timerOps
}

// benchParkMany: 10^6 goroutines parked at once on one unbuffered channel,
// woken by closing it; spawn+park+wake+exit per goroutine. main also reports
// parkmany-rss: peak RSS over the 10^6 parked at once.
func benchParkMany() float64 {
	var arrived int64
	gate := make(chan int)
	var wg sync.WaitGroup
	wg.Add(parkThreads)
	start := time.Now()
	for i := 0; i < parkThreads; i++ {
		go func() {
			atomic.AddInt64(&arrived, 1)
			<-gate
			wg.Done()
		}()
	}
	for atomic.LoadInt64(&arrived) < parkThreads {
		runtime.Gosched()
	}
	close(gate)
	wg.Wait()
	return float64(time.Since(start).Nanoseconds()) / parkThreads
}

// peakRSSBytes is the process's peak resident set (getrusage; KiB on Linux).
func peakRSSBytes() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss * 1024
}

func median(xs []float64) float64 {
	sort.Float64s(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

func main() {
	repeats := 5
	if s := os.Getenv("REPEATS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			repeats = n
		}
	}
	// COLD=1: no warm-up and one timed run, printed as NAME-cold: run one
	// benchmark at one worker count per process for a cold start (fresh
	// heap, stacks and Ps), like gt-bench run --cold.
	cold := os.Getenv("COLD") == "1"
	if cold {
		repeats = 1
	}
	workers := []int{1, 2}
	var names []string
	args := os.Args[1:]
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--workers" && i+1 < len(args):
			i++
			workers = nil
			for _, w := range strings.Split(args[i], ",") {
				n, err := strconv.Atoi(w)
				if err != nil || n < 1 {
					fmt.Fprintf(os.Stderr, "bad worker count %q\n", w)
					os.Exit(2)
				}
				workers = append(workers, n)
			}
		case benchmarks[a].run != nil:
			names = append(names, a)
		default:
			fmt.Fprintf(os.Stderr, "usage: go-peer [%s ...] [--workers 1,2]\n", strings.Join(order, "|"))
			os.Exit(2)
		}
	}
	if len(names) == 0 {
		names = order
	}

	for _, name := range names {
		b := benchmarks[name]
		for _, w := range workers {
			if b.onlyOne && w != 1 {
				continue
			}
			runtime.GOMAXPROCS(w)
			vals := make([]float64, repeats)
			if cold {
				vals[0] = b.run()
				fmt.Printf("RESULT peer=go benchmark=%s-cold workers=%d value=%.3f unit=%s\n",
					name, w, vals[0], b.unit)
				continue
			}
			b.run() // warm-up: grow stacks, heap and Ps before timing
			for r := range vals {
				runtime.GC() // start each repeat from a quiet heap
				vals[r] = b.run()
			}
			fmt.Printf("RESULT peer=go benchmark=%s workers=%d value=%.3f unit=%s\n",
				name, w, median(vals), b.unit)
			if name == "timers" {
				fmt.Printf("RESULT peer=go benchmark=timers-rss workers=%d value=%.1f unit=B/sleeper at_once=%d\n",
					w, float64(peakRSSBytes())/float64(atomic.LoadInt64(&peakAsleep)), atomic.LoadInt64(&peakAsleep))
			}
			if name == "parkmany" {
				fmt.Printf("RESULT peer=go benchmark=parkmany-rss workers=%d value=%.1f unit=B/thread at_once=%d\n",
					w, float64(peakRSSBytes())/parkThreads, parkThreads)
			}
		}
	}
}
