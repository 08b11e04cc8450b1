package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mattermost/mattermost/server/public/model"
	"github.com/mattermost/mattermost/server/public/plugin"
)

const (
	botUsername      = "incident"
	botTokenKeyBase  = "bot-token-id"
	startTimeout     = 2 * time.Minute
	stopGrace        = 15 * time.Second
	maxRestarts      = 3
	restartWindow    = 10 * time.Minute
	commandTrigger   = "incident"
	commandTimeout   = 25 * time.Second
	dataDirInFileDir = "plugin-data"
)

// Plugin is the launcher: it runs the Python server as a child and forwards the
// slash command and the plugin's HTTP routes to it.
type Plugin struct {
	plugin.MattermostPlugin

	configurationLock sync.RWMutex
	configuration     *configuration

	// lifecycle guards everything below: activation, restarts and deactivation.
	lifecycle sync.Mutex
	active    bool
	child     *child
	layout    layout
	keys      []string
	secret    string
	slash     string
	botToken  string
	restarts  []time.Time
	// bridge is the listener the server calls back on; it lives for the activation,
	// across restarts of the server, so its address in the environment stays the same.
	bridge *bridge

	// current is the running child for the request paths (read without the lifecycle lock).
	currentLock sync.RWMutex
	current     *child
	// starting is closed when the start under way (if any) has ended; nil when none is.
	starting chan struct{}

	// health is how a running server is checked for a hang; zero means defaultHealthCheck.
	health healthCheck

	client *http.Client
}

