package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/mattermost/mattermost/server/public/model"
	"github.com/mattermost/mattermost/server/public/plugin"
)

const (
	// launcherPrefix holds the server's routes for the launcher alone; ServeHTTP never forwards to them.
	launcherPrefix = "/launcher/"
	leftPath       = launcherPrefix + "membership-left"
	// leftTimeout bounds a notice: Mattermost runs the hooks of every plugin one after another.
	leftTimeout = 3 * time.Second
)

// leftNotice says who left which channel or team; ids only.
type leftNotice struct {
	UserID    string `json:"user_id"`
	ChannelID string `json:"channel_id,omitempty"`
	TeamID    string `json:"team_id,omitempty"`
}

// launcherOnly reports whether a request path names one of the launcher's own routes,
// as the launcher or the Python server may read it (cleaned of dot and double-slash segments).
func launcherOnly(requestPath string) bool {
	prefix := strings.TrimSuffix(launcherPrefix, "/")
	for _, candidate := range []string{requestPath, path.Clean("/" + requestPath)} {
		if candidate == prefix || strings.HasPrefix(candidate, launcherPrefix) {
			return true
		}
	}
	return false
}

// sendLeft posts a notice to the server with the activation's secret.
func sendLeft(ctx context.Context, client *http.Client, baseURL, secret string, notice leftNotice) error {
	return postToServer(ctx, client, baseURL+leftPath, secret, notice)
}

// postToServer posts payload as JSON to one of the server's /launcher/ routes, with the
// activation's secret; anything but 204 No Content is an error.
func postToServer(ctx context.Context, client *http.Client, url, secret string, payload any) error {
	body, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	request, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	request.Header.Set("Content-Type", "application/json")
	request.Header.Set(secretHeader, secret)
	response, err := client.Do(request)
	if err != nil {
		return err
	}
	defer response.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(response.Body, 1<<16))
	if response.StatusCode != http.StatusNoContent {
		return fmt.Errorf("the incident server answered %d", response.StatusCode)
	}
	return nil
}

// notifyLeft tells the running server that someone left, so that no process keeps
// trusting a cached "is a member" answer. It never fails the hook: without the
// notice the server's caches still expire on their own.
func (p *Plugin) notifyLeft(notice leftNotice) {
	c := p.running()
	if c == nil {
		p.API.LogDebug("membership change not passed on: the incident server is not running",
			"user_id", notice.UserID, "channel_id", notice.ChannelID, "team_id", notice.TeamID)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), leftTimeout)
	defer cancel()
	if err := sendLeft(ctx, &http.Client{Transport: proxyTransport}, c.baseURL, p.secret, notice); err != nil {
		p.API.LogWarn("membership change not passed on to the incident server", "user_id", notice.UserID,
			"channel_id", notice.ChannelID, "team_id", notice.TeamID, "error", err.Error())
	}
}

// UserHasLeftChannel runs after someone left a channel or was removed from it.
func (p *Plugin) UserHasLeftChannel(_ *plugin.Context, member *model.ChannelMember, _ *model.User) {
	if member != nil {
		p.notifyLeft(leftNotice{UserID: member.UserId, ChannelID: member.ChannelId})
	}
}

// UserHasLeftTeam runs after someone left a team or was removed from it.
func (p *Plugin) UserHasLeftTeam(_ *plugin.Context, member *model.TeamMember, _ *model.User) {
	if member != nil {
		p.notifyLeft(leftNotice{UserID: member.UserId, TeamID: member.TeamId})
	}
}
