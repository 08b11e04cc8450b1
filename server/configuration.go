package main

import (
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/mattermost/mattermost/server/public/model"
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
// runs and what it was started with differs, restarts it with the new settings.
// Mattermost calls it after every saved change, of any setting, from inside the
// save: the restart (a second or two) runs on its own so the save is not held up.
func (p *Plugin) OnConfigurationChange() error {
	if err := p.loadConfiguration(); err != nil {
		return err
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
