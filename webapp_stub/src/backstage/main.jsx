// The backstage page: incidents of a team, one incident with its stages, tasks,
// timeline and status updates, and statistics. Routes live in the URL's #fragment.
import {render} from 'preact';
import {useCallback, useEffect, useLayoutEffect, useRef, useState} from 'preact/hooks';

import {api, page, setCsrfToken} from './api.js';
import {StatsPage} from './stats.jsx';
import './style.css';

const PER_PAGE = 100;
// The server's longest incident name (NAME_MAX in plugin/model.py).
const NAME_MAX = 64;
// The server's longest stage or task title (TITLE_MAX in plugin/model.py).
const TITLE_MAX = 256;
const INCIDENT_ID = /^[a-z0-9]{26}$/;
// The severity filter's value for incidents without a severity.
const NO_SEVERITY = '-';

// ----- routing --------------------------------------------------------------------------
function parseHash() {
  const raw = window.location.hash.replace(/^#/, '') || '/';
  const [path, query = ''] = raw.split('?');
  return {path, params: Object.fromEntries(new URLSearchParams(query))};
}

function href(path, params = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, value]) => value !== '' && value != null));
  const text = query.toString();
  return `#${path}${text ? `?${text}` : ''}`;
}

function useRoute() {
  const [route, setRoute] = useState(parseHash());
  useEffect(() => {
    const onChange = () => setRoute(parseHash());
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}

// The document's title: what the page shows, then the product (what a screen reader reads first).
function setTitle(what) {
  document.title = `${what} · Incident Response`;
}
const TITLES = {'/': 'Incidents', '/new': 'Start an incident', '/stats': 'Statistics'};

// ----- usernames ------------------------------------------------------------------------
const names = new Map();

async function loadNames(ids) {
  const missing = [...new Set(ids.filter((id) => id && !names.has(id)))];
  for (let start = 0; start < missing.length; start += 200) {
    const found = await page('names', {query: {ids: missing.slice(start, start + 200).join(',')}});
    Object.entries(found).forEach(([id, name]) => names.set(id, name));
  }
}

function nameOf(id) {
  return id ? `@${names.get(id) || id}` : 'nobody';
}

// ----- small pieces ---------------------------------------------------------------------
function formatTime(ms) {
  return ms ? new Date(ms).toLocaleString(undefined, {dateStyle: 'medium', timeStyle: 'short'}) : '';
}

function Message({error, children}) {
  if (error) {
    return <p class="message message--error" role="alert">{error}</p>;
  }
  return children ? <p class="message" role="status">{children}</p> : null;
}

function StatusBadge({incident}) {
  return <span class={`badge ${incident.is_active ? 'badge--active' : 'badge--ended'}`}>
    {incident.is_active ? 'Active' : 'Ended'}</span>;
}

// Coloured by rank: the most severe level darkest; a level since removed from the setting is grey.
function SeverityBadge({severity, levels}) {
  if (!severity) {
    return null;
  }
  const rank = (levels || []).indexOf(severity) + 1;
  return <span class={`badge badge--rank${rank ? Math.min(rank, 4) : 0}`} title="Severity">{severity}</span>;
}

function SeverityOptions({levels, none}) {
  return <>
    <option value="">{none}</option>
    {levels.map((level) => <option key={level} value={level}>{level}</option>)}
  </>;
}

// ----- sign-in --------------------------------------------------------------------------
function SignIn({session, onSignedIn}) {
  const [users, setUsers] = useState(null);
  const [choice, setChoice] = useState('');
  const [error, setError] = useState('');

  useEffect(() => {
    if (!session.dev_sign_in) {
      return;
    }
    page('users').then((body) => {
      setUsers(body.items);
      setChoice(body.items.length ? body.items[0].id : '');
    }, (e) => setError(e.message));
  }, [session.dev_sign_in]);

  if (!session.dev_sign_in) {
    return <main id="main" class="panel">
      <h1>Sign in through Mattermost</h1>
      <p>Open this page from Mattermost (the incident panel links here): it uses your Mattermost sign-in.</p>
    </main>;
  }
  const submit = async (event) => {
    event.preventDefault();
    setError('');
    try {
      const body = await page('sign-in', {method: 'POST', body: {user_id: choice}});
      setCsrfToken(body.csrf_token);
      onSignedIn();
    } catch (e) {
      setError(e.message);
    }
  };
  return <main id="main" class="panel sign-in">
    <h1>Development sign-in</h1>
    <p class="dev-note"><strong>For development only:</strong> pick who you are from the local chat host's
      users. No password is asked; it is off when a host secret is set, unless the DevSignIn setting turns it on.</p>
    <Message error={error} />
    {users && users.length === 0 &&
      <p>No users yet: add one with <code>incident-plugin users add NAME</code>.</p>}
    {users && users.length > 0 && <form onSubmit={submit}>
      <label for="sign-in-user">User</label>
      <select id="sign-in-user" value={choice} onChange={(e) => setChoice(e.currentTarget.value)}>
        {users.map((user) => <option key={user.id} value={user.id}>@{user.username}</option>)}
      </select>
      <button type="submit" class="primary">Sign in</button>
    </form>}
  </main>;
}

// ----- the list ---------------------------------------------------------------------------
function Filters({params, commanders, me, levels, onChange}) {
  const [search, setSearch] = useState(params.search || '');
  useEffect(() => setSearch(params.search || ''), [params.search]);
  const set = (key) => (event) => onChange({...params, [key]: event.currentTarget.value, page: ''});
  return <form class="filters" role="search" aria-label="Filter incidents"
    onSubmit={(e) => { e.preventDefault(); onChange({...params, search, page: ''}); }}>
    <div class="field">
      <label for="filter-status">Status</label>
      <select id="filter-status" value={params.status || 'all'} onChange={set('status')}>
        <option value="all">All</option><option value="active">Active</option><option value="ended">Ended</option>
      </select>
    </div>
    <div class="field">
      <label for="filter-commander">Commander</label>
      <select id="filter-commander" value={params.commander || ''} onChange={set('commander')}>
        <option value="">Anyone</option>
        <option value={me}>Me ({nameOf(me)})</option>
        {commanders.filter((id) => id !== me).map((id) => <option key={id} value={id}>{nameOf(id)}</option>)}
      </select>
    </div>
    <div class="field">
      <label for="filter-severity">Severity</label>
      <select id="filter-severity" value={params.severity || ''} onChange={set('severity')}>
        <SeverityOptions levels={levels} none="Any" />
        <option value={NO_SEVERITY}>None set</option>
      </select>
    </div>
    <div class="field field--grow">
      <label for="filter-search">Search names</label>
      <input id="filter-search" type="search" value={search} onInput={(e) => setSearch(e.currentTarget.value)} />
    </div>
    <button type="submit">Search</button>
  </form>;
}

function IncidentRows({items, levels}) {
  // Marks the moment the rows are in the document, for the render-time measure.
  useLayoutEffect(() => {
    performance.mark('incident-list-rendered');
    performance.measure('incident-list-render', 'incident-list-data', 'incident-list-rendered');
  }, [items]);
  return <ul class="incident-list" aria-label="Incidents">
    {items.map((incident) => <li key={incident.id} class="incident-row">
      <a href={href(`/incidents/${incident.id}`)} class="incident-row__name" dir="auto">{incident.name}</a>
      <span class="incident-row__meta">
        <StatusBadge incident={incident} /> <SeverityBadge severity={incident.severity} levels={levels} />
        <span>Commander {nameOf(incident.commander_user_id)}</span>
        <span>Stage: {incident.active_stage_title || 'none'}</span>
        <span>Started {formatTime(incident.create_at)}</span>
      </span>
    </li>)}
  </ul>;
}

function IncidentList({params, session, team}) {
  const [result, setResult] = useState(null);
  const [error, setError] = useState('');
  const pageNumber = Number(params.page || 0);
  const go = (next) => { window.location.hash = href('/', next); };

  useEffect(() => {
    let current = true;
    setError('');
    api('incidents', {query: {
      team_id: team, status: params.status || 'all', commander_user_id: params.commander,
      severity: params.severity === NO_SEVERITY ? [''] : params.severity, search_term: params.search,
      page: pageNumber, per_page: PER_PAGE,
    }}).then(async (body) => {
      await loadNames(body.items.map((incident) => incident.commander_user_id)).catch(() => {});
      if (current) {
        performance.clearMarks();
        performance.clearMeasures();
        performance.mark('incident-list-data');
        setResult(body);
      }
    }, (e) => current && setError(e.message));
    return () => { current = false; };
  }, [team, params.status, params.commander, params.severity, params.search, pageNumber]);

  const commanders = result ? [...new Set(result.items.map((i) => i.commander_user_id))] : [];
  return <main id="main">
    <div class="heading-row">
      <h1>Incidents</h1>
      <a class="button primary" href={href('/new', {team_id: team})}>Start an incident</a>
    </div>
    <Filters params={params} commanders={commanders} me={session.user_id} levels={session.severity_levels || []}
      onChange={go} />
    <Message error={error} />
    {result && <p class="count" role="status">{result.total_count} incident{result.total_count === 1 ? '' : 's'}
      {result.page_count > 1 ? `, page ${pageNumber + 1} of ${result.page_count}` : ''}</p>}
    {result && result.items.length === 0 && <p>No incidents match these filters.</p>}
    {result && result.items.length > 0 && <IncidentRows items={result.items} levels={session.severity_levels} />}
    {result && result.page_count > 1 && <nav class="pager" aria-label="Pages">
      <button type="button" disabled={pageNumber === 0}
        onClick={() => go({...params, page: String(pageNumber - 1)})}>Previous page</button>
      <button type="button" disabled={!result.has_more}
        onClick={() => go({...params, page: String(pageNumber + 1)})}>Next page</button>
    </nav>}
  </main>;
}

// ----- starting one -----------------------------------------------------------------------
const TEMPLATE = '# Triage\nPage the on-call\nOpen a status page\n# Resolve\nRoll back\n# Review\nWrite the postmortem';

// "# Stage" lines start a stage; the lines under it are its tasks.
function parseStages(text) {
  const stages = [];
  text.split('\n').map((line) => line.trim()).forEach((line, number) => {
    if (!line) {
      return;
    }
    if (line.replace(/^#+\s*/, '').length > TITLE_MAX) {
      throw new Error(`Line ${number + 1} of the stages and tasks is longer than ${TITLE_MAX} characters: `
        + 'shorten it, or put the detail in a status update.');
    }
    if (line.startsWith('#')) {
      stages.push({title: line.replace(/^#+\s*/, '') || 'Stage', items: []});
    } else {
      if (!stages.length) {
        stages.push({title: 'Tasks', items: []});
      }
      stages[stages.length - 1].items.push({title: line});
    }
  });
  return stages;
}

function StartIncident({session, team}) {
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [stages, setStages] = useState(TEMPLATE);
  const [teamId, setTeamId] = useState(team);
  const [severity, setSeverity] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError('');
    try {
      const checklists = parseStages(stages);
      const incident = await api('incidents', {method: 'POST', body: {
        name, description, team_id: teamId, commander_user_id: session.user_id, checklists,
        severity,
      }});
      window.location.hash = href(`/incidents/${incident.id}`);
    } catch (e) {
      setError(e.message);
      setBusy(false);
    }
  };
  return <main id="main" class="panel">
    <h1>Start an incident</h1>
    <Message error={error} />
    <form class="stack" onSubmit={submit}>
      <label for="new-name">Name</label>
      <input id="new-name" required maxLength={NAME_MAX} value={name} onInput={(e) => setName(e.currentTarget.value)} />
      <label for="new-description">Description</label>
      <textarea id="new-description" rows={2} value={description}
        onInput={(e) => setDescription(e.currentTarget.value)} />
      <label for="new-severity">Severity</label>
      <select id="new-severity" value={severity} onChange={(e) => setSeverity(e.currentTarget.value)}>
        <SeverityOptions levels={session.severity_levels || []} none="None" />
      </select>
      <label for="new-team">Team id</label>
      <input id="new-team" required value={teamId} onInput={(e) => setTeamId(e.currentTarget.value.trim())} />
      <label for="new-stages">Stages and tasks</label>
      <p id="new-stages-help" class="help">A line starting with # names a stage; the lines under it are its tasks.</p>
      <textarea id="new-stages" rows={8} aria-describedby="new-stages-help" value={stages}
        onInput={(e) => setStages(e.currentTarget.value)} />
      <div><button type="submit" class="primary" disabled={busy}>Start the incident</button></div>
    </form>
  </main>;
}

// ----- one incident -----------------------------------------------------------------------
function Stages({incident, run, busy}) {
  const lastStage = incident.checklists.length - 1;
  return <section aria-labelledby="stages-heading">
    <div class="heading-row">
      <h2 id="stages-heading">Stages and tasks</h2>
      {incident.is_active && incident.active_stage < lastStage &&
        <button type="button" disabled={busy} onClick={() => run('move the stage', (ifMatch) => api(
          `incidents/${incident.id}`, {method: 'PATCH', body: {active_stage: incident.active_stage + 1}, ifMatch}))}>
          Move to the next stage</button>}
    </div>
    <ol class="stages">
      {incident.checklists.map((checklist, c) => {
        const active = c === incident.active_stage;
        const done = checklist.items.filter((item) => item.state === 'closed').length;
        return <li key={checklist.id || c} class={`stage ${active ? 'stage--active' : ''}`}
          aria-current={active ? 'step' : undefined}>
          <h3><span class="stage__title" dir="auto">{checklist.title}</span> <span class="muted">
            {done} of {checklist.items.length} done
            {active ? ' · current stage' : ''}</span></h3>
          <ul class="tasks">
            {checklist.items.map((item, i) => {
              const id = `task-${c}-${i}`;
              return <li key={item.id || i}>
                <input type="checkbox" id={id} checked={item.state === 'closed'} disabled={busy || !incident.is_active}
                  onChange={(e) => {
                    const newState = e.currentTarget.checked ? 'closed' : 'open';
                    run('tick the task', (ifMatch) => api(`incidents/${incident.id}/checklists/${c}/items/${i}/state`,
                      {method: 'PUT', body: {new_state: newState}, ifMatch}));
                  }} />
                <label for={id} dir="auto">{item.title}</label>
                {item.command && <>
                  <code class="command">{item.command}</code>
                  <button type="button" class="small" aria-label={`Run the command of ${item.title}`} disabled={busy}
                    onClick={() => run('run the command', (ifMatch) => api(
                      `incidents/${incident.id}/checklists/${c}/items/${i}/run`, {method: 'POST', ifMatch}))}>
                    Run</button>
                  {item.command_last_run > 0 &&
                    <span class="muted"> last run {formatTime(item.command_last_run)}</span>}
                </>}
              </li>;
            })}
          </ul>
        </li>;
      })}
    </ol>
  </section>;
}

function StatusUpdateForm({incident, run, busy}) {
  const [message, setMessage] = useState('');
  const submit = async (event) => {
    event.preventDefault();
    const ok = await run('post the update', () => api(`incidents/${incident.id}/status-updates`,
      {method: 'POST', body: {message}}));
    if (ok) {
      setMessage('');
    }
  };
  return <form class="stack" onSubmit={submit}>
    <label for="update-message">Status update</label>
    <textarea id="update-message" rows={3} required value={message}
      onInput={(e) => setMessage(e.currentTarget.value)} />
    <div><button type="submit" class="primary" disabled={busy}>Post the update</button></div>
  </form>;
}

function CommanderForm({incident, run, busy}) {
  const [who, setWho] = useState('');
  const submit = async (event) => {
    event.preventDefault();
    const name = who.trim().replace(/^@/, '');
    const ok = await run('change the commander', async () => {
      const found = await page('lookup', {query: {username: name}});
      return api(`incidents/${incident.id}/commander`, {method: 'POST', body: {commander_id: found.id}});
    });
    if (ok) {
      setWho('');
    }
  };
  return <form class="inline-form" onSubmit={submit}>
    <label for="new-commander">New commander</label>
    <input id="new-commander" required placeholder="@username" value={who}
      onInput={(e) => setWho(e.currentTarget.value)} />
    <button type="submit" disabled={busy}>Change</button>
  </form>;
}

function SeverityForm({incident, levels, run, busy}) {
  const change = (event) => {
    const severity = event.currentTarget.value;
    run('change the severity', () => api(`incidents/${incident.id}`, {method: 'PATCH', body: {severity}}));
  };
  const known = levels.includes(incident.severity) || !incident.severity;
  return <div class="inline-form">
    <label for="incident-severity">Severity</label>
    <select id="incident-severity" value={incident.severity || ''} disabled={busy} onChange={change}>
      <SeverityOptions levels={levels} none="None" />
      {!known && <option value={incident.severity}>{incident.severity} (no longer a level)</option>}
    </select>
  </div>;
}

function IncidentPage({id, levels}) {
  const [incident, setIncident] = useState(null);
  const [tag, setTag] = useState('');
  const [timeline, setTimeline] = useState([]);
  const [updates, setUpdates] = useState([]);
  const [updateCount, setUpdateCount] = useState(0);
  const [error, setError] = useState('');
  const [notice, setNotice] = useState('');
  const [busy, setBusy] = useState(false);
  // One change at a time: set at once, so a double click sends the change once.
  const changing = useRef(false);
  // What had focus when a change began; it gets focus back, or the result does if it has gone.
  const focusBefore = useRef(null);
  const result = useRef(null);
  const [settled, setSettled] = useState(0);

  const load = useCallback(async () => {
    const [one, entries, statusUpdates] = await Promise.all([
      api(`incidents/${id}`, {tagged: true}), api(`incidents/${id}/timeline`), api(`incidents/${id}/status-updates`)]);
    await loadNames([one.body.commander_user_id, ...statusUpdates.items.map((u) => u.user_id)]).catch(() => {});
    setIncident(one.body);
    setTag(one.etag || '');
    setTimeline(entries);
    setUpdates(statusUpdates.items);
    setUpdateCount(statusUpdates.total_count);
  }, [id]);

  useEffect(() => {
    if (!INCIDENT_ID.test(id)) {
      setError('This link names no incident: check the link, or pick the incident from the list.');
      return;
    }
    const nextStep = {403: ' Ask its commander to add you to the incident\'s channel, or pick another from the list.',
      404: ' Check the link, or pick an incident from the list.'};
    load().catch((e) => setError(e.message + (nextStep[e.status] || '')));
  }, [load]);

  const name = incident && incident.name;
  useEffect(() => {
    if (name) {
      setTitle(name);
    }
  }, [name]);

  useEffect(() => {
    const focused = document.activeElement;
    if (!settled || (focused && focused !== document.body)) {
      return;
    }
    const before = focusBefore.current;
    if (before && before.isConnected && !before.disabled) {
      before.focus();
    } else if (result.current) {
      result.current.focus();
    }
  }, [settled]);

  // Runs one change, then shows the incident as it is now; true when the change was made.
  // change gets the ETag of the incident as shown: a change that names a stage or task by its
  // position sends it as If-Match, so it is refused (412) once the incident has moved on.
  const run = async (what, change) => {
    if (changing.current) {
      return false;
    }
    changing.current = true;
    focusBefore.current = document.activeElement;
    setBusy(true);
    setError('');
    setNotice('');
    let made = false;
    try {
      await change(tag);
      made = true;
      await load();
      setNotice(`Done: ${what}.`);
    } catch (e) {
      if (e.status === 412) {
        await load().catch(() => {});
        setError(`Could not ${what}: someone changed this incident meanwhile. It now shows as it is: `
          + 'check it, then do it again if it is still needed.');
      } else {
        setError(made ? `Done: ${what}, but could not show the incident as it is now: ${e.message}`
          : `Could not ${what}: ${e.message}`);
      }
    }
    changing.current = false;
    setBusy(false);
    setSettled((n) => n + 1);
    return made;
  };

  if (!incident) {
    return <main id="main">
      <Message error={error}>{error ? '' : 'Loading the incident…'}</Message>
      {error && <p><a href={href('/')}>← All incidents</a></p>}
    </main>;
  }
  return <main id="main" class="incident" aria-busy={busy ? 'true' : undefined}>
    <p><a href={href('/', {team_id: incident.team_id})}>← All incidents</a></p>
    <div class="heading-row">
      <h1 dir="auto">{incident.name}</h1>
      <StatusBadge incident={incident} /> <SeverityBadge severity={incident.severity} levels={levels} />
    </div>
    {incident.description && <p class="description" dir="auto">{incident.description}</p>}
    <dl class="facts">
      <div><dt>Commander</dt><dd>{nameOf(incident.commander_user_id)}</dd></div>
      <div><dt>Stage</dt><dd>{incident.active_stage_title || 'none'}</dd></div>
      <div><dt>Started</dt><dd>{formatTime(incident.create_at)}</dd></div>
      {!incident.is_active && <div><dt>Ended</dt><dd>{formatTime(incident.end_at)}</dd></div>}
    </dl>
    <div aria-live="polite" tabIndex={-1} ref={result}><Message error={error}>{notice}</Message></div>
    <div class="actions">
      {incident.is_active ?
        <button type="button" class="danger" disabled={busy} onClick={() => run('end the incident',
          () => api(`incidents/${incident.id}/end`, {method: 'PUT'}))}>End the incident</button> :
        <button type="button" disabled={busy} onClick={() => run('restart the incident',
          () => api(`incidents/${incident.id}/restart`, {method: 'PUT'}))}>Restart the incident</button>}
      {incident.is_active && <CommanderForm incident={incident} run={run} busy={busy} />}
      <SeverityForm incident={incident} levels={levels} run={run} busy={busy} />
    </div>
    <div class="columns">
      <div>
        <Stages incident={incident} run={run} busy={busy} />
      </div>
      <div>
        <section aria-labelledby="updates-heading">
          <h2 id="updates-heading">Status updates</h2>
          {incident.is_active && <StatusUpdateForm incident={incident} run={run} busy={busy} />}
          {updates.length === 0 ? <p class="muted">No status updates yet.</p> :
            <ul class="updates">{updates.map((u) => <li key={u.id}>
              <p dir="auto">{u.message}</p>
              <p class="muted">{nameOf(u.user_id)} · {formatTime(u.create_at)}</p>
            </li>)}</ul>}
          {updateCount > updates.length && <p id="updates-shown" class="muted">
            The newest {updates.length} of {updateCount} status updates; the timeline below lists every one.</p>}
        </section>
        <section aria-labelledby="timeline-heading">
          <h2 id="timeline-heading">Timeline</h2>
          <ol class="timeline">{timeline.map((entry) => <li key={entry.id}>
            <time dateTime={new Date(entry.event_at).toISOString()}>{formatTime(entry.event_at)}</time>
            <span class="timeline__summary" dir="auto">{entry.summary}</span>
          </li>)}</ol>
        </section>
      </div>
    </div>
  </main>;
}

// ----- the frame ----------------------------------------------------------------------------
function App() {
  const route = useRoute();
  const [session, setSession] = useState(null);
  const [error, setError] = useState('');
  const loadSession = useCallback(() => page('session').then((body) => {
    setCsrfToken(body.csrf_token);
    setSession(body);
  }, (e) => setError(e.message)), []);
  useEffect(() => { loadSession(); }, [loadSession]);
  const mainRef = useRef(null);
  const signedIn = Boolean(session && session.user_id);
  useEffect(() => {
    setTitle(signedIn ? TITLES[route.path] || 'Incident' : 'Sign in');
  }, [route.path, signedIn]);
  // Following a link to another page moves focus to its content, as a page load would
  // start reading there; filters and paging stay on the same page and keep focus.
  const firstPath = useRef(true);
  useEffect(() => {
    if (firstPath.current) {
      firstPath.current = false;
      return;
    }
    const target = document.getElementById('main');
    if (target) {
      target.setAttribute('tabindex', '-1');
      target.focus();
    }
  }, [route.path]);

  if (!session) {
    return <main id="main">
      <Message error={error && `Could not load the page. ${error}`}>{error ? '' : 'Loading…'}</Message>
      {error && <button type="button" onClick={() => window.location.reload()}>Reload the page</button>}
    </main>;
  }
  const team = route.params.team_id || session.default_team_id || '';
  const signOut = async () => {
    await page('sign-out', {method: 'POST'}).catch(() => {});
    setCsrfToken('');
    loadSession();
  };
  let body;
  if (!session.user_id) {
    body = <SignIn session={session} onSignedIn={loadSession} />;
  } else if (route.path.startsWith('/incidents/')) {
    body = <IncidentPage id={route.path.split('/')[2]} levels={session.severity_levels || []} />;
  } else if (route.path === '/new') {
    body = <StartIncident session={session} team={team} />;
  } else if (route.path === '/stats') {
    body = <StatsPage team={team} />;
  } else {
    body = <IncidentList params={route.params} session={session} team={team} />;
  }
  return <div ref={mainRef}>
    <a class="skip-link" href="#main" onClick={(e) => {
      e.preventDefault();
      const target = document.getElementById('main');
      if (target) { target.setAttribute('tabindex', '-1'); target.focus(); }
    }}>Skip to the content</a>
    <header class="top">
      <span class="brand">Incident Response</span>
      {session.user_id && <nav aria-label="Sections">
        <a href={href('/', {team_id: team})} aria-current={route.path === '/' ? 'page' : undefined}>Incidents</a>
        <a href={href('/stats', {team_id: team})}
          aria-current={route.path === '/stats' ? 'page' : undefined}>Statistics</a>
      </nav>}
      {session.user_id && <span class="who">
        {session.signed_in_via === 'dev' && <span class="badge badge--dev" title="Development sign-in">dev</span>}
        {' '}@{session.username}
        {session.signed_in_via === 'dev' && <button type="button" class="link" onClick={signOut}>Sign out</button>}
      </span>}
    </header>
    {body}
  </div>;
}

render(<App />, document.getElementById('app'));
