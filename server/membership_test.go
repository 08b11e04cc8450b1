package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mattermost/mattermost/server/public/model"
	"github.com/mattermost/mattermost/server/public/plugin"
)

// logOnlyAPI is the plugin API as far as the membership hooks use it: the log.
type logOnlyAPI struct {
	plugin.API
	log logRecorder
}

func (a *logOnlyAPI) LogDebug(msg string, pairs ...any) { a.log.record("debug", msg, pairs) }
func (a *logOnlyAPI) LogWarn(msg string, pairs ...any)  { a.log.record("warn", msg, pairs) }

func (a *logOnlyAPI) logged() []string { return a.log.logged() }

func pluginWithServer(api *logOnlyAPI, baseURL string) *Plugin {
	p := &Plugin{secret: "host-secret"}
	p.API = api
	if baseURL != "" {
		p.setCurrent(&child{baseURL: baseURL, done: make(chan struct{})})
	}
	return p
}

func TestChannelLeavePostsTheIdsWithTheSecretToTheServer(t *testing.T) {
	got := make(chan leftNotice, 1)
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != leftPath || r.Header.Get(secretHeader) != "host-secret" ||
			r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		notice := leftNotice{}
		_ = json.NewDecoder(r.Body).Decode(&notice)
		got <- notice
		w.WriteHeader(http.StatusNoContent)
	}))
	defer server.Close()
	api := &logOnlyAPI{}
	p := pluginWithServer(api, server.URL)
	p.UserHasLeftChannel(&plugin.Context{}, &model.ChannelMember{ChannelId: "c1", UserId: "u1"}, &model.User{Id: "a1"})
	if notice := <-got; notice != (leftNotice{UserID: "u1", ChannelID: "c1"}) {
		t.Errorf("notice = %+v", notice)
	}
	if lines := api.logged(); len(lines) != 0 {
		t.Errorf("a delivered notice logged %v", lines)
	}
}

func TestTeamLeaveSendsTheTeamAndUserOnly(t *testing.T) {
	var raw map[string]any
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewDecoder(r.Body).Decode(&raw)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer server.Close()
	p := pluginWithServer(&logOnlyAPI{}, server.URL)
	p.UserHasLeftTeam(&plugin.Context{}, &model.TeamMember{TeamId: "t1", UserId: "u1"}, nil)
	if len(raw) != 2 || raw["user_id"] != "u1" || raw["team_id"] != "t1" {
		t.Errorf("body = %v", raw)
	}
}

func TestALeaveWhileTheServerIsDownIsLoggedWithIdsAndDropped(t *testing.T) {
	api := &logOnlyAPI{}
	p := pluginWithServer(api, "")
	p.UserHasLeftChannel(&plugin.Context{}, &model.ChannelMember{ChannelId: "c1", UserId: "u1"}, nil)
	api.log.onlyLine(t, "debug", "u1")
}

func TestAServerThatHangsHoldsTheHookOnlyForTheTimeout(t *testing.T) {
	release := make(chan struct{})
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer server.Close()
	defer close(release)
	api := &logOnlyAPI{}
	p := pluginWithServer(api, server.URL)
	started := time.Now()
	p.UserHasLeftTeam(&plugin.Context{}, &model.TeamMember{TeamId: "t1", UserId: "u1"}, nil)
	if waited := time.Since(started); waited > leftTimeout+2*time.Second {
		t.Errorf("the hook waited %s", waited)
	}
	api.log.onlyLine(t, "warn", "t1")
}

func TestARefusedNoticeIsAnError(t *testing.T) {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer server.Close()
	err := sendLeft(t.Context(), server.Client(), server.URL, "wrong", leftNotice{UserID: "u1", TeamID: "t1"})
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("err = %v", err)
	}
}

func TestServeHTTPNeverForwardsToTheLaunchersOwnRoutes(t *testing.T) {
	forwarded := false
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		forwarded = true
	}))
	defer server.Close()
	p := pluginWithServer(&logOnlyAPI{}, server.URL)
	for _, requestPath := range []string{"/launcher/membership-left", "//launcher/membership-left",
		"/api/../launcher/membership-left", "/launcher", "/./launcher/x"} {
		request := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"user_id":"u1","team_id":"t1"}`))
		request.URL.Path = requestPath
		recorder := httptest.NewRecorder()
		p.ServeHTTP(&plugin.Context{}, recorder, request)
		if recorder.Code != http.StatusNotFound {
			t.Errorf("%s: status %d", requestPath, recorder.Code)
		}
	}
	if forwarded {
		t.Error("a launcher route was forwarded")
	}
	if launcherOnly("/api/v0/launcher/x") || launcherOnly("/launchers") {
		t.Error("paths outside the launcher's routes refused")
	}
}
