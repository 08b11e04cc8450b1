package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindPythonSkipsMissingAndTooOldInterpreters(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "python-old")
	if err := os.WriteFile(old, []byte("#!/bin/sh\necho 3.9\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, _, err := findPython(context.Background(), []string{"no-such-python", old}, os.Getenv("PATH"))
	if err == nil || !strings.Contains(err.Error(), "no-such-python (not found)") || !strings.Contains(err.Error(), "Python 3.9") {
		t.Fatalf("findPython = %v", err)
	}
	if _, err := lookPath("python3", os.Getenv("PATH")); err != nil {
		t.Skip("no python3 on this machine")
	}
	found, version, err := findPython(context.Background(), []string{"no-such-python", "python3"}, os.Getenv("PATH"))
	if err != nil || found == "" || !strings.HasPrefix(version, "3.") {
		t.Errorf("findPython = %q %q %v", found, version, err)
	}
}

func TestEnvironmentStampChangesWithTheWheels(t *testing.T) {
	bundle := t.TempDir()
	l := newLayout(bundle, t.TempDir())
	if err := os.MkdirAll(l.wheelsDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(l.requirements(), []byte("flask\n"), 0o644)
	_ = os.WriteFile(filepath.Join(l.wheelsDir(), "flask-3.1.3-py3-none-any.whl"), nil, 0o644)
	first, err := environmentStamp("/usr/bin/python3", "3.11", l)
	if err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(l.wheelsDir(), "flask-3.1.4-py3-none-any.whl"), nil, 0o644)
	second, _ := environmentStamp("/usr/bin/python3", "3.11", l)
	third, _ := environmentStamp("/usr/bin/python3.12", "3.12", l)
	if first == second || second == third {
		t.Errorf("stamps should differ: %s %s %s", first, second, third)
	}
}

func TestEnsureEnvironmentNamesTheMissingPipWheel(t *testing.T) {
	if _, err := lookPath("python3", os.Getenv("PATH")); err != nil {
		t.Skip("no python3 on this machine")
	}
	l := newLayout(t.TempDir(), t.TempDir())
	_ = os.MkdirAll(l.wheelsDir(), 0o755)
	_ = os.WriteFile(l.requirements(), []byte("flask\n"), 0o644)
	err := ensureEnvironment(context.Background(), l, &recordingLogger{})
	if err == nil || !strings.Contains(err.Error(), "no pip wheel") {
		t.Fatalf("ensureEnvironment = %v", err)
	}
}
