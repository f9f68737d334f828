// Boost.Fiber / Boost.Context peer for the GreenThreads benchmarks.
//
// Fibers are Boost's green threads; the number of OS threads running the
// work_stealing scheduler is the worker count. The `switch` benchmark also
// reports a raw Boost.Context ping-pong (peer=boostcontext): no scheduler at
// all, just the register save/restore - the floor any green-thread switch
// can approach.
//
// Usage: boostfiber-peer [switch|spawn|fib|skew|pipeline|pingpong|chan|mutex|timers|parkmany ...] [--workers 1,2]
// (no `select`: Boost.Fiber cannot wait on several channels at once)
// Prints: RESULT peer=<boostfiber|boostcontext> benchmark=<name> workers=<n>
//         value=<median> unit=<unit>
#include <boost/context/fiber.hpp>
#include <boost/fiber/all.hpp>

#include <malloc.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace fibers = boost::fibers;
namespace ctx = boost::context;
using Clock = std::chrono::steady_clock;

constexpr long kSwitchYields = 10'000'000;  // total over both fibers
constexpr long kSpawnTotal = 1'000'000;
constexpr long kSpawnBatch = 10'000;
constexpr int kFibN = 27;
constexpr int kFibExpected = 196418;
constexpr int kSkewTasks = 10'000;
constexpr int kSkewIters = 50'000;  // dependent xorshift steps per task: ~50-100 us
constexpr int kPipeLines = 4;
constexpr int kPipeStages = 4;
constexpr long kPipeItems = 10'000;  // per pipeline
constexpr std::size_t kPipeCap = 64;  // a power of 2, as buffered_channel wants
constexpr int kPipeIters = 1'000;     // xorshift steps per item per stage: ~1 us
constexpr long kPingRounds = 1'000'000;
constexpr long kChanMessages = 10'000'000;
constexpr std::size_t kChanCap = 1024;  // buffered_channel wants a power of 2
constexpr int kMutexFibers = 8;
constexpr long kMutexPerFiber = 250'000;
constexpr long kTimerSleeps = 1'000'000;
constexpr auto kTimerSleep = std::chrono::seconds(1);
// A million fibers do not fit in Boost's default 128 KiB stacks; 16 KiB is
// the knob a Boost user would turn (sleep_for needs far less).
constexpr std::size_t kTimerStack = 16 * 1024;
constexpr long kParkFibers = 1'000'000;  // parkmany: parked at once

static double since_ns(Clock::time_point start) {
    return std::chrono::duration<double, std::nano>(Clock::now() - start).count();
}

// Runs the calling thread plus (workers - 1) helper threads under the
// work_stealing algorithm for as long as the Pool lives.
//
// work_stealing keeps a process-wide table of schedulers sized on first use,
// so a process can only ever use one worker count: main() forks a fresh
// child per measurement for that reason.
class Pool {
public:
    explicit Pool(unsigned workers) : ready_(workers) {
        for (unsigned i = 1; i < workers; ++i) {
            helpers_.emplace_back([this, workers] {
                join_scheduler(workers);
                // Park this thread's main fiber; while it waits, the thread's
                // dispatcher keeps stealing and running fibers.
                std::unique_lock<fibers::mutex> lk(mtx_);
                cnd_.wait(lk, [this] { return done_; });
            });
        }
        join_scheduler(workers);
    }

    ~Pool() {
        {
            std::unique_lock<fibers::mutex> lk(mtx_);
            done_ = true;
        }
        cnd_.notify_all();
        for (auto& t : helpers_) t.join();
    }

private:
    void join_scheduler(unsigned workers) {
        // suspend=false: idle threads keep polling for work to steal. With
        // suspend=true a sleeping thread is only woken for fibers made ready
        // from another thread, so freshly spawned fibers would never be
        // stolen by it.
        fibers::use_scheduling_algorithm<fibers::algo::work_stealing>(workers, false);
        // A thief picks random victims from the shared table, so no thread
        // may schedule before every thread has registered. A plain thread
        // latch (not a fiber one) blocks without entering the scheduler.
        ready_.arrive_and_wait();
    }

