'use strict';
// Runs the bundle as the chat client would (a window with registerPlugin), against a
// fake plugin registry, a fake store and a fake fetch.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');

const BUNDLE = path.join(__dirname, '..', 'dist', 'main.js');
const MANIFEST = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'plugin.json'), 'utf8'));
const CHANNEL = 'channel0000000000000000000';
const COMMANDER = 'alice000000000000000000000';

const INCIDENT = {
  id: 'incident00000000000000000', name: 'db is down', is_active: true,
  commander_user_id: COMMANDER, channel_id: CHANNEL, active_stage: 0,
  checklists: [
    {id: 'a', title: 'Triage', items: [{title: 'Page', state: 'closed'}, {title: 'Status page', state: 'open'}]},
    {id: 'b', title: 'Resolve', items: [{title: 'Roll back', state: 'in_progress'}]},
  ],
};

const NO_UPDATES = {status: 200, body: {total_count: 0, page_count: 0, has_more: false, items: []}};

function fakeFetch(responses) {
  const calls = [];
  const fetch = (url, options) => {
    calls.push({url, options});
    const reply = responses.shift();
    if (reply instanceof Error) {
      return Promise.reject(reply);
    }
    return Promise.resolve({
      status: reply.status, ok: reply.status >= 200 && reply.status < 300,
      json: () => Promise.resolve(reply.body),
    });
  };
  return {fetch, calls};
}

function fakeRegistry() {
  const registered = {buttons: [], sidebars: []};
  return {
    registered,
    registerChannelHeaderButtonAction(icon, action, dropdownText, tooltipText) {
      registered.buttons.push({icon, action, dropdownText, tooltipText});
    },
    registerRightHandSidebarComponent(component, title) {
      registered.sidebars.push({component, title});
      return {id: 'rhs1', showRHSPlugin: {type: 'SHOW_RHS_PLUGIN', id: 'rhs1'}};
    },
  };
}

function fakeStore(extraState = {}) {
  const dispatched = [];
  const state = {entities: {
    channels: {currentChannelId: CHANNEL},
    users: {profiles: {[COMMANDER]: {id: COMMANDER, username: 'alice'}}},
    general: {config: {SiteURL: 'http://chat.example'}},
  }, ...extraState};
  return {dispatched, getState: () => state, dispatch: (action) => dispatched.push(action)};
}

// Loads the bundle in a fresh context; returns what it registered and the plugin.
function loadBundle({responses = [], React} = {}) {
  const plugins = [];
  const {fetch, calls} = fakeFetch(responses);
  const window = {fetch, React, registerPlugin: (id, plugin) => plugins.push({id, plugin})};
  const context = {window, Promise};
  vm.runInNewContext(fs.readFileSync(BUNDLE, 'utf8'), context);
  const registry = fakeRegistry();
  const store = fakeStore();
  assert.equal(plugins.length, 1);
  plugins[0].plugin.initialize(registry, store);
  // The bundle's functions, as the global the script defines.
  const api = context.IncidentResponsePlugin;
  return {plugins, registry, store, calls, api};
}

test('bundle registers itself under the manifest id', () => {
  const {plugins} = loadBundle();
  assert.equal(plugins[0].id, MANIFEST.id);
});

test('initialize registers one channel header button and one sidebar panel', () => {
  const {registry} = loadBundle();
  assert.equal(registry.registered.buttons.length, 1);
  assert.equal(registry.registered.sidebars.length, 1);
  assert.equal(registry.registered.buttons[0].dropdownText, 'Incident');
  assert.equal(registry.registered.sidebars[0].title, 'Incident');
});

test('header button fetches the channel incident and the panel shows name commander stage and progress', async () => {
  const {registry, store, calls, api} = loadBundle({responses: [{status: 200, body: INCIDENT}, NO_UPDATES]});
  await registry.registered.buttons[0].action({id: CHANNEL});
  assert.equal(calls.length, 2);
  assert.equal(calls[0].url, `http://chat.example/plugins/${MANIFEST.id}/api/v0/incidents/channel/${CHANNEL}`);
  assert.equal(calls[0].options.headers['X-Requested-With'], 'XMLHttpRequest');
  assert.deepEqual(store.dispatched, [{type: 'SHOW_RHS_PLUGIN', id: 'rhs1'}]);
  const text = api.textOf(registry.registered.sidebars[0].component());
  assert.match(text, /db is down/);
  assert.match(text, /Commander: @alice/);
  assert.match(text, /Stage: Triage \(1 of 2\)/);
  assert.match(text, /Tasks: 1 of 3 tasks done/);
  assert.match(text, /Status: Active/);
});

