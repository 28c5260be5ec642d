// Command loadgen sends N POST requests with a JSON body to one URL at a fixed concurrency over
// keep-alive connections, after a warm-up, and prints one JSON object with the results:
// latency percentiles, time to first SSE data line (streams), requests per second, errors.
//
//	loadgen -url http://127.0.0.1:4000/v1/chat/completions -body body.json -n 5000 -c 16 \
//	    [-warmup 200] [-stream] [-max-seconds 60] [-timeout 30s] [-H 'Authorization: Bearer x']
//
// Each of the C workers owns one connection (MaxConnsPerHost = C) and takes the next request
// number from a shared counter until N requests were started or -max-seconds passed; so the
// measured phase has exactly C requests in flight, as a closed-loop client would. A request
// counts as an error when the transport fails, the status is not 200, or (with -stream) the
// stream ends without "data: [DONE]". max_in_flight is the most requests that were open at
// the same moment (sent, answer not yet read to its end): with -c 1000 -n 1000 it shows
// whether 1,000 streams really were open at once. Only loopback URLs are accepted.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type headerList []string

func (h *headerList) String() string     { return strings.Join(*h, ", ") }
func (h *headerList) Set(v string) error { *h = append(*h, v); return nil }

// Percentiles are in milliseconds.
type Percentiles struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

type Result struct {
	URL           string         `json:"url"`
	Concurrency   int            `json:"concurrency"`
	Stream        bool           `json:"stream"`
	Requested     int            `json:"requested"`
	Warmup        int            `json:"warmup"`
	Completed     int            `json:"completed"`
	Errors        int            `json:"errors"`
	ErrorSamples  []string       `json:"error_samples"`
	Statuses      map[string]int `json:"statuses"`
	DurationS     float64        `json:"duration_s"`
	RPS           float64        `json:"rps"`
	TimedOut      bool           `json:"stopped_by_time_limit"`
	LatencyMs     Percentiles    `json:"latency_ms"`
	TTFTMs        *Percentiles   `json:"ttft_ms,omitempty"`
	MaxInFlight   int            `json:"max_in_flight"`
	ResponseBytes int64          `json:"response_bytes"`
	Client        string         `json:"client"`
}

type sample struct {
	start   time.Time
	latency time.Duration
	ttft    time.Duration
	status  int
	bytes   int64
	err     error
}

var doneLine = []byte("data: [DONE]")

func one(ctx context.Context, client *http.Client, target string, body []byte, headers http.Header, stream bool) sample {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return sample{start: start, err: err}
	}
	req.Header = headers.Clone()
	resp, err := client.Do(req)
	if err != nil {
		return sample{start: start, err: err, latency: time.Since(start)}
	}
	defer resp.Body.Close()
	s := sample{start: start, status: resp.StatusCode}
	if !stream {
		n, err := io.Copy(io.Discard, resp.Body)
		s.bytes, s.latency, s.err = n, time.Since(start), err
		if s.err == nil && resp.StatusCode != http.StatusOK {
			s.err = fmt.Errorf("status %d", resp.StatusCode)
		}
		return s
	}
	reader := bufio.NewReaderSize(resp.Body, 64*1024)
	sawDone := false
	for {
		line, err := reader.ReadSlice('\n')
		s.bytes += int64(len(line))
		if s.ttft == 0 && bytes.HasPrefix(line, []byte("data:")) {
			s.ttft = time.Since(start)
		}
		if bytes.HasPrefix(line, doneLine) {
			sawDone = true
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				s.err = err
			}
			break
		}
	}
	s.latency = time.Since(start)
	switch {
	case s.err != nil:
	case resp.StatusCode != http.StatusOK:
		s.err = fmt.Errorf("status %d", resp.StatusCode)
	case !sawDone:
		s.err = errors.New("stream ended without data: [DONE]")
	}
	return s
}

