// Command upstream is the simulated OpenAI-compatible provider of `make bench`: the wire format
// of the Python simulator (devtools/aiguillage/devtools/simulators/openai.py) for what the
// benchmark sends, at a fraction of its CPU cost, so that the upstream is not what limits the
// throughput of the systems measured through it.
//
//	upstream -port 0 -name upstream -api-key sk-x -chunks 64 -chunk-interval 0.005
//
// Once listening it prints exactly one line, "READY <url>", on stdout. It answers:
//
//   - POST /v1/chat/completions: a chat.completion, or with "stream": true an SSE stream (a
//     role chunk, the content deltas -chunk-interval seconds apart, a finish chunk, a usage
//     chunk when stream_options.include_usage, then "data: [DONE]"); Bearer key check with
//     OpenAI's 401 error body; max_tokens/max_completion_tokens cut the answer
//     (finish_reason "length");
//   - GET /_sim/health, GET and POST /_sim/config (chunks, chunk_interval), as the Python
//     simulator's admin API.
//
// It has no fault injection, no request log, no echo mode, no tools or JSON response formats
// and no other endpoint: requests for them get a clear error naming the Python simulator,
// which the soak and the tests use for those.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

const kind = "openai"

// shape is the stream shape and the answer built from it, replaced whole by POST /_sim/config.
type shape struct {
	chunks   int
	interval time.Duration
	seconds  float64 // the interval as configured, shown by GET /_sim/config
	words    []string
	answer   answer
	// each piece of the answer as the JSON of a content delta, encoded once
	deltas [][]byte
}

type server struct {
	name   string
	apiKey string // "" when no key is required
	shape  atomic.Pointer[shape]
	ids    atomic.Int64
}

func newShape(name string, chunks int, seconds float64) *shape {
	words := replyWords(name, chunks)
	s := &shape{
		chunks:   chunks,
		interval: time.Duration(seconds * float64(time.Second)),
		seconds:  seconds,
		words:    words,
		answer:   buildAnswer(words, chunks, false),
	}
	s.deltas = contentDeltas(s.answer)
	return s
}

func contentDeltas(a answer) [][]byte {
	out := make([][]byte, len(a.pieces))
	for i, piece := range a.pieces {
		out[i] = encode(struct {
			Content string `json:"content"`
		}{piece})
	}
	return out
}

// answerFor is Simulator.answer: the reply, cut to maxTokens words when that is a smaller
// positive integer.
func (s *shape) answerFor(maxTokens int) (answer, [][]byte) {
	if maxTokens > 0 && maxTokens < len(s.words) {
		cut := buildAnswer(s.words[:maxTokens], s.chunks, true)
		return cut, contentDeltas(cut)
	}
	return s.answer, s.deltas
}

func (s *server) nextID() int64 { return s.ids.Add(1) }

func main() {
	host := flag.String("host", "127.0.0.1", "interface to bind")
	port := flag.Int("port", 0, "port to bind; 0 picks a free one")
	name := flag.String("name", "upstream", "shown in answers and the x-simulator header")
	apiKey := flag.String("api-key", "", "required Bearer key (none when empty)")
	chunks := flag.Int("chunks", 4, "content deltas per streamed answer")
	interval := flag.Float64("chunk-interval", 0, "seconds between two content deltas")
	flag.Parse()
	if *chunks < 1 || *interval < 0 {
		fmt.Fprintln(os.Stderr, "error: -chunks must be at least 1 and -chunk-interval not negative")
		os.Exit(2)
	}
	srv := &server{name: *name, apiKey: *apiKey}
	srv.shape.Store(newShape(*name, *chunks, *interval))

	listener, err := net.Listen("tcp", net.JoinHostPort(*host, strconv.Itoa(*port)))
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: cannot listen on %s:%d: %v\n", *host, *port, err)
		os.Exit(1)
	}
	httpServer := &http.Server{Handler: srv.routes(), ReadHeaderTimeout: 30 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		// Streams in flight are cut: the benchmark only stops the upstream once done with it.
		_ = httpServer.Close()
	}()
	addr := listener.Addr().(*net.TCPAddr)
	fmt.Printf("READY http://%s\n", net.JoinHostPort(addr.IP.String(), strconv.Itoa(addr.Port)))
	if err := httpServer.Serve(listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
}

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_sim/health", s.health)
	mux.HandleFunc("GET /_sim/config", s.getConfig)
	mux.HandleFunc("POST /_sim/config", s.setConfig)
	mux.HandleFunc("/_sim/", s.adminMissing)
	mux.HandleFunc("/", s.api)
	return mux
}

