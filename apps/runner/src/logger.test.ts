import { Writable } from 'node:stream';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { createLogger } from './logger.js';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { lines, destination };
}

describe('createLogger', () => {
  it('redacts credential headers and secret fields when they are logged', () => {
    const { lines, destination } = capture();
    const logger = createLogger({ level: 'info', destination });
    logger.info(
      {
        request: { headers: { authorization: 'Bearer jwt-secret', 'x-service-key': 'svc-secret', cookie: 'sid=cookie-secret', accept: 'json' } },
        grant: { wrappedKey: 'wrapped-secret' },
        mission: { grant: 'grant-secret', id: 'm1' },
        user: { auth: { password: 'pw-secret', privateKey: 'pk-secret' } },
        err: { message: 'insert failed', parameters: ['param-secret'] },
      },
      'request',
    );
    const line = lines.join('');
    for (const secret of ['jwt-secret', 'svc-secret', 'cookie-secret', 'wrapped-secret', 'grant-secret', 'pw-secret', 'pk-secret', 'param-secret']) {
      expect(line).not.toContain(secret);
    }
    const parsed = JSON.parse(line);
    expect(parsed).toMatchObject({ service: 'mana-ai', msg: 'request', mission: { id: 'm1', grant: '[redacted]' } });
    expect(parsed.request.headers).toEqual({ authorization: '[redacted]', 'x-service-key': '[redacted]', cookie: '[redacted]', accept: 'json' });
  });

  it('logs requests without their query string and headers when Fastify logs an incoming request', async () => {
    const { lines, destination } = capture();
    const app = Fastify({ loggerInstance: createLogger({ level: 'info', destination }) });
    app.get('/internal/x', async () => ({ ok: true }));
    await app.inject({ method: 'GET', url: '/internal/x?x-service-key=query-secret&note=user-text', headers: { 'x-service-key': 'header-secret' } });
    await app.close();
    const text = lines.join('');
    expect(text).toContain('"url":"/internal/x"');
    for (const secret of ['query-secret', 'user-text', 'header-secret']) expect(text).not.toContain(secret);
  });

  it('writes the level name, an ISO timestamp and the instance id on every line', () => {
    const { lines, destination } = capture();
    const logger = createLogger({ level: 'info', destination, instanceId: 'runner-7' });
    logger.warn({ missionId: 'm1' }, 'held');
    logger.child({ component: 'dispatcher' }).info({}, 'cycle');
    const [first, second] = lines.map((line) => JSON.parse(line));
    expect(first).toMatchObject({ level: 'warn', service: 'mana-ai', instanceId: 'runner-7', missionId: 'm1', msg: 'held' });
    expect(second).toMatchObject({ level: 'info', instanceId: 'runner-7', component: 'dispatcher' });
    for (const line of [first, second]) {
      expect(line.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(new Date(line.time).toISOString()).toBe(line.time);
    }
  });

  it('drops lines below the configured level', () => {
    const { lines, destination } = capture();
    const logger = createLogger({ level: 'warn', destination });
    logger.info({}, 'hidden');
    logger.warn({}, 'shown');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] ?? '{}').msg).toBe('shown');
  });
});
