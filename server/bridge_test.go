package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mattermost/mattermost/server/public/model"
	"github.com/mattermost/mattermost/server/public/plugin"
)

const bridgeSecret = "bridge-secret"

var (
	aliceID   = model.NewId()
	teamID    = model.NewId()
	channelID = model.NewId()
)

// bridgeFakeAPI is the plugin API as far as the bridge and the activation's
// bookkeeping use it: commands, channels, permissions, config, KV and the log.
type bridgeFakeAPI struct {
	plugin.API
	mu       sync.Mutex
	calls    []model.CommandArgs
	response *model.CommandResponse
	err      error
	channel  *model.Channel
	allowed  bool
	release  chan struct{} // when set, ExecuteSlashCommand waits for it
	log      logRecorder
}

func newBridgeFakeAPI() *bridgeFakeAPI {
	return &bridgeFakeAPI{
		channel:  &model.Channel{Id: channelID, TeamId: teamID, Type: model.ChannelTypePrivate},
		allowed:  true,
		response: &model.CommandResponse{ResponseType: model.CommandResponseTypeInChannel, Text: "it works ¯\\_(ツ)_/¯"},
	}
}

func (a *bridgeFakeAPI) ExecuteSlashCommand(args *model.CommandArgs) (*model.CommandResponse, error) {
	a.mu.Lock()
	a.calls = append(a.calls, *args)
	release := a.release
	a.mu.Unlock()
	if release != nil && args.Command == "/slow" {
		<-release
	}
	return a.response, a.err
}

func (a *bridgeFakeAPI) GetChannel(id string) (*model.Channel, *model.AppError) {
	if a.channel == nil || a.channel.Id != id {
		return nil, model.NewAppError("GetChannel", "app.channel.get.existing.app_error", nil, "", http.StatusNotFound)
	}
	return a.channel, nil
}

func (a *bridgeFakeAPI) HasPermissionToChannel(_, _ string, permission *model.Permission) bool {
	return a.allowed && permission.Id == model.PermissionCreatePost.Id
}

func (a *bridgeFakeAPI) GetConfig() *model.Config {
	c := &model.Config{}
	c.SetDefaults()
	return c
}

func (a *bridgeFakeAPI) KVGet(string) ([]byte, *model.AppError) { return nil, nil }

func (a *bridgeFakeAPI) LogInfo(msg string, pairs ...any)  { a.log.record("info", msg, pairs) }
func (a *bridgeFakeAPI) LogWarn(msg string, pairs ...any)  { a.log.record("warn", msg, pairs) }
func (a *bridgeFakeAPI) LogError(msg string, pairs ...any) { a.log.record("error", msg, pairs) }

func (a *bridgeFakeAPI) executed() []model.CommandArgs {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.calls)
}

func (a *bridgeFakeAPI) logged() string {
	return strings.Join(a.log.logged(), "\n")
}

func startTestBridge(t *testing.T, api *bridgeFakeAPI) *bridge {
	t.Helper()
	b, err := startBridge(api, bridgeSecret)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.close)
	return b
}

