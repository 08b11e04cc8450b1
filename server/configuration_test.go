package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mattermost/mattermost/server/public/model"
	"github.com/mattermost/mattermost/server/public/plugin"
)

func TestEnvNameSplitsCamelCaseKeysLikeThePythonSettings(t *testing.T) {
	cases := map[string]string{
		"DatabaseUrl":              "INCIDENT_DATABASE_URL",
		"EnableTelemetry":          "INCIDENT_ENABLE_TELEMETRY",
		"TelemetryOutboxMaxEvents": "INCIDENT_TELEMETRY_OUTBOX_MAX_EVENTS",
		"AdminUserIds":             "INCIDENT_ADMIN_USER_IDS",
	}
	for key, want := range cases {
		if got := envName(key); got != want {
			t.Errorf("envName(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestSettingsEnvRendersConsoleValuesAndLeavesOutManagedAndEmptyOnes(t *testing.T) {
	keys := []string{"EnableTelemetry", "MaxBodyBytes", "RudderWriteKey", "DatabaseUrl", "HostSecret", "MattermostBotToken"}
	values := map[string]any{
		"enabletelemetry":    false,
		"maxbodybytes":       float64(524288),
		"rudderwritekey":     "key-1",
		"databaseurl":        "",
		"hostsecret":         "typed-in-the-console",
		"mattermostbottoken": "typed-in-the-console",
	}
	got := settingsEnv(keys, values)
	want := map[string]string{
		"INCIDENT_ENABLE_TELEMETRY": "false",
		"INCIDENT_MAX_BODY_BYTES":   "524288",
		"INCIDENT_RUDDER_WRITE_KEY": "key-1",
	}
	if len(got) != len(want) {
		t.Fatalf("settingsEnv = %v, want %v", got, want)
	}
	for name, value := range want {
		if got[name] != value {
			t.Errorf("%s = %q, want %q", name, got[name], value)
		}
	}
}

func TestChildEnvKeepsOnlyAllowedParentVariablesAndOwnValuesWin(t *testing.T) {
	parent := []string{
		"PATH=/usr/bin",
		"MM_SQLSETTINGS_DATASOURCE=postgres://mmuser:secret@db/mattermost",
		"AWS_SECRET_ACCESS_KEY=x",
		"TZ=UTC",
		"HOME=/home/mattermost",
	}
	env := childEnv(parent, map[string]string{"HOME": "/data", "INCIDENT_DATA_DIR": "/data"})
	want := []string{"HOME=/data", "INCIDENT_DATA_DIR=/data", "PATH=/usr/bin", "TZ=UTC"}
	if !slices.Equal(env, want) {
		t.Fatalf("childEnv = %v, want %v", env, want)
	}
}

func TestLoopbackIsNeverSentThroughAProxy(t *testing.T) {
	env := withLoopbackNoProxy([]string{"HTTPS_PROXY=http://proxy:3128", "NO_PROXY=internal.example"})
	if !slices.Contains(env, "NO_PROXY=internal.example,127.0.0.1,localhost,::1") {
		t.Errorf("NO_PROXY not extended: %v", env)
	}
	if !slices.Contains(env, "no_proxy=127.0.0.1,localhost,::1") {
		t.Errorf("no_proxy not added: %v", env)
	}
}

func config(listen, security, siteURL string) *model.Config {
	c := &model.Config{}
	c.SetDefaults()
	c.ServiceSettings.ListenAddress = model.NewPointer(listen)
	c.ServiceSettings.ConnectionSecurity = model.NewPointer(security)
	c.ServiceSettings.SiteURL = model.NewPointer(siteURL)
	return c
}

func TestAPIBaseURLPrefersLoopbackWhenMattermostServesPlainHTTP(t *testing.T) {
	cases := []struct {
		listen, security, site, want string
	}{
		{":8065", "", "https://chat.example.com", "http://127.0.0.1:8065"},
		{"[::]:8065", "", "https://chat.example.com", "http://127.0.0.1:8065"},
		{"127.0.0.1:18065", "", "", "http://127.0.0.1:18065"},
		{":443", "TLS", "https://chat.example.com/", "https://chat.example.com"},
	}
	for _, c := range cases {
		if got := apiBaseURL(config(c.listen, c.security, c.site)); got != c.want {
			t.Errorf("apiBaseURL(%q, %q, %q) = %q, want %q", c.listen, c.security, c.site, got, c.want)
		}
	}
}

func TestDiagnosticsAreOffWhenTheSwitchArrivesFalseOrEmpty(t *testing.T) {
	c := config(":8065", "", "")
	c.LogSettings.EnableDiagnostics = model.NewPointer(true)
	if !diagnosticsEnabled(c) {
		t.Error("EnableDiagnostics true should count as enabled")
	}
	// Over the plugin RPC (gob) a false *bool arrives as nil.
	for _, value := range []*bool{nil, model.NewPointer(false)} {
		c.LogSettings.EnableDiagnostics = value
		if diagnosticsEnabled(c) {
			t.Errorf("EnableDiagnostics %v should count as disabled", value)
		}
	}
}

// consoleAPI is the plugin API as far as a configuration change uses it: the settings, the config and the log.
type consoleAPI struct {
	plugin.API
	values map[string]any
	log    logRecorder
}

func (a *consoleAPI) LoadPluginConfiguration(dest any) error {
	data, err := json.Marshal(a.values)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, dest)
}

func (a *consoleAPI) GetConfig() *model.Config {
	c := config("127.0.0.1:8065", "", "http://127.0.0.1:8065")
	c.LogSettings.EnableDiagnostics = model.NewPointer(true)
	return c
}

func (a *consoleAPI) LogInfo(msg string, pairs ...any)  { a.log.record("info", msg, pairs) }
func (a *consoleAPI) LogWarn(msg string, pairs ...any)  { a.log.record("warn", msg, pairs) }
func (a *consoleAPI) LogError(msg string, pairs ...any) { a.log.record("error", msg, pairs) }

// runningPlugin is a plugin whose server, at baseURL, runs with the environment of the API's settings.
func runningPlugin(t *testing.T, api *consoleAPI, baseURL string) *Plugin {
	t.Helper()
	p := &Plugin{secret: "host-secret", keys: []string{"EnableTelemetry", "RudderWriteKey"},
		layout: newLayout(t.TempDir(), t.TempDir())}
	p.API = api
	if err := p.loadConfiguration(); err != nil {
		t.Fatal(err)
	}
	p.setCurrent(&child{baseURL: baseURL, env: p.desiredEnv(), done: make(chan struct{})})
	return p
}

// environmentRecorder is a server's POST /launcher/environment that passes on each body it
// is handed; anything but a well-formed hand-over with the secret gets 401.
func environmentRecorder() (*httptest.Server, chan map[string]map[string]string) {
	got := make(chan map[string]map[string]string, 2)
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != environmentPath || r.Header.Get(secretHeader) != "host-secret" ||
			r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		body := map[string]map[string]string{}
		_ = json.NewDecoder(r.Body).Decode(&body)
		got <- body
		w.WriteHeader(http.StatusNoContent)
	}))
	return server, got
}

