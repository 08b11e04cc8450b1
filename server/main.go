// Command server is the plugin's server executable: Mattermost starts it, and it
// runs the incident-response Python server as its child (see docs/mattermost.md).
package main

import (
	"github.com/mattermost/mattermost/server/public/plugin"
)

func main() {
	plugin.ClientMain(&Plugin{})
}
