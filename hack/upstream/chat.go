package main

// POST /v1/chat/completions in OpenAI's wire format, as openai.py's handle_chat answers a text
// chat (see main.go for what is left out).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	chatPath    = "/v1/chat/completions"
	maxBody     = 64 << 20 // the Python simulator's client_max_size
	fingerprint = "fp_simulator"
)

// Paths the Python simulator answers and this one does not.
var pythonOnly = map[string]bool{
	"/v1/completions": true, "/v1/embeddings": true, "/v1/responses": true, "/v1/models": true,
}

var (
	done     = []byte("data: [DONE]\n\n")
	nullJSON = json.RawMessage("null")
)

// apiError is an error answer in OpenAI's shape; code "" is null.
type apiError struct {
	status  int
	message string
	param   string
	code    string
}

func nullable(v string) *string {
	if v == "" {
		return nil
	}
	return &v
}

func (e apiError) body() []byte {
	errType := "invalid_request_error"
	if e.status >= 500 {
		errType = "server_error"
	}
	type detail struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	}
	return encode(struct {
		Error detail `json:"error"`
	}{detail{e.message, errType, nullable(e.param), nullable(e.code)}})
}

// encode is json.Marshal without HTML escaping (like orjson), and without a newline.
func encode(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err) // only ever called on values built here
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func readBody(r *http.Request) ([]byte, error) {
	raw, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, fmt.Errorf("request body larger than %d bytes", maxBody)
	}
	return raw, err
}

func redact(key string) string {
	if len(key) > 8 {
		return key[:3] + "****" + key[len(key)-4:]
	}
	return strings.Repeat("*", len(key))
}

// authenticate is OpenAISimulator.authenticate.
func (s *server) authenticate(r *http.Request) *apiError {
	if s.apiKey == "" {
		return nil
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return &apiError{status: 401, message: "You didn't provide an API key. You need to " +
			"provide your API key in an Authorization header using Bearer auth (i.e. " +
			"Authorization: Bearer YOUR_KEY)."}
	}
	scheme, token, _ := strings.Cut(auth, " ")
	token = strings.TrimSpace(token)
	if !strings.EqualFold(scheme, "bearer") || token != s.apiKey {
		return &apiError{status: 401, message: "Incorrect API key provided: " + redact(token) + ".",
			code: "invalid_api_key"}
	}
	return nil
}

// api answers every path but the admin API's: auth first, as the Python simulator does.
func (s *server) api(w http.ResponseWriter, r *http.Request) {
	requestID := fmt.Sprintf("req_%012d", s.nextID())
	h := w.Header()
	h["x-simulator"] = []string{s.name}
	h["x-request-id"] = []string{requestID}
	raw, err := readBody(r)
	if err != nil {
		s.fail(w, apiError{status: 400, message: err.Error()})
		return
	}
	if e := s.authenticate(r); e != nil {
		s.fail(w, *e)
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == chatPath:
		if e := s.chat(w, r, raw); e != nil {
			s.fail(w, *e)
		}
	case pythonOnly[r.URL.Path] || strings.HasPrefix(r.URL.Path, "/v1/models/"):
		s.fail(w, apiError{status: 501, message: fmt.Sprintf("%s %s is not simulated by the Go "+
			"benchmark upstream (only POST %s): use python -m aiguillage.devtools.simulators",
			r.Method, r.URL.Path, chatPath)})
	default:
		s.fail(w, apiError{status: 404, message: fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path)})
	}
}

func (s *server) fail(w http.ResponseWriter, e apiError) {
	writeJSON(w, e.status, e.body())
}

// jsonInt is a JSON integer literal (Python's isinstance(v, int): not 3.0, not true).
func jsonInt(v json.RawMessage) (int, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(string(v)))
	return n, err == nil
}

type usageDetails struct {
	CachedTokens int `json:"cached_tokens"`
	AudioTokens  int `json:"audio_tokens"`
}

type completionDetails struct {
	ReasoningTokens          int `json:"reasoning_tokens"`
	AudioTokens              int `json:"audio_tokens"`
	AcceptedPredictionTokens int `json:"accepted_prediction_tokens"`
	RejectedPredictionTokens int `json:"rejected_prediction_tokens"`
}

