// A stand-in for Mattermost's web client, for the browser tests: it gives plugins
// window.React and window.ReactDOM (React 18, as Mattermost does), loads a plugin
// bundle with a script tag, calls the registered plugin's initialize with a registry
// that keeps what it registers and a store, and renders the channel-header buttons
// and the right-hand panel as Mattermost would.
import React from 'react';
import ReactDOM from 'react-dom';
import {createRoot} from 'react-dom/client';
import './host.css';

window.React = React;
window.ReactDOM = ReactDOM;

const params = new URLSearchParams(window.location.search);
const plugins = [];
const registered = {buttons: [], sidebars: []};
const dispatched = [];
window.registerPlugin = (id, plugin) => plugins.push({id, plugin});
window.mattermostHost = {plugins, registered, dispatched};

const state = {entities: {
  channels: {currentChannelId: params.get('channel') || ''},
  users: {profiles: JSON.parse(params.get('profiles') || '{}')},
  general: {config: {SiteURL: window.location.origin}},
}};
let rhsOpen = null;
const store = {
  getState: () => state,
  dispatch: (action) => {
    dispatched.push(action);
    if (action && action.type === 'SHOW_RHS_PLUGIN') {
      rhsOpen = action.id;
      renderAll();
    }
  },
  subscribe: () => () => {},
};
const registry = {
  registerChannelHeaderButtonAction(icon, action, dropdownText, tooltipText) {
    registered.buttons.push({icon, action, dropdownText, tooltipText});
  },
  registerRightHandSidebarComponent(component, title) {
    const id = `rhs-${registered.sidebars.length}`;
    registered.sidebars.push({id, component, title});
    return {id, showRHSPlugin: {type: 'SHOW_RHS_PLUGIN', id}, toggleRHSPlugin: {type: 'TOGGLE_RHS_PLUGIN', id}};
  },
};

const headerRoot = createRoot(document.getElementById('channel-header-buttons'));
const rhsRoot = createRoot(document.getElementById('rhs'));
const h = React.createElement;

function renderAll() {
  headerRoot.render(h(React.Fragment, null, registered.buttons.map((button, n) => h('button', {
    key: n, type: 'button', className: 'channel-header__button', title: button.tooltipText,
    'aria-label': button.tooltipText,
    onClick: () => button.action({id: state.entities.channels.currentChannelId}),
  }, button.icon, ' ', button.dropdownText))));
  const sidebar = registered.sidebars.find((entry) => entry.id === rhsOpen);
  rhsRoot.render(sidebar ? h('section', {className: 'rhs__panel'}, h('h2', null, sidebar.title),
    h(sidebar.component)) : null);
}

const script = document.createElement('script');
script.src = params.get('bundle') || 'main.js';
script.onload = () => {
  plugins.forEach(({plugin}) => plugin.initialize(registry, store));
  renderAll();
  document.body.dataset.pluginsLoaded = String(plugins.length);
};
script.onerror = () => { document.body.dataset.pluginsLoaded = 'error'; };
document.head.appendChild(script);
