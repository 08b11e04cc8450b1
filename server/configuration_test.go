package main

import (
	"slices"
	"testing"

	"github.com/mattermost/mattermost/server/public/model"
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