    std::latch ready_;
    std::vector<std::thread> helpers_;
    fibers::mutex mtx_;
    fibers::condition_variable cnd_;
    bool done_ = false;
};

// --- benchmarks; each returns one measurement --------------------------------

// Two fibers on one thread (default round_robin scheduler) yielding to each
// other: every yield is one scheduler switch.
static double bench_switch() {
    auto body = [] {
        for (long i = 0; i < kSwitchYields / 2; ++i) boost::this_fiber::yield();
    };
    auto start = Clock::now();
    fibers::fiber a(body), b(body);
    a.join();
    b.join();
    return since_ns(start) / kSwitchYields;
}

// Raw Boost.Context ping-pong: each loop iteration is two one-way switches.
static double bench_context_switch() {
    constexpr long rounds = kSwitchYields / 2;
    ctx::fiber peer([](ctx::fiber&& caller) {
        for (long i = 0; i < rounds; ++i) caller = std::move(caller).resume();
        return std::move(caller);
    });
    auto start = Clock::now();
    for (long i = 0; i <= rounds; ++i) peer = std::move(peer).resume();
    // rounds+1 resumes into peer, rounds+1 back out (the last one is its return).
    return since_ns(start) / (2.0 * (rounds + 1));
}

// Spawn a batch of empty fibers, then join the whole batch.
static double bench_spawn() {
    std::vector<fibers::fiber> batch;
    batch.reserve(kSpawnBatch);
    auto start = Clock::now();
    for (long b = 0; b < kSpawnTotal / kSpawnBatch; ++b) {
        for (long i = 0; i < kSpawnBatch; ++i) batch.emplace_back([] {});
        for (auto& f : batch) f.join();
        batch.clear();
    }
    return since_ns(start) / kSpawnTotal;
}

// One fiber per call; the result slot lives on the parent's stack, which is
// safe because the parent joins before returning. (fibers::async would add a
// promise/future allocation per call that the other peers don't pay.)
static int fib(int n) {
    if (n < 2) return n;
    int a = 0;
    fibers::fiber h([&a, n] { a = fib(n - 1); });
    int b = fib(n - 2);
    h.join();
    return a + b;
}

static double bench_fib() {
    auto start = Clock::now();
    int r = fib(kFibN);
    double ms = since_ns(start) / 1e6;
    if (r != kFibExpected) {
        std::fprintf(stderr, "fib(%d) = %d, want %d\n", kFibN, r, kFibExpected);
        std::exit(1);
    }
    return ms;
}

// Dependent xorshift64 chain folded into an accumulator: cannot be
// vectorized, and the result is stored so it cannot be dropped.
static std::uint64_t spin(std::uint64_t seed, int iters) {
    std::uint64_t x = seed | 1, acc = 0;
    for (int i = 0; i < iters; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        acc += x;
    }
    return acc;
}

// All tasks are spawned by the main fiber, so other workers only get work by
// stealing it.
static double bench_skew() {
    std::vector<std::uint64_t> results(kSkewTasks);
    std::vector<fibers::fiber> tasks;
    tasks.reserve(kSkewTasks);
    auto start = Clock::now();
    for (int i = 0; i < kSkewTasks; ++i)
        tasks.emplace_back([&results, i] { results[i] = spin(i, kSkewIters); });
    for (auto& t : tasks) t.join();
    double ms = since_ns(start) / 1e6;
    std::uint64_t sum = 0;
    for (auto r : results) sum += r;
    if (sum == 0) std::fprintf(stderr, "skew: zero checksum\n");  // consume
    return ms;
}