// call posts body to the bridge with the given secret and returns the status and decoded JSON answer.
func call(t *testing.T, b *bridge, secret string, body string) (int, map[string]string) {
	t.Helper()
	request, err := http.NewRequest(http.MethodPost, b.url()+executePath, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	request.Header.Set("Content-Type", "application/json")
	if secret != "" {
		request.Header.Set(secretHeader, secret)
	}
	return send(t, request)
}

func send(t *testing.T, request *http.Request) (int, map[string]string) {
	t.Helper()
	response, err := (&http.Client{Timeout: 10 * time.Second}).Do(request)
	if err != nil {
		t.Fatal(err)
	}
	defer response.Body.Close()
	if response.Header.Get("Content-Type") != "application/json" {
		t.Errorf("answer of type %q", response.Header.Get("Content-Type"))
	}
	answer := map[string]string{}
	raw, _ := io.ReadAll(response.Body)
	if err := json.Unmarshal(raw, &answer); err != nil {
		t.Errorf("answer is not a JSON object of strings: %q", raw)
	}
	return response.StatusCode, answer
}

func body(fields map[string]any) string {
	raw, _ := json.Marshal(fields)
	return string(raw)
}

func goodBody() map[string]any {
	return map[string]any{"user_id": aliceID, "team_id": teamID, "channel_id": channelID,
		"command": "/shrug it works"}
}

func TestAGoodCallRunsTheCommandAsTheUserInTheChannelAndAnswersItsReply(t *testing.T) {
	api := newBridgeFakeAPI()
	b := startTestBridge(t, api)
	status, answer := call(t, b, bridgeSecret, body(goodBody()))
	if status != http.StatusOK || len(answer) != 2 || answer["text"] != "it works ¯\\_(ツ)_/¯" ||
		answer["response_type"] != "in_channel" {
		t.Fatalf("answer %d %v", status, answer)
	}
	want := model.CommandArgs{UserId: aliceID, TeamId: teamID, ChannelId: channelID, Command: "/shrug it works"}
	if calls := api.executed(); len(calls) != 1 || !commandArgsEqual(calls[0], want) {
		t.Errorf("ExecuteSlashCommand got %+v", calls)
	}
	if strings.Contains(api.logged(), "it works") {
		t.Errorf("the command or its reply reached the log: %s", api.logged())
	}
}

func commandArgsEqual(got, want model.CommandArgs) bool {
	return got.UserId == want.UserId && got.TeamId == want.TeamId && got.ChannelId == want.ChannelId &&
		got.Command == want.Command && got.RootId == "" && got.ParentId == "" && got.TriggerId == ""
}

func TestAMissingOrWrongSecretIsRefusedWithoutRunningAnything(t *testing.T) {
	api := newBridgeFakeAPI()
	b := startTestBridge(t, api)
	for _, secret := range []string{"", "wrong", bridgeSecret + "x", strings.ToUpper(bridgeSecret)} {
		status, answer := call(t, b, secret, body(goodBody()))
		if status != http.StatusUnauthorized || !strings.Contains(answer["error"], secretHeader) {
			t.Errorf("secret %q: %d %v", secret, status, answer)
		}
	}
	if calls := api.executed(); len(calls) != 0 {
		t.Errorf("ran %+v", calls)
	}
	logged := api.logged()
	if !strings.Contains(logged, "missing secret") || !strings.Contains(logged, "wrong secret") {
		t.Errorf("refusals not logged by kind: %s", logged)
	}
}

func TestBadBodiesAreRefusedWithWhatToFix(t *testing.T) {
	with := func(name string, value any) string {
		fields := goodBody()
		if value == nil {
			delete(fields, name)
		} else {
			fields[name] = value
		}
		return body(fields)
	}
	cases := []struct{ body, says string }{
		{"not json", "one JSON object"},
		{`["a list"]`, "one JSON object"},
		{body(goodBody()) + ` {}`, "nothing after it"},
		{with("root_id", model.NewId()), `unknown field "root_id"`},
		{with("user_id", nil), "user_id is missing"},
		{with("team_id", ""), "team_id is missing"},
		{with("channel_id", "town-square"), "channel_id must be a Mattermost id"},
		{with("user_id", strings.ToUpper(aliceID)), "user_id must be a Mattermost id"},
		{with("user_id", 42), "one JSON object"},
		{with("command", nil), "command is missing"},
		{with("command", "shrug it works"), `command must start with "/"`},
		{with("command", "/"+strings.Repeat("é", maxCommandLength)), "over 4096 characters"},
		{`{"command": "` + strings.Repeat("x", maxExecuteBody) + `"}`, "over 64 KiB"},
	}
	api := newBridgeFakeAPI()
	b := startTestBridge(t, api)
	for _, c := range cases {
		status, answer := call(t, b, bridgeSecret, c.body)
		if status != http.StatusBadRequest || !strings.Contains(answer["error"], c.says) {
			t.Errorf("%.60s: %d %v, want 400 saying %q", c.body, status, answer, c.says)
		}
	}
	// The longest command allowed still runs.
	fields := goodBody()
	fields["command"] = "/" + strings.Repeat("é", maxCommandLength-1)
	if status, answer := call(t, b, bridgeSecret, body(fields)); status != http.StatusOK {
		t.Errorf("a command of %d characters: %d %v", maxCommandLength, status, answer)
	}
	if calls := api.executed(); len(calls) != 1 {
		t.Errorf("ran %d commands, want only the valid one", len(calls))
	}
	if logged := api.logged(); strings.Contains(logged, "shrug") || strings.Contains(logged, "town-square") {
		t.Errorf("request text reached the log: %s", logged)
	}
}

func TestABodyThatIsNotDeclaredJSONIsRefused(t *testing.T) {
	api := newBridgeFakeAPI()
	b := startTestBridge(t, api)
	request, _ := http.NewRequest(http.MethodPost, b.url()+executePath, strings.NewReader(body(goodBody())))
	request.Header.Set(secretHeader, bridgeSecret)
	request.Header.Set("Content-Type", "text/plain")
	if status, answer := send(t, request); status != http.StatusBadRequest ||
		!strings.Contains(answer["error"], "application/json") {
		t.Errorf("answer %d %v", status, answer)
	}
	if len(api.executed()) != 0 {
		t.Error("ran a command")
	}
}

func TestMattermostsRefusalIsUnprocessableWithItsMessageNotItsStatus(t *testing.T) {
	api := newBridgeFakeAPI()
	appErr := model.NewAppError("command", "api.command.execute_command.not_found.app_error", nil,
		"internal detail", http.StatusNotFound)
	appErr.Message = "Command with a trigger of 'nope' not found."
	api.response, api.err = nil, appErr
	b := startTestBridge(t, api)
	fields := goodBody()
	fields["command"] = "/nope"
	status, answer := call(t, b, bridgeSecret, body(fields))
	if status != http.StatusUnprocessableEntity || answer["error"] != "Command with a trigger of 'nope' not found." {
		t.Errorf("answer %d %v", status, answer)
	}
	logged := api.logged()
	if !strings.Contains(logged, aliceID) || !strings.Contains(logged, "api.command.execute_command.not_found") ||
		strings.Contains(logged, "nope") || strings.Contains(logged, "internal detail") {
		t.Errorf("log should hold ids and the error id only: %s", logged)
	}
}

func TestAnErrorThatIsNoAppErrorIsUnprocessableWithAGeneralMessage(t *testing.T) {
	api := newBridgeFakeAPI()
	api.response, api.err = nil, &plugin.ErrorString{Err: "rpc: connection is shut down"}
	b := startTestBridge(t, api)
	status, answer := call(t, b, bridgeSecret, body(goodBody()))
	if status != http.StatusUnprocessableEntity || !strings.HasPrefix(answer["error"], "Mattermost could not run") {
		t.Errorf("answer %d %v", status, answer)
	}
}

func TestACommandIsNotRunWhereTheUserCouldNotRunItThemselves(t *testing.T) {
	cases := []struct {
		name    string
		prepare func(api *bridgeFakeAPI)
		says    string
	}{
		{"no channel", func(api *bridgeFakeAPI) { api.channel = nil }, "not found"},
		{"archived", func(api *bridgeFakeAPI) { api.channel.DeleteAt = 1 }, "archived"},
		{"direct message", func(api *bridgeFakeAPI) { api.channel.Type, api.channel.TeamId = model.ChannelTypeDirect, "" },
			"direct or group"},
		{"other team", func(api *bridgeFakeAPI) { api.channel.TeamId = model.NewId() }, "not in the team"},
		{"may not post", func(api *bridgeFakeAPI) { api.allowed = false }, "permission to post"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			api := newBridgeFakeAPI()
			c.prepare(api)
			b := startTestBridge(t, api)
			status, answer := call(t, b, bridgeSecret, body(goodBody()))
			if status != http.StatusUnprocessableEntity || !strings.Contains(answer["error"], c.says) {
				t.Errorf("answer %d %v", status, answer)
			}
			if len(api.executed()) != 0 {
				t.Error("ran the command")
			}
			if !strings.Contains(api.logged(), channelID) {
				t.Errorf("refusal not logged with ids: %s", api.logged())
			}
		})
	}
}

