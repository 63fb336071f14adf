import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { AGENT_DECISIONS, SKIP_REASONS } from '../../packages/core/src/index.js';
import { CONFIG_VARIABLES } from '../../apps/runner/src/config.js';
import { createRunnerMetrics } from '../../apps/runner/src/plugins/metrics.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const read = (path: string): string => readFileSync(join(root, path), 'utf8');

const DASHBOARD = 'deploy/grafana/mana-ai-dashboard.json';
const ALERTS = 'deploy/prometheus/alerts.yml';
const ALERT_TESTS = 'deploy/prometheus/alerts.test.yml';
const PROMETHEUS = 'deploy/prometheus/prometheus.yml';

/** Series Prometheus itself creates; every other name must be one the runner exports. */
const PROMETHEUS_BUILT_INS = new Set(['up']);

/** Grafana's and Docker's `${name}` variable syntax, spelled without a template-string lookalike. */
const variable = (name: string): string => `$${'{'}${name}}`;

const PROMQL_KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

/**
 * The metric names a PromQL expression selects: identifiers that are not functions, keywords, label
 * names in matchers or grouping clauses, or Grafana variables.
 */
function metricNames(expression: string): string[] {
  const stripped = expression
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\$\{?\w+\}?/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names: string[] = [];
  for (const match of stripped.matchAll(/(?<![\w.])[A-Za-z_:][\w:]*/g)) {
    const rest = stripped.slice((match.index ?? 0) + match[0].length).trimStart();
    if (rest.startsWith('(') || PROMQL_KEYWORDS.has(match[0])) continue;
    names.push(match[0]);
  }
  return names;
}

interface Target {
  refId: string;
  expr: string;
  datasource?: { type?: string; uid?: string };
}

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  gridPos: { h: number; w: number; x: number; y: number };
}

interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: string | { query: string }; datasource?: { uid?: string } }[] };
}

interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

interface RuleFile {
  groups: { name: string; rules: AlertRule[] }[];
}

const dashboard = JSON.parse(read(DASHBOARD)) as Dashboard;
const rules = parse(read(ALERTS)) as RuleFile;
const alertRules = rules.groups.flatMap((group) => group.rules);
const dashboardTargets = dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => ({ panel, target })));

/** `label_values(<selector>, <label>)` of the templating variables: the selector's metric counts too. */
const variableSelectors = dashboard.templating.list.flatMap((variable) => {
  const query = typeof variable.query === 'string' ? variable.query : variable.query.query;
  const match = /^label_values\((.+),\s*\w+\)$/.exec(query);
  return match?.[1] ? [match[1]] : [];
});