func percentiles(values []time.Duration) Percentiles {
	if len(values) == 0 {
		return Percentiles{}
	}
	sorted := append([]time.Duration(nil), values...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	at := func(q float64) float64 {
		// nearest rank
		rank := int(math.Ceil(q*float64(len(sorted)))) - 1
		if rank < 0 {
			rank = 0
		}
		return ms(sorted[rank])
	}
	var sum time.Duration
	for _, v := range sorted {
		sum += v
	}
	return Percentiles{
		P50: at(0.50), P90: at(0.90), P99: at(0.99),
		Max:  ms(sorted[len(sorted)-1]),
		Mean: ms(sum / time.Duration(len(sorted))),
	}
}

func ms(d time.Duration) float64 { return math.Round(float64(d.Microseconds())) / 1000 }

// maxInFlight is the largest number of samples whose [start, start+latency] overlap.
func maxInFlight(samples []sample) int {
	type event struct {
		at    time.Time
		delta int
	}
	events := make([]event, 0, 2*len(samples))
	for _, s := range samples {
		events = append(events, event{s.start, 1}, event{s.start.Add(s.latency), -1})
	}
	// ends before starts at the same instant: touching intervals do not overlap
	sort.Slice(events, func(i, j int) bool {
		if events[i].at.Equal(events[j].at) {
			return events[i].delta < events[j].delta
		}
		return events[i].at.Before(events[j].at)
	})
	current, most := 0, 0
	for _, e := range events {
		current += e.delta
		if current > most {
			most = current
		}
	}
	return most
}

// run sends n requests (or until deadline) with c workers and returns every sample.
func run(client *http.Client, target string, body []byte, headers http.Header, stream bool,
	n, c int, deadline time.Time, timeout time.Duration) ([]sample, time.Duration, bool) {
	var next atomic.Int64
	var stoppedByTime atomic.Bool
	samples := make([][]sample, c)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for {
				if next.Add(1) > int64(n) {
					return
				}
				if !deadline.IsZero() && time.Now().After(deadline) {
					stoppedByTime.Store(true)
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				samples[w] = append(samples[w], one(ctx, client, target, body, headers, stream))
				cancel()
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []sample
	for _, s := range samples {
		all = append(all, s...)
	}
	return all, elapsed, stoppedByTime.Load()
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "loadgen: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	var headers headerList
	target := flag.String("url", "", "URL to POST to (loopback only)")
	bodyArg := flag.String("body", "", "JSON body, or @FILE to read it from a file")
	n := flag.Int("n", 1000, "measured requests")
	c := flag.Int("c", 1, "concurrency (requests in flight, one connection each)")
	warmup := flag.Int("warmup", 100, "unmeasured requests sent first, at the same concurrency")
	stream := flag.Bool("stream", false, "read the answer as SSE: TTFT = first 'data:' line; must end with [DONE]")
	maxSeconds := flag.Float64("max-seconds", 0, "stop starting requests after this long (0: no limit)")
	timeout := flag.Duration("timeout", 60*time.Second, "per-request timeout")
	flag.Var(&headers, "H", "extra request header 'Name: value' (repeatable)")
	flag.Parse()

	if *target == "" || *n < 1 || *c < 1 || *warmup < 0 {
		fail("need -url, -n >= 1, -c >= 1, -warmup >= 0")
	}
	parsed, err := url.Parse(*target)
	if err != nil {
		fail("bad -url: %v", err)
	}
	if ip := net.ParseIP(parsed.Hostname()); parsed.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		fail("refusing non-loopback target %q", parsed.Hostname())
	}
	body := []byte(*bodyArg)
	if strings.HasPrefix(*bodyArg, "@") {
		if body, err = os.ReadFile((*bodyArg)[1:]); err != nil {
			fail("reading body: %v", err)
		}
	}
	header := http.Header{}
	header.Set("Content-Type", "application/json")
	if *stream {
		header.Set("Accept", "text/event-stream")
	}
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			fail("bad -H %q (want 'Name: value')", h)
		}
		header.Set(strings.TrimSpace(name), strings.TrimSpace(value))
	}

	transport := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        *c * 2,
		MaxIdleConnsPerHost: *c * 2,
		MaxConnsPerHost:     *c,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
		WriteBufferSize:     16 * 1024,
		ReadBufferSize:      64 * 1024,
	}
	client := &http.Client{Transport: transport}

	if *warmup > 0 {
		run(client, *target, body, header, *stream, *warmup, *c, time.Time{}, *timeout)
	}
	var deadline time.Time
	if *maxSeconds > 0 {
		deadline = time.Now().Add(time.Duration(*maxSeconds * float64(time.Second)))
	}
	samples, elapsed, timedOut := run(client, *target, body, header, *stream, *n, *c, deadline, *timeout)

	res := Result{
		URL: *target, Concurrency: *c, Stream: *stream, Requested: *n, Warmup: *warmup,
		Statuses: map[string]int{}, DurationS: elapsed.Seconds(), TimedOut: timedOut,
		Client: "go-loadgen", ErrorSamples: []string{},
	}
	var latencies, ttfts []time.Duration
	res.MaxInFlight = maxInFlight(samples)
	for _, s := range samples {
		res.Completed++
		res.ResponseBytes += s.bytes
		if s.status != 0 {
			res.Statuses[fmt.Sprint(s.status)]++
		}
		if s.err != nil {
			res.Errors++
			if len(res.ErrorSamples) < 5 {
				res.ErrorSamples = append(res.ErrorSamples, s.err.Error())
			}
			continue
		}
		latencies = append(latencies, s.latency)
		if *stream {
			ttfts = append(ttfts, s.ttft)
		}
	}
	if elapsed > 0 {
		res.RPS = math.Round(float64(len(latencies))/elapsed.Seconds()*10) / 10
	}
	res.LatencyMs = percentiles(latencies)
	if *stream {
		p := percentiles(ttfts)
		res.TTFTMs = &p
	}
	out, err := json.Marshal(res)
	if err != nil {
		fail("encoding result: %v", err)
	}
	fmt.Println(string(out))
}
