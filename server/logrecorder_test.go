package main

import (
	"fmt"
	"sync"
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
