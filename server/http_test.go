package main

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestForwardSendsPathQueryUserAndSecretButNoMattermostCredentials(t *testing.T) {
	var seen *http.Request
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Clone(r.Context())
		w.WriteHeader(http.StatusTeapot)
		_, _ = w.Write([]byte("from python"))
	}))
	defer upstream.Close()
	base, _ := url.Parse(upstream.URL)
	request := httptest.NewRequest(http.MethodGet, "/plugins/x/api/v0/incidents?team_id=t1", nil)
	request.URL.Path = "/api/v0/incidents" // Mattermost cuts /plugins/<id>
	request.Header.Set(userHeader, "user1")
	request.Header.Set("Authorization", "Bearer session-token")
	request.Header.Set("Cookie", "MMAUTHTOKEN=session-token")
	request.Header.Set(secretHeader, "forged")
	recorder := httptest.NewRecorder()
	forward(recorder, request, base, "real-secret", nil)
	if recorder.Code != http.StatusTeapot {
		t.Fatalf("status %d", recorder.Code)
	}
	body, _ := io.ReadAll(recorder.Body)
	if string(body) != "from python" {
		t.Errorf("body %q", body)
	}
	if seen.URL.Path != "/api/v0/incidents" || seen.URL.RawQuery != "team_id=t1" {
		t.Errorf("forwarded to %s?%s", seen.URL.Path, seen.URL.RawQuery)
	}
	if seen.Header.Get(userHeader) != "user1" || seen.Header.Get(secretHeader) != "real-secret" {
		t.Errorf("identity headers: %v", seen.Header)
	}
	if seen.Header.Get("Authorization") != "" || seen.Header.Get("Cookie") != "" {
		t.Errorf("Mattermost credentials leaked: %v", seen.Header)
	}
}

func TestForwardWithoutSignedInUserSendsNoUserHeader(t *testing.T) {
	var user []string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user = r.Header.Values(userHeader)
	}))
	defer upstream.Close()
	base, _ := url.Parse(upstream.URL)
	forward(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/api/v0/incidents", nil), base, "s", nil)
	if len(user) != 0 {
		t.Errorf("anonymous request carried a user: %v", user)
	}
}

func TestForwardAnswersBadGatewayInTheErrorShapeWhenTheServerIsGone(t *testing.T) {
	upstream := httptest.NewServer(http.NotFoundHandler())
	base, _ := url.Parse(upstream.URL)
	upstream.Close()
	recorder := httptest.NewRecorder()
	forward(recorder, httptest.NewRequest(http.MethodGet, "/api/v0/incidents", nil), base, "s", nil)
	if recorder.Code != http.StatusBadGateway || recorder.Header().Get("Content-Type") != "application/json" {
		t.Errorf("got %d %q", recorder.Code, recorder.Header().Get("Content-Type"))
	}
}

func TestForwardSendsABodyOfUnknownLengthWithItsLength(t *testing.T) {
	var length int64
	var got []byte
	var chunked bool
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		length = r.ContentLength
		chunked = len(r.TransferEncoding) > 0
		got, _ = io.ReadAll(r.Body)
	}))
	defer upstream.Close()
	base, _ := url.Parse(upstream.URL)
	request := httptest.NewRequest(http.MethodPost, "/api/v0/playbooks", nil)
	// As Mattermost's RPC bridge builds it: a body stream and no length.
	request.Body = io.NopCloser(strings.NewReader(`{"title":"x"}`))
	request.ContentLength = 0
	forward(httptest.NewRecorder(), request, base, "s", nil)
	if string(got) != `{"title":"x"}` || length != int64(len(got)) || chunked {
		t.Errorf("upstream got %q with length %d (chunked %v)", got, length, chunked)
	}
}

// cutShort is a server that dies while it answers: it reads the request, then drops the connection.
func cutShort(t *testing.T) *url.URL {
	t.Helper()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		connection, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			connection.Close()
		}
	}))
	t.Cleanup(upstream.Close)
	base, _ := url.Parse(upstream.URL)
	return base
}