func TestOtherPathsAreNotFoundAndOtherMethodsNotAllowed(t *testing.T) {
	api := newBridgeFakeAPI()
	b := startTestBridge(t, api)
	for _, path := range []string{"/", "/commands/execute/", "/commands", "/launcher/membership-left"} {
		request, _ := http.NewRequest(http.MethodPost, b.url()+path, strings.NewReader(body(goodBody())))
		request.Header.Set(secretHeader, bridgeSecret)
		request.Header.Set("Content-Type", "application/json")
		if status, answer := send(t, request); status != http.StatusNotFound || answer["error"] == "" {
			t.Errorf("%s: %d %v", path, status, answer)
		}
	}
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		request, _ := http.NewRequest(method, b.url()+executePath, nil)
		request.Header.Set(secretHeader, bridgeSecret)
		response, err := http.DefaultClient.Do(request)
		if err != nil {
			t.Fatal(err)
		}
		response.Body.Close()
		if response.StatusCode != http.StatusMethodNotAllowed || response.Header.Get("Allow") != http.MethodPost {
			t.Errorf("%s: %d Allow %q", method, response.StatusCode, response.Header.Get("Allow"))
		}
	}
	if len(api.executed()) != 0 {
		t.Error("ran a command")
	}
}

func TestTheBridgeListensOnLoopbackOnly(t *testing.T) {
	b := startTestBridge(t, newBridgeFakeAPI())
	address := b.listener.Addr().(*net.TCPAddr)
	if !address.IP.Equal(net.IPv4(127, 0, 0, 1)) || address.Port == 0 {
		t.Fatalf("listening on %s", address)
	}
	if b.url() != fmt.Sprintf("http://127.0.0.1:%d", address.Port) {
		t.Errorf("url %s", b.url())
	}
	addresses, _ := net.InterfaceAddrs()
	for _, candidate := range addresses {
		network, ok := candidate.(*net.IPNet)
		if !ok || network.IP.IsLoopback() {
			continue
		}
		target := net.JoinHostPort(network.IP.String(), fmt.Sprint(address.Port))
		if conn, err := net.DialTimeout("tcp", target, time.Second); err == nil {
			conn.Close()
			t.Errorf("reachable on %s", target)
		}
	}
}

