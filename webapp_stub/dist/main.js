/*
 * Incident Response webapp bundle: dependency free, loaded by the chat client.
 *
 * It registers a channel-header button and a right-hand sidebar panel. The panel
 * shows the incident of the current channel (name, commander, active stage and
 * task progress), fetched from this plugin's backend at
 * /plugins/<id>/api/v0/incidents/channel/<channel_id>.
 *
 * Rendering uses window.React when the client provides it (Mattermost does) and
 * otherwise builds plain {type, props, children} trees, so the logic is testable
 * without a browser or a React install.
 */
(function (root) {
  'use strict';

  var PLUGIN_ID = 'com.mattermost.plugin-incident-response';

  function incidentUrl(channelId, siteUrl) {
    return (siteUrl || '') + '/plugins/' + PLUGIN_ID + '/api/v0/incidents/channel/' +
      encodeURIComponent(channelId);
  }

  // Returns {status: 'ready', incident} | {status: 'none'} | {status: 'error', message}.
  function fetchIncident(fetchImpl, channelId, siteUrl) {
    return fetchImpl(incidentUrl(channelId, siteUrl), {
      method: 'GET',
      credentials: 'same-origin',
      // The chat server requires this header on requests authenticated by its session cookie.
      headers: {'X-Requested-With': 'XMLHttpRequest', Accept: 'application/json'},
    }).then(function (response) {
      if (response.status === 404) {
        return {status: 'none'};
      }
      return response.json().then(function (body) {
        if (!response.ok) {
          return {status: 'error', message: (body && body.error) || ('HTTP ' + response.status)};
        }
        return {status: 'ready', incident: body};
      });
    }, function (error) {
      return {status: 'error', message: 'Could not reach the incident server: ' + error.message};
    });
  }

  function username(state, userId) {
    var profiles = state && state.entities && state.entities.users && state.entities.users.profiles;
    var user = profiles && profiles[userId];
    return user && user.username ? '@' + user.username : userId;
  }

  // The facts the panel shows, as plain strings.
  function summarize(incident, state) {
    var checklists = incident.checklists || [];
    var total = 0;
    var done = 0;
    checklists.forEach(function (checklist) {
      (checklist.items || []).forEach(function (item) {
        total += 1;
        if (item.state === 'closed') {
          done += 1;
        }
      });
    });
    var stage = incident.active_stage >= 0 && incident.active_stage < checklists.length ?
      checklists[incident.active_stage].title + ' (' + (incident.active_stage + 1) + ' of ' +
        checklists.length + ')' :
      'No stages';
    return {
      name: incident.name,
      commander: username(state, incident.commander_user_id),
      stage: stage,
      progress: done + ' of ' + total + ' tasks done',
      status: incident.is_active ? 'Active' : 'Ended',
    };
  }

  function plainElement(type, props) {
    var children = Array.prototype.slice.call(arguments, 2);
    return {type: type, props: props || {}, children: children};
  }

  // Text content of a plain element tree (used by tests and by the fallback renderer).
  function textOf(node) {
    if (node === null || node === undefined || node === false) {
      return '';
    }
    if (typeof node === 'string' || typeof node === 'number') {
      return String(node);
    }
    return (node.children || []).map(textOf).join(node.type === 'div' || node.type === 'li' ? '\n' : '');
  }

  function view(h, result) {
    if (!result || result.status === 'idle') {
      return h('div', {className: 'incident-rhs'}, 'Open a channel to see its incident.');
    }
    if (result.status === 'loading') {
      return h('div', {className: 'incident-rhs'}, 'Loading the incident...');
    }
    if (result.status === 'none') {
      return h('div', {className: 'incident-rhs'}, 'This channel has no incident.');
    }
    if (result.status === 'error') {
      return h('div', {className: 'incident-rhs incident-rhs--error'}, result.message);
    }
    var s = result.summary;
    return h('div', {className: 'incident-rhs'},
      h('h3', {key: 'name'}, s.name),
      h('ul', {key: 'facts'},
        h('li', {key: 'status'}, 'Status: ' + s.status),
        h('li', {key: 'commander'}, 'Commander: ' + s.commander),
        h('li', {key: 'stage'}, 'Stage: ' + s.stage),
        h('li', {key: 'progress'}, 'Tasks: ' + s.progress)));
  }

  // Holds what the panel shows and tells subscribers when it changes.
  function Panel(fetchImpl, getState, siteUrl) {
    this.fetchImpl = fetchImpl;
    this.getState = getState;
    this.siteUrl = siteUrl || '';
    this.result = {status: 'idle'};
    this.channelId = null;
    this.listeners = [];
  }

  Panel.prototype.subscribe = function (listener) {
    var listeners = this.listeners;
    listeners.push(listener);
    return function () {
      var index = listeners.indexOf(listener);
      if (index >= 0) {
        listeners.splice(index, 1);
      }
    };
  };

  Panel.prototype.set = function (result) {
    this.result = result;
    this.listeners.slice().forEach(function (listener) {
      listener(result);
    });
  };

  Panel.prototype.load = function (channelId) {
    var panel = this;
    panel.channelId = channelId;
    panel.set({status: 'loading'});
    return fetchIncident(panel.fetchImpl, channelId, panel.siteUrl).then(function (result) {
      if (panel.channelId !== channelId) {
        return panel.result; // the user moved on to another channel meanwhile
      }
      if (result.status === 'ready') {
        result.summary = summarize(result.incident, panel.getState());
      }
      panel.set(result);
      return result;
    });
  };

  function currentChannelId(state) {
    return state && state.entities && state.entities.channels && state.entities.channels.currentChannelId;
  }

  function makeSidebar(React, panel) {
    if (!React) {
      return function IncidentSidebar() {
        return view(plainElement, panel.result);
      };
    }
    return function IncidentSidebar() {
      var pair = React.useState(panel.result);
      React.useEffect(function () {
        var unsubscribe = panel.subscribe(pair[1]);
        var channelId = currentChannelId(panel.getState());
        if (channelId && channelId !== panel.channelId) {
          panel.load(channelId);
        }
        return unsubscribe;
      }, []);
      return view(React.createElement, pair[0]);
    };
  }

  function Plugin() {
    this.panel = null;
  }

  Plugin.prototype.initialize = function (registry, store) {
    var React = root.React || null;
    var fetchImpl = root.fetch ? root.fetch.bind(root) : null;
    var state = store.getState();
    var siteUrl = state && state.entities && state.entities.general && state.entities.general.config &&
      state.entities.general.config.SiteURL;
    var panel = new Panel(fetchImpl, store.getState, siteUrl);
    this.panel = panel;
    var rhs = registry.registerRightHandSidebarComponent(makeSidebar(React, panel), 'Incident');
    var h = React ? React.createElement : plainElement;
    registry.registerChannelHeaderButtonAction(
      h('i', {className: 'icon fa fa-exclamation-triangle', 'aria-label': 'Incident'}),
      function (channel) {
        var channelId = (channel && channel.id) || currentChannelId(store.getState());
        var loading = panel.load(channelId);
        store.dispatch(rhs.showRHSPlugin);
        return loading;
      },
      'Incident',
      'Show the incident of this channel');
  };

  var exported = {
    PLUGIN_ID: PLUGIN_ID, Plugin: Plugin, Panel: Panel, incidentUrl: incidentUrl,
    fetchIncident: fetchIncident, summarize: summarize, textOf: textOf, view: view,
  };
  if (typeof module === 'object' && module.exports) {
    module.exports = exported;
  }
  if (root && typeof root.registerPlugin === 'function') {
    root.registerPlugin(PLUGIN_ID, new Plugin());
  }
})(typeof window !== 'undefined' ? window : globalThis);