type usage struct {
	PromptTokens            int               `json:"prompt_tokens"`
	CompletionTokens        int               `json:"completion_tokens"`
	TotalTokens             int               `json:"total_tokens"`
	PromptTokensDetails     usageDetails      `json:"prompt_tokens_details"`
	CompletionTokensDetails completionDetails `json:"completion_tokens_details"`
}

func newUsage(prompt, completion int) usage {
	return usage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion}
}

type message struct {
	Role        string  `json:"role"`
	Content     string  `json:"content"`
	Refusal     *string `json:"refusal"`
	Annotations []any   `json:"annotations"`
}

type choice struct {
	Index        int             `json:"index"`
	Message      message         `json:"message"`
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason string          `json:"finish_reason"`
}

type completion struct {
	ID                string   `json:"id"`
	Object            string   `json:"object"`
	Created           int64    `json:"created"`
	Model             string   `json:"model"`
	Choices           []choice `json:"choices"`
	Usage             usage    `json:"usage"`
	ServiceTier       string   `json:"service_tier"`
	SystemFingerprint string   `json:"system_fingerprint"`
}

// chatRequest is what the answer depends on; the rest of the body is only checked.
type chatRequest struct {
	model         string
	messages      []any
	stream        bool
	includeUsage  bool
	maxTokens     int
	unsupportedBy string // a field this upstream does not simulate
}

func parseChat(raw []byte) (chatRequest, *apiError) {
	var req chatRequest
	var decoded any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // integers stay integers (max_tokens: 5 is a limit, 5.0 is not)
	if err := dec.Decode(&decoded); err != nil || !atEnd(dec) {
		return req, &apiError{status: 400, message: "The request body is not valid JSON."}
	}
	body, ok := decoded.(map[string]any)
	if !ok {
		return req, &apiError{status: 400, message: "The request body must be a JSON object."}
	}
	model, _ := body["model"].(string)
	if model == "" {
		return req, &apiError{status: 400, message: "you must provide a model parameter", param: "model"}
	}
	messages, _ := body["messages"].([]any)
	if len(messages) == 0 {
		return req, &apiError{status: 400, message: "Missing required parameter: 'messages'.",
			param: "messages"}
	}
	req.model, req.messages = model, messages
	req.stream = truthy(body["stream"])
	if opts, ok := body["stream_options"].(map[string]any); ok {
		req.includeUsage = truthy(opts["include_usage"])
	}
	for _, name := range []string{"max_completion_tokens", "max_tokens"} {
		if v, ok := body[name]; ok && v != nil {
			if n, isNumber := v.(json.Number); isNumber {
				req.maxTokens, _ = jsonInt(json.RawMessage(n))
			}
			break
		}
	}
	if tools, ok := body["tools"].([]any); ok && len(tools) > 0 && body["tool_choice"] != "none" {
		req.unsupportedBy = "tools"
	}
	if format, ok := body["response_format"].(map[string]any); ok {
		if t := format["type"]; t == "json_object" || t == "json_schema" {
			req.unsupportedBy = "response_format"
		}
	}
	return req, nil
}

// atEnd: nothing but white space is left after the decoded value.
func atEnd(dec *json.Decoder) bool {
	_, err := dec.Token()
	return errors.Is(err, io.EOF)
}

// truthy is Python's bool() of a decoded JSON value.
func truthy(v any) bool {
	switch t := v.(type) {
	case nil:
		return false
	case bool:
		return t
	case json.Number:
		f, err := t.Float64()
		return err != nil || f != 0
	case string:
		return t != ""
	case []any:
		return len(t) > 0
	case map[string]any:
		return len(t) > 0
	}
	return true
}

