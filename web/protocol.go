package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/meshgate/meshgate/products"
)

// badRequest is the code of requests that are not GraphQL-over-HTTP at
// all (malformed JSON, a batch, an unreadable body).
const badRequest = "BAD_REQUEST"

func init() {
	// Limits refused before execution are request errors: 400 for
	// application/graphql-response+json clients (200 for application/json,
	// see specStatus).
	errcode.RegisterErrorType(string(products.LimitExceeded), errcode.KindProtocol)
}

// writeError answers with one GraphQL error outside of gqlgen: status,
// extensions.code and further extensions.
func writeError(w http.ResponseWriter, status int, code, message string, ext map[string]any) {
	e := map[string]any{"code": code}
	for k, v := range ext {
		e[k] = v
	}
	body, _ := json.Marshal(map[string]any{"errors": []any{map[string]any{"message": message, "extensions": e}}})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(body)
}

// readBody reads a POST body to /graphql before gqlgen sees it: at most
// maxBytes (413 beyond), within timeout of the request's start (a body
// trickling in byte by byte is cut off with 408), as application/json only
// (415). The body is then served from memory and the connection's read
// deadline is lifted, so that a long query or a server-sent event stream is
// not cut by it. Bodies are never logged.
func readBody(maxBytes int64, timeout time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || isWebsocket(r) {
			next.ServeHTTP(w, r)
			return
		}
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/json" {
			w.Header().Set("Accept-Post", "application/json")
			writeError(w, http.StatusUnsupportedMediaType, badRequest,
				"unsupported content type "+fmt.Sprintf("%q", r.Header.Get("Content-Type"))+": send application/json", nil)
			return
		}
		if r.ContentLength > maxBytes {
			tooLarge(w, maxBytes)
			return
		}
		rc := http.NewResponseController(w)
		if timeout > 0 {
			rc.SetReadDeadline(time.Now().Add(timeout))
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBytes))
		if err != nil {
			// Nothing more is read from this connection: net/http would
			// otherwise wait for the rest of the body before closing it.
			rc.SetReadDeadline(time.Now())
		} else {
			rc.SetReadDeadline(time.Time{})
		}
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			tooLarge(w, maxBytes)
			return
		case errors.Is(err, os.ErrDeadlineExceeded):
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusRequestTimeout, badRequest,
				fmt.Sprintf("the request body was not received within %s", timeout),
				map[string]any{"limit": "bodyReadTimeout", "value": timeout.String()})
			return
		case err != nil:
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusBadRequest, badRequest, "the request body could not be read", nil)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		next.ServeHTTP(w, r)
	})
}

func tooLarge(w http.ResponseWriter, maxBytes int64) {
	w.Header().Set("Connection", "close")
	writeError(w, http.StatusRequestEntityTooLarge, string(products.LimitExceeded),
		fmt.Sprintf("request body larger than %d bytes", maxBytes),
		map[string]any{"limit": "bodyBytes", "value": maxBytes})
}

// requestError is a request that is not a well-formed GraphQL-over-HTTP
// request: 400 with code BAD_REQUEST.
type requestError struct{ msg string }

func (e requestError) Error() string { return e.msg }

// decodeParams decodes a POST body: one JSON object with a string query
// (absent only with an APQ hash), an optional string operationName and
// optional objects variables and extensions. A JSON array (a batch) is
// refused: meshgate runs one operation per request.
func decodeParams(body []byte) (*graphql.RawParams, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	switch {
	case len(trimmed) == 0:
		return nil, requestError{"empty request body: send {\"query\": \"…\"}"}
	case trimmed[0] == '[':
		return nil, requestError{"batched operations are not supported: send one operation per request"}
	case trimmed[0] != '{':
		return nil, requestError{"the request body must be a JSON object"}
	}
	var in struct {
		Query         *string        `json:"query"`
		OperationName *string        `json:"operationName"`
		Variables     map[string]any `json:"variables"`
		Extensions    map[string]any `json:"extensions"`
	}
	// One pass over the body, numbers kept exact (json.Number) as gqlgen
	// expects; null and absent are the same.
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&in); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			want := "an object"
			if te.Field == "query" || te.Field == "operationName" {
				want = "a string"
			}
			return nil, requestError{fmt.Sprintf("%s must be %s", te.Field, want)}
		}
		return nil, requestError{"the request body is not valid JSON: " + jsonProblem(err)}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, requestError{"the request body must hold exactly one JSON object"}
	}
	p := &graphql.RawParams{Variables: in.Variables, Extensions: in.Extensions}
	if in.Query != nil {
		p.Query = *in.Query
	}
	if in.OperationName != nil {
		p.OperationName = *in.OperationName
	}
	if p.Query == "" && p.Extensions["persistedQuery"] == nil {
		return nil, requestError{"missing query"}
	}
	return p, nil
}

// decodeField decodes one parameter, keeping numbers exact (json.Number)
// as gqlgen does; null and absent are the same.
func decodeField(name string, raw json.RawMessage, dst any) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(dst); err != nil {
		want := "an object"
		if name == "query" || name == "operationName" {
			want = "a string"
		}
		return requestError{fmt.Sprintf("%s must be %s", name, want)}
	}
	return nil
}

// jsonProblem describes a JSON syntax error by its position only: the
// offending text is the client's body and is not echoed or logged.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "unexpected end of input"
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("%s has the wrong type", te.Field)
	}
	return "malformed"
}

// httpTransport serves GraphQL over HTTP POST and GET in place of gqlgen's
// transports, which answer malformed JSON with the body echoed in an error
// without a code, and a mutation over GET with 406. The operation's
// deadline (queryTimeout) starts before parsing, so that parsing,
// validation and execution share it, and reaches the SQL through the
// context.
type httpTransport struct {
	method       string
	queryTimeout time.Duration
}

