package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// logger is the part of Mattermost's plugin API that writes to the server log.
type logger interface {
	LogInfo(msg string, keyValuePairs ...any)
	LogWarn(msg string, keyValuePairs ...any)
	LogError(msg string, keyValuePairs ...any)
}

// child is one running Python server.
type child struct {
	cmd        *exec.Cmd
	baseURL    string
	env        []string
	done       chan struct{} // closed once the process has exited
	err        error         // the exit status, set before done is closed
	lastAnswer atomic.Int64  // when the server last answered a request handed to it (Unix ns)
}

// freePort asks the kernel for a loopback port that nothing listens on now.
func freePort() (int, error) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer listener.Close()
	return listener.Addr().(*net.TCPAddr).Port, nil
}

// startChild starts the command with its output going to the log, line by line.
//
// The process is started, and waited for, from one goroutine locked to its OS
// thread: the parent-death signal fires when the thread that forked the child
// ends, so that thread must live exactly as long as the child.
func startChild(name string, args []string, env []string, dir string, baseURL string, log logger) (*child, error) {
	c := &child{baseURL: baseURL, env: env, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread ends with this goroutine, after the child.
		// An OS pipe, not an io.Writer: Wait then returns when the process exits,
		// even while workers it left behind still hold the pipe.
		reader, writer, err := os.Pipe()
		if err != nil {
			started <- err
			close(c.done)
			return
		}
		c.cmd = exec.Command(name, args...)
		c.cmd.Env = env
		c.cmd.Dir = dir
		c.cmd.Stdout = writer
		c.cmd.Stderr = writer
		c.cmd.SysProcAttr = childAttributes()
		err = c.cmd.Start()
		writer.Close()
		if err != nil {
			reader.Close()
			started <- err
			close(c.done)
			return
		}
		go forwardLines(reader, log)
		started <- nil
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return c, nil
}

// answered notes that the server has just answered a request the launcher handed to it.
func (c *child) answered() {
	c.lastAnswer.Store(time.Now().UnixNano())
}

// answeredSince tells whether the server answered a request handed to it at or after t.
func (c *child) answeredSince(t time.Time) bool {
	return c.lastAnswer.Load() >= t.UnixNano()
}

// exited tells whether the process has ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// killGroup ends whatever is left of the child's process group (gunicorn's
// workers, when their master died).
func (c *child) killGroup() {
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
}

// stop sends SIGTERM to the child's process group, then SIGKILL after grace.
func (c *child) stop(grace time.Duration) {
	if c.exited() {
		return
	}
	pid := c.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-c.done
	}
	// Workers that outlived their master (they should not) go with the group.
	c.killGroup()
}

// waitHealthy polls GET /healthz until it answers 200, the child exits or ctx ends.
func (c *child) waitHealthy(ctx context.Context, client *http.Client) error {
	ticker := time.NewTicker(200 * time.Millisecond)
	defer ticker.Stop()
	for {
		request, err := http.NewRequestWithContext(ctx, http.MethodGet, c.baseURL+"/healthz", nil)
		if err != nil {
			return err
		}
		response, err := client.Do(request)
		if err == nil {
			_, _ = io.Copy(io.Discard, response.Body)
			response.Body.Close()
			if response.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-c.done:
			return fmt.Errorf("the incident server exited before it answered on /healthz: %v", c.err)
		case <-ctx.Done():
			return errors.New("the incident server did not answer on /healthz in time")
		case <-ticker.C:
		}
	}
}

// logLevel reads the level word a Python log line carries ("... WARNING plugin.x ...").
func logLevel(line string) string {
	for _, word := range strings.Fields(line) {
		switch strings.Trim(word, "[]:") {
		case "ERROR", "CRITICAL":
			return "error"
		case "WARNING", "WARN":
			return "warn"
		case "INFO", "DEBUG":
			return "info"
		}
	}
	return "info"
}

// forwardLines copies the child's output into Mattermost's log, one entry a line.
func forwardLines(reader io.Reader, log logger) {
	scanner := bufio.NewScanner(reader)
	scanner.Buffer(make([]byte, 64*1024), 1024*1024)
	for scanner.Scan() {
		line := scanner.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		switch logLevel(line) {
		case "error":
			log.LogError(line, "source", "incident-server")
		case "warn":
			log.LogWarn(line, "source", "incident-server")
		default:
			log.LogInfo(line, "source", "incident-server")
		}
	}
	// Drain whatever is left so the child never blocks on a full pipe.
	_, _ = io.Copy(io.Discard, reader)
	if closer, ok := reader.(io.Closer); ok {
		closer.Close()
	}
}

// portArgs are the arguments of `incident-plugin serve` for this port.
func serveArgs(port int) []string {
	return []string{"-m", "plugin.cli", "serve", "--host", "127.0.0.1", "--port", strconv.Itoa(port),
		"--workers", "2", "--threads", "4"}
}
