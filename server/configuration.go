package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/mattermost/mattermost/server/public/model"
)

const (
	// environmentPath is where the server takes the environment of its coming restart.
	environmentPath = launcherPrefix + "environment"
	// handOverTimeout bounds the hand-over: it runs inside the save of the configuration.
	handOverTimeout = 5 * time.Second
)

// configuration holds the plugin's settings from the System Console, keyed as
// Mattermost stores them (lowercased), exactly as LoadPluginConfiguration gives them.
type configuration struct {
	values map[string]any
}

// managedSettings are set by the launcher itself, whatever the System Console says:
// they wire the Python server to this Mattermost and change on every activation.
var managedSettings = map[string]bool{
	"HostSecret":               true,
	"SlashCommandToken":        true,
	"MattermostSiteUrl":        true,
	"MattermostBotToken":       true,
	"ServerDiagnosticsEnabled": true,
}

// passedVariables are the parts of Mattermost's environment the Python server may see.
// Mattermost hands its plugins its whole environment, database password included, so
// the child gets this allow-list and nothing else.
var passedVariables = []string{
	"PATH", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR",
	"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
}

// envName turns a setting key into the variable the Python server reads: DatabaseUrl -> INCIDENT_DATABASE_URL.
func envName(key string) string {
	var b strings.Builder
	b.WriteString("INCIDENT_")
	runes := []rune(key)
	for i, r := range runes {
		if i > 0 && unicode.IsUpper(r) && (unicode.IsLower(runes[i-1]) || unicode.IsDigit(runes[i-1])) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

// envValue renders a setting value from the System Console as text; ok is false
// for an empty or unset value, which leaves the plugin.json default in force.
func envValue(value any) (string, bool) {
	switch v := value.(type) {
	case nil:
		return "", false
	case string:
		return v, strings.TrimSpace(v) != ""
	case bool:
		return strconv.FormatBool(v), true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case json.Number:
		return v.String(), true
	default:
		return fmt.Sprint(v), true
	}
}

// settingsEnv turns the System Console settings into INCIDENT_* variables, leaving
// out the settings the launcher manages.
func settingsEnv(keys []string, values map[string]any) map[string]string {
	env := map[string]string{}
	for _, key := range keys {
		if managedSettings[key] {
			continue
		}
		if text, ok := envValue(values[strings.ToLower(key)]); ok {
			env[envName(key)] = text
		}
	}
	return env
}

// childEnv is the whole environment of the Python server: the allow-listed part of
// the parent's, then the given variables (which win), sorted so two can be compared.
func childEnv(parent []string, own map[string]string) []string {
	allowed := map[string]bool{}
	for _, name := range passedVariables {
		allowed[name] = true
	}
	merged := map[string]string{}
	for _, entry := range parent {
		name, value, found := strings.Cut(entry, "=")
		if found && allowed[name] {
			merged[name] = value
		}
	}
	for name, value := range own {
		merged[name] = value
	}
	env := make([]string, 0, len(merged))
	for name, value := range merged {
		env = append(env, name+"="+value)
	}
	sort.Strings(env)
	return env
}

// apiBaseURL is where the Python server reaches Mattermost's REST API: the listen
// address over loopback when Mattermost serves plain HTTP itself (no round trip
// through a proxy or the public name), else the site URL.
func apiBaseURL(config *model.Config) string {
	service := config.ServiceSettings
	listen := ""
	if service.ListenAddress != nil {
		listen = *service.ListenAddress
	}
	security := ""
	if service.ConnectionSecurity != nil {
		security = *service.ConnectionSecurity
	}
	if security == "" && listen != "" {
		if host, port, err := net.SplitHostPort(listen); err == nil && port != "" {
			if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
				host = "127.0.0.1"
			}
			return "http://" + net.JoinHostPort(host, port)
		}
	}
	if service.SiteURL != nil {
		return strings.TrimRight(*service.SiteURL, "/")
	}
	return ""
}

// diagnosticsEnabled is Mattermost's LogSettings.EnableDiagnostics. The server
// always fills in its default (true); the plugin RPC encodes the config with gob,
// which sends no zero values, so a false arrives as nil and nil means off.
func diagnosticsEnabled(config *model.Config) bool {
	return config.LogSettings.EnableDiagnostics != nil && *config.LogSettings.EnableDiagnostics
}

// OnConfigurationChange loads the System Console settings and, when the Python server
// runs and what it was started with differs, hands the new environment over to it
// and restarts it with the new settings. Mattermost calls it after every saved
// change, of any setting, from inside the save: the hand-over is made before the
// save returns, the restart (a second or two) runs on its own so the save is not held up.
func (p *Plugin) OnConfigurationChange() error {
	if err := p.loadConfiguration(); err != nil {
		return err
	}
	// Before the save returns: a telemetry switch gone off must not wait for the restart.
	// A server being started took its environment before this save: wait for it to
	// answer (bounded, as the hand-over is), then hand it the new one.
	if starting := p.startUnderWay(); starting != nil && p.running() == nil {
		select {
		case <-starting:
		case <-time.After(handOverTimeout):
		}
	}
	if c := p.running(); c != nil {
		if env := p.desiredEnv(); !slices.Equal(c.env, env) {
			p.handOver(c, env)
		}
	}
	go func() {
		if err := p.reconcile(); err != nil {
			p.API.LogError("could not apply the new settings", "error", err.Error())
		}
	}()
	return nil
}

// loadConfiguration reads the plugin's System Console settings.
func (p *Plugin) loadConfiguration() error {
	values := map[string]any{}
	if err := p.API.LoadPluginConfiguration(&values); err != nil {
		return fmt.Errorf("load plugin configuration: %w", err)
	}
	p.setConfiguration(&configuration{values: values})
	return nil
}

func (p *Plugin) getConfiguration() *configuration {
	p.configurationLock.RLock()
	defer p.configurationLock.RUnlock()
	if p.configuration == nil {
		return &configuration{values: map[string]any{}}
	}
	return p.configuration
}

func (p *Plugin) setConfiguration(c *configuration) {
	p.configurationLock.Lock()
	defer p.configurationLock.Unlock()
	p.configuration = c
}

// serverVariables is the part of an environment the server reads as its settings: the INCIDENT_* variables.
func serverVariables(env []string) map[string]string {
	variables := map[string]string{}
	for _, entry := range env {
		if name, value, found := strings.Cut(entry, "="); found && strings.HasPrefix(name, "INCIDENT_") {
			variables[name] = value
		}
	}
	return variables
}

// sendEnvironment posts the server's variables of env to its POST /launcher/environment.
func sendEnvironment(ctx context.Context, client *http.Client, baseURL, secret string, env []string) error {
	return postToServer(ctx, client, baseURL+environmentPath, secret, map[string]any{"environment": serverVariables(env)})
}

// handOver tells the server the environment it is about to run with, so that it puts
// in force at once, in every process, what must not wait for a restart (a telemetry
// switch gone off). A failure is logged: the restart still brings the settings.
func (p *Plugin) handOver(c *child, env []string) {
	ctx, cancel := context.WithTimeout(context.Background(), handOverTimeout)
	defer cancel()
	if err := sendEnvironment(ctx, &http.Client{Transport: proxyTransport}, c.baseURL, p.secret, env); err != nil {
		// Never the environment itself: it holds secrets.
		p.API.LogWarn("the new settings could not be handed over to the incident server before its restart",
			"error", err.Error())
	}
}