// Four independent pipelines, each a source, four stages and a sink joined
// by buffered channels of capacity 64; every stage does ~1 us of xorshift
// work per item and forwards the item. Nanoseconds per item per stage.
static double bench_pipeline() {
    using chan = fibers::buffered_channel<long>;
    std::vector<std::unique_ptr<chan>> chans;
    std::vector<std::uint64_t> accs(kPipeLines * kPipeStages);
    std::vector<long> sums(kPipeLines);
    std::vector<fibers::fiber> fs;
    auto start = Clock::now();
    for (int p = 0; p < kPipeLines; ++p) {
        chans.push_back(std::make_unique<chan>(kPipeCap));
        chan* src = chans.back().get();
        fs.emplace_back([src] {
            for (long i = 0; i < kPipeItems; ++i) src->push(i);
            src->close();
        });
        chan* in = src;
        for (int s = 0; s < kPipeStages; ++s) {
            chans.push_back(std::make_unique<chan>(kPipeCap));
            chan* out = chans.back().get();
            std::uint64_t* slot = &accs[p * kPipeStages + s];
            fs.emplace_back([in, out, slot] {
                std::uint64_t acc = 0;
                for (long v : *in) {
                    acc += spin(v, kPipeIters);
                    out->push(v);
                }
                out->close();
                *slot = acc;
            });
            in = out;
        }
        long* slot = &sums[p];
        fs.emplace_back([in, slot] {
            long sum = 0;
            for (long v : *in) sum += v;
            *slot = sum;
        });
    }
    for (auto& f : fs) f.join();
    double ns = since_ns(start);
    std::uint64_t work = 0;
    for (auto a : accs) work += a;
    for (long sum : sums) {
        if (sum != kPipeItems * (kPipeItems - 1) / 2 || work == 0) {
            std::fprintf(stderr, "pipeline: wrong sum or zero work checksum\n");
            std::exit(1);
        }
    }
    return ns / (kPipeLines * kPipeStages * kPipeItems);
}

// Unbuffered round trips between two fibers: the echo fiber pops from ping
// and pushes to pong until ping is closed.
static double bench_pingpong() {
    fibers::unbuffered_channel<long> ping, pong;
    auto start = Clock::now();
    fibers::fiber echo([&] {
        for (long v : ping) pong.push(v);
    });
    for (long i = 0; i < kPingRounds; ++i) {
        ping.push(i);
        long v = -1;
        if (pong.pop(v) != fibers::channel_op_status::success || v != i) {
            std::fprintf(stderr, "pingpong: wrong value\n");
            std::exit(1);
        }
    }
    ping.close();
    echo.join();
    return since_ns(start) / kPingRounds;
}

// One producer, one consumer through a buffered channel of capacity 1024
// (Boost's ring buffer keeps one slot free, so it holds at most 1023).
static double bench_chan() {
    fibers::buffered_channel<long> ch(kChanCap);
    long sum = 0;
    auto start = Clock::now();
    fibers::fiber producer([&] {
        for (long i = 0; i < kChanMessages; ++i) ch.push(i);
        ch.close();
    });
    for (long v : ch) sum += v;
    producer.join();
    double ns = since_ns(start);
    if (sum != kChanMessages * (kChanMessages - 1) / 2) {
        std::fprintf(stderr, "chan: wrong sum\n");
        std::exit(1);
    }
    return ns / kChanMessages;
}

// 8 fibers contending for one fibers::mutex.
static double bench_mutex() {
    fibers::mutex mu;
    long counter = 0;
    std::vector<fibers::fiber> fs;
    fs.reserve(kMutexFibers);
    auto start = Clock::now();
    for (int f = 0; f < kMutexFibers; ++f)
        fs.emplace_back([&] {
            for (long i = 0; i < kMutexPerFiber; ++i) {
                std::lock_guard<fibers::mutex> lk(mu);
                ++counter;
            }
        });
    for (auto& f : fs) f.join();
    double ns = since_ns(start);
    if (counter != kMutexFibers * kMutexPerFiber) {
        std::fprintf(stderr, "mutex: lost increments\n");
        std::exit(1);
    }
    return ns / (kMutexFibers * kMutexPerFiber);
}