func TestACommandThatTakesLongHoldsUpNoOtherCall(t *testing.T) {
	api := newBridgeFakeAPI()
	api.release = make(chan struct{})
	b := startTestBridge(t, api)
	slow := goodBody()
	slow["command"] = "/slow"
	finished := make(chan int, 1)
	go func() {
		status, _ := call(t, b, bridgeSecret, body(slow))
		finished <- status
	}()
	deadline := time.Now().Add(5 * time.Second)
	for len(api.executed()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if status, _ := call(t, b, bridgeSecret, body(goodBody())); status != http.StatusOK {
		t.Errorf("a call beside a slow one answered %d", status)
	}
	close(api.release)
	if status := <-finished; status != http.StatusOK {
		t.Errorf("the slow call answered %d", status)
	}
}

func TestTheChildsEnvironmentNamesTheBridgeAndKeepsItAcrossServerRestarts(t *testing.T) {
	api := newBridgeFakeAPI()
	p := &Plugin{secret: bridgeSecret}
	p.API = api
	if slices.ContainsFunc(p.desiredEnv(), func(entry string) bool {
		return strings.HasPrefix(entry, launcherURLVariable+"=")
	}) {
		t.Error("a launcher URL without a listener")
	}
	b := startTestBridge(t, api)
	p.bridge = b
	before := p.desiredEnv()
	if !slices.Contains(before, launcherURLVariable+"="+b.url()) {
		t.Fatalf("environment lacks %s: %v", launcherURLVariable, before)
	}
	p.stopLocked() // what a restart does first
	if !slices.Equal(p.desiredEnv(), before) {
		t.Error("the environment changed with a server restart")
	}
	if status, _ := call(t, b, bridgeSecret, body(goodBody())); status != http.StatusOK {
		t.Errorf("the bridge answered %d after a server stop", status)
	}
}

func TestDeactivationClosesTheBridge(t *testing.T) {
	api := newBridgeFakeAPI()
	p := &Plugin{secret: bridgeSecret}
	p.API = api
	b, err := startBridge(api, bridgeSecret)
	if err != nil {
		t.Fatal(err)
	}
	p.bridge = b
	address := b.listener.Addr().String()
	if err := p.OnDeactivate(); err != nil {
		t.Fatal(err)
	}
	if p.bridge != nil {
		t.Error("the plugin still holds the bridge")
	}
	if conn, err := net.DialTimeout("tcp", address, time.Second); err == nil {
		conn.Close()
		t.Errorf("%s still accepts connections", address)
	}
}

func TestABridgeWithoutASecretIsNeverStarted(t *testing.T) {
	if b, err := startBridge(newBridgeFakeAPI(), ""); err == nil {
		b.close()
		t.Error("started with an empty secret")
	}
}
