package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fastCheck makes a hang show within a fraction of a second.
var fastCheck = healthCheck{interval: 20 * time.Millisecond, timeout: 50 * time.Millisecond, failures: 3}

// freezingServer answers /healthz until frozen, then holds every request without an
// answer (as a stopped process would) until the test ends. It counts the probes.
func freezingServer(t *testing.T) (server *httptest.Server, freeze func(), probes *atomic.Int32) {
	t.Helper()
	var frozen atomic.Bool
	probes = &atomic.Int32{}
	release := make(chan struct{})
	server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		probes.Add(1)
		if frozen.Load() {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		_, _ = w.Write([]byte(`{"status": "ok"}`))
	}))
	t.Cleanup(func() {
		close(release)
		server.Close()
	})
	return server, func() { frozen.Store(true) }, probes
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAServerThatStopsAnsweringIsDeclaredHungAfterTheConsecutiveFailures(t *testing.T) {
	server, freeze, probes := freezingServer(t)
	c := &child{baseURL: server.URL, done: make(chan struct{})}
	hung := make(chan bool, 1)
	go func() { hung <- c.watchHealth(&http.Client{}, fastCheck) }()
	waitFor(t, "three answered probes", func() bool { return probes.Load() >= 3 })
	select {
	case <-hung:
		t.Fatal("a server that answers was declared hung")
	default:
	}
	freeze()
	before := probes.Load()
	select {
	case result := <-hung:
		if !result {
			t.Fatal("watchHealth ended without declaring the frozen server hung")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a frozen server was never declared hung")
	}
	if failed := probes.Load() - before; failed < int32(fastCheck.failures) {
		t.Errorf("declared hung after %d failed probes, want %d", failed, fastCheck.failures)
	}
}

func TestAServerThatAnswersLateNowAndThenIsNotDeclaredHung(t *testing.T) {
	var count atomic.Int32
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Every other probe waits past the timeout, as behind a queue of slow requests.
		if count.Add(1)%2 == 0 {
			select {
			case <-time.After(200 * time.Millisecond):
			case <-r.Context().Done():
			}
			return
		}
		_, _ = w.Write([]byte(`{"status": "ok"}`))
	}))
	defer server.Close()
	c := &child{baseURL: server.URL, done: make(chan struct{})}
	hung := make(chan bool, 1)
	go func() { hung <- c.watchHealth(&http.Client{}, fastCheck) }()
	waitFor(t, "ten probes", func() bool { return count.Load() >= 10 })
	close(c.done)
	if <-hung {
		t.Error("a server that answered every other probe was declared hung")
	}
}

func TestABusyServerWhoseProbesTimeOutIsNotHungWhileItAnswersWhatItIsHanded(t *testing.T) {
	// Its probes wait behind a full queue, but forwarded requests keep getting answers.
	server, freeze, probes := freezingServer(t)
	freeze()
	base, _ := url.Parse(server.URL)
	c := &child{baseURL: server.URL, done: make(chan struct{})}
	busy := make(chan struct{})
	go func() {
		for {
			select {
			case <-busy:
				return
			default:
			}
			forward(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/api/v0/incidents", nil), base,
				"s", c.answered)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	hung := make(chan bool, 1)
	go func() { hung <- c.watchHealth(&http.Client{}, fastCheck) }()
	deadline := time.After(10 * time.Second)
	for probes.Load() < int32(3*fastCheck.failures) { // three times the failed probes that make a hang
		select {
		case <-hung:
			close(busy)
			t.Fatal("a server answering forwarded requests was declared hung")
		case <-deadline:
			t.Fatal("gave up waiting for the probes")
		case <-time.After(5 * time.Millisecond):
		}
	}
	close(busy) // it stops answering anything: now it is hung
	select {
	case result := <-hung:
		if !result {
			t.Fatal("watchHealth ended without declaring the silent server hung")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a server that answers nothing was never declared hung")
	}
}

func TestTheWatchEndsWhenTheServerExits(t *testing.T) {
	server, freeze, _ := freezingServer(t)
	freeze()
	c := &child{baseURL: server.URL, done: make(chan struct{})}
	close(c.done)
	if c.watchHealth(&http.Client{}, healthCheck{interval: time.Millisecond, timeout: time.Second, failures: 1}) {
		t.Error("a server that exited was declared hung")
	}
}

// groupWithWorker starts a shell that leaves a background "worker" in its group; it
// returns the child and the worker's pid.
func groupWithWorker(t *testing.T, baseURL string, log logger) (*child, int) {
	t.Helper()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "worker")
	c, err := startChild("/bin/sh", []string{"-c", fmt.Sprintf("sleep 300 & echo $! > %s; wait", pidFile)}, nil, dir,
		baseURL, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.stop(time.Second) })
	var worker int
	waitFor(t, "the worker", func() bool {
		data, _ := os.ReadFile(pidFile)
		worker, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		return worker != 0
	})
	return c, worker
}

func TestAHungServerIsKilledWithItsWholeGroupAndLoggedOnceWithoutSecrets(t *testing.T) {
	server, freeze, _ := freezingServer(t)
	api := &consoleAPI{values: map[string]any{"rudderwritekey": "key-secret-1"}}
	p := &Plugin{secret: "host-secret", keys: []string{"RudderWriteKey"}}
	p.API = api
	c, worker := groupWithWorker(t, server.URL, &recordingLogger{})
	p.setCurrent(c)
	freeze()
	done := make(chan struct{})
	go func() { p.guard(c, fastCheck); close(done) }()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the hung server was not killed")
	}
	<-done
	waitFor(t, "the worker to die", func() bool { return !alive(worker) })
	api.log.onlyLine(t, "error", "/healthz", "host-secret", "key-secret-1")
}

func TestAServerStoppedOnPurposeIsNotKilledByTheWatch(t *testing.T) {
	server, freeze, _ := freezingServer(t)
	api := &consoleAPI{values: map[string]any{}}
	p := &Plugin{}
	p.API = api
	c, worker := groupWithWorker(t, server.URL, &recordingLogger{})
	// Not the current server: the launcher is stopping or replacing it itself.
	freeze()
	p.guard(c, fastCheck)
	if c.exited() || !alive(worker) {
		t.Error("the watch killed a server the launcher no longer runs")
	}
	if lines := api.log.logged(); len(lines) != 0 {
		t.Errorf("logged %v", lines)
	}
}

func TestTheDefaultCheckWaitsAboutAMinuteBeforeDeclaringAHang(t *testing.T) {
	check := (&Plugin{}).healthCheck()
	if check != defaultHealthCheck {
		t.Fatalf("a plugin without its own check uses %+v", check)
	}
	silent := time.Duration(check.failures) * check.interval
	if silent < 50*time.Second || check.timeout >= check.interval {
		t.Errorf("a server is declared hung after %s of silence (probe timeout %s)", silent, check.timeout)
	}
}
