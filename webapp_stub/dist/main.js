var IncidentResponsePlugin = (function(exports) {
	Object.defineProperty(exports, Symbol.toStringTag, { value: "Module" });
	// src/plugin/index.js
	var root = typeof window !== "undefined" ? window : globalThis;
	var PLUGIN_ID = "com.mattermost.plugin-incident-response";
	function pluginUrl(siteUrl) {
		return (siteUrl || "") + "/plugins/" + PLUGIN_ID;
	}
	function incidentUrl(channelId, siteUrl) {
		return pluginUrl(siteUrl) + "/api/v0/incidents/channel/" + encodeURIComponent(channelId);
	}
	function backstageUrl(incident, siteUrl) {
		return pluginUrl(siteUrl) + "/backstage/#/incidents/" + encodeURIComponent(incident.id) + "?team_id=" + encodeURIComponent(incident.team_id || "");
	}
	function csrfToken() {
		var match = (root.document && typeof root.document.cookie === "string" ? root.document.cookie : "").match(/(?:^|;\s*)MMCSRF=([^;]+)/);
		return match ? decodeURIComponent(match[1]) : "";
	}
	function headers(withBody, ifMatch) {
		var result = {
			"X-Requested-With": "XMLHttpRequest",
			Accept: "application/json"
		};
		if (ifMatch) result["If-Match"] = ifMatch;
		var token = csrfToken();
		if (token) result["X-CSRF-Token"] = token;
		if (withBody) result["Content-Type"] = "application/json";
		return result;
	}
	function request(fetchImpl, url, method, body, ifMatch) {
		var options = {
			method,
			credentials: "same-origin",
			headers: headers(body !== void 0, ifMatch)
		};
		if (body !== void 0) options.body = JSON.stringify(body);
		return fetchImpl(url, options).then(function(response) {
			var etag = response.headers && typeof response.headers.get === "function" ? response.headers.get("ETag") : null;
			return response.json().then(function(data) {
				return {
					ok: response.ok,
					status: response.status,
					body: data,
					etag
				};
			}, function() {
				return {
					ok: response.ok,
					status: response.status,
					body: null,
					etag
				};
			});
		}, function(error) {
			return {
				ok: false,
				status: 0,
				body: { error: "Could not reach the incident server (" + error.message + "): check your network connection, then try again." }
			};
		});
	}
	function errorOf(reply) {
		var body = reply.body || {};
		if (body.error || body.message) return body.error || body.message;
		if (reply.status === 401) return "Your session has ended: reload the page to sign in again.";
		if (reply.status >= 500) return "The incident server answered " + reply.status + ": try again in a moment.";
		return "The incident server answered " + reply.status + ": reload the page and try again.";
	}
	var STALE = "Someone changed this incident meanwhile: it now shows as it is. Check it, then do it again if it is still needed.";
	function fetchIncident(fetchImpl, channelId, siteUrl) {
		return request(fetchImpl, incidentUrl(channelId, siteUrl), "GET").then(function(reply) {
			if (reply.status === 404) return { status: "none" };
			if (!reply.ok) return {
				status: "error",
				message: errorOf(reply)
			};
			return {
				status: "ready",
				incident: reply.body,
				etag: reply.etag
			};
		});
	}
	function fetchLastUpdate(fetchImpl, incident, siteUrl) {
		return request(fetchImpl, pluginUrl(siteUrl) + "/api/v0/incidents/" + encodeURIComponent(incident.id) + "/status-updates?per_page=1", "GET").then(function(reply) {
			return reply.ok && reply.body && reply.body.items && reply.body.items.length ? reply.body.items[0] : null;
		});
	}
	function username(state, userId) {
		var profiles = state && state.entities && state.entities.users && state.entities.users.profiles;
		var user = profiles && profiles[userId];
		return user && user.username ? "@" + user.username : userId;
	}
	function summarize(incident, state) {
		var checklists = incident.checklists || [];
		var total = 0;
		var done = 0;
		checklists.forEach(function(checklist) {
			(checklist.items || []).forEach(function(item) {
				total += 1;
				if (item.state === "closed") done += 1;
			});
		});
		var stage = incident.active_stage >= 0 && incident.active_stage < checklists.length ? checklists[incident.active_stage].title + " (" + (incident.active_stage + 1) + " of " + checklists.length + ")" : "No stages";
		return {
			name: incident.name,
			commander: username(state, incident.commander_user_id),
			stage,
			progress: done + " of " + total + " tasks done",
			status: incident.is_active ? "Active" : "Ended"
		};
	}
	function plainElement(type, props) {
		var children = Array.prototype.slice.call(arguments, 2);
		return {
			type,
			props: props || {},
			children
		};
	}
	function textOf(node) {
		if (node === null || node === void 0 || node === false) return "";
		if (typeof node === "string" || typeof node === "number") return String(node);
		if (Array.isArray(node)) return node.map(textOf).join("\n");
		return (node.children || []).map(textOf).join(node.type === "div" || node.type === "li" ? "\n" : "");
	}
	var STYLE = {
		panel: {
			padding: "12px 16px",
			lineHeight: 1.45
		},
		list: {
			listStyle: "none",
			padding: 0,
			margin: "8px 0"
		},
		tasks: {
			listStyle: "none",
			padding: 0,
			margin: "4px 0 12px"
		},
		row: {
			display: "flex",
			flexWrap: "wrap",
			gap: "8px",
			margin: "8px 0"
		},
		update: {
			borderLeft: "4px solid #1f5fbf",
			padding: "2px 8px",
			margin: "8px 0",
			whiteSpace: "pre-wrap"
		},
		error: { color: "#8c1d16" },
		textarea: {
			width: "100%",
			minHeight: "60px",
			boxSizing: "border-box"
		}
	};
	function view(h, result, actions) {
		if (!result || result.status === "idle") return h("div", {
			className: "incident-rhs",
			style: STYLE.panel
		}, "Open a channel to see its incident.");
		if (result.status === "loading") return h("div", {
			className: "incident-rhs",
			style: STYLE.panel
		}, "Loading the incident...");
		if (result.status === "none") return h("div", {
			className: "incident-rhs",
			style: STYLE.panel
		}, "This channel has no incident.");
		if (result.status === "error") return h("div", {
			className: "incident-rhs incident-rhs--error",
			style: STYLE.panel,
			role: "alert"
		}, result.message);
		var s = result.summary;
		var incident = result.incident;
		var act = actions || {};
		var checklists = incident.checklists || [];
		var active = checklists[incident.active_stage];
		var busy = Boolean(result.busy);
		var children = [h("h3", {
			key: "name",
			dir: "auto"
		}, s.name), h("ul", {
			key: "facts",
			style: STYLE.list
		}, h("li", { key: "status" }, "Status: " + s.status), h("li", { key: "commander" }, "Commander: " + s.commander), incident.severity ? h("li", { key: "severity" }, "Severity: " + incident.severity) : null, h("li", { key: "stage" }, "Stage: " + s.stage), h("li", { key: "progress" }, "Tasks: " + s.progress))];
		if (result.actionError) children.push(h("p", {
			key: "error",
			role: "alert",
			style: STYLE.error
		}, result.actionError));
		if (active && (active.items || []).length) {
			children.push(h("h4", { key: "tasks-title" }, "Tasks of " + active.title));
			children.push(h("ul", {
				key: "tasks",
				style: STYLE.tasks
			}, active.items.map(function(item, i) {
				var id = "incident-rhs-task-" + i;
				return h("li", { key: id }, h("input", {
					type: "checkbox",
					id,
					checked: item.state === "closed",
					disabled: busy || !incident.is_active,
					onChange: function() {
						act.toggleTask && act.toggleTask(incident.active_stage, i, item.state !== "closed");
					}
				}), " ", h("label", {
					htmlFor: id,
					dir: "auto"
				}, item.title), item.command ? " " : null, item.command ? h("button", {
					type: "button",
					className: "btn btn-sm btn-tertiary",
					disabled: busy,
					"aria-label": "Run " + item.command,
					onClick: function() {
						act.runTask && act.runTask(incident.active_stage, i);
					}
				}, "Run") : null);
			})));
		}
		children.push(h("h4", { key: "update-title" }, "Last status update"));
		children.push(result.lastUpdate ? h("p", {
			key: "update",
			style: STYLE.update,
			dir: "auto"
		}, result.lastUpdate.message) : h("p", { key: "update" }, "No status update yet."));
		if (incident.is_active) {
			children.push(h("label", {
				key: "draft-label",
				htmlFor: "incident-rhs-update"
			}, "New status update"));
			children.push(h("textarea", {
				key: "draft",
				id: "incident-rhs-update",
				style: STYLE.textarea,
				value: act.draft || "",
				onChange: function(e) {
					act.setDraft && act.setDraft(e.target.value);
				}
			}));
			var buttons = [h("button", {
				key: "post",
				type: "button",
				className: "btn btn-primary",
				disabled: busy || !(act.draft || "").trim(),
				onClick: function() {
					act.postUpdate && act.postUpdate();
				}
			}, "Post update")];
			if (incident.active_stage < checklists.length - 1) buttons.push(h("button", {
				key: "next",
				type: "button",
				className: "btn btn-tertiary",
				disabled: busy,
				onClick: function() {
					act.nextStage && act.nextStage();
				}
			}, "Next stage"));
			buttons.push(h("button", {
				key: "end",
				type: "button",
				className: "btn btn-danger",
				disabled: busy,
				onClick: function() {
					act.end && act.end();
				}
			}, "End incident"));
			children.push(h("div", {
				key: "buttons",
				style: STYLE.row
			}, buttons));
		}
		children.push(h("p", { key: "link" }, h("a", {
			href: result.backstageUrl,
			target: "_blank",
			rel: "noopener noreferrer"
		}, "Open in backstage")));
		return h.apply(null, ["div", {
			className: "incident-rhs",
			style: STYLE.panel
		}].concat(children));
	}
	function Panel(fetchImpl, getState, siteUrl) {
		this.fetchImpl = fetchImpl;
		this.getState = getState;
		this.siteUrl = siteUrl || "";
		this.result = { status: "idle" };
		this.channelId = null;
		this.listeners = [];
	}
	Panel.prototype.subscribe = function(listener) {
		var listeners = this.listeners;
		listeners.push(listener);
		return function() {
			var index = listeners.indexOf(listener);
			if (index >= 0) listeners.splice(index, 1);
		};
	};
	Panel.prototype.set = function(result) {
		this.result = result;
		this.listeners.slice().forEach(function(listener) {
			listener(result);
		});
	};
	Panel.prototype.load = function(channelId, quiet) {
		var panel = this;
		panel.channelId = channelId;
		if (!quiet) panel.set({ status: "loading" });
		return fetchIncident(panel.fetchImpl, channelId, panel.siteUrl).then(function(result) {
			if (result.status !== "ready") return result;
			result.summary = summarize(result.incident, panel.getState());
			result.backstageUrl = backstageUrl(result.incident, panel.siteUrl);
			return fetchLastUpdate(panel.fetchImpl, result.incident, panel.siteUrl).then(function(update) {
				result.lastUpdate = update;
				return result;
			});
		}).then(function(result) {
			if (panel.channelId !== channelId) return panel.result;
			panel.set(result);
			return result;
		});
	};
	Panel.prototype.change = function(method, path, body, positional) {
		var panel = this;
		var current = panel.result;
		if (current.status !== "ready" || current.busy) return Promise.resolve(false);
		var url = pluginUrl(panel.siteUrl) + "/api/v0/incidents/" + encodeURIComponent(current.incident.id) + path;
		panel.set(Object.assign({}, current, {
			busy: true,
			actionError: ""
		}));
		return request(panel.fetchImpl, url, method, body, positional ? current.etag : null).then(function(reply) {
			if (reply.status === 412) return panel.load(current.incident.channel_id, true).then(function(now) {
				if (panel.result === now && now.status === "ready") panel.set(Object.assign({}, now, { actionError: STALE }));
				return false;
			});
			if (!reply.ok) {
				panel.set(Object.assign({}, current, {
					busy: false,
					actionError: errorOf(reply)
				}));
				return false;
			}
			return panel.load(current.incident.channel_id, true).then(function() {
				return true;
			});
		});
	};
	Panel.prototype.toggleTask = function(stage, item, done) {
		return this.change("PUT", "/checklists/" + stage + "/items/" + item + "/state", { new_state: done ? "closed" : "open" }, true);
	};
	Panel.prototype.runTask = function(stage, item) {
		return this.change("POST", "/checklists/" + stage + "/items/" + item + "/run", void 0, true);
	};
	Panel.prototype.nextStage = function() {
		return this.change("PATCH", "", { active_stage: this.result.incident.active_stage + 1 }, true);
	};
	Panel.prototype.postUpdate = function(message) {
		return this.change("POST", "/status-updates", { message });
	};
	Panel.prototype.end = function() {
		return this.change("PUT", "/end");
	};
	function currentChannelId(state) {
		return state && state.entities && state.entities.channels && state.entities.channels.currentChannelId;
	}
	function plainActions(panel) {
		return {
			draft: "",
			toggleTask: panel.toggleTask.bind(panel),
			runTask: panel.runTask.bind(panel),
			nextStage: panel.nextStage.bind(panel),
			postUpdate: function() {},
			end: panel.end.bind(panel)
		};
	}
	function makeSidebar(React, panel) {
		if (!React) return function IncidentSidebar() {
			return view(plainElement, panel.result, plainActions(panel));
		};
		return function IncidentSidebar() {
			var pair = React.useState(panel.result);
			var draft = React.useState("");
			React.useEffect(function() {
				var unsubscribe = panel.subscribe(pair[1]);
				var channelId = currentChannelId(panel.getState());
				if (channelId && channelId !== panel.channelId) panel.load(channelId);
				return unsubscribe;
			}, []);
			var actions = plainActions(panel);
			actions.draft = draft[0];
			actions.setDraft = draft[1];
			actions.postUpdate = function() {
				return panel.postUpdate(draft[0]).then(function(made) {
					if (made) draft[1]("");
				});
			};
			return view(React.createElement, pair[0], actions);
		};
	}
	function Plugin() {
		this.panel = null;
	}
	Plugin.prototype.initialize = function(registry, store) {
		var React = root.React || null;
		var fetchImpl = root.fetch ? root.fetch.bind(root) : null;
		var state = store.getState();
		var siteUrl = state && state.entities && state.entities.general && state.entities.general.config && state.entities.general.config.SiteURL;
		var panel = new Panel(fetchImpl, store.getState, siteUrl);
		this.panel = panel;
		var rhs = registry.registerRightHandSidebarComponent(makeSidebar(React, panel), "Incident");
		var h = React ? React.createElement : plainElement;
		registry.registerChannelHeaderButtonAction(h("i", {
			className: "icon fa fa-exclamation-triangle",
			"aria-label": "Incident"
		}), function(channel) {
			var channelId = channel && channel.id || currentChannelId(store.getState());
			var loading = panel.load(channelId);
			store.dispatch(rhs.showRHSPlugin);
			return loading;
		}, "Incident", "Show the incident of this channel");
		if (typeof store.subscribe === "function") store.subscribe(function() {
			var channelId = currentChannelId(store.getState());
			if (panel.listeners.length && channelId && channelId !== panel.channelId) panel.load(channelId);
		});
	};
	if (root && typeof root.registerPlugin === "function") root.registerPlugin(PLUGIN_ID, new Plugin());
	exports.PLUGIN_ID = PLUGIN_ID;
	exports.Panel = Panel;
	exports.Plugin = Plugin;
	exports.backstageUrl = backstageUrl;
	exports.fetchIncident = fetchIncident;
	exports.incidentUrl = incidentUrl;
	exports.summarize = summarize;
	exports.textOf = textOf;
	exports.view = view;
	return exports;
})({});
