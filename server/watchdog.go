package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// healthCheck is how the launcher tells a hung server from a running one.
type healthCheck struct {
	interval time.Duration // between two probes of GET /healthz
	timeout  time.Duration // for one probe
	failures int           // consecutive failed probes that make the server hung
}

// defaultHealthCheck declares a server hung when it has answered nothing for about a
// minute: six probes, ten seconds apart, each given five seconds, with no answer to
// any other request in between. /healthz waits in the same queue as every request for
// one of the workers' threads, so under overload a probe times out while the server
// keeps answering what it was handed: that counts as alive. A minute is as long as the
// launcher gives any forwarded request, so a server silent for that long fails every
// request it is given. A kill counts toward the crash limit that disables the plugin,
// so erring late costs less than erring early.
var defaultHealthCheck = healthCheck{interval: 10 * time.Second, timeout: 5 * time.Second, failures: 6}

// probe asks GET /healthz once and tells whether it answered 200 in time.
func (c *child) probe(client *http.Client, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	request, err := http.NewRequestWithContext(ctx, http.MethodGet, c.baseURL+"/healthz", nil)
	if err != nil {
		return false
	}
	response, err := client.Do(request)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, response.Body)
	response.Body.Close()
	return response.StatusCode == http.StatusOK
}

// watchHealth probes the running server until it exits (false) or fails
// check.failures probes in a row without answering any other request meanwhile
// (true). Call it once the server has answered /healthz: a server still starting
// is not watched.
func (c *child) watchHealth(client *http.Client, check healthCheck) bool {
	ticker := time.NewTicker(check.interval)
	defer ticker.Stop()
	failed := 0
	since := time.Now()
	for {
		select {
		case <-c.done:
			return false
		case <-ticker.C:
		}
		alive := c.probe(client, check.timeout) || c.answeredSince(since)
		since = time.Now()
		if alive {
			failed = 0
			continue
		}
		if c.exited() {
			return false
		}
		failed++
		if failed >= check.failures {
			return true
		}
	}
}

// guard kills the server's process group when it hangs; watch, which waits for
// it to exit, then restarts it as it restarts a crashed one (crash limit included).
func (p *Plugin) guard(c *child, check healthCheck) {
	// Its own client: a probe must not wait behind the forwarded requests' connections.
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	if !c.watchHealth(client, check) || p.running() != c {
		return
	}
	p.API.LogError(fmt.Sprintf("the incident server did not answer GET /healthz %d times in a row, %s apart; "+
		"killing it so that it restarts", check.failures, check.interval), "pid", c.cmd.Process.Pid)
	c.killGroup()
}
