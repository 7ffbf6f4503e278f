package loadtest

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Flow is one timed unit of work; i numbers it from 0 (it indexes what
// the setup step prepared).
type Flow func(ctx context.Context, i int) error

// RunConfig bounds a run.
type RunConfig struct {
	Concurrency int
	N           int           // at most this many flows (0: no count bound)
	Duration    time.Duration // at most this long
	// PIDs whose CPU time and RSS are measured across the timed window.
	PIDs []int
}

// Result of a timed run.
type Result struct {
	Scenario    string
	Flows       int
	Errors      int
	FirstErrors []string
	Elapsed     time.Duration
	P50         time.Duration
	P90         time.Duration
	P99         time.Duration
	Max         time.Duration
	// ServerCPU is the measured processes' CPU time over the window.
	ServerCPU time.Duration
	RSS       int64 // sum of the processes' RSS at the end
	// DatabaseCPU is the PostgreSQL backends' CPU time over the window
	// (0 on SQLite, which runs inside Gatehouse).
	DatabaseCPU time.Duration
	// ToolCPU is this load tool's own CPU time over the window (the
	// simulated browsers, and the test IdP when it runs in the tool): on
	// two cores it bounds flows/s as much as Gatehouse's CPU does.
	ToolCPU time.Duration
	// Load is the machine's one-minute load average at the end.
	Load  string
	Notes []string
	// Server names the measured processes in the printed line:
	// "gatehouse" when empty, "broker" for another OpenID provider.
	Server string
}

// PerSecond is completed flows per second.
func (r *Result) PerSecond() float64 { return float64(r.Flows) / r.Elapsed.Seconds() }

// CPUPerFlow is Gatehouse's CPU time per completed flow, in milliseconds.
func (r *Result) CPUPerFlow() float64 {
	if r.Flows == 0 {
		return 0
	}
	return float64(r.ServerCPU.Microseconds()) / 1000 / float64(r.Flows)
}

func (r *Result) String() string {
	var b strings.Builder
	server := r.Server
	if server == "" {
		server = "gatehouse"
	}
	fmt.Fprintf(&b, "%-16s flows=%d errors=%d elapsed=%.2fs rate=%.0f/s p50=%s p90=%s p99=%s max=%s %s_cpu=%.3fms/flow rss=%.1fMB",
		r.Scenario, r.Flows, r.Errors, r.Elapsed.Seconds(), r.PerSecond(), ms(r.P50), ms(r.P90), ms(r.P99), ms(r.Max),
		server, r.CPUPerFlow(), float64(r.RSS)/(1<<20))
	if r.DatabaseCPU > 0 && r.Flows > 0 {
		fmt.Fprintf(&b, " postgres_cpu=%.3fms/flow", float64(r.DatabaseCPU.Microseconds())/1000/float64(r.Flows))
	}
	if r.Flows > 0 {
		fmt.Fprintf(&b, " tool_cpu=%.3fms/flow", float64(r.ToolCPU.Microseconds())/1000/float64(r.Flows))
	}
	if r.Load != "" {
		fmt.Fprintf(&b, " load=%s", r.Load)
	}
	for _, e := range r.FirstErrors {
		fmt.Fprintf(&b, "\n  error: %s", e)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "\n  note: %s", n)
	}
	return b.String()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }

// drainGrace bounds how long flows in flight at the end of a window may
// take to finish.
const drainGrace = 30 * time.Second

// Run runs flow from Concurrency workers until N flows were started or
// Duration passed, and measures each flow's latency and the servers' CPU.
// Flows in flight when Duration passes finish and count (for at most
// drainGrace): cutting them off would abort requests in the middle of
// their database work, which closes PostgreSQL connections (pgx cannot
// resume one after a cancelled query) and takes their backends' CPU out of
// the window's measure, and leaves the next window to open and prepare
// new ones.
func Run(ctx context.Context, name string, cfg RunConfig, flow Flow) (*Result, error) {
	if cfg.Concurrency < 1 {
		cfg.Concurrency = 1
	}
	stop, stopped := context.WithTimeout(ctx, cfg.Duration)
	defer stopped()
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration+drainGrace)
	defer cancel()
	before := make([]ProcStat, len(cfg.PIDs))
	for i, pid := range cfg.PIDs {
		st, err := ReadProc(pid)
		if err != nil {
			return nil, err
		}
		before[i] = st
	}
	tool0, err := ReadProc(os.Getpid())
	if err != nil {
		return nil, err
	}
	var (
		next    atomic.Int64
		mu      sync.Mutex
		lat     []time.Duration
		errs    int
		firstEr []string
		wg      sync.WaitGroup
	)
	start := time.Now()
	for w := 0; w < cfg.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, 1024)
			var myErrs int
			var myFirst []string
			for stop.Err() == nil {
				i := int(next.Add(1) - 1)
				if cfg.N > 0 && i >= cfg.N {
					break
				}
				t0 := time.Now()
				err := flow(ctx, i)
				d := time.Since(t0)
				if err != nil {
					if ctx.Err() != nil {
						break // cut off past the grace: neither done nor failed
					}
					myErrs++
					if len(myFirst) < 3 {
						myFirst = append(myFirst, err.Error())
					}
					continue
				}
				mine = append(mine, d)
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += myErrs
			for _, e := range myFirst {
				if len(firstEr) < 5 && !slices.Contains(firstEr, e) {
					firstEr = append(firstEr, e)
				}
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	res := &Result{Scenario: name, Flows: len(lat), Errors: errs, FirstErrors: firstEr, Elapsed: elapsed}
	for i, pid := range cfg.PIDs {
		st, err := ReadProc(pid)
		if err != nil {
			return nil, err
		}
		res.ServerCPU += st.CPU - before[i].CPU
		res.RSS += st.RSS
	}
	if st, err := ReadProc(os.Getpid()); err == nil {
		res.ToolCPU = st.CPU - tool0.CPU
	}
	if avg, err := os.ReadFile("/proc/loadavg"); err == nil {
		res.Load, _, _ = strings.Cut(string(avg), " ")
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(float64(len(lat))*p))]
	}
	res.P50, res.P90, res.P99 = pct(0.50), pct(0.90), pct(0.99)
	if len(lat) > 0 {
		res.Max = lat[len(lat)-1]
	}
	return res, nil
}

// Parallel runs fn(i) for i in [0, n) on workers goroutines (setup steps).
func Parallel(n, workers int, fn func(i int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}