function promtoolPath(): string | undefined {
  try {
    return execFileSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

const promtool = promtoolPath();

/** Durations as Prometheus accepts them in `for:` and range selectors. */
const DURATION = /^(?:\d+(?:ms|[smhdwy]))+$/;

function balanced(expression: string): boolean {
  const pairs: Record<string, string> = { ')': '(', ']': '[', '}': '{' };
  const stack: string[] = [];
  for (const char of expression.replace(/"(?:[^"\\]|\\.)*"/g, '""')) {
    if ('([{'.includes(char)) stack.push(char);
    else if (char in pairs && stack.pop() !== pairs[char]) return false;
  }
  return stack.length === 0;
}

describe('metric names in deploy/', () => {
  let exported: Map<string, string>;
  beforeAll(async () => {
    const metrics = createRunnerMetrics();
    exported = new Map((await metrics.registry.getMetricsAsJSON()).map((metric) => [metric.name, String(metric.type)]));
  });

  const isExported = (name: string): boolean => {
    if (PROMETHEUS_BUILT_INS.has(name) || exported.has(name)) return true;
    const base = name.replace(/_(?:bucket|sum|count)$/, '');
    return base !== name && ['histogram', 'summary'].includes(exported.get(base) ?? '');
  };

  it('finds metric names, not functions, labels or variables, when it parses PromQL', () => {
    expect(
      metricNames(
        'histogram_quantile(0.95, sum by (le, path) (rate(mana_ai_http_request_duration_seconds_bucket{job=~"$job", path!="/x"}[$__rate_interval]))) * 1e3',
      ),
    ).toEqual(['mana_ai_http_request_duration_seconds_bucket']);
    expect(metricNames('(time() - a_seconds > 600) and b_seconds > 0 and on (job, instance) up == 1')).toEqual(['a_seconds', 'b_seconds', 'up']);
  });

  it('are all exported by the runner when the dashboard queries them', () => {
    const used = new Set([...dashboardTargets.flatMap(({ target }) => metricNames(target.expr)), ...variableSelectors.flatMap(metricNames)]);
    expect(used.size).toBeGreaterThan(30);
    expect([...used].filter((name) => !isExported(name)).sort(), `exported: ${[...exported.keys()].sort().join(', ')}`).toEqual([]);
  });

  it('are all exported by the runner when the alert rules use them', () => {
    const used = new Set(alertRules.flatMap((rule) => metricNames(rule.expr)));
    expect(used).toContain('mana_ai_expired_leases');
    expect([...used].filter((name) => !isExported(name)).sort()).toEqual([]);
  });

  it('cover every runner metric family the operations brief asks for when the dashboard is imported', () => {
    const used = new Set(dashboardTargets.flatMap(({ target }) => metricNames(target.expr)).map((name) => name.replace(/_(?:bucket|sum|count)$/, '')));
    const wanted = [
      'mana_ai_ticks_total',
      'mana_ai_tick_duration_seconds',
      'mana_ai_plans_produced_total',
      'mana_ai_plans_written_back_total',
      'mana_ai_parse_failures_total',
      'mana_ai_mission_errors_total',
      'mana_ai_agent_decisions_total',
      'mana_ai_missions_skipped_total',
      'mana_ai_tokens_used_total',
      'mana_ai_planner_request_duration_seconds',
      'mana_ai_provider_errors_total',
      'mana_ai_tool_calls_total',
      'mana_ai_research_jobs_submitted_total',
      'mana_ai_research_jobs_completed_total',
      'mana_ai_research_jobs_failed_total',
      'mana_ai_decrypts_total',
      'mana_ai_grant_skips_total',
      'mana_ai_grant_scope_violations_total',
      'mana_ai_snapshot_rows_applied_total',
      'mana_ai_expired_leases',
      'mana_ai_missions_in_flight',
      'mana_ai_http_requests_total',
      'mana_ai_http_request_duration_seconds',
      'mana_ai_process_resident_memory_bytes',
    ];
    expect(wanted.filter((name) => !used.has(name))).toEqual([]);
  });
});

describe('label values of the decision and skip metrics', () => {
  /** The backquoted values in the runner README's metric table row of `metric`. */
  const readmeValues = (metric: string): string[] => {
    const row = read('apps/runner/README.md')
      .split('\n')
      .find((line) => line.startsWith(`| \`${metric}\``));
    const labels = row?.split('|')[3] ?? '';
    return [...labels.matchAll(/`([a-z-]+)`/g)].map((match) => match[1]!).filter((value) => value !== 'decision' && value !== 'reason');
  };
  /** The comma list in the description of the dashboard panel that plots `metric`. */
  const dashboardValues = (metric: string): string[] => {
    const panels: { description?: string; targets?: { expr?: string }[] }[] = JSON.parse(read(DASHBOARD)).panels;
    const panel = panels.find((candidate) => candidate.targets?.some((target) => target.expr?.includes(metric)));
    const list = /(?::|\()\s*([a-z-]+(?:, [a-z-]+)+)/.exec(panel?.description ?? '')?.[1] ?? '';
    return list.split(', ');
  };

  it('are exactly the decisions core emits in the README and the dashboard (no skipped-concurrency)', () => {
    expect(readmeValues('mana_ai_agent_decisions_total')).toEqual([...AGENT_DECISIONS]);
    expect(dashboardValues('mana_ai_agent_decisions_total')).toEqual([...AGENT_DECISIONS]);
  });

  it('are exactly the skip reasons core emits in the README and the dashboard (no agent-concurrency)', () => {
    expect(readmeValues('mana_ai_missions_skipped_total')).toEqual([...SKIP_REASONS]);
    expect(dashboardValues('mana_ai_missions_skipped_total')).toEqual([...SKIP_REASONS]);
  });
});

describe('deploy/grafana/mana-ai-dashboard.json', () => {
  it('queries Prometheus through the templated datasource variable in every panel and target', () => {
    const datasource = dashboard.templating.list.find((variable) => variable.name === 'datasource');
    expect(datasource).toMatchObject({ type: 'datasource', query: 'prometheus' });
    const queried = dashboard.panels.filter((panel) => panel.type !== 'row');
    expect(queried.length).toBeGreaterThan(20);
    for (const panel of queried) {
      expect(panel.datasource, panel.title).toEqual({ type: 'prometheus', uid: variable('datasource') });
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      for (const target of panel.targets ?? []) {
        expect(target.datasource?.uid, panel.title).toBe(variable('datasource'));
        expect(balanced(target.expr), `${panel.title}: ${target.expr}`).toBe(true);
      }
    }
  });

  it('has unique panel ids and refIds and panels that fit the 24-column grid', () => {
    const ids = dashboard.panels.map((panel) => panel.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const panel of dashboard.panels) {
      const refIds = (panel.targets ?? []).map((target) => target.refId);
      expect(new Set(refIds).size, panel.title).toBe(refIds.length);
      expect(panel.gridPos.x + panel.gridPos.w, panel.title).toBeLessThanOrEqual(24);
    }
    expect(dashboard.uid).toBe('mana-ai-runner');
  });

  it('uses histogram_quantile over bucket series for the tick, LLM and HTTP latency percentiles', () => {
    const expressions = dashboardTargets.map(({ target }) => target.expr);
    for (const histogram of ['mana_ai_tick_duration_seconds', 'mana_ai_planner_request_duration_seconds', 'mana_ai_http_request_duration_seconds']) {
      expect(expressions.some((expr) => expr.startsWith('histogram_quantile(0.95,') && expr.includes(`${histogram}_bucket`)), histogram).toBe(true);
    }
  });
});

describe('deploy/prometheus/alerts.yml', () => {
  const ORIGINAL = {
    ManaAIServiceDown: { expr: 'up{job="mana-ai"} == 0', for: '2m' },
    ManaAIGrantSkipsHigh: { expr: 'sum(rate(mana_ai_grant_skips_total{reason!="expired"}[15m])) > 0.1', for: '15m' },
  };

  it('keeps the original four alerts (three with their expressions and durations) and adds the four new ones', () => {
    expect(rules.groups.map((group) => group.name)).toEqual(['mana_ai_alerts']);
    expect(alertRules.map((rule) => rule.alert)).toEqual([
      'ManaAIServiceDown',
      'ManaAIGrantScopeViolation',
      'ManaAIGrantSkipsHigh',
      'ManaAIPlannerParseFailures',
      'ManaAIStuckLeases',
      'ManaAIAgentBudgetExhausted',
      'ManaAITickStalled',
      'ManaAIRefreshHeldBack',
    ]);
    const byName = new Map(alertRules.map((rule) => [rule.alert, rule]));
    for (const [name, original] of Object.entries(ORIGINAL)) {
      expect({ expr: byName.get(name)?.expr, for: byName.get(name)?.for }, name).toEqual(original);
    }
    expect(byName.get('ManaAIGrantScopeViolation')?.labels?.severity).toBe('critical');
    // Aggregated over instances, tables and an hour, so one stale grant does not page again on every retry.
    expect(byName.get('ManaAIGrantScopeViolation')?.expr).toBe('sum by (job) (increase(mana_ai_grant_scope_violations_total[1h])) > 0');
    for (const text of Object.values(byName.get('ManaAIGrantScopeViolation')?.annotations ?? {})) {
      expect(text).not.toMatch(/\$labels\.(table|instance)/);
      if (text.includes('$value')) expect(text).toContain('$value | printf "%.0f"');
    }
    expect(byName.get('ManaAIPlannerParseFailures')).toMatchObject({ for: '10m' });
    expect(byName.get('ManaAIPlannerParseFailures')?.expr).toMatch(/\[10m\].*> 0\.2$/s);
    expect(byName.get('ManaAIStuckLeases')).toMatchObject({ expr: 'mana_ai_expired_leases > 0', for: '15m' });
    expect(byName.get('ManaAIAgentBudgetExhausted')?.expr).toBe('sum(increase(mana_ai_agent_decisions_total{decision="skipped-budget"}[1h])) > 0');
    expect(byName.get('ManaAITickStalled')?.expr).toContain('time() - mana_ai_last_tick_timestamp_seconds > 600');
    expect(byName.get('ManaAIRefreshHeldBack')).toMatchObject({ expr: 'max by (job) (mana_ai_feed_lag_seconds) > 300', for: '5m' });
  });

  it('gives every alert a severity, a summary, a description and a runbook section that exists', () => {
    const headings = read('docs/troubleshooting.md')
      .split('\n')
      .filter((line) => line.startsWith('#'))
      .map((line) =>
        line
          .replace(/^#+\s*/, '')
          .toLowerCase()
          .replace(/[^\w\- ]/g, '')
          .replace(/ /g, '-'),
      );
    for (const rule of alertRules) {
      expect(['critical', 'warning', 'info'], rule.alert).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, rule.alert).toBeTruthy();
      expect(rule.annotations?.description, rule.alert).toBeTruthy();
      expect(rule.annotations?.runbook_url, rule.alert).toBe(`docs/troubleshooting.md#${rule.alert.toLowerCase()}`);
      expect(headings, rule.alert).toContain(rule.alert.toLowerCase());
    }
  });

  it(
    promtool
      ? 'passes promtool check rules, check config and the alert unit tests, and the dashboard expressions parse (promtool on PATH)'
      : 'passes the structural checks: durations, balanced expressions, unit tests naming real alerts (promtool not on PATH, so no PromQL parse)',
    async () => {
      if (promtool) {
        const checked = await run(promtool, ['check', 'rules', ALERTS], { cwd: root });
        expect(checked.stdout).toContain(`SUCCESS: ${alertRules.length} rules found`);
        const config = await run(promtool, ['check', 'config', PROMETHEUS], { cwd: root });
        expect(config.stdout).toContain('SUCCESS');
        const tested = await run(promtool, ['test', 'rules', 'alerts.test.yml'], { cwd: join(root, 'deploy/prometheus') });
        expect(tested.stdout).toContain('SUCCESS');
        // Every dashboard query, with Grafana's variables filled in, as a recording rule: promtool parses it.
        const scratch = await mkdtemp(join(tmpdir(), 'mana-ai-dashboard-'));
        try {
          const recordings = dashboardTargets.map(({ panel, target }) => ({
            record: `dashboard:panel_${panel.id}_${target.refId}`,
            expr: target.expr.replace(/\$__rate_interval/g, '5m').replace(/\$\w+/g, '.+'),
          }));
          await writeFile(join(scratch, 'dashboard.rules.yml'), JSON.stringify({ groups: [{ name: 'dashboard', rules: recordings }] }));
          const parsed = await run(promtool, ['check', 'rules', join(scratch, 'dashboard.rules.yml')]);
          expect(parsed.stdout).toContain(`SUCCESS: ${recordings.length} rules found`);
        } finally {
          await rm(scratch, { recursive: true, force: true });
        }
        return;
      }
      for (const rule of alertRules) {
        if (rule.for !== undefined) expect(rule.for, rule.alert).toMatch(DURATION);
        expect(balanced(rule.expr), rule.alert).toBe(true);
        for (const [, range] of rule.expr.matchAll(/\[([^\]]+)\]/g)) expect(range, rule.alert).toMatch(DURATION);
      }
      const unitTests = parse(read(ALERT_TESTS)) as { rule_files: string[]; tests: { alert_rule_test: { alertname: string }[] }[] };
      expect(unitTests.rule_files).toEqual(['alerts.yml']);
      const tested = new Set(unitTests.tests.flatMap((test) => test.alert_rule_test.map((check) => check.alertname)));
      expect([...tested].filter((name) => !alertRules.some((rule) => rule.alert === name))).toEqual([]);
      expect(tested).toContain('ManaAIStuckLeases');
      expect(tested).toContain('ManaAIGrantScopeViolation');
      const config = parse(read(PROMETHEUS)) as { rule_files: string[]; scrape_configs: { job_name: string; scrape_interval: string }[] };
      expect(config.rule_files).toEqual(['alerts.yml']);
      expect(config.scrape_configs[0]).toMatchObject({ job_name: 'mana-ai', scrape_interval: '30s' });
    },
  );
});

/** Dockerfile instructions, continuation lines joined, comments dropped. */
function dockerInstructions(text: string): { keyword: string; args: string }[] {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const [keyword = '', ...rest] = line.split(/\s+/);
      return { keyword: keyword.toUpperCase(), args: rest.join(' ') };
    });
}

