package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mattermost/mattermost/server/public/model"
)

// The bridge is the launcher's own loopback listener, through which the Python
// server asks Mattermost to run a slash command as a user. Mattermost's REST API
// runs a command only as the caller, and the server's caller is its bot: the
// plugin API's ExecuteSlashCommand runs it as the person instead.
const (
	executePath = "/commands/execute"
	// maxExecuteBody bounds the request body: four ids and a command fit many times over.
	maxExecuteBody = 64 << 10
	// maxCommandLength bounds the command, in characters.
	maxCommandLength = 4096
	// bridgeWriteTimeout bounds a whole call: Mattermost gives custom commands 30 s.
	bridgeWriteTimeout = 45 * time.Second
	// bridgeCloseGrace is how long a closing bridge lets calls under way finish.
	bridgeCloseGrace = 3 * time.Second
	// launcherURLVariable tells the server where the bridge listens.
	launcherURLVariable = "INCIDENT_LAUNCHER_URL"
)

// mattermostID is the shape of a Mattermost id.
var mattermostID = regexp.MustCompile(`^[a-z0-9]{26}$`)

// bridgeAPI is the part of the plugin API the bridge uses.
type bridgeAPI interface {
	ExecuteSlashCommand(commandArgs *model.CommandArgs) (*model.CommandResponse, error)
	GetChannel(channelID string) (*model.Channel, *model.AppError)
	HasPermissionToChannel(userID, channelID string, permission *model.Permission) bool
	LogInfo(msg string, keyValuePairs ...any)
	LogWarn(msg string, keyValuePairs ...any)
	LogError(msg string, keyValuePairs ...any)
}

// executeRequest is the body of POST /commands/execute.
type executeRequest struct {
	UserID    string `json:"user_id"`
	TeamID    string `json:"team_id"`
	ChannelID string `json:"channel_id"`
	Command   string `json:"command"`
}

// executeReply is the answer when Mattermost ran the command.
type executeReply struct {
	Text         string `json:"text"`
	ResponseType string `json:"response_type"`
}

// refusal is why a call was not run: the status, the message for the caller, and
// a kind for the log (never the command or anything else a person typed).
type refusal struct {
	status  int
	message string
	kind    string
}

// bridge serves POST /commands/execute on a loopback port for one activation.
type bridge struct {
	api      bridgeAPI
	digest   [sha256.Size]byte
	listener net.Listener
	server   *http.Server
	served   chan struct{}
}

// startBridge listens on a free loopback port and serves calls that carry secret.
func startBridge(api bridgeAPI, secret string) (*bridge, error) {
	if secret == "" {
		return nil, errors.New("the launcher's listener needs a secret")
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen on loopback for the incident server's calls: %w", err)
	}
	b := &bridge{api: api, digest: sha256.Sum256([]byte(secret)), listener: listener, served: make(chan struct{})}
	b.server = &http.Server{
		Handler:           b,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      bridgeWriteTimeout,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	go func() {
		defer close(b.served)
		if err := b.server.Serve(listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			api.LogError("the launcher's listener stopped", "error", err.Error())
		}
	}()
	return b, nil
}

// url is where the Python server reaches the bridge.
func (b *bridge) url() string {
	return "http://" + b.listener.Addr().String()
}

// close stops listening, lets calls under way finish for a moment, then ends them.
func (b *bridge) close() {
	ctx, cancel := context.WithTimeout(context.Background(), bridgeCloseGrace)
	defer cancel()
	if err := b.server.Shutdown(ctx); err != nil {
		_ = b.server.Close()
	}
	<-b.served
}

// ServeHTTP answers POST /commands/execute; every answer is JSON.
func (b *bridge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != executePath {
		writeBridgeError(w, http.StatusNotFound, "No such endpoint: the launcher serves POST "+executePath+" only.")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeBridgeError(w, http.StatusMethodNotAllowed, "Use POST for "+executePath+".")
		return
	}
	if kind := b.unauthorized(r); kind != "" {
		b.api.LogWarn("a slash command call to the launcher was refused", "reason", kind)
		writeBridgeError(w, http.StatusUnauthorized, "Send the activation's host secret in "+secretHeader+".")
		return
	}
	request, refused := readExecuteRequest(w, r)
	if refused == nil {
		refused = b.mayRun(request)
	}
	if refused != nil {
		b.logRefusal(request, refused.kind)
		writeBridgeError(w, refused.status, refused.message)
		return
	}
	response, err := b.api.ExecuteSlashCommand(&model.CommandArgs{
		UserId: request.UserID, TeamId: request.TeamID, ChannelId: request.ChannelID, Command: request.Command,
	})
	if err != nil {
		message, errorID := commandErrorMessage(err)
		b.logRefusal(request, "mattermost refused", "error_id", errorID)
		writeBridgeError(w, http.StatusUnprocessableEntity, message)
		return
	}
	reply := executeReply{}
	if response != nil {
		reply = executeReply{Text: response.Text, ResponseType: response.ResponseType}
	}
	writeBridgeJSON(w, http.StatusOK, reply)
}

// unauthorized names what is wrong with the call's secret, or is empty when it is right.
func (b *bridge) unauthorized(r *http.Request) string {
	given := r.Header.Get(secretHeader)
	if given == "" {
		return "missing secret"
	}
	digest := sha256.Sum256([]byte(given))
	if subtle.ConstantTimeCompare(digest[:], b.digest[:]) != 1 {
		return "wrong secret"
	}
	return ""
}

// readExecuteRequest decodes and checks the body: one JSON object of known fields.
func readExecuteRequest(w http.ResponseWriter, r *http.Request) (executeRequest, *refusal) {
	request := executeRequest{}
	if mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil ||
		mediaType != "application/json" {
		return request, &refusal{http.StatusBadRequest, "Send the body as JSON, with Content-Type: application/json.",
			"content type"}
	}
	decoder := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxExecuteBody))
	decoder.DisallowUnknownFields()
	if err := decoder.Decode(&request); err != nil {
		request = executeRequest{}
		if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
			return request, &refusal{http.StatusBadRequest, "The body is over 64 KiB.", "body too large"}
		}
		return request, &refusal{http.StatusBadRequest, "The body must be one JSON object with user_id, team_id, " +
			"channel_id and command (" + err.Error() + ").", "body not json"}
	}
	if _, err := decoder.Token(); !errors.Is(err, io.EOF) {
		request = executeRequest{}
		return request, &refusal{http.StatusBadRequest, "The body must hold one JSON object and nothing after it.",
			"body not json"}
	}
	for _, field := range []struct{ name, value string }{
		{"user_id", request.UserID}, {"team_id", request.TeamID}, {"channel_id", request.ChannelID},
	} {
		if field.value == "" {
			return request, &refusal{http.StatusBadRequest, field.name + " is missing.", "missing " + field.name}
		}
		if !mattermostID.MatchString(field.value) {
			return request, &refusal{http.StatusBadRequest,
				field.name + " must be a Mattermost id: 26 lowercase letters and digits.", "invalid " + field.name}
		}
	}
	switch {
	case request.Command == "":
		return request, &refusal{http.StatusBadRequest, "command is missing.", "missing command"}
	case !strings.HasPrefix(request.Command, "/"):
		return request, &refusal{http.StatusBadRequest, `command must start with "/", as a slash command does.`,
			"invalid command"}
	case utf8.RuneCountInString(request.Command) > maxCommandLength:
		return request, &refusal{http.StatusBadRequest,
			fmt.Sprintf("command is over %d characters.", maxCommandLength), "invalid command"}
	}
	return request, nil
}

