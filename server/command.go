package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/mattermost/mattermost/server/public/model"
	"github.com/mattermost/mattermost/server/public/plugin"
)

// incidentCommand is /incident with its autocomplete tree.
func incidentCommand() *model.Command {
	root := model.NewAutocompleteData(commandTrigger, "[command]",
		"Available commands: start, end, restart, stage, check, run, commander, add, announce, update, remind, "+
			"severity, list, info, timeline, note, export, stats, help")
	start := model.NewAutocompleteData("start",
		"<name> [--public] [--description \"...\"] [--playbook <id>] [--severity <level>]",
		"Start an incident in a new channel")
	start.AddTextArgument("Name of the incident", "<name>", "")
	stage := model.NewAutocompleteData("stage", "next|prev|<number> [--force]", "Move the incident to another stage")
	stage.AddStaticListArgument("Which stage", true, []model.AutocompleteListItem{
		{Item: "next", HelpText: "The next stage"},
		{Item: "prev", HelpText: "The previous stage"},
	})
	check := model.NewAutocompleteData("check", "<stage> <task>", "Check or uncheck a task (numbers count from 1)")
	check.AddTextArgument("Stage number, then task number", "<stage> <task>", "")
	run := model.NewAutocompleteData("run", "<stage> <task>", "Run a task's slash command here, as you")
	run.AddTextArgument("Stage number, then task number", "<stage> <task>", "")
	commander := model.NewAutocompleteData("commander", "[@username]", "Show or change the commander")
	commander.AddTextArgument("The new commander", "[@username]", "")
	announce := model.NewAutocompleteData("announce", "~channel ...", "Announce the incident in other channels")
	announce.AddTextArgument("Channels to announce in", "~channel ...", "")
	note := model.NewAutocompleteData("note", "<text>", "Add a note to the incident's timeline")
	note.AddTextArgument("What happened", "<text>", "")
	add := model.NewAutocompleteData("add", "@username ...", "Add people to the incident's channel")
	add.AddTextArgument("Who to add", "@username ...", "")
	update := model.NewAutocompleteData("update", "<message> [--remind 30m]",
		"Post a status update here and in the broadcast channels")
	update.AddTextArgument("The update", "<message> [--remind 30m]", "")
	remind := model.NewAutocompleteData("remind", "30m|never", "Snooze or switch off the status update reminder")
	remind.AddTextArgument("How long until the next reminder", "30m|never", "")
	severity := model.NewAutocompleteData("severity", "[<level>|none]", "Show or set the incident's severity")
	severity.AddTextArgument("The new severity", "[<level>|none]", "")
	for _, sub := range []*model.AutocompleteData{
		start,
		model.NewAutocompleteData("end", "", "End the incident of this channel"),
		model.NewAutocompleteData("restart", "", "Restart the ended incident of this channel"),
		stage, check, run, commander, add, announce, update, remind, severity,
		model.NewAutocompleteData("list", "", "Your active incidents in this team, newest 10"),
		model.NewAutocompleteData("info", "", "Show the incident of this channel"),
		model.NewAutocompleteData("timeline", "", "Show what happened in the incident, the last 20 entries"),
		note,
		model.NewAutocompleteData("export", "", "Link to the incident's Markdown report"),
		model.NewAutocompleteData("stats", "", "Show this team's incident figures for the last 90 days"),
		model.NewAutocompleteData("help", "", "Show the help"),
	} {
		root.AddCommand(sub)
	}
	return &model.Command{
		Trigger:          commandTrigger,
		DisplayName:      "Incident Response",
		Description:      "Run incidents in chat.",
		AutoComplete:     true,
		AutoCompleteDesc: root.HelpText,
		AutoCompleteHint: root.Hint,
		AutocompleteData: root,
	}
}

// commandText is what follows the trigger: "/incident start X" -> "start X".
func commandText(command string) string {
	command = strings.TrimSpace(command)
	_, rest, _ := strings.Cut(command, " ")
	if !strings.HasPrefix(command, "/") {
		return command
	}
	return strings.TrimSpace(rest)
}

// commandForm is the request a Mattermost custom slash command would send for these arguments.
func commandForm(args *model.CommandArgs, username string) url.Values {
	form := url.Values{}
	form.Set("user_id", args.UserId)
	form.Set("user_name", username)
	form.Set("team_id", args.TeamId)
	form.Set("channel_id", args.ChannelId)
	form.Set("root_id", args.RootId)
	form.Set("trigger_id", args.TriggerId)
	form.Set("command", "/"+commandTrigger)
	form.Set("text", commandText(args.Command))
	// Where the browser reaches Mattermost, so that links in replies point under it.
	form.Set("site_url", args.SiteURL)
	addPairs(form, "user_mentions", args.UserMentions)
	addPairs(form, "channel_mentions", args.ChannelMentions)
	return form
}

// addPairs adds a mention map as the paired name/ids lists Mattermost sends, in a stable order.
func addPairs(form url.Values, field string, mentions map[string]string) {
	names := make([]string, 0, len(mentions))
	for name := range mentions {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		form.Add(field, name)
		form.Add(field+"_ids", mentions[name])
	}
}

// ephemeral is a reply only the person who typed the command sees.
func ephemeral(text string) *model.CommandResponse {
	return &model.CommandResponse{ResponseType: model.CommandResponseTypeEphemeral, Text: text}
}

// runCommand posts the form to the server's /command endpoint and decodes its reply.
func runCommand(ctx context.Context, client *http.Client, c *child, slash, secret string,
	form url.Values) (*model.CommandResponse, error) {
	request, err := http.NewRequestWithContext(ctx, http.MethodPost, c.baseURL+"/command",
		strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	request.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	request.Header.Set("Authorization", "Token "+slash)
	request.Header.Set(secretHeader, secret)
	response, err := client.Do(request)
	if err != nil {
		return nil, err
	}
	c.answered()
	defer response.Body.Close()
	body, err := io.ReadAll(io.LimitReader(response.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if response.StatusCode != http.StatusOK {
		refusal := struct {
			Error string `json:"error"`
		}{}
		if json.Unmarshal(body, &refusal) == nil && refusal.Error != "" &&
			(response.StatusCode == http.StatusBadRequest || response.StatusCode == http.StatusRequestEntityTooLarge) {
			// The server's own words say what to fix: they are for the person who typed it.
			return ephemeral(refusal.Error), nil
		}
		return nil, fmt.Errorf("the incident server answered %d", response.StatusCode)
	}
	reply := &model.CommandResponse{}
	if err := json.Unmarshal(body, reply); err != nil {
		return nil, fmt.Errorf("the incident server's reply is not JSON: %w", err)
	}
	return reply, nil
}

// ExecuteCommand hands /incident to the Python server and returns its reply.
func (p *Plugin) ExecuteCommand(_ *plugin.Context, args *model.CommandArgs) (*model.CommandResponse, *model.AppError) {
	c := p.running()
	if c == nil {
		return ephemeral("Incident Response is starting or restarting; try again in a moment."), nil
	}
	username := ""
	if user, appErr := p.API.GetUser(args.UserId); appErr == nil {
		username = user.Username
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	reply, err := runCommand(ctx, &http.Client{Transport: proxyTransport}, c, p.slash, p.secret, commandForm(args, username))
	if err != nil {
		p.API.LogError("the /incident command could not be run", "error", err.Error())
		// The server may have died after it made the change: a blind retry could make it twice.
		return ephemeral("Incident Response could not answer this command, so it may or may not have run: " +
			"check with `/incident info` before you run it again, or ask an admin to look at the server log " +
			"if it keeps happening."), nil
	}
	return reply, nil
}