// -- the admin API (admin.py) ----------------------------------------------------------------

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func adminError(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, encode(map[string]string{"error": message}))
}

func (s *server) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, encode(struct {
		Status string `json:"status"`
		Name   string `json:"name"`
		Kind   string `json:"kind"`
	}{"ok", s.name, kind}))
}

// pyFloat writes a float as Python's json does (0.0, not 0), so that both simulators' config
// has the same JSON types.
func pyFloat(v float64) json.RawMessage {
	text := strconv.FormatFloat(v, 'g', -1, 64)
	for _, c := range text {
		if c == '.' || c == 'e' || c == 'n' || c == 'N' {
			return json.RawMessage(text)
		}
	}
	return json.RawMessage(text + ".0")
}

func (s *server) configBody() []byte {
	sh := s.shape.Load()
	return encode(struct {
		Name           string          `json:"name"`
		Kind           string          `json:"kind"`
		Chunks         int             `json:"chunks"`
		ChunkInterval  json.RawMessage `json:"chunk_interval"`
		Echo           bool            `json:"echo"`
		APIKeyRequired bool            `json:"api_key_required"`
	}{s.name, kind, sh.chunks, pyFloat(sh.seconds), false, s.apiKey != ""})
}

func (s *server) getConfig(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.configBody())
}

func (s *server) setConfig(w http.ResponseWriter, r *http.Request) {
	raw, err := readBody(r)
	if err != nil {
		adminError(w, http.StatusBadRequest, err.Error())
		return
	}
	if len(raw) == 0 {
		raw = []byte("{}")
	}
	var data map[string]json.RawMessage
	var decoded any
	if err := json.Unmarshal(raw, &decoded); err != nil {
		adminError(w, http.StatusBadRequest, "invalid JSON: "+err.Error())
		return
	}
	if err := json.Unmarshal(raw, &data); err != nil {
		adminError(w, http.StatusBadRequest, "only 'chunks', 'chunk_interval' and 'echo' can be set")
		return
	}
	for key := range data {
		if key != "chunks" && key != "chunk_interval" && key != "echo" {
			adminError(w, http.StatusBadRequest, "only 'chunks', 'chunk_interval' and 'echo' can be set")
			return
		}
	}
	current := s.shape.Load()
	chunks, seconds := current.chunks, current.seconds
	if v, ok := data["echo"]; ok && string(v) != "null" {
		var echo bool
		if json.Unmarshal(v, &echo) != nil {
			adminError(w, http.StatusBadRequest, "'echo' must be a boolean")
			return
		}
		if echo {
			adminError(w, http.StatusBadRequest, "echo mode is not simulated by the Go benchmark "+
				"upstream: use python -m aiguillage.devtools.simulators")
			return
		}
	}
	if v, ok := data["chunks"]; ok && string(v) != "null" {
		n, isInt := jsonInt(v)
		if !isInt {
			adminError(w, http.StatusBadRequest, "'chunks' must be an integer")
			return
		}
		chunks = n
	}
	if v, ok := data["chunk_interval"]; ok && string(v) != "null" {
		var f float64
		if json.Unmarshal(v, &f) != nil {
			adminError(w, http.StatusBadRequest, "'chunk_interval' must be a number")
			return
		}
		seconds = f
	}
	if chunks < 1 {
		adminError(w, http.StatusBadRequest, "chunks must be at least 1")
		return
	}
	if seconds < 0 {
		adminError(w, http.StatusBadRequest, "chunk_interval must not be negative")
		return
	}
	s.shape.Store(newShape(s.name, chunks, seconds))
	writeJSON(w, http.StatusOK, s.configBody())
}

func (s *server) adminMissing(w http.ResponseWriter, r *http.Request) {
	adminError(w, http.StatusNotFound, fmt.Sprintf("%s %s is not available in the Go benchmark "+
		"upstream (no fault injection, no request log): use python -m aiguillage.devtools.simulators",
		r.Method, r.URL.Path))
}