var _ graphql.Transport = httpTransport{}

func (t httpTransport) Supports(r *http.Request) bool {
	return r.Method == t.method && !isWebsocket(r)
}

func (t httpTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	start := graphql.Now()
	var params *graphql.RawParams
	var err error
	if t.method == http.MethodGet {
		params, err = queryParams(r.URL)
	} else {
		var body []byte
		if body, err = io.ReadAll(r.Body); err == nil {
			params, err = decodeParams(body)
		}
	}
	if err != nil {
		msg := "the request could not be read"
		var re requestError
		if errors.As(err, &re) {
			msg = re.msg
		}
		writeError(w, http.StatusBadRequest, badRequest, msg, nil)
		return
	}
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}

	contentType := "application/json"
	if acceptsGraphQLResponse(r) {
		contentType = "application/graphql-response+json"
	}
	ctx := r.Context()
	if t.queryTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.queryTimeout)
		defer cancel()
	}
	w.Header().Set("Content-Type", contentType)
	rc, errs := exec.CreateOperationContext(ctx, params)
	if errs != nil {
		status := http.StatusOK
		if errcode.GetErrorKind(errs) == errcode.KindProtocol {
			status = http.StatusUnprocessableEntity // 200 for application/json: see specStatus
			if contentType == "application/graphql-response+json" {
				status = http.StatusBadRequest
			}
		}
		w.WriteHeader(status)
		writeResponse(w, exec.DispatchError(graphql.WithOperationContext(ctx, rc), errs))
		return
	}
	if t.method == http.MethodPost && rc.Operation.Operation == ast.Subscription {
		// Answered here, it would hold the request open until the first
		// event or the query timeout.
		writeError(w, http.StatusBadRequest, badRequest,
			"a subscription needs a websocket (graphql-transport-ws or graphql-ws) or server-sent events (Accept: text/event-stream)", nil)
		return
	}
	if t.method == http.MethodGet && rc.Operation.Operation != ast.Query {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, badRequest,
			fmt.Sprintf("a %s cannot be sent with GET: use POST", rc.Operation.Operation), nil)
		return
	}
	responses, ctx := exec.DispatchOperation(ctx, rc)
	resp := responses(ctx)
	if resp == nil {
		// gqlgen gives no response once the context has ended.
		resp = &graphql.Response{Errors: gqlerror.List{timeoutError(ctx, t.queryTimeout)}}
	}
	unavailableStatus(w, resp)
	writeResponse(w, resp)
}

// timeoutError is the error of an operation whose context ended before it
// could answer.
func timeoutError(ctx context.Context, timeout time.Duration) *gqlerror.Error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return gqlErrorf(string(products.LimitExceeded), map[string]any{"limit": "queryTimeout", "value": timeout.String()},
			"the query took longer than the server allows; narrow it or ask for fewer rows")
	}
	return gqlErrorf(badRequest, nil, "the request was cancelled")
}

// acceptsGraphQLResponse tells whether the client prefers the
// application/graphql-response+json media type (listed before
// application/json, or alone).
func acceptsGraphQLResponse(r *http.Request) bool {
	for part := range strings.SplitSeq(r.Header.Get("Accept"), ",") {
		mt, _, _ := mime.ParseMediaType(strings.TrimSpace(part))
		switch mt {
		case "application/graphql-response+json":
			return true
		case "application/json":
			return false
		}
	}
	return false
}

// queryParams reads a GET request's parameters.
func queryParams(u *url.URL) (*graphql.RawParams, error) {
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, requestError{"malformed query string"}
	}
	p := &graphql.RawParams{Query: q.Get("query"), OperationName: q.Get("operationName")}
	if v := q.Get("variables"); v != "" {
		if err := decodeField("variables", json.RawMessage(v), &p.Variables); err != nil {
			return nil, err
		}
	}
	if v := q.Get("extensions"); v != "" {
		if err := decodeField("extensions", json.RawMessage(v), &p.Extensions); err != nil {
			return nil, err
		}
	}
	if p.Query == "" && p.Extensions["persistedQuery"] == nil {
		return nil, requestError{"missing query"}
	}
	return p, nil
}

func writeResponse(w io.Writer, resp *graphql.Response) {
	if len(resp.Errors) == 0 && resp.Label == "" && resp.Path == nil && resp.HasNext == nil && len(resp.Data) > 0 {
		// The common answer: data (and extensions, such as the cost),
		// data being JSON the executor wrote. Marshal would validate and
		// copy it byte by byte once more (a large result's biggest cost
		// after executing it).
		var ext []byte
		if len(resp.Extensions) > 0 {
			var err error
			if ext, err = json.Marshal(resp.Extensions); err != nil {
				ext = nil
			}
		}
		if len(resp.Extensions) == 0 || ext != nil {
			w.Write([]byte(`{"data":`))
			w.Write(resp.Data)
			if ext != nil {
				w.Write([]byte(`,"extensions":`))
				w.Write(ext)
			}
			w.Write([]byte(`}`))
			return
		}
	}
	b, err := json.Marshal(resp)
	if err != nil {
		b, _ = json.Marshal(map[string]any{"errors": []any{map[string]any{"message": "response could not be encoded", "extensions": map[string]any{"code": "INTERNAL_SERVER_ERROR"}}}})
	}
	w.Write(b)
}

// gqlErrorf is a GraphQL error with a code and extensions.
func gqlErrorf(code string, ext map[string]any, format string, args ...any) *gqlerror.Error {
	e := &gqlerror.Error{Message: fmt.Sprintf(format, args...), Extensions: map[string]any{"code": code}}
	for k, v := range ext {
		e.Extensions[k] = v
	}
	return e
}
