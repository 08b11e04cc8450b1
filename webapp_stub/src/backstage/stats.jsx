// The statistics page: incidents per week, time to end and time per stage, drawn with uPlot.
import {useEffect, useRef, useState} from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

import {api} from './api.js';

const DAY = 24 * 3600 * 1000;
const COLORS = {started: '#1f5fbf', ended: '#2e7d32', stage: '#8a4fbf'};

function duration(ms) {
  if (ms === null || ms === undefined) {
    return 'no data';
  }
  if (ms < 60000) {
    return `${Math.round(ms / 1000)} s`;
  }
  const minutes = Math.round(ms / 60000);
  if (minutes < 60) {
    return `${minutes} min`;
  }
  const hours = minutes / 60;
  return hours < 48 ? `${hours.toFixed(1)} h` : `${(hours / 24).toFixed(1)} days`;
}

// One uPlot chart over named x positions: each series is {label, values, color, line?};
// bars by default, a line with points when line is set (two series never hide each other).
// The y axis starts at 0; counts get whole-number ticks.
function BarChart({title, labels, series, describedBy, yLabel, whole = true}) {
  const box = useRef(null);
  useEffect(() => {
    const width = Math.max(260, Math.min(720, box.current.clientWidth || 600));
    const format = (v) => (whole ? String(v) : String(Number(v.toFixed(1))));
    const opts = {
      width, height: 240, title, legend: {show: false},
      scales: {
        x: {time: false, range: [-0.5, labels.length - 0.5]},
        y: {range: (u, min, max) => [0, Math.max(whole ? 4 : 1, max * 1.15)]},
      },
      axes: [
        {values: (u, splits) => splits.map((v) => labels[Math.round(v)] ?? ''),
          splits: () => labels.map((_, i) => i), gap: 6},
        {values: (u, splits) => splits.map(format), size: 60, label: yLabel,
          incrs: whole ? [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] : undefined},
      ],
      series: [{label: 'x'}, ...series.map((s) => ({
        label: s.label, stroke: s.color, width: s.line ? 2 : 1,
        fill: s.line ? undefined : `${s.color}cc`,
        paths: s.line ? undefined : uPlot.paths.bars({size: [0.6, 80]}),
        points: {show: Boolean(s.line), size: 7, fill: s.color},
      }))],
    };
    const data = [labels.map((_, i) => i), ...series.map((s) => s.values)];
    const chart = new uPlot(opts, data, box.current);
    return () => chart.destroy();
  }, [title, JSON.stringify(labels), JSON.stringify(series)]);
  return <figure class="chart">
    <div ref={box} role="img" aria-label={title} aria-describedby={describedBy} />
    <figcaption class="legend">{series.map((s) => <span key={s.label}>
      <span class={`swatch${s.line ? ' swatch--line' : ''}`} style={{background: s.color}} aria-hidden="true" />
      {s.label}</span>)}</figcaption>
  </figure>;
}

function weekLabel(ms) {
  return new Date(ms).toLocaleDateString(undefined, {month: 'short', day: 'numeric'});
}

