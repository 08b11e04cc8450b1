package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// layout names the places the launcher uses: the unpacked bundle (replaced on
// every upload) and the data directory (kept across upgrades).
type layout struct {
	bundlePath string
	dataDir    string
}

func newLayout(bundlePath, dataDir string) layout {
	return layout{bundlePath: bundlePath, dataDir: dataDir}
}

// wheelsDir holds the pinned dependency wheels the bundle ships.
func (l layout) wheelsDir() string { return filepath.Join(l.bundlePath, "python", "wheels") }

// requirements lists the dependencies to install from the wheels.
func (l layout) requirements() string {
	return filepath.Join(l.bundlePath, "python", "requirements.txt")
}

// venvDir is the virtual environment made from the wheels.
func (l layout) venvDir() string { return filepath.Join(l.dataDir, "venv") }

// python is the interpreter of the virtual environment.
func (l layout) python() string { return filepath.Join(l.venvDir(), "bin", "python") }

// env is what the server needs to find its code and its data.
func (l layout) env() map[string]string {
	return map[string]string{
		"INCIDENT_DATA_DIR": l.dataDir,
		// The bundled source runs (it carries plugin.json); the venv holds only dependencies.
		"PYTHONPATH":       l.bundlePath,
		"HOME":             l.dataDir,
		"LANG":             "C.UTF-8",
		"PYTHONUNBUFFERED": "1",
	}
}

// interpreterCandidates are tried in order; INCIDENT_PYTHON in Mattermost's
// environment names a specific one.
func interpreterCandidates(environ func(string) string) []string {
	if chosen := environ("INCIDENT_PYTHON"); chosen != "" {
		return []string{chosen}
	}
	return []string{"python3", "python3.13", "python3.12", "python3.11"}
}

// findPython returns the first candidate that runs and is Python 3.11 or newer, with its version.
func findPython(ctx context.Context, candidates []string, path string) (string, string, error) {
	tried := []string{}
	for _, candidate := range candidates {
		found, err := lookPath(candidate, path)
		if err != nil {
			tried = append(tried, candidate+" (not found)")
			continue
		}
		command := exec.CommandContext(ctx, found, "-c",
			"import sys; print('%d.%d' % sys.version_info[:2]); sys.exit(sys.version_info < (3, 11))")
		command.Env = []string{"PATH=" + path}
		output, err := command.Output()
		version := strings.TrimSpace(string(output))
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s (Python %s)", found, version))
			continue
		}
		return found, version, nil
	}
	return "", "", fmt.Errorf("no Python 3.11 or newer found (tried %s): install python3 on the Mattermost "+
		"server, or set INCIDENT_PYTHON in Mattermost's environment", strings.Join(tried, ", "))
}

// lookPath finds an executable on the given PATH (not the launcher's own).
func lookPath(name, path string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	for _, dir := range filepath.SplitList(path) {
		candidate := filepath.Join(dir, name)
		if info, err := os.Stat(candidate); err == nil && !info.IsDir() && info.Mode()&0o111 != 0 {
			return candidate, nil
		}
	}
	return "", exec.ErrNotFound
}

// environmentStamp identifies an environment: the interpreter, the wheels and the requirements.
func environmentStamp(python, version string, l layout) (string, error) {
	digest := sha256.New()
	fmt.Fprintf(digest, "%s\n%s\n", python, version)
	entries, err := os.ReadDir(l.wheelsDir())
	if err != nil {
		return "", fmt.Errorf("read the bundled wheels: %w", err)
	}
	names := []string{}
	for _, entry := range entries {
		names = append(names, entry.Name())
	}
	sort.Strings(names)
	fmt.Fprintln(digest, strings.Join(names, "\n"))
	requirements, err := os.ReadFile(l.requirements())
	if err != nil {
		return "", fmt.Errorf("read the bundled requirements: %w", err)
	}
	digest.Write(requirements)
	return hex.EncodeToString(digest.Sum(nil)), nil
}

// ensureEnvironment makes the virtual environment from the bundled wheels,
// offline, unless one made from the same wheels and interpreter is there.
// It is built beside the final place and renamed into it, so a half-made one
// is never used.
func ensureEnvironment(ctx context.Context, l layout, log logger) error {
	if err := os.MkdirAll(l.dataDir, 0o700); err != nil {
		return fmt.Errorf("create the data directory: %w", err)
	}
	path := os.Getenv("PATH")
	python, version, err := findPython(ctx, interpreterCandidates(os.Getenv), path)
	if err != nil {
		return err
	}
	stamp, err := environmentStamp(python, version, l)
	if err != nil {
		return err
	}
	stampFile := filepath.Join(l.venvDir(), ".bundle-stamp")
	if current, err := os.ReadFile(stampFile); err == nil && string(current) == stamp {
		return nil
	}
	log.LogInfo("installing the incident server's Python environment", "python", python, "version", version)
	building := l.venvDir() + ".new"
	_ = os.RemoveAll(building)
	pip, err := pipWheel(l.wheelsDir())
	if err != nil {
		return err
	}
	env := []string{"PATH=" + path, "HOME=" + l.dataDir, "LANG=C.UTF-8", "PIP_NO_INPUT=1"}
	steps := [][]string{
		// No pip inside the venv: ensurepip is missing on some distributions,
		// and pip runs from its bundled wheel instead.
		{python, "-m", "venv", "--without-pip", building},
		{filepath.Join(building, "bin", "python"), filepath.Join(pip, "pip"), "install", "--no-index",
			"--find-links", l.wheelsDir(), "--no-cache-dir", "--disable-pip-version-check", "--quiet",
			"-r", l.requirements()},
	}
	for _, step := range steps {
		command := exec.CommandContext(ctx, step[0], step[1:]...)
		command.Env = env
		if output, err := command.CombinedOutput(); err != nil {
			return fmt.Errorf("%s failed: %w: %s", strings.Join(step[:3], " "), err, lastLines(string(output), 20))
		}
	}
	if err := os.WriteFile(filepath.Join(building, ".bundle-stamp"), []byte(stamp), 0o600); err != nil {
		return err
	}
	_ = os.RemoveAll(l.venvDir())
	if err := os.Rename(building, l.venvDir()); err != nil {
		return fmt.Errorf("put the environment in place: %w", err)
	}
	log.LogInfo("installed the incident server's Python environment")
	return nil
}

// pipWheel finds the pip wheel among the bundled wheels (pip runs from it directly).
func pipWheel(dir string) (string, error) {
	matches, _ := filepath.Glob(filepath.Join(dir, "pip-*.whl"))
	if len(matches) == 0 {
		return "", errors.New("the bundle has no pip wheel in python/wheels: rebuild it with incident-plugin bundle")
	}
	sort.Strings(matches)
	return matches[len(matches)-1], nil
}

// lastLines keeps the end of a long output for an error message.
func lastLines(text string, count int) string {
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if len(lines) > count {
		lines = lines[len(lines)-count:]
	}
	return strings.Join(lines, "\n")
}
