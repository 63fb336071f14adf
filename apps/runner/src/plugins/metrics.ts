import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The `path` label of requests that matched no route (raw URLs would explode cardinality). */
export const UNMATCHED_PATH = 'unmatched';

/** The runner's Prometheus registry and the metrics the host itself records (UPSTREAM §12.4). */
export interface RunnerMetrics {
  /** This app's registry; register further metrics here, never on the global one. */
  registry: Registry;
  /** `mana_ai_http_requests_total{method,path,status}`. */
  httpRequests: Counter<'method' | 'path' | 'status'>;
  /** `mana_ai_http_request_duration_seconds{method,path,status}`. */
  httpRequestDuration: Histogram<'method' | 'path' | 'status'>;
  /** `mana_ai_ticks_total`: each non-overlapping tick start. */
  ticks: Counter;
  /** `mana_ai_tick_duration_seconds`: each non-overlapping tick. */
  tickDuration: Histogram;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The runner's metrics (see RunnerMetrics). */
    metrics: RunnerMetrics;
  }
}

/** Creates a registry with `service="mana-ai"` on every series, the default metrics and the host metrics. */
export function createRunnerMetrics(): RunnerMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service: 'mana-ai' });
  collectDefaultMetrics({ register: registry, prefix: 'mana_ai_' });
  const registers = [registry];
  return {
    registry,
    httpRequests: new Counter({
      name: 'mana_ai_http_requests_total',
      help: 'HTTP requests by method, route pattern and status.',
      labelNames: ['method', 'path', 'status'],
      registers,
    }),
    httpRequestDuration: new Histogram({
      name: 'mana_ai_http_request_duration_seconds',
      help: 'HTTP request duration in seconds by method, route pattern and status.',
      labelNames: ['method', 'path', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    ticks: new Counter({ name: 'mana_ai_ticks_total', help: 'Ticks started (overlap-skipped calls excluded).', registers }),
    tickDuration: new Histogram({
      name: 'mana_ai_tick_duration_seconds',
      help: 'Tick duration in seconds.',
      buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120],
      registers,
    }),
  };
}

async function metricsPlugin(app: FastifyInstance): Promise<void> {
  const metrics = createRunnerMetrics();
  app.decorate('metrics', metrics);
  app.addHook('onResponse', async (request, reply) => {
    const labels = { method: request.method, path: request.routeOptions.url ?? UNMATCHED_PATH, status: String(reply.statusCode) };
    metrics.httpRequests.inc(labels);
    metrics.httpRequestDuration.observe(labels, reply.elapsedTime / 1000);
  });
  app.addHook('onClose', async () => {
    metrics.registry.clear();
  });
}

/** Decorates `metrics` and records every request in the HTTP metrics. */
export default fp(metricsPlugin, { name: 'mana-ai-metrics', fastify: '5.x' });