export function StatsPage({team}) {
  const [days, setDays] = useState('84');
  const [stats, setStats] = useState(null);
  const [error, setError] = useState('');

  useEffect(() => {
    let current = true;
    if (!team) {
      setStats(null);
      setError('Open this page with a team (team_id in the address, as the incident panel links it).');
      return undefined;
    }
    const to = Date.now();
    setError('');
    api('stats', {query: {team_id: team, from: to - Number(days) * DAY, to}}).then(
      (body) => current && setStats(body),
      (e) => current && (setStats(null), setError(e.status === 404 ? '' : e.message)));
    return () => { current = false; };
  }, [team, days]);

  const weeks = (stats && stats.weeks) || [];
  const stages = ((stats && stats.stages) || []).filter((s) => s.count > 0);
  const severity = (stats && stats.severity) || [];
  // Stage times in minutes, or in hours once the longest passes three hours.
  const longest = Math.max(0, ...stages.map((st) => st.p50_ms || 0));
  const unit = longest > 3 * 3600 * 1000 ? {ms: 3600 * 1000, name: 'hours'} : {ms: 60000, name: 'minutes'};
  return <main id="main">
    <h1>Statistics</h1>
    <form class="filters" onSubmit={(e) => e.preventDefault()} aria-label="Period">
      <div class="field">
        <label for="stats-period">Period</label>
        <select id="stats-period" value={days} onChange={(e) => setDays(e.currentTarget.value)}>
          <option value="28">Last 4 weeks</option>
          <option value="84">Last 12 weeks</option>
          <option value="364">Last year</option>
        </select>
      </div>
    </form>
    {error && <p class="message message--error" role="alert">{error}</p>}
    {!stats && !error && <p class="message" role="status">No data: the statistics are not available.</p>}
    {stats && <>
      <dl class="facts facts--big">
        <div><dt>Started</dt><dd>{stats.started}</dd></div>
        <div><dt>Ended</dt><dd>{stats.ended}</dd></div>
        <div><dt>Active</dt><dd>{stats.active}</dd></div>
        <div><dt>Time to end, median</dt><dd>{duration(stats.time_to_end_ms && stats.time_to_end_ms.p50)}</dd></div>
        <div><dt>Time to end, 90th percentile</dt><dd>{duration(stats.time_to_end_ms && stats.time_to_end_ms.p90)}</dd></div>
      </dl>
      <section aria-labelledby="weeks-heading">
        <h2 id="weeks-heading">Incidents per week</h2>
        {weeks.length === 0 ? <p class="muted">No data for this period.</p> : <>
          <BarChart title="Incidents started and ended per week" labels={weeks.map((w) => weekLabel(w.week_start))}
            yLabel="incidents"
            describedBy="weeks-table" series={[
              {label: 'Started', values: weeks.map((w) => w.started), color: COLORS.started},
              {label: 'Ended', values: weeks.map((w) => w.ended), color: COLORS.ended, line: true}]} />
          <details>
          <summary>The figures as a table</summary>
          <table id="weeks-table" class="data-table">
            <caption>Incidents per week</caption>
            <thead><tr><th scope="col">Week of</th><th scope="col">Started</th><th scope="col">Ended</th></tr></thead>
            <tbody>{weeks.map((w) => <tr key={w.week_start}>
              <th scope="row">{weekLabel(w.week_start)}</th><td>{w.started}</td><td>{w.ended}</td></tr>)}</tbody>
          </table>
          </details>
        </>}
      </section>
      <section aria-labelledby="stages-heading">
        <h2 id="stages-heading">Time per stage (median)</h2>
        {stages.length === 0 ? <p class="muted">No data for this period.</p> : <>
          <BarChart title="Median time spent in each stage" labels={stages.map((s) => s.name)}
            describedBy="stages-table" yLabel={unit.name} whole={false}
            series={[{label: `Median, ${unit.name}`, values: stages.map((s) => (s.p50_ms === null ? null : s.p50_ms / unit.ms)),
              color: COLORS.stage}]} />
          <table id="stages-table" class="data-table">
            <caption>Time per stage</caption>
            <thead><tr><th scope="col">Stage</th><th scope="col">Median</th><th scope="col">Incidents</th></tr></thead>
            <tbody>{stages.map((s) => <tr key={s.name}>
              <th scope="row">{s.name}</th><td>{duration(s.p50_ms)}</td><td>{s.count}</td></tr>)}</tbody>
          </table>
        </>}
      </section>
      <section aria-labelledby="severity-heading">
        <h2 id="severity-heading">By severity</h2>
        {severity.length === 0 ? <p class="muted">No data for this period.</p> :
          <table class="data-table">
            <thead><tr><th scope="col">Severity</th><th scope="col">Incidents</th></tr></thead>
            <tbody>{severity.map((s) => <tr key={s.severity}>
              <th scope="row">{s.severity || 'none'}</th><td>{s.count}</td></tr>)}</tbody>
          </table>}
      </section>
    </>}
  </main>;
}
