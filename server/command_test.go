package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mattermost/mattermost/server/public/model"
	"github.com/mattermost/mattermost/server/public/plugin"
)

func TestCommandTextDropsTheTrigger(t *testing.T) {
	cases := map[string]string{
		"/incident start Database is down": "start Database is down",
		"/incident":                        "",
		"  /incident   stage next ":        "stage next",
	}
	for command, want := range cases {
		if got := commandText(command); got != want {
			t.Errorf("commandText(%q) = %q, want %q", command, got, want)
		}
	}
}

func TestCommandFormCarriesTheCallerAndPairedMentions(t *testing.T) {
	args := &model.CommandArgs{
		UserId: "u1", TeamId: "t1", ChannelId: "c1", Command: "/incident commander @bob",
		SiteURL:         "https://chat.example.com",
		UserMentions:    model.UserMentionMap{"bob": "b1", "al": "a1"},
		ChannelMentions: model.ChannelMentionMap{"town-square": "ts1"},
	}
	form := commandForm(args, "alice")
	if form.Get("user_id") != "u1" || form.Get("user_name") != "alice" || form.Get("team_id") != "t1" ||
		form.Get("channel_id") != "c1" || form.Get("text") != "commander @bob" ||
		form.Get("site_url") != "https://chat.example.com" {
		t.Fatalf("unexpected form %v", form)
	}
	if !slices.Equal(form["user_mentions"], []string{"al", "bob"}) ||
		!slices.Equal(form["user_mentions_ids"], []string{"a1", "b1"}) {
		t.Errorf("mentions not paired in order: %v %v", form["user_mentions"], form["user_mentions_ids"])
	}
	if form.Get("channel_mentions_ids") != "ts1" {
		t.Errorf("channel mentions missing: %v", form)
	}
}

func TestRunCommandSendsTheTokenAndReturnsTheServersReply(t *testing.T) {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/command" || r.Header.Get("Authorization") != "Token slash-token" ||
			r.Header.Get(secretHeader) != "host-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_ = r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"response_type":"in_channel","text":"ran ` + r.PostForm.Get("text") + `"}`))
	}))
	defer server.Close()
	c := &child{baseURL: server.URL}
	form := commandForm(&model.CommandArgs{Command: "/incident end"}, "alice")
	sent := time.Now()
	reply, err := runCommand(context.Background(), server.Client(), c, "slash-token", "host-secret", form)
	if err != nil {
		t.Fatal(err)
	}
	if !c.answeredSince(sent) {
		t.Error("the watchdog was not told the server answered a command")
	}
	if reply.ResponseType != model.CommandResponseTypeInChannel || reply.Text != "ran end" {
		t.Errorf("reply = %+v", reply)
	}
	if _, err := runCommand(context.Background(), server.Client(), c, "wrong", "host-secret", form); err == nil {
		t.Error("a refused command should be an error")
	}
}

func TestRunCommandShowsTheServersReasonForABadRequest(t *testing.T) {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"Malformed slash command request: team_id must be an id.","details":{}}`))
	}))
	defer server.Close()
	reply, err := runCommand(context.Background(), server.Client(), &child{baseURL: server.URL}, "t", "s",
		commandForm(&model.CommandArgs{Command: "/incident list"}, "alice"))
	if err != nil || reply.ResponseType != model.CommandResponseTypeEphemeral ||
		reply.Text != "Malformed slash command request: team_id must be an id." {
		t.Errorf("reply = %+v, err = %v", reply, err)
	}
}

func TestIncidentCommandOffersEverySubcommandInAutocomplete(t *testing.T) {
	command := incidentCommand()
	if command.Trigger != "incident" || !command.AutoComplete || command.AutocompleteData == nil {
		t.Fatalf("command = %+v", command)
	}
	names := []string{}
	for _, sub := range command.AutocompleteData.SubCommands {
		names = append(names, sub.Trigger)
	}
	for _, want := range []string{"start", "end", "restart", "stage", "check", "run", "commander", "add",
		"announce", "update", "remind", "severity", "list", "info", "timeline", "note", "export", "stats", "help"} {
		if !slices.Contains(names, want) {
			t.Errorf("autocomplete lacks %q: %v", want, names)
		}
	}
	if err := command.AutocompleteData.IsValid(); err != nil {
		t.Errorf("autocomplete data invalid: %v", err)
	}
}

func TestIncidentCommandAutocompleteSaysWhatStartAndListDo(t *testing.T) {
	hints := map[string]*model.AutocompleteData{}
	for _, sub := range incidentCommand().AutocompleteData.SubCommands {
		hints[sub.Trigger] = sub
	}
	for _, option := range []string{"--public", "--description", "--playbook", "--severity"} {
		if !strings.Contains(hints["start"].Hint, option) {
			t.Errorf("start's hint %q lacks %s", hints["start"].Hint, option)
		}
	}
	// list shows the caller's active incidents in this team, as /incident help says.
	if !strings.Contains(hints["list"].HelpText, "active incidents in this team") {
		t.Errorf("list's help text %q", hints["list"].HelpText)
	}
}

// commandAPI is the plugin API as far as ExecuteCommand uses it: the caller's username and the log.
type commandAPI struct {
	plugin.API
	log logRecorder
}

func (a *commandAPI) GetUser(userID string) (*model.User, *model.AppError) {
	return &model.User{Id: userID, Username: "alice"}, nil
}

func (a *commandAPI) LogError(msg string, pairs ...any) { a.log.record("error", msg, pairs) }

func TestACommandCutShortByACrashSaysItMayHaveRunAndToCheckFirst(t *testing.T) {
	api := &commandAPI{}
	p := &Plugin{secret: "s", slash: "t"}
	p.API = api
	p.setCurrent(&child{baseURL: cutShort(t).String(), done: make(chan struct{})})
	reply, appErr := p.ExecuteCommand(&plugin.Context{}, &model.CommandArgs{UserId: "u1", Command: "/incident start db"})
	if appErr != nil || reply == nil {
		t.Fatalf("reply %v, error %v", reply, appErr)
	}
	if reply.ResponseType != model.CommandResponseTypeEphemeral || !strings.Contains(reply.Text, "may or may not have run") ||
		!strings.Contains(reply.Text, "/incident info") {
		t.Errorf("reply %q", reply.Text)
	}
	if lines := api.log.logged(); len(lines) != 1 || strings.Contains(lines[0], "start db") {
		t.Errorf("logged %v", lines)
	}
}