// OnActivate prepares the Python environment, starts the server, makes the bot
// and registers /incident.
func (p *Plugin) OnActivate() error {
	p.lifecycle.Lock()
	defer p.lifecycle.Unlock()
	p.client = &http.Client{Timeout: 10 * time.Second, Transport: proxyTransport}
	bundlePath, err := p.API.GetBundlePath()
	if err != nil {
		return fmt.Errorf("find the bundle: %w", err)
	}
	id, keys, err := readManifest(bundlePath)
	if err != nil {
		return err
	}
	config := p.API.GetConfig()
	fileDir := "./data/"
	if config.FileSettings.Directory != nil && *config.FileSettings.Directory != "" {
		fileDir = *config.FileSettings.Directory
	}
	dataDir, err := filepath.Abs(filepath.Join(fileDir, dataDirInFileDir, id))
	if err != nil {
		return err
	}
	p.layout = newLayout(bundlePath, dataDir)
	p.keys = keys
	if p.secret, err = randomSecret(); err != nil {
		return err
	}
	if p.slash, err = randomSecret(); err != nil {
		return err
	}
	if p.botToken, err = p.ensureBotToken(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := ensureEnvironment(ctx, p.layout, p.API); err != nil {
		return err
	}
	p.closeBridgeLocked()
	if p.bridge, err = startBridge(p.API, p.secret); err != nil {
		return err
	}
	if err := p.startLocked(); err != nil {
		p.closeBridgeLocked()
		return err
	}
	if err := p.API.RegisterCommand(incidentCommand()); err != nil {
		p.stopLocked()
		p.closeBridgeLocked()
		return fmt.Errorf("register /%s: %w", commandTrigger, err)
	}
	p.active = true
	return nil
}

// OnDeactivate stops the Python server and waits for it to exit.
func (p *Plugin) OnDeactivate() error {
	p.lifecycle.Lock()
	defer p.lifecycle.Unlock()
	p.active = false
	p.stopLocked()
	// The server, its one caller, is gone: calls it left under way get a moment to finish.
	p.closeBridgeLocked()
	// The token is useless without the server; the next activation makes a new one.
	if tokenID, appErr := p.API.KVGet(botTokenKey()); appErr == nil && len(tokenID) > 0 {
		if appErr := p.API.RevokeUserAccessToken(string(tokenID)); appErr == nil {
			_ = p.API.KVDelete(botTokenKey())
		}
	}
	return nil
}

// reconcile restarts the running server when the environment it should have changed.
func (p *Plugin) reconcile() error {
	p.lifecycle.Lock()
	defer p.lifecycle.Unlock()
	if !p.active || p.child == nil {
		return nil
	}
	if slices.Equal(p.child.env, p.desiredEnv()) {
		return nil
	}
	p.API.LogInfo("settings changed: restarting the incident server")
	p.stopLocked()
	if err := p.startLocked(); err != nil {
		p.giveUp("the incident server did not start with the new settings", err)
	}
	return nil
}

// giveUp ends the launcher after logging why. Mattermost's health check then
// sees the plugin fail, restarts it, and disables it (shown in the System
// Console) when it keeps failing: a plugin that runs without its server would
// only answer 503s.
func (p *Plugin) giveUp(reason string, err error) {
	p.API.LogError(reason+"; stopping the plugin so that Mattermost reports it", "error", fmt.Sprint(err))
	os.Exit(1)
}

// desiredEnv is the environment the server must run with for the settings in force.
func (p *Plugin) desiredEnv() []string {
	config := p.API.GetConfig()
	own := settingsEnv(p.keys, p.getConfiguration().values)
	own["INCIDENT_HOST_SECRET"] = p.secret
	own["INCIDENT_SLASH_COMMAND_TOKEN"] = p.slash
	own["INCIDENT_MATTERMOST_SITE_URL"] = apiBaseURL(config)
	own["INCIDENT_MATTERMOST_BOT_TOKEN"] = p.botToken
	own["INCIDENT_SERVER_DIAGNOSTICS_ENABLED"] = fmt.Sprint(diagnosticsEnabled(config))
	if p.bridge != nil {
		own[launcherURLVariable] = p.bridge.url()
	}
	for name, value := range p.layout.env() {
		own[name] = value
	}
	env := childEnv(os.Environ(), own)
	return withLoopbackNoProxy(env)
}

// startLocked starts a server, waits until it is healthy and watches it.
func (p *Plugin) startLocked() error {
	// Marked before the environment is read: a save from here on waits for this start.
	defer p.beginStart()()
	var lastErr error
	// A port found free can be taken before the server binds it: one more try then.
	for attempt := 0; attempt < 2; attempt++ {
		port, err := freePort()
		if err != nil {
			return fmt.Errorf("find a free loopback port: %w", err)
		}
		c, err := startChild(p.layout.python(), serveArgs(port), p.desiredEnv(), p.layout.dataDir,
			fmt.Sprintf("http://127.0.0.1:%d", port), p.API)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		lastErr = c.waitHealthy(ctx, p.client)
		cancel()
		if lastErr == nil {
			// The settings of now, which a save during the start may have changed since.
			p.handOver(c, p.desiredEnv())
			p.child = c
			p.setCurrent(c)
			go p.watch(c)
			go p.guard(c, p.healthCheck())
			p.API.LogInfo("incident server started", "pid", c.cmd.Process.Pid, "port", port)
			return nil
		}
		c.stop(stopGrace)
	}
	return lastErr
}

// stopLocked stops the running server, if any.
func (p *Plugin) stopLocked() {
	c := p.child
	p.child = nil
	p.setCurrent(nil)
	if c != nil {
		c.stop(stopGrace)
		p.API.LogInfo("incident server stopped")
	}
}

// watch restarts a server that exits on its own. After maxRestarts within
// restartWindow the launcher exits instead, so that Mattermost's health check
// sees the failure, restarts the plugin, and disables it if that keeps failing.
func (p *Plugin) watch(c *child) {
	<-c.done
	c.killGroup()
	p.lifecycle.Lock()
	defer p.lifecycle.Unlock()
	if p.child != c {
		return // stopped on purpose
	}
	p.API.LogError("the incident server exited unexpectedly", "error", fmt.Sprint(c.err))
	p.child = nil
	p.setCurrent(nil)
	now := time.Now()
	p.restarts = append(slices.DeleteFunc(p.restarts, func(at time.Time) bool {
		return now.Sub(at) > restartWindow
	}), now)
	if len(p.restarts) > maxRestarts {
		p.giveUp(fmt.Sprintf("the incident server exited %d times within %s", len(p.restarts), restartWindow), c.err)
	}
	time.Sleep(time.Duration(len(p.restarts)) * time.Second)
	if err := p.startLocked(); err != nil {
		p.giveUp("could not restart the incident server", err)
	}
}

// closeBridgeLocked closes the listener of the activation, if any.
func (p *Plugin) closeBridgeLocked() {
	if p.bridge != nil {
		p.bridge.close()
		p.bridge = nil
	}
}

func (p *Plugin) setCurrent(c *child) {
	p.currentLock.Lock()
	defer p.currentLock.Unlock()
	p.current = c
}

// beginStart marks a start as under way; the function it returns marks it ended.
func (p *Plugin) beginStart() func() {
	p.currentLock.Lock()
	defer p.currentLock.Unlock()
	starting := make(chan struct{})
	p.starting = starting
	return func() {
		p.currentLock.Lock()
		defer p.currentLock.Unlock()
		close(starting)
		if p.starting == starting {
			p.starting = nil
		}
	}
}

// startUnderWay is closed when the start under way ends, or nil when none is.
func (p *Plugin) startUnderWay() <-chan struct{} {
	p.currentLock.RLock()
	defer p.currentLock.RUnlock()
	return p.starting
}

// healthCheck is the check in force: the plugin's own when set, else the default.
func (p *Plugin) healthCheck() healthCheck {
	if p.health.interval > 0 {
		return p.health
	}
	return defaultHealthCheck
}

func (p *Plugin) running() *child {
	p.currentLock.RLock()
	defer p.currentLock.RUnlock()
	if p.current == nil || p.current.exited() {
		return nil
	}
	return p.current
}

// ensureBotToken makes sure the bot exists with the rights the server needs and
// gives it a fresh access token, revoking the one of the previous activation.
func (p *Plugin) ensureBotToken() (string, error) {
	botID, err := p.API.EnsureBotUser(&model.Bot{
		Username:    botUsername,
		DisplayName: "Incident Response",
		Description: "Creates incident channels and posts in them.",
	})
	if err != nil {
		return "", fmt.Errorf("ensure the bot: %w", err)
	}
	// The server acts for users across teams (creating channels, adding members,
	// reading memberships), which in Mattermost takes the system admin role.
	if _, appErr := p.API.UpdateUserRoles(botID, model.SystemUserRoleId+" "+model.SystemAdminRoleId); appErr != nil {
		return "", fmt.Errorf("give the bot its role: %w", appErr)
	}
	if previous, appErr := p.API.KVGet(botTokenKey()); appErr == nil && len(previous) > 0 {
		if appErr := p.API.RevokeUserAccessToken(string(previous)); appErr != nil {
			p.API.LogWarn("could not revoke the previous bot token", "error", appErr.Error())
		}
	}
	token, appErr := p.API.CreateUserAccessToken(&model.UserAccessToken{
		UserId: botID, Description: "incident-response server (made at plugin activation)"})
	if appErr != nil {
		return "", fmt.Errorf("create the bot token: %w", appErr)
	}
	if appErr := p.API.KVSet(botTokenKey(), []byte(token.Id)); appErr != nil {
		return "", fmt.Errorf("remember the bot token: %w", appErr)
	}
	return token.Token, nil
}

// botTokenKey names the KV entry holding this machine's bot token id. The KV
// store is shared by every node of a Mattermost cluster, and each node runs its
// own server with its own token: one node must not revoke another's.
func botTokenKey() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		return botTokenKeyBase
	}
	return botTokenKeyBase + "-" + host
}