func (s *server) chat(w http.ResponseWriter, r *http.Request, raw []byte) *apiError {
	req, e := parseChat(raw)
	if e != nil {
		return e
	}
	if req.unsupportedBy != "" {
		return &apiError{status: 400, param: req.unsupportedBy, message: "'" + req.unsupportedBy +
			"' is not simulated by the Go benchmark upstream: use python -m " +
			"aiguillage.devtools.simulators"}
	}
	sh := s.shape.Load()
	prompt := countWords(req.messages, "")
	if prompt < 1 {
		prompt = 1
	}
	ans, deltas := sh.answerFor(req.maxTokens)
	id := "chatcmpl-sim" + fmt.Sprintf("%010d", s.nextID())
	created := time.Now().Unix()
	finish := "stop"
	if ans.truncated {
		finish = "length"
	}
	if !req.stream {
		writeJSON(w, http.StatusOK, encode(completion{
			ID: id, Object: "chat.completion", Created: created, Model: req.model,
			Choices: []choice{{Message: message{Role: "assistant", Content: ans.text,
				Annotations: []any{}}, Logprobs: nullJSON, FinishReason: finish}},
			Usage: newUsage(prompt, ans.tokens), ServiceTier: "default",
			SystemFingerprint: fingerprint,
		}))
		return nil
	}
	s.stream(w, r, req, sh, chunkFrames{id: id, created: created, model: req.model,
		includeUsage: req.includeUsage}, deltas, finish, newUsage(prompt, ans.tokens))
	return nil
}

// chunkFrames writes the SSE events of one stream: every chat.completion.chunk of a stream has
// the same envelope, so it is encoded once around each delta.
type chunkFrames struct {
	id, model    string
	created      int64
	includeUsage bool
}

func (c chunkFrames) prefix() []byte {
	head := encode(struct {
		ID                string `json:"id"`
		Object            string `json:"object"`
		Created           int64  `json:"created"`
		Model             string `json:"model"`
		SystemFingerprint string `json:"system_fingerprint"`
	}{c.id, "chat.completion.chunk", c.created, c.model, fingerprint})
	return append(append([]byte("data: "), head[:len(head)-1]...), ",\"choices\":"...)
}

// appendFrame appends one chat.completion.chunk event around “delta“ to “out“.
func (c chunkFrames) appendFrame(out, prefix, delta []byte, finish string) []byte {
	out = append(out, prefix...)
	out = append(out, `[{"index":0,"delta":`...)
	out = append(out, delta...)
	out = append(out, `,"logprobs":null,"finish_reason":`...)
	if finish == "" {
		out = append(out, "null"...)
	} else {
		out = append(out, encode(finish)...)
	}
	out = append(out, "}]"...)
	if c.includeUsage {
		out = append(out, `,"usage":null`...)
	}
	return append(out, "}\n\n"...)
}

func (c chunkFrames) appendUsageFrame(out, prefix []byte, u usage) []byte {
	out = append(out, prefix...)
	out = append(out, `[],"usage":`...)
	out = append(out, encode(u)...)
	return append(out, "}\n\n"...)
}

var roleDelta = []byte(`{"role":"assistant","content":"","refusal":null}`)

func (s *server) stream(w http.ResponseWriter, r *http.Request, req chatRequest, sh *shape,
	frames chunkFrames, deltas [][]byte, finish string, u usage) {
	h := w.Header()
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	flusher, _ := w.(http.Flusher)
	prefix := frames.prefix()
	// One buffer for the whole answer, sized once: the stream capacity round sends thousands
	// of 64-chunk streams a second through this.
	size := (len(deltas) + 3) * (len(prefix) + 112)
	for _, d := range deltas {
		size += len(d)
	}
	buf := make([]byte, 0, size+512)
	send := func(b []byte) bool {
		if _, err := w.Write(b); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	epilogue := func(out []byte) []byte {
		out = frames.appendFrame(out, prefix, []byte("{}"), finish)
		if req.includeUsage {
			out = frames.appendUsageFrame(out, prefix, u)
		}
		return append(out, done...)
	}
	buf = frames.appendFrame(buf, prefix, roleDelta, "")
	if sh.interval <= 0 { // everything in one write, as the Python simulator does
		for _, d := range deltas {
			buf = frames.appendFrame(buf, prefix, d, "")
		}
		send(epilogue(buf))
		return
	}
	if !send(buf) {
		return
	}
	timer := time.NewTimer(0)
	<-timer.C
	defer timer.Stop()
	for i, d := range deltas {
		if i > 0 {
			timer.Reset(sh.interval)
			select {
			case <-timer.C:
			case <-r.Context().Done(): // the client went away
				return
			}
		}
		if !send(frames.appendFrame(buf[:0], prefix, d, "")) {
			return
		}
	}
	send(epilogue(buf[:0]))
}