test('panel says the channel has no incident when the server answers 404', async () => {
  const {registry, api} = loadBundle({responses: [{status: 404, body: {error: 'No incident'}}]});
  await registry.registered.buttons[0].action({id: CHANNEL});
  assert.equal(api.textOf(registry.registered.sidebars[0].component()), 'This channel has no incident.');
});

test('panel shows the server error message for other failures', async () => {
  const {registry, api} = loadBundle({responses: [{status: 403, body: {error: 'You do not have permission'}}]});
  await registry.registered.buttons[0].action({id: CHANNEL});
  assert.match(api.textOf(registry.registered.sidebars[0].component()), /You do not have permission/);
});

test('panel reports an unreachable server instead of throwing', async () => {
  const {registry, api} = loadBundle({responses: [new Error('connection refused')]});
  await registry.registered.buttons[0].action({id: CHANNEL});
  assert.match(api.textOf(registry.registered.sidebars[0].component()), /Could not reach.*connection refused/);
});

test('a slow answer for a channel the user already left does not replace the newer one', async () => {
  const {api} = loadBundle();
  let release;
  const slow = new Promise((resolve) => { release = resolve; });
  const replies = [slow, Promise.resolve({status: 404, ok: false, json: () => Promise.resolve({})}),
    Promise.resolve({status: 200, ok: true, json: () => Promise.resolve(NO_UPDATES.body)})];
  const panel = new api.Panel(() => replies.shift(), () => ({}), '');
  const first = panel.load('first000000000000000000000');
  await panel.load('second00000000000000000000');
  release({status: 200, ok: true, json: () => Promise.resolve(INCIDENT)});
  await first;
  assert.equal(panel.result.status, 'none');
});

test('summary of an incident without stages says so and counts no tasks', () => {
  const {api} = loadBundle();
  const summary = api.summarize({name: 'x', commander_user_id: 'bob', active_stage: -1, checklists: [],
    is_active: false}, {});
  assert.deepEqual({...summary}, {name: 'x', commander: 'bob', stage: 'No stages', progress: '0 of 0 tasks done',
    status: 'Ended'});
});

// A React with just enough hooks: state by call order, effects collected to run by hand.
function fakeReact() {
  const states = [];
  const effects = [];
  let index = 0;
  return {
    effects,
    createElement: (type, props, ...children) => ({type, props, children}),
    useState: (initial) => {
      const at = index++;
      if (!(at in states)) {
        states[at] = initial;
      }
      return [states[at], (next) => { states[at] = next; }];
    },
    useEffect: (effect) => effects.push(effect),
    render: (Component) => { index = 0; return Component(); },
  };
}

const settle = async () => {
  for (let i = 0; i < 5; i += 1) {
    await new Promise((resolve) => setImmediate(resolve));
  }
};

test('with window.React the panel is a hooks component that loads the current channel', async () => {
  const React = fakeReact();
  const {registry, calls, api} = loadBundle({React, responses: [{status: 200, body: INCIDENT}, NO_UPDATES]});
  const Sidebar = registry.registered.sidebars[0].component;
  assert.match(api.textOf(React.render(Sidebar)), /Open a channel/);
  React.effects.forEach((effect) => effect());
  assert.equal(calls.length, 1);
  await settle();
  const text = api.textOf(React.render(Sidebar));
  assert.match(text, /db is down/);
  assert.match(text, /No status update yet/);
  assert.match(text, /Open in backstage/);
});

// Finds the first element of a tree that matches.
function find(node, match) {
  if (!node || typeof node !== 'object') {
    return null;
  }
  if (!Array.isArray(node) && match(node)) {
    return node;
  }
  for (const child of Array.isArray(node) ? node : node.children || []) {
    const found = find(child, match);
    if (found) {
      return found;
    }
  }
  return null;
}

const button = (text) => (node) => node.type === 'button' && node.children.join('') === text;

test('the panel shows the last status update and links to the incident on the backstage page', async () => {
  const update = {status: 200, body: {total_count: 1, page_count: 1, has_more: false,
    items: [{id: 'u1', message: 'rolled back', user_id: COMMANDER, create_at: 1}]}};
  const {registry, calls, api} = loadBundle({responses: [
    {status: 200, body: {...INCIDENT, team_id: 'team1', severity: 'sev2'}}, update]});
  await registry.registered.buttons[0].action({id: CHANNEL});
  assert.equal(calls[1].url, `http://chat.example/plugins/${MANIFEST.id}/api/v0/incidents/${INCIDENT.id}/status-updates?per_page=1`);
  const tree = registry.registered.sidebars[0].component();
  assert.match(api.textOf(tree), /Last status update\s*rolled back/);
  assert.match(api.textOf(tree), /Severity: sev2/);
  const link = find(tree, (node) => node.type === 'a');
  assert.equal(link.props.href,
    `http://chat.example/plugins/${MANIFEST.id}/backstage/#/incidents/${INCIDENT.id}?team_id=team1`);
});

