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
    if (reply instanceof Promise) {
      return reply;
    }
    return Promise.resolve({
      status: reply.status, ok: reply.status >= 200 && reply.status < 300,
      headers: {get: (name) => (name === 'ETag' && reply.etag) || null},
      json: () => (reply.body === undefined ? Promise.reject(new SyntaxError('not JSON'))
        : Promise.resolve(reply.body)),
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

test('a tick carries the ETag of the incident shown, and a 412 shows the incident as it is now', async () => {
  const changed = {...INCIDENT, checklists: [
    {id: 'a', title: 'Triage', items: [{title: 'Status page', state: 'open'}]}, INCIDENT.checklists[1]]};
  const {registry, calls, api} = loadBundle({responses: [
    {status: 200, body: INCIDENT, etag: '"1.4"'}, NO_UPDATES,
    {status: 412, body: {error: 'The incident has changed since the version named in If-Match.'}},
    {status: 200, body: changed, etag: '"1.5"'}, NO_UPDATES]});
  await registry.registered.buttons[0].action({id: CHANNEL});
  const plugin = registry.registered.sidebars[0];
  find(plugin.component(), (node) => node.props && node.props.id === 'incident-rhs-task-1').props.onChange();
  await settle();
  assert.equal(calls[2].options.headers['If-Match'], '"1.4"');
  const text = api.textOf(plugin.component());
  assert.match(text, /Someone changed this incident meanwhile.*Check it, then do it again/);
  assert.equal(find(plugin.component(), (node) => node.props && node.props.id === 'incident-rhs-task-1'), null);
  assert.match(text, /Status page/);
});

test('a second click while a change is on its way sends nothing', async () => {
  let release;
  const slow = new Promise((resolve) => { release = resolve; });
  const {registry, calls} = loadBundle({responses: [
    {status: 200, body: INCIDENT}, NO_UPDATES, slow, {status: 200, body: INCIDENT}, NO_UPDATES]});
  await registry.registered.buttons[0].action({id: CHANNEL});
  const panel = registry.registered.sidebars[0];
  find(panel.component(), button('End incident')).props.onClick();
  find(panel.component(), button('End incident')).props.onClick();
  release({status: 200, ok: true, headers: {get: () => null}, json: () => Promise.resolve(INCIDENT)});
  await settle();
  assert.equal(calls.filter((call) => call.url.endsWith('/end')).length, 1);
});

test('a failure without a message of ours says what to do next', async () => {
  const cases = [
    [{status: 502}, /answered 502: try again in a moment/],
    [{status: 401, body: {id: 'api.context.session_expired.app_error',
      message: 'Invalid or expired session, please login again.'}},
      /Invalid or expired session, please login again/],
    [{status: 401, body: {}}, /reload the page to sign in again/],
    [new Error('connection refused'), /Could not reach.*connection refused.*try again/],
  ];
  for (const [reply, expected] of cases) {
    const {registry, api} = loadBundle({responses: [reply]});
    await registry.registered.buttons[0].action({id: CHANNEL});
    assert.match(api.textOf(registry.registered.sidebars[0].component()), expected);
  }
});

test('text people typed takes its direction from its own letters', async () => {
  const hebrew = {...INCIDENT, name: 'השרת נפל'};
  const {registry} = loadBundle({responses: [{status: 200, body: hebrew},
    {status: 200, body: {...NO_UPDATES.body, items: [{message: 'עדיין בודקים'}]}}]});
  await registry.registered.buttons[0].action({id: CHANNEL});
  const panel = registry.registered.sidebars[0].component();
  for (const text of ['השרת נפל', 'Status page', 'עדיין בודקים']) {
    const node = find(panel, (n) => n.children && n.children.includes(text));
    assert.equal(node.props.dir, 'auto', text);
  }
});