// mayRun holds the call to what Mattermost's own POST /api/v4/commands/execute
// checks before it runs a command, which ExecuteSlashCommand leaves out: the
// channel is a live channel of that team, and the user may post in it.
func (b *bridge) mayRun(request executeRequest) *refusal {
	channel, appErr := b.api.GetChannel(request.ChannelID)
	if appErr != nil || channel == nil {
		return &refusal{http.StatusUnprocessableEntity, "The channel was not found.", "unknown channel"}
	}
	if channel.DeleteAt != 0 {
		return &refusal{http.StatusUnprocessableEntity, "The channel is archived: commands cannot run in it.",
			"archived channel"}
	}
	if channel.Type == model.ChannelTypeDirect || channel.Type == model.ChannelTypeGroup {
		return &refusal{http.StatusUnprocessableEntity,
			"Commands run only in a team's channel, not in a direct or group message.", "direct channel"}
	}
	if channel.TeamId != request.TeamID {
		return &refusal{http.StatusUnprocessableEntity, "The channel is not in the team team_id names.",
			"other team"}
	}
	if !b.api.HasPermissionToChannel(request.UserID, request.ChannelID, model.PermissionCreatePost) {
		return &refusal{http.StatusUnprocessableEntity,
			"You do not have permission to post in this channel, so you cannot run commands in it.",
			"no permission"}
	}
	return nil
}

// commandErrorMessage is what Mattermost said, for the person: an AppError's
// translated message (its status is Mattermost's, not this call's), and its id for the log.
func commandErrorMessage(err error) (string, string) {
	appErr := (*model.AppError)(nil)
	if errors.As(err, &appErr) {
		if appErr.Message != "" && appErr.Message != model.NoTranslation {
			return appErr.Message, appErr.Id
		}
		return "Mattermost could not run the command.", appErr.Id
	}
	return "Mattermost could not run the command; try again in a moment.", ""
}

// logRefusal logs a refused call with its valid ids and the kind of refusal.
func (b *bridge) logRefusal(request executeRequest, kind string, extra ...any) {
	pairs := []any{"reason", kind}
	for _, field := range []struct{ name, value string }{
		{"user_id", request.UserID}, {"team_id", request.TeamID}, {"channel_id", request.ChannelID},
	} {
		// Only what has an id's shape: anything else could be text someone typed.
		if mattermostID.MatchString(field.value) {
			pairs = append(pairs, field.name, field.value)
		}
	}
	b.api.LogInfo("a slash command call to the launcher was not run", append(pairs, extra...)...)
}

// writeBridgeJSON answers with a JSON body.
func writeBridgeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	encoder := json.NewEncoder(w)
	encoder.SetEscapeHTML(false)
	_ = encoder.Encode(body)
}

// writeBridgeError answers {"error": message}.
func writeBridgeError(w http.ResponseWriter, status int, message string) {
	writeBridgeJSON(w, status, map[string]string{"error": message})
}