// readManifest reads the plugin id and setting keys from the bundle's plugin.json.
func readManifest(bundlePath string) (string, []string, error) {
	data, err := os.ReadFile(filepath.Join(bundlePath, "plugin.json"))
	if err != nil {
		return "", nil, fmt.Errorf("read plugin.json: %w", err)
	}
	manifest := model.Manifest{}
	if err := json.Unmarshal(data, &manifest); err != nil {
		return "", nil, fmt.Errorf("parse plugin.json: %w", err)
	}
	if manifest.Id == "" {
		return "", nil, errors.New("plugin.json has no id")
	}
	keys := []string{}
	if manifest.SettingsSchema != nil {
		for _, setting := range manifest.SettingsSchema.Settings {
			if setting.Key != "" {
				keys = append(keys, setting.Key)
			}
		}
	}
	return manifest.Id, keys, nil
}

// randomSecret is 32 random bytes as hex.
func randomSecret() (string, error) {
	buffer := make([]byte, 32)
	if _, err := rand.Read(buffer); err != nil {
		return "", fmt.Errorf("make a secret: %w", err)
	}
	return hex.EncodeToString(buffer), nil
}

// withLoopbackNoProxy makes sure calls to 127.0.0.1 never go through a proxy.
func withLoopbackNoProxy(env []string) []string {
	const loopback = "127.0.0.1,localhost,::1"
	out := make([]string, 0, len(env)+2)
	seen := map[string]bool{}
	for _, entry := range env {
		name, value, _ := strings.Cut(entry, "=")
		if name == "NO_PROXY" || name == "no_proxy" {
			seen[name] = true
			if value != "" {
				value += ","
			}
			entry = name + "=" + value + loopback
		}
		out = append(out, entry)
	}
	for _, name := range []string{"NO_PROXY", "no_proxy"} {
		if !seen[name] {
			out = append(out, name+"="+loopback)
		}
	}
	slices.Sort(out)
	return out
}