func TestConfigurationChangeHandsTheNewEnvironmentToTheRunningServerBeforeItReturns(t *testing.T) {
	server, got := environmentRecorder()
	defer server.Close()
	api := &consoleAPI{values: map[string]any{"enabletelemetry": true, "rudderwritekey": "key-1"}}
	p := runningPlugin(t, api, server.URL)
	api.values["enabletelemetry"] = false
	if err := p.OnConfigurationChange(); err != nil {
		t.Fatal(err)
	}
	select {
	case body := <-got:
		environment := body["environment"]
		if environment["INCIDENT_ENABLE_TELEMETRY"] != "false" || environment["INCIDENT_RUDDER_WRITE_KEY"] != "key-1" ||
			environment["INCIDENT_HOST_SECRET"] != "host-secret" {
			t.Errorf("environment handed over = %v", environment)
		}
		for name := range environment {
			if !strings.HasPrefix(name, "INCIDENT_") {
				t.Errorf("%s handed over: only the server's settings go", name)
			}
		}
	default:
		t.Fatal("OnConfigurationChange returned before it handed the new environment over")
	}
	if lines := api.log.logged(); len(lines) != 0 {
		t.Errorf("a hand-over that succeeded logged %v", lines)
	}
}

func TestConfigurationChangeThatLeavesTheEnvironmentAsItIsHandsNothingOver(t *testing.T) {
	calls := make(chan struct{}, 1)
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls <- struct{}{}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer server.Close()
	api := &consoleAPI{values: map[string]any{"enabletelemetry": true}}
	p := runningPlugin(t, api, server.URL)
	if err := p.OnConfigurationChange(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-calls:
		t.Error("an unchanged environment was handed over")
	default:
	}
}

func TestAFailedHandOverIsLoggedWithoutTheEnvironment(t *testing.T) {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
	}))
	defer server.Close()
	api := &consoleAPI{values: map[string]any{"enabletelemetry": true, "rudderwritekey": "key-secret-1"}}
	p := runningPlugin(t, api, server.URL)
	api.values["enabletelemetry"] = false
	if err := p.OnConfigurationChange(); err != nil {
		t.Fatal(err)
	}
	api.log.onlyLine(t, "warn", "400", "key-secret-1", "host-secret")
}

func TestASaveDuringAStartIsHandedToTheNewServerOnceItAnswersBeforeTheSaveReturns(t *testing.T) {
	server, got := environmentRecorder()
	defer server.Close()
	api := &consoleAPI{values: map[string]any{"enabletelemetry": true, "rudderwritekey": "key-1"}}
	p := &Plugin{secret: "host-secret", keys: []string{"EnableTelemetry", "RudderWriteKey"},
		layout: newLayout(t.TempDir(), t.TempDir())}
	p.API = api
	if err := p.loadConfiguration(); err != nil {
		t.Fatal(err)
	}
	// A start is under way with the environment of before the save.
	ended := p.beginStart()
	started := &child{baseURL: server.URL, env: p.desiredEnv(), done: make(chan struct{})}
	api.values["enabletelemetry"] = false
	returned := make(chan error, 1)
	go func() { returned <- p.OnConfigurationChange() }()
	select {
	case <-returned:
		t.Fatal("the save returned while the server it must reach was still starting")
	case <-time.After(100 * time.Millisecond):
	}
	p.setCurrent(started)
	ended()
	select {
	case err := <-returned:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(handOverTimeout + 5*time.Second):
		t.Fatal("the save never returned")
	}
	select {
	case body := <-got:
		if body["environment"]["INCIDENT_ENABLE_TELEMETRY"] != "false" {
			t.Errorf("environment handed over = %v", body["environment"])
		}
	default:
		t.Fatal("the save returned before the started server was handed the new environment")
	}
}

func TestAServerStartedAfterASaveIsStartedWithItsTelemetrySwitch(t *testing.T) {
	api := &consoleAPI{values: map[string]any{"enabletelemetry": true}}
	p := &Plugin{secret: "host-secret", keys: []string{"EnableTelemetry"}, layout: newLayout(t.TempDir(), t.TempDir())}
	p.API = api
	api.values["enabletelemetry"] = false
	if err := p.loadConfiguration(); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(p.desiredEnv(), "INCIDENT_ENABLE_TELEMETRY=false") {
		t.Error("the environment of the next start lacks the telemetry switch of the save")
	}
}
