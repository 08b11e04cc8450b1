package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/mattermost/mattermost/server/public/plugin"
)

const (
	secretHeader = "X-Host-Secret"
	userHeader   = "Mattermost-User-Id"
	// maxForwardBody is the largest body forwarded: the top of the server's MaxBodyBytes range.
	maxForwardBody = 64 << 20
	// startOfBody is how much of a body is read before the request is forwarded: a body
	// that ends within it is sent with its length.
	startOfBody = 64 << 10
	// retryAfterSeconds is what a 502 or 503 of the launcher asks a client to wait, as the server's own 503 does.
	retryAfterSeconds = "1"
)

// errBodyTooLarge ends a body passed on once it is over maxForwardBody.
var errBodyTooLarge = errors.New("the request body is over the largest MaxBodyBytes")

// cappedBody passes a request body on and fails once more than left bytes went through.
type cappedBody struct {
	reader io.Reader
	left   int64
	closer io.Closer
}

func (b *cappedBody) Read(p []byte) (int, error) {
	n, err := b.reader.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n, errBodyTooLarge
	}
	return n, err
}

func (b *cappedBody) Close() error { return b.closer.Close() }

// safeMethod reports whether a request of this method changes nothing.
func safeMethod(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}

// proxyTransport is shared by every forwarded request (its connections are reused).
var proxyTransport = &http.Transport{
	Proxy:                 nil, // loopback only: never through an HTTP proxy
	MaxIdleConnsPerHost:   16,
	IdleConnTimeout:       90 * time.Second,
	ResponseHeaderTimeout: 60 * time.Second,
}

// forward sends a request Mattermost routed to the plugin on to the Python
// server at base. Mattermost has already cut /plugins/<id> from the path, and
// set Mattermost-User-Id for a signed-in user (after dropping any the client
// sent); the secret proves to the server that the request comes through here.
// answered, when not nil, is told each time the server answers.
func forward(w http.ResponseWriter, r *http.Request, base *url.URL, secret string, answered func()) {
	userID := r.Header.Get(userHeader)
	// Mattermost hands the body over as a stream without its length. A short body goes
	// out with its length; a longer one is passed on as it arrives (chunked), since the
	// server's front reads a request whole before the application sees it and refuses
	// what is too large: the launcher never holds more than the start of a body.
	if r.Body != nil {
		start, err := io.ReadAll(io.LimitReader(r.Body, startOfBody+1))
		if err != nil {
			writeError(w, http.StatusBadRequest, "The request body could not be read.")
			return
		}
		if len(start) <= startOfBody {
			r.Body = io.NopCloser(bytes.NewReader(start))
			r.ContentLength = int64(len(start))
		} else {
			r.Body = &cappedBody{reader: io.MultiReader(bytes.NewReader(start), r.Body), left: maxForwardBody,
				closer: r.Body}
			r.ContentLength = -1
		}
	}
	proxy := &httputil.ReverseProxy{
		Transport: proxyTransport,
		Rewrite: func(out *httputil.ProxyRequest) {
			out.Out.URL.Scheme = base.Scheme
			out.Out.URL.Host = base.Host
			out.Out.URL.Path = r.URL.Path
			out.Out.URL.RawPath = r.URL.RawPath
			out.Out.URL.RawQuery = r.URL.RawQuery
			out.Out.Host = base.Host
			// Credentials meant for Mattermost stay with Mattermost.
			out.Out.Header.Del("Authorization")
			out.Out.Header.Del("Cookie")
			out.Out.Header.Del(secretHeader)
			out.Out.Header.Del(userHeader)
			if userID != "" {
				out.Out.Header.Set(userHeader, userID)
			}
			out.Out.Header.Set(secretHeader, secret)
		},
		ModifyResponse: func(*http.Response) error {
			if answered != nil {
				answered()
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, out *http.Request, err error) {
			if errors.Is(err, errBodyTooLarge) {
				writeError(w, http.StatusRequestEntityTooLarge, "The request body is too large.")
				return
			}
			w.Header().Set("Retry-After", retryAfterSeconds)
			if safeMethod(out.Method) {
				writeError(w, http.StatusBadGateway, "The incident server did not answer; try again in a moment.")
				return
			}
			// The server may have died after it committed the change: a blind retry could make it twice.
			writeError(w, http.StatusBadGateway, "The incident server stopped before it answered, so the change "+
				"may or may not have been made: check, then try again in a moment.")
		},
	}
	proxy.ServeHTTP(w, r)
}

// writeError answers in the Python server's one error shape.
func writeError(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": message, "details": map[string]any{}})
}

// ServeHTTP forwards /plugins/<id>/... to the Python server, except the launcher's own routes.
func (p *Plugin) ServeHTTP(_ *plugin.Context, w http.ResponseWriter, r *http.Request) {
	if launcherOnly(r.URL.Path) {
		// Forwarded requests carry the secret: the launcher's own routes must stay its own.
		writeError(w, http.StatusNotFound, "No such endpoint.")
		return
	}
	c := p.running()
	if c == nil {
		w.Header().Set("Retry-After", retryAfterSeconds)
		writeError(w, http.StatusServiceUnavailable,
			"Incident Response is starting or restarting; try again in a moment.")
		return
	}
	base, err := url.Parse(c.baseURL)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "The incident server's address is invalid.")
		return
	}
	forward(w, r, base, p.secret, c.answered)
}