const KNOWN_VARIABLES = new Set(CONFIG_VARIABLES.flatMap((variable) => [variable.name, ...variable.aliases]));

describe('Dockerfile', () => {
  const instructions = dockerInstructions(read('Dockerfile'));
  const stages = instructions.filter((instruction) => instruction.keyword === 'FROM');
  const runtimeStart = instructions.lastIndexOf(stages.at(-1)!);
  const runtime = instructions.slice(runtimeStart);

  it('builds in several stages on node 20 bookworm-slim with the pnpm of packageManager', () => {
    const nodeImage = instructions.find((instruction) => instruction.keyword === 'ARG' && instruction.args.startsWith('NODE_IMAGE='));
    expect(nodeImage?.args).toBe('NODE_IMAGE=node:20-bookworm-slim');
    expect(stages.map((stage) => stage.args)).toEqual([`${variable('NODE_IMAGE')} AS build`, `${variable('NODE_IMAGE')} AS runtime`]);
    const packageManager = (JSON.parse(read('package.json')) as { packageManager: string }).packageManager;
    expect(packageManager).toMatch(/^pnpm@\d+\.\d+\.\d+$/);
    expect(instructions.some((instruction) => instruction.keyword === 'RUN' && instruction.args === `npm install -g ${packageManager}`)).toBe(true);
    expect(instructions.some((instruction) => instruction.args.includes('pnpm install --offline --frozen-lockfile'))).toBe(true);
    expect(instructions.some((instruction) => instruction.args.startsWith('pnpm --filter=@mana-ai/runner deploy --prod'))).toBe(true);
  });

  it('runs as a non-root user with a /health healthcheck, the runner port and known variables', () => {
    const users = runtime.filter((instruction) => instruction.keyword === 'USER');
    expect(users.at(-1)?.args).toBe('node');
    const lastUser = runtime.lastIndexOf(users.at(-1)!);
    expect(runtime.slice(lastUser).filter((instruction) => instruction.keyword === 'RUN')).toEqual([]);
    const healthcheck = runtime.find((instruction) => instruction.keyword === 'HEALTHCHECK');
    expect(healthcheck?.args).toContain("fetch('http://127.0.0.1:' + (process.env.PORT || 3067) + '/health')");
    const port = CONFIG_VARIABLES.find((variable) => variable.name === 'PORT')?.default;
    expect(runtime.find((instruction) => instruction.keyword === 'EXPOSE')?.args).toBe(port);
    const envNames = runtime
      .filter((instruction) => instruction.keyword === 'ENV')
      .flatMap((instruction) => [...instruction.args.matchAll(/(\w+)=/g)].map((match) => match[1]!));
    expect(envNames).toContain('NODE_ENV');
    expect(envNames.filter((name) => !KNOWN_VARIABLES.has(name))).toEqual([]);
    expect(runtime.find((instruction) => instruction.keyword === 'ENTRYPOINT')?.args).toBe('["node", "dist/cli.js"]');
  });

  it('keeps local state and build output out of the build context via .dockerignore', () => {
    const ignored = read('.dockerignore').split('\n');
    for (const entry of ['.git', '**/node_modules', '**/dist', '**/.mana-ai', '.env']) expect(ignored).toContain(entry);
  });
});