func TestForwardTellsAChangeCutShortByACrashThatItMayHaveBeenMade(t *testing.T) {
	recorder := httptest.NewRecorder()
	request := httptest.NewRequest(http.MethodPost, "/api/v0/playbooks", strings.NewReader(`{"title":"x"}`))
	forward(recorder, request, cutShort(t), "s", nil)
	body, _ := io.ReadAll(recorder.Body)
	if recorder.Code != http.StatusBadGateway || !strings.Contains(string(body), "may or may not have been made") {
		t.Errorf("got %d %s", recorder.Code, body)
	}
	if recorder.Header().Get("Retry-After") != "1" {
		t.Errorf("Retry-After = %q", recorder.Header().Get("Retry-After"))
	}
}

func TestForwardTellsAReadCutShortByACrashToTryAgain(t *testing.T) {
	recorder := httptest.NewRecorder()
	forward(recorder, httptest.NewRequest(http.MethodGet, "/api/v0/incidents", nil), cutShort(t), "s", nil)
	body, _ := io.ReadAll(recorder.Body)
	if recorder.Code != http.StatusBadGateway || strings.Contains(string(body), "may or may not") ||
		!strings.Contains(string(body), "try again") || recorder.Header().Get("Retry-After") != "1" {
		t.Errorf("got %d %s (Retry-After %q)", recorder.Code, body, recorder.Header().Get("Retry-After"))
	}
}

func TestServeHTTPWhileTheServerRestartsAnswers503WithRetryAfter(t *testing.T) {
	p := &Plugin{}
	recorder := httptest.NewRecorder()
	p.ServeHTTP(nil, recorder, httptest.NewRequest(http.MethodGet, "/api/v0/incidents", nil))
	if recorder.Code != http.StatusServiceUnavailable || recorder.Header().Get("Retry-After") != "1" {
		t.Errorf("got %d (Retry-After %q)", recorder.Code, recorder.Header().Get("Retry-After"))
	}
}

// zeros is an endless body of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestForwardPassesALargeBodyOnAsItArrivesWithoutHoldingItWhole(t *testing.T) {
	const size = 8 << 20
	firstPart := make(chan struct{})
	received := make(chan int64, 1)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		read, _ := io.CopyN(io.Discard, r.Body, 1<<20)
		close(firstPart)
		rest, _ := io.Copy(io.Discard, r.Body)
		received <- read + rest
	}))
	defer upstream.Close()
	base, _ := url.Parse(upstream.URL)
	body, writer := io.Pipe()
	go func() {
		_, _ = io.CopyN(writer, zeros{}, 2<<20)
		// The rest only once the server has had the start: a launcher that waits for the
		// whole body before it forwards any would wait here for ever.
		select {
		case <-firstPart:
			_, _ = io.CopyN(writer, zeros{}, size-(2<<20))
			writer.Close()
		case <-time.After(5 * time.Second):
			writer.CloseWithError(errors.New("the server saw nothing of the body before its end"))
		}
	}()
	request := httptest.NewRequest(http.MethodPost, "/api/v0/playbooks", nil)
	request.Body = body
	request.ContentLength = 0 // as Mattermost's RPC bridge hands it over
	forward(httptest.NewRecorder(), request, base, "s", nil)
	select {
	case got := <-received:
		if got != size {
			t.Errorf("the server received %d bytes of %d", got, size)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server never received the whole body")
	}
}

func TestForwardRefusesABodyOverTheLargestLimitInTheErrorShape(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer upstream.Close()
	base, _ := url.Parse(upstream.URL)
	request := httptest.NewRequest(http.MethodPost, "/api/v0/playbooks", nil)
	request.Body = io.NopCloser(io.LimitReader(zeros{}, maxForwardBody+1))
	request.ContentLength = 0
	recorder := httptest.NewRecorder()
	forward(recorder, request, base, "s", nil)
	if recorder.Code != http.StatusRequestEntityTooLarge || recorder.Header().Get("Content-Type") != "application/json" {
		t.Errorf("got %d %q", recorder.Code, recorder.Header().Get("Content-Type"))
	}
}

func TestForwardSendsAnEmptyBodyAsNone(t *testing.T) {
	var length int64 = -2
	var encoding []string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		length, encoding = r.ContentLength, r.TransferEncoding
	}))
	defer upstream.Close()
	base, _ := url.Parse(upstream.URL)
	request := httptest.NewRequest(http.MethodGet, "/api/v0/incidents", nil)
	request.Body = io.NopCloser(strings.NewReader(""))
	forward(httptest.NewRecorder(), request, base, "s", nil)
	if length != 0 || len(encoding) != 0 {
		t.Errorf("a GET went out with length %d and transfer encoding %v", length, encoding)
	}
}