// --- driver -------------------------------------------------------------------

// Fibers asleep in bench_timers now, and the most ever asleep at once
// (over this process's runs): the divisor of timers-rss.
static std::atomic<long> g_asleep{0}, g_peak_asleep{0};

static void fall_asleep() {
    long now = g_asleep.fetch_add(1, std::memory_order_relaxed) + 1;
    long peak = g_peak_asleep.load(std::memory_order_relaxed);
    while (now > peak && !g_peak_asleep.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
}

// 10^6 detached fibers each sleeping one second; the last to wake signals
// the main fiber (a WaitGroup, as in the Go twin: joining handles instead
// would keep every finished fiber's stack until the end). The overhead
// beyond the second, per sleeper.
static double bench_timers() {
    fibers::mutex mu;
    fibers::condition_variable all_awake;
    long remaining = kTimerSleeps;
    auto start = Clock::now();
    for (long i = 0; i < kTimerSleeps; ++i) {
        fibers::fiber(std::allocator_arg, fibers::fixedsize_stack(kTimerStack), [&] {
            fall_asleep();
            boost::this_fiber::sleep_for(kTimerSleep);
            g_asleep.fetch_sub(1, std::memory_order_relaxed);
            std::lock_guard<fibers::mutex> lk(mu);
            if (--remaining == 0) all_awake.notify_one();
        }).detach();
    }
    {
        std::unique_lock<fibers::mutex> lk(mu);
        all_awake.wait(lk, [&] { return remaining == 0; });
    }
    return (since_ns(start) - std::chrono::duration<double, std::nano>(kTimerSleep).count()) /
           kTimerSleeps;
}

// 10^6 detached fibers parked at once on one unbuffered channel, woken by
// closing it (pop returns `closed`); the last one out signals main.
// spawn+park+wake+exit per fiber. Stacks as in bench_timers.
static double bench_parkmany() {
    fibers::unbuffered_channel<int> gate;
    std::atomic<long> arrived{0};
    fibers::mutex mu;
    fibers::condition_variable all_done;
    long remaining = kParkFibers;
    auto start = Clock::now();
    for (long i = 0; i < kParkFibers; ++i) {
        fibers::fiber(std::allocator_arg, fibers::fixedsize_stack(kTimerStack), [&] {
            arrived.fetch_add(1, std::memory_order_relaxed);
            int v;
            (void)gate.pop(v);
            std::lock_guard<fibers::mutex> lk(mu);
            if (--remaining == 0) all_done.notify_one();
        }).detach();
    }
    while (arrived.load(std::memory_order_relaxed) < kParkFibers) boost::this_fiber::yield();
    gate.close();
    {
        std::unique_lock<fibers::mutex> lk(mu);
        all_done.wait(lk, [&] { return remaining == 0; });
    }
    return since_ns(start) / kParkFibers;
}

static int repeats() {
    const char* s = std::getenv("REPEATS");
    int n = s ? std::atoi(s) : 0;
    return n > 0 ? n : 5;
}

static double median_of(const std::function<double()>& run) {
    run();  // warm-up: fault in stacks and allocator arenas before timing
    std::vector<double> v;
    for (int i = 0, n = repeats(); i < n; ++i) v.push_back(run());
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void report(const char* peer, const std::string& name, unsigned w, double value,
                   const char* unit) {
    std::printf("RESULT peer=%s benchmark=%s workers=%u value=%.3f unit=%s\n", peer,
                name.c_str(), w, value, unit);
    std::fflush(stdout);
}

// Runs one (benchmark, workers) measurement; called in a fresh child process.
static void measure(const std::string& name, unsigned w) {
    if (name == "switch") {
        report("boostfiber", name, w, median_of(bench_switch), "ns/switch");
        report("boostcontext", name, w, median_of(bench_context_switch), "ns/switch");
        return;
    }
    Pool pool(w);
    if (name == "spawn") report("boostfiber", name, w, median_of(bench_spawn), "ns/spawn");
    if (name == "fib") report("boostfiber", name, w, median_of(bench_fib), "ms");
    if (name == "skew") report("boostfiber", name, w, median_of(bench_skew), "ms");
    if (name == "pipeline") report("boostfiber", name, w, median_of(bench_pipeline), "ns/item");
    if (name == "pingpong")
        report("boostfiber", name, w, median_of(bench_pingpong), "ns/roundtrip");
    if (name == "chan") report("boostfiber", name, w, median_of(bench_chan), "ns/message");
    if (name == "mutex") report("boostfiber", name, w, median_of(bench_mutex), "ns/op");
    if (name == "timers") {
        report("boostfiber", name, w, median_of(bench_timers), "ns/sleeper");
        rusage ru{};
        getrusage(RUSAGE_SELF, &ru);  // ru_maxrss: KiB on Linux
        long peak = g_peak_asleep.load();
        std::printf("RESULT peer=boostfiber benchmark=timers-rss workers=%u value=%.1f unit=B/sleeper "
                    "at_once=%ld\n",
                    w, ru.ru_maxrss * 1024.0 / (peak > 0 ? peak : 1), peak);
    }
    if (name == "parkmany") {
        report("boostfiber", name, w, median_of(bench_parkmany), "ns/thread");
        rusage ru{};
        getrusage(RUSAGE_SELF, &ru);
        std::printf("RESULT peer=boostfiber benchmark=parkmany-rss workers=%u value=%.1f unit=B/thread "
                    "at_once=%ld\n",
                    w, ru.ru_maxrss * 1024.0 / kParkFibers, kParkFibers);
    }
}

int main(int argc, char** argv) {
    // Fiber stacks (128 KiB, Boost's default fixedsize_stack) come from
    // malloc. Left alone, glibc serves that size with mmap and hands freed
    // memory back to the kernel after every batch, so the benchmarks would
    // mostly time page faults. Go and GreenThreads reuse stacks; let glibc
    // keep them too.
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    mallopt(M_TRIM_THRESHOLD, -1);  // -1: never trim
    // No `select`: Boost.Fiber has no way to wait on several channels.
    const std::vector<std::string> all = {"switch", "spawn", "fib",  "skew",  "pipeline",
                                          "pingpong", "chan", "mutex", "timers", "parkmany"};
    std::vector<std::string> names;
    std::vector<unsigned> workers = {1, 2};
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--workers" && i + 1 < argc) {
            workers.clear();
            std::string list = argv[++i];
            for (size_t p = 0; p <= list.size();) {
                size_t q = list.find(',', p);
                if (q == std::string::npos) q = list.size();
                int n = std::atoi(list.substr(p, q - p).c_str());
                if (n < 1) {
                    std::fprintf(stderr, "bad worker list %s\n", list.c_str());
                    return 2;
                }
                workers.push_back(n);
                p = q + 1;
            }
        } else if (std::find(all.begin(), all.end(), a) != all.end()) {
            names.push_back(a);
        } else {
            std::fprintf(stderr,
                         "usage: %s [switch|spawn|fib|skew|pipeline|pingpong|chan|mutex|timers|parkmany ...] "
                         "[--workers 1,2]\n",
                         argv[0]);
            return 2;
        }
    }
    if (names.empty()) names = all;

    int status = 0;
    for (const auto& name : names) {
        for (unsigned w : workers) {
            if (name == "switch" && w != 1) continue;  // single-worker benchmark
            // The parent never starts a thread or fiber, so fork is safe.
            pid_t pid = fork();
            if (pid == 0) {
                measure(name, w);
                // Skip static destructors: the work_stealing table outlives
                // this child's threads and is never meant to be torn down.
                std::fflush(stdout);
                _exit(0);
            }
            int st = 0;
            waitpid(pid, &st, 0);
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                std::fprintf(stderr, "boostfiber-peer: %s workers=%u failed\n", name.c_str(), w);
                status = 1;
            }
        }
    }
    return status;
}
