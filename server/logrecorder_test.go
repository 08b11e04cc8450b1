package main

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// logRecorder keeps the lines a fake plugin API was asked to log, so tests can read them back.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *logRecorder) record(level, msg string, pairs []any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, level+" "+msg+" "+fmt.Sprint(pairs...))
}

// logged is every line recorded so far, oldest first.
func (r *logRecorder) logged() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

// onlyLine fails the test unless exactly one line was logged, at level, holding want and none of never.
func (r *logRecorder) onlyLine(t *testing.T, level, want string, never ...string) {
	t.Helper()
	lines := r.logged()
	if len(lines) != 1 || !strings.HasPrefix(lines[0], level+" ") || !strings.Contains(lines[0], want) {
		t.Fatalf("logged %v", lines)
	}
	for _, secret := range never {
		if strings.Contains(lines[0], secret) {
			t.Errorf("the log holds a secret: %s", lines[0])
		}
	}
}