test('the panel buttons move the stage tick a task and end the incident with the chat CSRF header', async () => {
  const moved = {...INCIDENT, active_stage: 1};
  const {registry, calls, api} = loadBundle({responses: [
    {status: 200, body: INCIDENT}, NO_UPDATES,
    {status: 200, body: moved}, {status: 200, body: moved}, NO_UPDATES,
    {status: 409, body: {error: 'The incident has already ended.'}},
  ]});
  await registry.registered.buttons[0].action({id: CHANNEL});
  const plugin = registry.registered.sidebars[0];
  find(plugin.component(), button('Next stage')).props.onClick();
  await settle();
  assert.equal(calls[2].options.method, 'PATCH');
  assert.equal(calls[2].url, `http://chat.example/plugins/${MANIFEST.id}/api/v0/incidents/${INCIDENT.id}`);
  assert.deepEqual(JSON.parse(calls[2].options.body), {active_stage: 1});
  assert.equal(calls[2].options.headers['X-Requested-With'], 'XMLHttpRequest');
  assert.match(api.textOf(plugin.component()), /Stage: Resolve \(2 of 2\)/);
  assert.equal(find(plugin.component(), button('Next stage')), null);
  find(plugin.component(), button('End incident')).props.onClick();
  await settle();
  assert.equal(calls[5].url, `http://chat.example/plugins/${MANIFEST.id}/api/v0/incidents/${INCIDENT.id}/end`);
  assert.match(api.textOf(plugin.component()), /already ended/);
});

test('ticking a task in the panel closes it through the task state endpoint', async () => {
  const {registry, calls} = loadBundle({responses: [
    {status: 200, body: INCIDENT}, NO_UPDATES, {status: 200, body: INCIDENT}, {status: 200, body: INCIDENT}, NO_UPDATES]});
  await registry.registered.buttons[0].action({id: CHANNEL});
  const box = find(registry.registered.sidebars[0].component(), (node) => node.props && node.props.id === 'incident-rhs-task-1');
  box.props.onChange();
  await settle();
  assert.equal(calls[2].url, `http://chat.example/plugins/${MANIFEST.id}/api/v0/incidents/${INCIDENT.id}/checklists/0/items/1/state`);
  assert.deepEqual(JSON.parse(calls[2].options.body), {new_state: 'closed'});
});

test('a task with a command has a Run button that runs it through the run endpoint and shows a refusal', async () => {
  const withCommand = {...INCIDENT, checklists: [
    {id: 'a', title: 'Triage', items: [{title: 'Page', state: 'open', command: '/page oncall'}, {title: 'Look', state: 'open'}]},
  ]};
  const {registry, calls, api} = loadBundle({responses: [
    {status: 200, body: withCommand}, NO_UPDATES, {status: 200, body: withCommand}, {status: 200, body: withCommand},
    NO_UPDATES, {status: 400, body: {error: 'Mattermost did not run the command: no such command.'}},
  ]});
  await registry.registered.buttons[0].action({id: CHANNEL});
  const plugin = registry.registered.sidebars[0];
  const runs = [];
  find(plugin.component(), (node) => {
    if (node.props && node.props['aria-label'] && node.props['aria-label'].startsWith('Run ')) {
      runs.push(node);
    }
    return false;
  });
  assert.equal(runs.length, 1);
  assert.equal(runs[0].props['aria-label'], 'Run /page oncall');
  runs[0].props.onClick();
  await settle();
  assert.equal(calls[2].options.method, 'POST');
  assert.equal(calls[2].url, `http://chat.example/plugins/${MANIFEST.id}/api/v0/incidents/${INCIDENT.id}/checklists/0/items/0/run`);
  assert.equal(calls[2].options.headers['X-Requested-With'], 'XMLHttpRequest');
  find(plugin.component(), (node) => node.props && node.props['aria-label'] === 'Run /page oncall').props.onClick();
  await settle();
  assert.match(api.textOf(plugin.component()), /did not run the command: no such command/);
});
