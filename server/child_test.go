package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

type recordingLogger struct {
	mu    sync.Mutex
	lines []string
}

func (l *recordingLogger) add(level, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, level+" "+msg)
}
func (l *recordingLogger) LogInfo(msg string, _ ...any)  { l.add("info", msg) }
func (l *recordingLogger) LogWarn(msg string, _ ...any)  { l.add("warn", msg) }
func (l *recordingLogger) LogError(msg string, _ ...any) { l.add("error", msg) }
func (l *recordingLogger) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}

func TestLogLevelReadsPythonAndGunicornLevels(t *testing.T) {
	cases := map[string]string{
		"2026-01-01 10:00:00,000 WARNING plugin.chat something":  "warn",
		"[2026-01-01 10:00:00 +0000] [12] [ERROR] Worker failed": "error",
		"2026-01-01 10:00:00,000 INFO plugin.access GET /":       "info",
		"Traceback (most recent call last):":                     "info",
	}
	for line, want := range cases {
		if got := logLevel(line); got != want {
			t.Errorf("logLevel(%q) = %q, want %q", line, got, want)
		}
	}
}

func TestChildOutputReachesTheLogLineByLine(t *testing.T) {
	log := &recordingLogger{}
	c, err := startChild("/bin/sh", []string{"-c", "echo 'x INFO one'; echo 'x ERROR two' >&2"}, nil, t.TempDir(), "", log)
	if err != nil {
		t.Fatal(err)
	}
	<-c.done
	deadline := time.Now().Add(5 * time.Second)
	for len(log.all()) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	lines := strings.Join(log.all(), "\n")
	if !strings.Contains(lines, "info x INFO one") || !strings.Contains(lines, "error x ERROR two") {
		t.Errorf("logged %q", lines)
	}
}

func TestChildGetsOnlyTheGivenEnvironment(t *testing.T) {
	t.Setenv("MM_SQLSETTINGS_DATASOURCE", "postgres://secret")
	dir := t.TempDir()
	out := filepath.Join(dir, "env")
	c, err := startChild("/bin/sh", []string{"-c", "env > " + out}, []string{"ONLY=this"}, dir, "", &recordingLogger{})
	if err != nil {
		t.Fatal(err)
	}
	<-c.done
	data, _ := os.ReadFile(out)
	if strings.Contains(string(data), "MM_SQLSETTINGS") || !strings.Contains(string(data), "ONLY=this") {
		t.Errorf("child environment: %s", data)
	}
}

func TestStopEndsTheChildAndItsWholeProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "grandchild")
	// The shell ignores SIGTERM, so stop must fall back to SIGKILL; its background sleep is a grandchild.
	script := fmt.Sprintf("trap '' TERM; sleep 300 & echo $! > %s; while true; do sleep 1; done", pidFile)
	c, err := startChild("/bin/sh", []string{"-c", script}, nil, dir, "", &recordingLogger{})
	if err != nil {
		t.Fatal(err)
	}
	var grandchild int
	deadline := time.Now().Add(5 * time.Second)
	for grandchild == 0 && time.Now().Before(deadline) {
		data, _ := os.ReadFile(pidFile)
		grandchild, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		time.Sleep(20 * time.Millisecond)
	}
	if grandchild == 0 {
		t.Fatal("the grandchild never started")
	}
	c.stop(500 * time.Millisecond)
	if !c.exited() {
		t.Fatal("child still running after stop")
	}
	deadline = time.Now().Add(5 * time.Second)
	for alive(grandchild) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if alive(grandchild) {
		_ = syscall.Kill(grandchild, syscall.SIGKILL)
		t.Error("the grandchild outlived stop")
	}
}

func TestWaitHealthyFailsAtOnceWhenTheChildExits(t *testing.T) {
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	c, err := startChild("/bin/sh", []string{"-c", "exit 3"}, nil, t.TempDir(),
		fmt.Sprintf("http://127.0.0.1:%d", port), &recordingLogger{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	started := time.Now()
	err = c.waitHealthy(ctx, &http.Client{Timeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "exited") {
		t.Fatalf("waitHealthy = %v", err)
	}
	if time.Since(started) > 10*time.Second {
		t.Errorf("took %s to notice the exit", time.Since(started))
	}
}

func TestKillGroupEndsWorkersLeftByADeadMaster(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "worker")
	// The "master" leaves a background "worker" behind and exits at once.
	c, err := startChild("/bin/sh", []string{"-c", fmt.Sprintf("sleep 300 & echo $! > %s", pidFile)}, nil, dir, "",
		&recordingLogger{})
	if err != nil {
		t.Fatal(err)
	}
	<-c.done
	data, _ := os.ReadFile(pidFile)
	worker, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	if worker == 0 || !alive(worker) {
		t.Fatal("the worker did not start")
	}
	c.killGroup()
	deadline := time.Now().Add(5 * time.Second)
	for alive(worker) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if alive(worker) {
		_ = syscall.Kill(worker, syscall.SIGKILL)
		t.Error("the worker outlived killGroup")
	}
}