describe('docker-compose.yml', () => {
  interface Service {
    image?: string;
    build?: string;
    environment?: Record<string, string>;
    depends_on?: Record<string, { condition: string }>;
    healthcheck?: { test: string[] };
    volumes?: string[];
    profiles?: string[];
  }
  const compose = parse(read('docker-compose.yml')) as { services: Record<string, Service> };

  it('runs the runner against postgres:17 with the mana_sync database once Postgres is healthy', () => {
    const { postgres, 'mana-ai': runner } = compose.services;
    expect(postgres?.image).toBe('postgres:17');
    expect(postgres?.environment?.POSTGRES_DB).toBe('mana_sync');
    expect(postgres?.healthcheck?.test.join(' ')).toContain('pg_isready');
    // The runner refuses a database without sync_changes: the bundled one gets mana-sync's DDL at init.
    expect(postgres?.volumes).toContain('./packages/projection/sql/0001_sync_changes.sql:/docker-entrypoint-initdb.d/0001_sync_changes.sql:ro');
    expect(existsSync(join(root, 'packages/projection/sql/0001_sync_changes.sql'))).toBe(true);
    expect(runner?.build).toBe('.');
    expect(runner?.depends_on).toEqual({ postgres: { condition: 'service_healthy' } });
    expect(runner?.healthcheck?.test.join(' ')).toContain('/health');
    const databaseUrl = new URL(runner?.environment?.DATABASE_URL?.replace(/\$\{[^}]+\}/g, 'secret') ?? '');
    expect([databaseUrl.protocol, databaseUrl.hostname, databaseUrl.pathname]).toEqual(['postgresql:', 'postgres', '/mana_sync']);
  });

  it('sets only variables the runner config schema knows', () => {
    const names = Object.keys(compose.services['mana-ai']?.environment ?? {});
    expect(names).toContain('MANA_SERVICE_KEY');
    expect(names.filter((name) => !KNOWN_VARIABLES.has(name))).toEqual([]);
  });

  it('mounts the Prometheus configuration of deploy/ in the monitoring profile', () => {
    const prometheus = compose.services.prometheus;
    expect(prometheus?.profiles).toEqual(['monitoring']);
    const [source] = (prometheus?.volumes?.[0] ?? '').split(':');
    expect(existsSync(join(root, source ?? 'missing'))).toBe(true);
    expect(existsSync(join(root, source ?? 'missing', 'prometheus.yml'))).toBe(true);
  });
});

/** The `key=value` lines of a systemd unit, by section; repeated keys keep every value. */
function unitFile(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1]!, current);
      continue;
    }
    const [key = '', ...value] = line.split('=');
    current?.set(key, [...(current.get(key) ?? []), value.join('=')]);
  }
  return sections;
}

describe('deploy/systemd', () => {
  const UNIT = 'deploy/systemd/mana-ai.service';
  const SYSUSERS = 'deploy/systemd/mana-ai.sysusers.conf';
  const unit = unitFile(read(UNIT));
  const value = (section: string, key: string): string[] => unit.get(section)?.get(key) ?? [];

  it('restarts after a failed boot with a delay, after the network and PostgreSQL, as the user sysusers creates', () => {
    expect(value('Unit', 'After').join(' ').split(/\s+/)).toEqual(expect.arrayContaining(['network-online.target', 'postgresql.service']));
    expect(value('Unit', 'Wants').join(' ').split(/\s+/)).toContain('network-online.target');
    expect(value('Service', 'Restart')).toEqual(['on-failure']);
    expect(value('Service', 'RestartSec')[0]).toMatch(/^\d+s?$/);
    expect(value('Service', 'ExecStart')[0]).toMatch(/dist\/cli\.js start$/);
    // Only the runner gets SIGTERM (its own graceful path), not every process of the cgroup at once.
    expect(value('Service', 'KillMode')).toEqual(['mixed']);
    const users = read(SYSUSERS)
      .split('\n')
      .filter((line) => line.startsWith('u '))
      .map((line) => line.split(/\s+/)[1]);
    expect(users).toEqual([value('Service', 'User')[0]]);
  });

  it('gives shutdown longer than the runner allows itself with the default MANA_AI_SHUTDOWN_TIMEOUT_MS', () => {
    const shutdownMs = Number(CONFIG_VARIABLES.find((variable) => variable.name === 'MANA_AI_SHUTDOWN_TIMEOUT_MS')?.default);
    // The runner exits 1 by itself after the timeout plus 20 s (src/server.ts).
    expect(Number(value('Service', 'TimeoutStopSec')[0]) * 1000).toBeGreaterThan(shutdownMs + 20_000);
  });

  it('is shown in docs/operations.md exactly as the file is', () => {
    const operations = read('docs/operations.md');
    expect(operations).toContain(`\`\`\`ini\n${read(UNIT)}\`\`\``);
    expect(operations).toContain(read(SYSUSERS).trim());
  });

  const systemdAnalyze = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((path) => existsSync(path));
  it(
    systemdAnalyze
      ? 'passes systemd-analyze verify (systemd-analyze on this machine)'
      : 'has the Unit, Service and Install sections (systemd-analyze not on this machine, so no verify)',
    async () => {
      expect([...unit.keys()]).toEqual(['Unit', 'Service', 'Install']);
      if (!systemdAnalyze) return;
      const verified = await run(systemdAnalyze, ['verify', '--man=no', join(root, UNIT)]).catch((error: { stderr?: string }) => ({ stderr: error.stderr ?? String(error) }));
      expect(verified.stderr).toBe('');
    },
  );
});
